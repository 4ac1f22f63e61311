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


class PerSampleWorldModel(nn.Module):
    """:class:`fernn.WorldModel` (self-motion variant) written the FloWM reference's way (shares weights).

    Every step: a Python loop over velocities (``torch.roll``), then a loop over batch items rolling each
    item's map by minus its action (``int(action.item())``, as the reference's ``roll_batch_with_v``),
    ``torch.stack``, a circularly padded recurrent convolution, and the encoded window pasted into a zero
    map. Computes the same function as the model (a test proves it).
    """

    def __init__(self, model) -> None:
        super().__init__()
        if not model.self_motion or model.action_concat:
            raise ValueError("PerSampleWorldModel reproduces the self-motion variant only")
        self.model = model
        core = model.rnn.core
        self.velocities = [(int(vx), int(vy)) for vx, vy in core.velocities.tolist()]
        self.conv_in, self.conv_rec, self.pad = core.conv_in, core.conv_rec, core.pad

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        batch, steps, _, window, _ = obs.shape
        world, model = self.model.world_size, self.model
        h = obs.new_zeros(batch, len(self.velocities), self.conv_rec.out_channels, world, world)
        predictions = []
        for t in range(steps):
            flowed = torch.stack([torch.roll(h[:, i], shifts=(vy, vx), dims=(-2, -1))
                                  for i, (vx, vy) in enumerate(self.velocities)], 1)
            moved = torch.stack([torch.roll(flowed[b], shifts=(-int(actions[b, t, 1].item()),
                                                               -int(actions[b, t, 0].item())), dims=(-2, -1))
                                 for b in range(batch)], 0)
            pooled = moved[..., :window, :window].amax(1)
            predictions.append(model.decoder(pooled))
            drive = obs.new_zeros(batch, self.conv_rec.out_channels, world, world)
            drive[:, :, :window, :window] = self.conv_in(obs[:, t])
            padded = F.pad(moved.flatten(0, 1), [self.pad] * 4, mode="circular")
            rec = F.conv2d(padded, self.conv_rec.weight).view_as(moved)
            h = torch.relu(drive[:, None] + rec)
        return torch.stack(predictions, 1)
