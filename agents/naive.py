"""The paper's way of writing the translation FERNN step, kept as the benchmark's baseline.

A Python loop over velocities calling ``torch.roll``, ``torch.stack`` to re-assemble the state, and
convolutions with ``padding_mode="circular"`` -- the structure of the reference code. It shares the
weights of a :class:`fernn.NextFramePredictor` and computes the same function (a test proves it), so
the benchmark compares implementations, not models.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fernn.models import NextFramePredictor


class RollLoopPredictor(nn.Module):
    """``NextFramePredictor`` re-implemented with a per-velocity ``torch.roll`` loop (shares weights)."""

    def __init__(self, model: NextFramePredictor) -> None:
        super().__init__()
        self.model = model
        core = model.rnn.core
        self.velocities = [(int(vx), int(vy)) for vx, vy in core.velocities.tolist()]
        self.conv_in, self.conv_rec, self.pad = core.conv_in, core.conv_rec, core.pad

    def _step(self, h: torch.Tensor, frame: torch.Tensor, shifted: torch.Tensor) -> torch.Tensor:
        batch, num_v, channels, height, width = h.shape
        padded = F.pad(shifted.view(batch * num_v, channels, height, width), [self.pad] * 4, mode="circular")
        rec = F.conv2d(padded, self.conv_rec.weight).view(batch, num_v, channels, height, width)
        return torch.relu(self.conv_in(frame)[:, None] + rec)

    def _shift_all(self, h: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.roll(h[:, i], shifts=(vy, vx), dims=(-2, -1))
                            for i, (vx, vy) in enumerate(self.velocities)], 1)

    def forward(self, context: torch.Tensor, pred_len: int) -> torch.Tensor:
        batch, steps, _, height, width = context.shape
        h = context.new_zeros(batch, len(self.velocities), self.conv_rec.out_channels, height, width)
        for t in range(steps):
            h = self._step(h, context[:, t], self._shift_all(h))
        outputs = []
        for step in range(pred_len):
            shifted = self._shift_all(h)
            frame = self.model.decoder(shifted.amax(1))
            outputs.append(frame)
            if step + 1 < pred_len:
                h = self._step(h, frame.detach(), shifted)
        return torch.stack(outputs, 1)
