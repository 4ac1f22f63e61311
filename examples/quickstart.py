"""The README's API example, executed by the tests."""

import torch

from fernn import FERNN, NextFramePredictor, TranslationFlow, check_equivariance

flow = TranslationFlow(2)                       # |vx|, |vy| <= 2: V = 25 velocity channels
rnn = FERNN(in_channels=1, hidden_channels=16, flow=flow)
x = torch.rand(8, 10, 1, 28, 28)                # (B, T, C, H, W)
h = rnn(x)                                      # (B, T, V, C_hidden, H, W)
assert h.shape == (8, 10, 25, 16, 28, 28)

h1, state = rnn(x[:, :4], return_state=True)    # chunked processing equals whole
h2 = rnn(x[:, 4:], state=state)
assert torch.allclose(torch.cat([h1, h2], 1), h)

report = check_equivariance(rnn, flow, (1, -1), x)   # move x by nu = (1, -1) px/step
print(f"max relative equivariance error: {report.max_rel:.1e}")

model = NextFramePredictor(1, 32, flow)         # the paper's Flowing-MNIST model; G-RNN: TranslationFlow(0)
future = model(x, pred_len=10)                  # (8, 10, 1, 28, 28), autoregressive
assert future.shape == (8, 10, 1, 28, 28)
