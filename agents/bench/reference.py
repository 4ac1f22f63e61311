"""The papers' way of writing the FERNN steps, kept as the benchmarks' baselines.

Each class shares the weights of one of our models and computes the same function (tests prove it),
so the benchmarks compare implementations, not models:

* :class:`RollLoopPredictor`: translation flows with a Python loop over velocities calling
  ``torch.roll``, ``torch.stack`` and convolutions with ``padding_mode="circular"`` (the FERNN reference);
* :class:`RotationLoopPredictor`: rotation flows with a loop over velocities, each rotated by
  ``affine_grid`` + ``grid_sample`` and its orientation axis cycled, escnn ``R2Conv`` modules called on
  ``GeometricTensor`` every step (the Rotating-MNIST reference);
* :class:`PerSampleWorldModel`: the self-motion shift as a loop over batch items (the FloWM reference);
* ``frame_by_frame_*``: the scene generators of the reference datasets (one sequence, frame and digit
  at a time), the baselines of ``fernn-rl bench scenes``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fernn.agents.planning import CandidateScores, CEMPlanner, ModelPolicy
from fernn.models import NextFramePredictor
from fernn.rotation import orientation_shift_matrix


class _LoopPredictor(nn.Module):
    """The predictor's schedule (context steps, then decode the flowed state and feed it back), with
    the per-velocity transport and the recurrence left to subclasses."""

    def __init__(self, model: NextFramePredictor) -> None:
        super().__init__()
        self.model = model

    def _shift_all(self, h: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _step(self, h: torch.Tensor, frame: torch.Tensor, shifted: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _initial(self, context: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, context: torch.Tensor, pred_len: int) -> torch.Tensor:
        h = self._initial(context)
        for t in range(context.shape[1]):
            h = self._step(h, context[:, t], self._shift_all(h))
        outputs = []
        for step in range(pred_len):
            shifted = self._shift_all(h)
            frame = self.model.decoder(shifted.amax(1))
            outputs.append(frame)
            if step + 1 < pred_len:
                h = self._step(h, frame.detach().clamp(0.0, 1.0), shifted)
        return torch.stack(outputs, 1)


class RollLoopPredictor(_LoopPredictor):
    """``NextFramePredictor`` (translation) with a per-velocity ``torch.roll`` loop (shares weights)."""

    def __init__(self, model: NextFramePredictor) -> None:
        super().__init__(model)
        core = model.rnn.core
        self.velocities = [(int(vx), int(vy)) for vx, vy in core.velocities.tolist()]
        self.conv_in, self.conv_rec, self.pad = core.conv_in, core.conv_rec, core.pad

    def _initial(self, context: torch.Tensor) -> torch.Tensor:
        return context.new_zeros(context.shape[0], len(self.velocities), self.conv_rec.out_channels,
                                 *context.shape[-2:])

    def _step(self, h: torch.Tensor, frame: torch.Tensor, shifted: torch.Tensor) -> torch.Tensor:
        batch, num_v, channels, height, width = h.shape
        padded = F.pad(shifted.view(batch * num_v, channels, height, width), [self.pad] * 4, mode="circular")
        rec = F.conv2d(padded, self.conv_rec.weight).view(batch, num_v, channels, height, width)
        return torch.relu(self.conv_in(frame)[:, None] + rec)

    def _shift_all(self, h: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.roll(h[:, i], shifts=(vy, vx), dims=(-2, -1))
                            for i, (vx, vy) in enumerate(self.velocities)], 1)


class RotationLoopPredictor(_LoopPredictor):
    """``NextFramePredictor`` (rotation) with a per-velocity ``grid_sample`` loop and escnn modules
    called every step (shares weights)."""

    def __init__(self, model: NextFramePredictor) -> None:
        super().__init__(model)
        from escnn import nn as escnn_nn

        self.geometric_tensor = escnn_nn.GeometricTensor
        core = model.rnn.core
        flow = core.flow
        self.conv_in, self.conv_rec, self.group_order = core.conv_in, core.conv_rec, flow.group_order
        self.angles = flow.angular_velocities.tolist()
        self.orientation = orientation_shift_matrix(flow.angular_velocities * flow.group_order / 360.0,
                                                    flow.group_order, flow.orientation_shift).float()

    def _initial(self, context: torch.Tensor) -> torch.Tensor:
        return context.new_zeros(context.shape[0], len(self.angles), self.conv_rec.out_type.size, *context.shape[-2:])

    def _rotate(self, h: torch.Tensor, index: int) -> torch.Tensor:
        batch, channels, height, width = h.shape
        fields = h.view(batch, channels // self.group_order, self.group_order, height, width)
        h = torch.einsum("ij,bfjhw->bfihw", self.orientation[index].to(h), fields).reshape(h.shape)
        theta = math.radians(self.angles[index])
        matrix = h.new_tensor([[math.cos(theta), -math.sin(theta), 0.0], [math.sin(theta), math.cos(theta), 0.0]])
        grid = F.affine_grid(matrix.expand(batch, 2, 3), list(h.shape), align_corners=False)
        return F.grid_sample(h, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def _shift_all(self, h: torch.Tensor) -> torch.Tensor:
        return torch.stack([self._rotate(h[:, i], i) for i in range(len(self.angles))], 1)

    def _step(self, h: torch.Tensor, frame: torch.Tensor, shifted: torch.Tensor) -> torch.Tensor:
        drive = self.conv_in(self.geometric_tensor(frame, self.conv_in.in_type)).tensor
        rec = self.conv_rec(self.geometric_tensor(shifted.flatten(0, 1), self.conv_rec.in_type)).tensor
        return torch.relu(drive[:, None] + rec.view_as(shifted))


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
        batch, steps, _, height, width = obs.shape
        model = self.model
        h = obs.new_zeros(batch, len(self.velocities), self.conv_rec.out_channels, *model.world_hw)
        predictions = []
        for t in range(steps):
            flowed = torch.stack([torch.roll(h[:, i], shifts=(vy, vx), dims=(-2, -1))
                                  for i, (vx, vy) in enumerate(self.velocities)], 1)
            moved = torch.stack([torch.roll(flowed[b], shifts=(-int(actions[b, t, 1].item()),
                                                               -int(actions[b, t, 0].item())), dims=(-2, -1))
                                 for b in range(batch)], 0)
            pooled = moved[..., :height, :width].amax(1)
            predictions.append(model.decoder(pooled))
            drive = obs.new_zeros(batch, self.conv_rec.out_channels, *model.world_hw)
            drive[:, :, :height, :width] = self.conv_in(obs[:, t])
            padded = F.pad(moved.flatten(0, 1), [self.pad] * 4, mode="circular")
            rec = F.conv2d(padded, self.conv_rec.weight).view_as(moved)
            h = torch.relu(drive[:, None] + rec)
        return torch.stack(predictions, 1)


def frame_by_frame_translation(images: torch.Tensor, batch_size: int, *, seq_len: int = 20, num_digits: int = 2,
                               image_size: int = 28, vmax: int = 2, rng: np.random.Generator) -> torch.Tensor:
    """Flowing MNIST the reference dataset's way: per sequence, per frame, per digit, pad + ``torch.roll``
    + add, clamp. ``images (N, 28, 28)`` uint8 -> ``(B, T, 1, H, W)`` float in [0, 1]."""
    sequences = []
    for _ in range(batch_size):
        digits = [images[rng.integers(len(images))].float()[None] / 255.0 for _ in range(num_digits)]
        motion = [(rng.integers(-vmax, vmax + 1), rng.integers(-vmax, vmax + 1), rng.integers(image_size),
                   rng.integers(image_size)) for _ in range(num_digits)]
        frames = torch.zeros(seq_len, 1, image_size, image_size)
        for t in range(seq_len):
            frame = torch.zeros(1, image_size, image_size)
            for digit, (vx, vy, x0, y0) in zip(digits, motion):
                padded = F.pad(digit, (0, image_size - 28, 0, image_size - 28))
                frame += torch.roll(padded, shifts=(int(y0 + vy * t), int(x0 + vx * t)), dims=(1, 2))
            frames[t] = frame.clamp(0.0, 1.0)
        sequences.append(frames)
    return torch.stack(sequences)


def frame_by_frame_rotation(images: torch.Tensor, batch_size: int, *, seq_len: int = 20, num_digits: int = 2,
                            pad: int = 6, angular_velocities=(-40, -30, -20, -10, 0, 10, 20, 30, 40),
                            rng: np.random.Generator) -> torch.Tensor:
    """Rotating MNIST the reference dataset's way: per sequence, frame and digit an ``affine_grid`` +
    ``grid_sample`` of the padded digit. -> ``(B, T, 1, 28 + 2 pad, 28 + 2 pad)`` float."""
    size = 28 + 2 * pad
    sequences = []
    for _ in range(batch_size):
        digits = [F.pad(images[rng.integers(len(images))].float()[None] / 255.0, [pad] * 4) for _ in range(num_digits)]
        motion = [(float(rng.choice(angular_velocities)), float(rng.uniform(0, 360))) for _ in range(num_digits)]
        frames = torch.zeros(seq_len, 1, size, size)
        for t in range(seq_len):
            frame = torch.zeros(1, size, size)
            for digit, (omega, start) in zip(digits, motion):
                theta = math.radians(start + omega * t)
                matrix = torch.tensor([[[math.cos(theta), -math.sin(theta), 0.0],
                                        [math.sin(theta), math.cos(theta), 0.0]]])
                grid = F.affine_grid(matrix, [1, 1, size, size], align_corners=False)
                frame += F.grid_sample(digit[None], grid, align_corners=False)[0]
            frames[t] = frame.clamp(0.0, 1.0)
        sequences.append(frames)
    return torch.stack(sequences)


def frame_by_frame_world(images: torch.Tensor, batch_size: int, *, seq_len: int = 20, num_digits: int = 5,
                         world_size: int = 50, window_size: int = 32, vmax: int = 1, step_size: int = 10,
                         rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST World the FloWM dataset's way: per sequence and frame, render the whole world by pasting
    each digit into a zero canvas and rolling it, then roll the world to cut the window.
    -> ``(windows (B, T, 1, h, w) float, actions (B, T, 2) long)``."""
    windows, all_actions = [], []
    for _ in range(batch_size):
        digits = [images[rng.integers(len(images))].float() / 255.0 for _ in range(num_digits)]
        starts = rng.integers(world_size, size=(num_digits, 2))
        velocities = rng.integers(-vmax, vmax + 1, size=(num_digits, 2))
        actions = rng.integers(-step_size, step_size + 1, size=(seq_len, 2))
        actions[0] = 0
        x, y = rng.integers(world_size, size=2)
        frames = torch.zeros(seq_len, 1, window_size, window_size)
        for t in range(seq_len):
            x, y = (x + actions[t, 0]) % world_size, (y + actions[t, 1]) % world_size
            world = torch.zeros(world_size, world_size)
            for digit, start, velocity in zip(digits, starts, velocities):
                canvas = torch.zeros(world_size, world_size)
                canvas[:28, :28] = digit
                px, py = start + velocity * t
                world += torch.roll(canvas, shifts=(int(py), int(px)), dims=(0, 1))
            world.clamp_(0.0, 1.0)
            frames[t, 0] = torch.roll(world, shifts=(-int(y), -int(x)), dims=(0, 1))[:window_size, :window_size]
        windows.append(frames)
        all_actions.append(torch.as_tensor(actions))
    return torch.stack(windows), torch.stack(all_actions)



class OneAtATimeScores(CandidateScores):
    """The reference for :class:`fernn.agents.planning.CandidateScores`: every candidate of every env imagined on
    its own."""

    def __call__(self, states: torch.Tensor, sequences: torch.Tensor) -> torch.Tensor:
        batch, count = sequences.shape[:2]
        scores = torch.empty(batch, count)
        for b in range(batch):
            for k in range(count):
                moves = self.motions_of(sequences[b, k]).to(states.device)[None]
                scores[b, k] = self.score(self.world_model.imagine(states[b:b + 1], moves)).float().cpu()[0]
        return scores


def one_at_a_time(planner: ModelPolicy) -> ModelPolicy:
    """``planner`` with its candidates scored one at a time (:class:`OneAtATimeScores`): the same planner (same
    sampling, so the same actions on the same seeds) for either CEM planner."""
    planner.candidate_scores = OneAtATimeScores(planner.world_model, planner.score, planner.moves_of)
    return planner


class NaivePlanner(CEMPlanner):
    """The reference for :class:`fernn.agents.planning.CEMPlanner`: the same planner, but every candidate of every
    env imagined on its own (:func:`one_at_a_time`)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        one_at_a_time(self)
