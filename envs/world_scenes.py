"""Batched scene generator for MNIST World (FloWM): a torus of moving digits seen through a window
that the agent moves.

The world is a ``world_size`` torus holding ``num_digits`` digits, each at an integer start position
with an integer velocity from ``velocities`` (``0`` gives the static split). The agent's window
(``window_size``) starts at a uniform position; every step it moves by the action ``(dx, dy)`` (same
axis convention as :class:`fernn.TranslationFlow`), then the digits advance one step and the window
is read. Windows are rendered directly (never the whole world, unless asked), digits x frames x
scenes in one :func:`fernn.envs.sprites.render_layers` call.

Digit ``0`` of each scene is the *target* of the tracking task; its layer alone is available too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from fernn.envs.mnist import DigitSet
from fernn.envs.scenes import DIGIT_SIZE, DigitBank, as_bank, check_count, check_digit_room
from fernn.envs.sprites import composite, render_layers, sprite_canvases
from fernn.envs.velocities import parse_velocities


@dataclass
class WorldBatch:
    """A batch of MNIST World sequences.

    Attributes:
        windows: ``(B, T, h, w)`` uint8 observations (all digits, summed and clipped).
        actions: ``(B, T, 2)`` long ``(dx, dy)``; ``actions[:, t]`` moved the window just before frame
            ``t`` (``actions[:, 0]`` is ``(0, 0)``).
        positions: ``(B, T, 2)`` long top-left ``(x, y)`` of the window on the torus at each frame.
        labels: ``(B, K)`` digit labels; digit 0 is the target.
        velocities: ``(B, K, 2)`` long digit velocities.
        starts: ``(B, K, 2)`` long top-left ``(x, y)`` of each digit at frame 0.
        target: ``(B, T, h, w)`` uint8 layer of digit 0 alone, or None.
        world: ``(B, T, H, W)`` uint8 whole-world frames, or None.
    """

    windows: torch.Tensor
    actions: torch.Tensor
    positions: torch.Tensor
    labels: torch.Tensor
    velocities: torch.Tensor
    starts: torch.Tensor
    target: torch.Tensor | None = None
    world: torch.Tensor | None = None

    def float_windows(self) -> torch.Tensor:
        """``(B, T, 1, h, w)`` float32 in [0, 1]."""
        return self.windows.unsqueeze(2).to(torch.float32).div_(255.0)


class WorldScenes:
    """MNIST World generator (see the module docstring).

    Args:
        digits: the digit bank (or a :class:`DigitSet`).
        world_size: side of the torus (FloWM: 50; >= 28 so a digit fits).
        window_size: side of the agent's window (FloWM: 32; <= world_size).
        num_digits: digits in the world (FloWM: 5).
        seq_len: frames per sequence.
        velocities: grid radius or list of ``(vx, vy)`` for the digits (FloWM's dynamic split: 1; static: 0).
        step_size: random-walk actions are uniform in ``[-step_size, step_size]`` per axis (FloWM: 10).
        target_velocities: a separate set for digit 0, the tracking target (default: ``velocities``).
        device: where scenes are generated.
    """

    def __init__(self, digits: DigitBank | DigitSet, *, world_size: int = 50, window_size: int = 32, num_digits: int = 5,
                 seq_len: int = 50, velocities: Any = 1, step_size: int = 10, target_velocities: Any = None,
                 device: torch.device | str | None = None) -> None:
        self.bank = as_bank(digits, device)
        self.world_size = check_digit_room("world_size", world_size)
        self.window_size = check_count("window_size", window_size)
        if self.window_size > self.world_size:
            raise ValueError(f"window_size must be <= world_size (the window sees part of the world), got "
                             f"window_size={window_size} > world_size={world_size}")
        self.num_digits = check_count("num_digits", num_digits)
        self.seq_len = check_count("seq_len", seq_len)
        self.velocities = parse_velocities("velocities", velocities).to(self.bank.device)
        self.target_velocities = self.velocities if target_velocities is None else \
            parse_velocities("target_velocities", target_velocities).to(self.bank.device)
        self.step_size = check_count("step_size", step_size, minimum=0)
        if self.step_size > self.world_size // 2:
            raise ValueError(f"step_size must be <= world_size // 2 = {self.world_size // 2} (on a torus a longer move "
                             f"is a shorter one the other way), got {step_size}")

    def random_actions(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """Uniform random-walk actions ``(B, T, 2)`` with ``actions[:, 0] = (0, 0)``."""
        actions = torch.randint(-self.step_size, self.step_size + 1, (batch_size, self.seq_len, 2), generator=generator,
                                device=self.bank.device)
        actions[:, 0] = 0
        return actions

    def sample(self, batch_size: int, generator: torch.Generator, *, actions: torch.Tensor | None = None,
               with_target: bool = False, with_world: bool = False) -> WorldBatch:
        """Generate ``batch_size`` sequences.

        Args:
            actions: ``(B, T, 2)`` integer window moves (default: :meth:`random_actions`).
            with_target: also render the target digit's layer.
            with_world: also render the whole world.
        """
        batch, device = check_count("batch_size", batch_size), self.bank.device
        scene = self.draw(batch, generator)
        if actions is None:
            actions = self.random_actions(batch, generator)
        start = torch.randint(self.world_size, (batch, 1, 2), generator=generator, device=device)
        positions = (start + actions.to(device).cumsum(1)) % self.world_size
        layers = self.window_layers(scene, positions)
        target = layers[:, 0].clone() if with_target else None
        world = self.world_frames(scene, self.seq_len) if with_world else None
        return WorldBatch(composite(layers), actions, positions, scene["labels"], scene["velocities"], scene["starts"],
                          target, world)

    def draw(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The digits of ``batch_size`` worlds: ``canvases (B, K, H, W)``, ``labels``, ``velocities``,
        ``starts``, each digit's pixel ``mass (B, K)`` and ``centre (B, K, 2)`` of mass ``(x, y)`` from its
        top-left corner (concatenate the dicts of several draws to render them together)."""
        shape, device = (batch_size, self.num_digits), self.bank.device
        images, labels = self.bank.sample(shape, generator)
        velocities = self.velocities[torch.randint(len(self.velocities), shape, generator=generator, device=device)]
        target = torch.randint(len(self.target_velocities), (batch_size,), generator=generator, device=device)
        velocities[:, 0] = self.target_velocities[target]
        starts = torch.randint(self.world_size, (*shape, 2), generator=generator, device=device)
        canvases = sprite_canvases(images, self.world_size, self.world_size)
        weights = images.to(torch.float32)
        mass = weights.sum((-2, -1))
        grid = torch.arange(DIGIT_SIZE, device=device, dtype=torch.float32)
        centre = torch.stack([(weights.sum(-2) * grid).sum(-1), (weights.sum(-1) * grid).sum(-1)], -1)
        centre = centre / mass.clamp_min(1.0)[..., None]
        return {"canvases": canvases, "labels": labels, "velocities": velocities, "starts": starts, "mass": mass,
                "centre": centre}

    def digit_shifts(self, scene: dict[str, torch.Tensor], times: torch.Tensor) -> torch.Tensor:
        """``(B, K, T, 2)`` digit positions at ``times (T,)`` (or ``(B, T)``) on the torus."""
        times = times.to(scene["starts"].device)
        times = times[None, None, :, None] if times.dim() == 1 else times[:, None, :, None]
        return scene["starts"][:, :, None] + scene["velocities"][:, :, None] * times

    def window_layers(self, scene: dict[str, torch.Tensor], positions: torch.Tensor,
                      times: torch.Tensor | None = None) -> torch.Tensor:
        """Per-digit window layers ``(B, K, T, h, w)`` for window top-lefts ``positions (B, T, 2)`` at
        ``times`` (default ``0 .. T-1``)."""
        steps = positions.shape[1]
        times = torch.arange(steps, device=positions.device) if times is None else times
        shifts = self.digit_shifts(scene, times) - positions[:, None]
        return render_layers(scene["canvases"], shifts, (self.window_size, self.window_size))

    def world_frames(self, scene: dict[str, torch.Tensor], steps: int) -> torch.Tensor:
        """Whole-world frames ``(B, T, H, W)`` uint8."""
        times = torch.arange(steps, device=scene["starts"].device)
        return composite(render_layers(scene["canvases"], self.digit_shifts(scene, times)))
