"""Batched scene generators for Flowing MNIST (translation) and Rotating MNIST (rotation).

One generator serves the Gymnasium envs (one scene per reset) and the dataset adapters (a batch of
thousands of sequences on the training device). Everything is array ops over (scenes, digits,
frames); randomness comes only from the ``torch.Generator`` passed in.

* :class:`TranslationScenes`: ``num_digits`` digits on an ``image_size`` torus, each with its own
  integer velocity drawn from ``velocities`` and a uniform start position; frames are the digits
  summed and clipped (the FERNN paper's Flowing MNIST; a digit moved by ``(vx, vy)`` per frame follows
  ``torch.roll(img, (vy * t, vx * t), (-2, -1))``). With ``boundary="bounce"`` the digits stay inside the frame
  and bounce off its borders instead (a flow the world breaks: the velocity flips at every wall).
* :class:`RotationScenes`: digits centred in the frame, each rotating about the frame centre with its
  own angular velocity from ``angular_velocities`` and a uniform start angle, zero-padded by ``pad`` px
  on every side (the paper: 28 -> 40); a positive angle turns like ``torch.rot90(img, 1, (-2, -1))``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fernn._validation import check_int
from fernn.envs.mnist import DigitSet
from fernn.envs.sprites import composite, render_layers, sprite_canvases
from fernn.envs.velocities import parse_angular_velocities, parse_velocities

DIGIT_SIZE = 28
#: what happens at a frame's border: the digits wrap around (a torus) or bounce off it
BOUNDARIES = ("wrap", "bounce")


def check_count(name: str, value: Any, minimum: int = 1) -> int:
    """An integer ``>= minimum`` (a count: 1 unless given), or a ``TypeError``/``ValueError`` naming ``name``: the
    package's one integer check (:func:`fernn._validation.check_int`)."""
    return check_int(name, value, minimum=minimum)


#: the largest frame or world side: a 4096 x 4096 frame is 16 MiB per uint8 frame, 64 MiB per float frame
MAX_SIDE = 4096


def check_digit_room(name: str, value: Any) -> int:
    """A frame or world side: an integer large enough for a 28x28 MNIST digit and at most :data:`MAX_SIDE`, or
    a named error."""
    value = check_count(name, value)
    if value < DIGIT_SIZE:
        raise ValueError(f"{name} must be >= {DIGIT_SIZE} so that a {DIGIT_SIZE}x{DIGIT_SIZE} MNIST digit fits, got {value}")
    if value > MAX_SIDE:
        raise ValueError(f"{name} must be <= {MAX_SIDE} (a {value}-px frame is {value * value / 2 ** 30:,.1f} GiB as "
                         f"uint8, per frame), got {value}")
    return value


def check_boundary(boundary: Any, image_size: int) -> str:
    """A border rule of :data:`BOUNDARIES` that ``image_size`` frames allow (``bounce`` needs room for a digit to
    move), or a ``ValueError`` saying what is accepted."""
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {', '.join(BOUNDARIES)}; got {boundary!r}")
    if boundary == "bounce" and image_size <= DIGIT_SIZE:
        raise ValueError(f"boundary 'bounce' needs image_size > {DIGIT_SIZE}: a {DIGIT_SIZE}-px digit fills a "
                         f"{image_size}-px frame and has no room to move (e.g. image_size=40)")
    return boundary


def as_bank(digits: DigitBank | DigitSet, device: torch.device | str | None) -> DigitBank:
    """``digits`` as a :class:`DigitBank` (a :class:`DigitSet` is moved to ``device``)."""
    return digits if isinstance(digits, DigitBank) else DigitBank(digits, device or "cpu")


class DigitBank:
    """The digits of one split as tensors on a device, sampled with a ``torch.Generator``.

    Attributes:
        images: ``(N, 28, 28)`` uint8.
        labels: ``(N,)`` long.
    """

    def __init__(self, digits: DigitSet, device: torch.device | str = "cpu") -> None:
        if not isinstance(digits, DigitSet):
            raise TypeError(f"digits must be a fernn.envs.DigitSet (see fernn.envs.load_mnist), got {type(digits).__name__}")
        self.source, self.split = digits.source, digits.split
        self.images = torch.tensor(np.ascontiguousarray(digits.images), dtype=torch.uint8, device=device)
        self.labels = torch.tensor(digits.labels.astype(np.int64), device=device)

    @property
    def device(self) -> torch.device:
        return self.images.device

    def sample(self, shape: tuple[int, ...], generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Digits drawn uniformly with replacement: ``(images (*shape, 28, 28), labels (*shape))``."""
        index = torch.randint(len(self.labels), shape, generator=generator, device=self.device)
        return self.images[index], self.labels[index]


@dataclass
class SceneBatch:
    """A batch of generated sequences.

    Attributes:
        frames: ``(B, T, H, W)`` uint8 frames.
        labels: ``(B, K)`` digit labels.
        velocities: ``(B, K, 2)`` integer ``(vx, vy)`` per digit, or ``(B, K)`` degrees per frame.
        starts: ``(B, K, 2)`` start positions ``(x, y)`` of each digit's top-left corner, or ``(B, K)``
            start angles in degrees.
    """

    frames: torch.Tensor
    labels: torch.Tensor
    velocities: torch.Tensor
    starts: torch.Tensor

    def float_frames(self) -> torch.Tensor:
        """``(B, T, 1, H, W)`` float32 in [0, 1], the models' input."""
        return self.frames.unsqueeze(2).to(torch.float32).div_(255.0)


def make_generator(seed: int | None, device: torch.device | str) -> torch.Generator:
    """A ``torch.Generator`` on ``device``, seeded (or from fresh entropy when ``seed`` is None)."""
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(int(seed))
    return generator


class TranslationScenes:
    """Flowing MNIST: digits with their own integer velocities on a torus (see the module docstring).

    Args:
        digits: the digit bank (or a :class:`DigitSet`, moved to ``device``).
        image_size: frame side on the torus (>= 28, the digit size; the paper: 28).
        num_digits: digits per sequence (the paper: 2).
        seq_len: frames per sequence (the paper: 20 = 10 context + 10 predicted).
        velocities: grid radius or list of ``(vx, vy)``; each digit draws one uniformly.
        boundary: ``"wrap"`` (a torus, the paper) or ``"bounce"``: each digit's top-left corner stays in
            ``[0, image_size - 28]`` and reflects off the borders (needs ``image_size > 28``; the recorded
            ``velocities`` are the initial ones).
        device: where frames are generated.
    """

    def __init__(self, digits: DigitBank | DigitSet, *, image_size: int = 28, num_digits: int = 2, seq_len: int = 20,
                 velocities: Any = 2, boundary: str = "wrap", device: torch.device | str | None = None) -> None:
        self.bank = as_bank(digits, device)
        self.image_size = check_digit_room("image_size", image_size)
        self.boundary = check_boundary(boundary, self.image_size)
        self.num_digits = check_count("num_digits", num_digits)
        self.seq_len = check_count("seq_len", seq_len)
        self.velocities = parse_velocities("velocities", velocities).to(self.bank.device)

    def sample(self, batch_size: int, generator: torch.Generator) -> SceneBatch:
        """Generate ``batch_size`` sequences on the bank's device."""
        return self.render(self.draw(batch_size, generator))

    def draw(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The random part of ``batch_size`` scenes: ``images (B, K, 28, 28)``, ``labels``, ``velocities``,
        ``starts`` (concatenate the dicts of several draws to render them together)."""
        batch, device = check_count("batch_size", batch_size), self.bank.device
        shape = (batch, self.num_digits)
        images, labels = self.bank.sample(shape, generator)
        velocities = self.velocities[torch.randint(len(self.velocities), shape, generator=generator, device=device)]
        room = self.image_size if self.boundary == "wrap" else self.image_size - DIGIT_SIZE + 1
        starts = torch.randint(room, (*shape, 2), generator=generator, device=device)
        return {"images": images, "labels": labels, "velocities": velocities, "starts": starts}

    def render(self, params: dict[str, torch.Tensor]) -> SceneBatch:
        """Render drawn scenes: all scenes x digits x frames in one :func:`render_layers` call."""
        steps = torch.arange(self.seq_len, device=params["starts"].device)
        shifts = params["starts"][:, :, None] + params["velocities"][:, :, None] * steps[None, None, :, None]
        if self.boundary == "bounce":
            shifts = reflect(shifts, self.image_size - DIGIT_SIZE)
        canvases = sprite_canvases(params["images"], self.image_size, self.image_size)
        frames = composite(render_layers(canvases, shifts))
        return SceneBatch(frames, params["labels"], params["velocities"], params["starts"])


def reflect(positions: torch.Tensor, room: int) -> torch.Tensor:
    """Unbounded integer positions folded into ``[0, room]`` as by a body bouncing off walls at 0 and ``room``: a
    triangle wave of period ``2 room`` (``room >= 1``), elementwise."""
    return room - (room - positions.remainder(2 * room)).abs()


class RotationScenes:
    """Rotating MNIST: digits rotating about the frame centre (see the module docstring).

    Args:
        digits: the digit bank (or a :class:`DigitSet`).
        image_size: size of the digit area (>= 28; the paper: 28).
        pad: zero padding on every side; frames are ``image_size + 2 pad`` (the paper: 6, so 40 px).
        num_digits: digits per sequence (the paper: 2), all centred.
        seq_len: frames per sequence.
        angular_velocities: degrees per frame; each digit draws one uniformly (the paper: -40..40 step 10).
        device: where frames are generated.
    """

    def __init__(self, digits: DigitBank | DigitSet, *, image_size: int = 28, pad: int = 6, num_digits: int = 2,
                 seq_len: int = 20, angular_velocities: Any = (-40, -30, -20, -10, 0, 10, 20, 30, 40),
                 device: torch.device | str | None = None) -> None:
        self.bank = as_bank(digits, device)
        self.image_size = check_digit_room("image_size", image_size)
        self.pad = check_count("pad", pad, minimum=0)
        self.num_digits = check_count("num_digits", num_digits)
        self.seq_len = check_count("seq_len", seq_len)
        self.angular_velocities = parse_angular_velocities("angular_velocities", angular_velocities).to(self.bank.device)

    @property
    def frame_size(self) -> int:
        return self.image_size + 2 * self.pad

    def sample(self, batch_size: int, generator: torch.Generator) -> SceneBatch:
        """Generate ``batch_size`` sequences on the bank's device (bilinear rotation, zero fill)."""
        return self.render(self.draw(batch_size, generator))

    def draw(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The random part of ``batch_size`` scenes: ``images``, ``labels``, ``velocities`` (degrees per
        frame) and start angles ``starts``, all ``(B, K, ...)``."""
        batch, device = check_count("batch_size", batch_size), self.bank.device
        shape = (batch, self.num_digits)
        images, labels = self.bank.sample(shape, generator)
        choice = torch.randint(len(self.angular_velocities), shape, generator=generator, device=device)
        starts = torch.rand(shape, generator=generator, device=device) * 360.0
        return {"images": images, "labels": labels, "velocities": self.angular_velocities[choice], "starts": starts}

    def render(self, params: dict[str, torch.Tensor]) -> SceneBatch:
        """Render drawn scenes: every digit of every frame of every scene in one ``grid_sample``."""
        images, velocities, starts = params["images"], params["velocities"], params["starts"]
        size = self.frame_size
        steps = torch.arange(self.seq_len, device=images.device, dtype=torch.float32)
        angles = starts[..., None] + velocities[..., None] * steps  # (B, K, T)
        offset = (size - DIGIT_SIZE) // 2
        canvases = F.pad(images.to(torch.float32), (offset, size - DIGIT_SIZE - offset) * 2)
        rotated = rotate_images(canvases[:, :, None].expand(*angles.shape, size, size), angles)
        frames = rotated.sum(1).clamp_(max=255.0).round_().to(torch.uint8)
        return SceneBatch(frames, params["labels"], velocities, starts)


def rotate_images(images: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate ``images (..., S, S)`` float by ``angles (...)`` degrees about the centre (bilinear, zero
    fill), the convention of :func:`fernn.rotation.rotate_batched`."""
    lead, size = images.shape[:-2], images.shape[-2:]
    theta = torch.deg2rad(angles.reshape(-1).to(torch.float32))
    cos, sin, zero = torch.cos(theta), torch.sin(theta), torch.zeros_like(theta)
    matrix = torch.stack([torch.stack([cos, -sin, zero], -1), torch.stack([sin, cos, zero], -1)], 1)
    flat = images.reshape(-1, 1, *size)
    grid = F.affine_grid(matrix, list(flat.shape), align_corners=False)
    return F.grid_sample(flat, grid, mode="bilinear", padding_mode="zeros", align_corners=False).view(*lead, *size)

