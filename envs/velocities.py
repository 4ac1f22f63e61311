"""Velocity sets of the scenes: explicit, validated, and the papers' train / unseen splits.

A translation velocity set is an integer grid radius (``2`` is every ``(vx, vy)`` with
``|vx|, |vy| <= 2``, ``vx`` major, as :class:`fernn.TranslationFlow`) or an explicit list of pairs.
Rotation sets are lists of finite angular velocities in degrees per frame.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import torch


def velocity_grid(vmax: int) -> list[tuple[int, int]]:
    """``[(vx, vy)]`` with ``|vx|, |vy| <= vmax``, ``vx`` major."""
    return [(vx, vy) for vx in range(-vmax, vmax + 1) for vy in range(-vmax, vmax + 1)]


def unseen_velocities(train_vmax: int, test_vmax: int) -> list[tuple[int, int]]:
    """The test grid's velocities outside the training grid (the papers' velocity generalisation)."""
    return [v for v in velocity_grid(test_vmax) if max(abs(v[0]), abs(v[1])) > train_vmax]


def parse_velocities(name: str, value: Any) -> torch.Tensor:
    """A grid radius or a list of ``(vx, vy)`` -> LongTensor ``(V, 2)``; clear errors otherwise."""
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"{name} as a grid radius must be >= 0, got {value}")
        return torch.tensor(velocity_grid(int(value)), dtype=torch.long)
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a grid radius (int >= 0) or a list of (vx, vy) integer pairs, got {value!r}")
    if len(value) == 0:
        raise ValueError(f"{name} must not be empty: give a grid radius or at least one (vx, vy) pair")
    pairs = []
    for i, pair in enumerate(value):
        if (not isinstance(pair, Sequence) or len(pair) != 2
                or not all(isinstance(c, numbers.Integral) and not isinstance(c, bool) for c in pair)):
            raise ValueError(f"{name}[{i}] must be a pair of integers (vx, vy), got {pair!r}")
        pairs.append((int(pair[0]), int(pair[1])))
    return torch.tensor(pairs, dtype=torch.long)


def parse_angular_velocities(name: str, value: Any) -> torch.Tensor:
    """A list of finite degrees per frame -> float32 tensor ``(V,)``; clear errors otherwise."""
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a list of angular velocities in degrees per frame, got {value!r}")
    if len(value) == 0:
        raise ValueError(f"{name} must not be empty: give at least one angular velocity (degrees per frame)")
    for i, w in enumerate(value):
        if isinstance(w, bool) or not isinstance(w, numbers.Real) or not math.isfinite(float(w)):
            raise ValueError(f"{name}[{i}] must be a finite number of degrees per frame, got {w!r}")
    return torch.tensor([float(w) for w in value], dtype=torch.float32)
