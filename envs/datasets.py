"""Dataset adapters over the scene generators, for supervised training.

Each adapter is a ``torch.utils.data.Dataset`` (item ``i`` is generated from ``(seed, i)``, so a
fixed validation or test set is reproducible and a ``DataLoader`` works, with ``device="cpu"``) and
also has :meth:`SceneDataset.sample_batch`, which generates a whole batch in one call straight on
``device`` -- the fast path the trainer uses (no DataLoader, no per-item work).

Items and batches are dicts of tensors; ``frames`` are float32 ``(T, C, H, W)`` (items) or
``(B, T, C, H, W)`` (batches) in [0, 1].

**Splits of the digit scenes.** ``"train"`` and ``"val"`` scenes are made of MNIST's training digits, ``"test"``
scenes of its test digits (:func:`scene_digits`); what keeps validation scenes apart from training scenes is the
seed: the trainer draws them from a seed of their own (``fernn.agents.supervised.tasks.VAL_SEED``), so a model is
selected on scenes it never trained on and never on a test digit.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from fernn.envs.kth import ACTIONS, KTHVideos, load_kth
from fernn.envs.mnist import load_mnist
from fernn.envs.scenes import DigitBank, RotationScenes, TranslationScenes, check_count, make_generator
from fernn.envs.sprites import render_layers
from fernn.envs.velocities import parse_velocities
from fernn.envs.world_scenes import WorldScenes

PathLike = str | os.PathLike | None
#: the splits of the digit scenes, and the MNIST digits each is made of
SCENE_SPLITS = {"train": "train", "val": "train", "test": "test"}


def scene_digits(split: str) -> str:
    """The MNIST split whose digits make the scenes of ``split`` (see the module docstring)."""
    if split not in SCENE_SPLITS:
        raise ValueError(f"split must be one of {', '.join(SCENE_SPLITS)}, got {split!r}")
    return SCENE_SPLITS[split]


class SceneDataset(torch.utils.data.Dataset):
    """Base class: ``length`` reproducible items plus :meth:`sample_batch` on ``device``."""

    def __init__(self, length: int, seed: int, device: torch.device | str) -> None:
        self.length = check_count("length", length)
        self.seed = int(seed)
        self.device = torch.device(device)
        self.generator = make_generator(seed, self.device)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} out of range for a dataset of {self.length} sequences")
        generator = make_generator(self.seed * 1_000_003 + index % self.length, self.device)
        return {key: value[0] for key, value in self.generate(1, generator).items()}

    def sample_batch(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """A fresh batch generated on ``device`` (from the dataset's own generator by default)."""
        return self.generate(check_count("batch_size", batch_size), generator or self.generator)

    def generate(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        raise NotImplementedError


class FlowingMNISTDataset(SceneDataset):
    """Flowing MNIST (translation): ``frames (B, T, 1, H, W)``, ``labels (B, K)``, ``velocities (B, K, 2)``.

    Args:
        split: ``"train"``, ``"val"`` (scenes of the training digits, drawn from another seed) or ``"test"``
            (the test digits).
        source, data_dir, download: see :func:`fernn.envs.load_mnist`.
        image_size, num_digits, seq_len, velocities, boundary: see :class:`fernn.envs.TranslationScenes`.
        length: number of items for the map-style interface.
        seed: seeds items and the batch generator.
        device: where batches are generated.
    """

    def __init__(self, split: str = "train", *, source: str = "auto", data_dir: PathLike = None, download: bool = False,
                 image_size: int = 28, num_digits: int = 2, seq_len: int = 20, velocities: Any = 2,
                 boundary: str = "wrap", length: int = 10_000, seed: int = 0,
                 device: torch.device | str = "cpu") -> None:
        super().__init__(length, seed, device)
        bank = DigitBank(load_mnist(scene_digits(split), source=source, data_dir=data_dir, download=download), self.device)
        self.scenes = TranslationScenes(bank, image_size=image_size, num_digits=num_digits, seq_len=seq_len,
                                        velocities=velocities, boundary=boundary)

    def generate(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        scene = self.scenes.sample(batch_size, generator)
        return {"frames": scene.float_frames(), "labels": scene.labels, "velocities": scene.velocities}


class RotatingMNISTDataset(SceneDataset):
    """Rotating MNIST: ``frames (B, T, 1, S, S)``, ``labels (B, K)``, ``velocities (B, K)`` in degrees/frame.

    Args: as :class:`FlowingMNISTDataset`, with ``pad`` and ``angular_velocities`` of
    :class:`fernn.envs.RotationScenes` instead of ``velocities``.
    """

    def __init__(self, split: str = "train", *, source: str = "auto", data_dir: PathLike = None, download: bool = False,
                 image_size: int = 28, pad: int = 6, num_digits: int = 2, seq_len: int = 20,
                 angular_velocities: Any = (-40, -30, -20, -10, 0, 10, 20, 30, 40), length: int = 10_000,
                 seed: int = 0, device: torch.device | str = "cpu") -> None:
        super().__init__(length, seed, device)
        bank = DigitBank(load_mnist(scene_digits(split), source=source, data_dir=data_dir, download=download), self.device)
        self.scenes = RotationScenes(bank, image_size=image_size, pad=pad, num_digits=num_digits, seq_len=seq_len,
                                     angular_velocities=angular_velocities)

    def generate(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        scene = self.scenes.sample(batch_size, generator)
        return {"frames": scene.float_frames(), "labels": scene.labels, "velocities": scene.velocities}


class MNISTWorldDataset(SceneDataset):
    """MNIST World for world models: ``frames (B, T, 1, h, w)`` windows, ``moves (B, T, 2)`` long, the window's
    moves (``moves[:, 0] = (0, 0)``; ``actions`` holds the same: FloWM's actions are the moves),
    ``positions (B, T, 2)`` window top-lefts, ``labels``, ``velocities``.

    Args: ``split``, ``source``, ``data_dir``, ``download``, ``length``, ``seed``, ``device`` as
    :class:`FlowingMNISTDataset`; ``world_size``, ``window_size``, ``num_digits``, ``seq_len``,
    ``velocities``, ``step_size`` as :class:`fernn.envs.WorldScenes` (FloWM: 50, 32, 5, 70 = 50 + 20, 1, 10).
    """

    def __init__(self, split: str = "train", *, source: str = "auto", data_dir: PathLike = None, download: bool = False,
                 world_size: int = 50, window_size: int = 32, num_digits: int = 5, seq_len: int = 70,
                 velocities: Any = 1, step_size: int = 10, length: int = 10_000, seed: int = 0,
                 device: torch.device | str = "cpu") -> None:
        super().__init__(length, seed, device)
        bank = DigitBank(load_mnist(scene_digits(split), source=source, data_dir=data_dir, download=download), self.device)
        self.scenes = WorldScenes(bank, world_size=world_size, window_size=window_size, num_digits=num_digits,
                                  seq_len=seq_len, velocities=velocities, step_size=step_size)

    def generate(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        scene = self.scenes.sample(batch_size, generator)
        return {"frames": scene.float_windows(), "moves": scene.actions, "actions": scene.actions,
                "positions": scene.positions, "labels": scene.labels, "velocities": scene.velocities}


class KTHCameraDataset(SceneDataset):
    """KTH with simulated camera motion: ``frames (B, T, 1, S, S)``, ``labels (B,)`` (index into
    :data:`fernn.envs.kth.ACTIONS`), ``velocities (B, 2)`` camera velocity per clip.

    A clip is ``seq_len`` frames taken every ``step`` frames from a random annotated segment, flipped
    horizontally with probability 1/2 when ``flip``, and translated (with wrap-around, as the
    reference) by ``velocity * t`` at frame ``t``.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"`` (persons 1-16 / 17-20 / 21-25).
        data_dir, download, frame_size: see :func:`fernn.envs.kth.load_kth` (the paper's Table 2: 32).
        seq_len, step: frames per clip and stride (the paper: 16 and 2).
        velocities: camera velocity set, grid radius or list of ``(vx, vy)`` (Table 2: 2).
        flip: random horizontal flips (default: on for ``"train"``).
        length, seed, device: as :class:`FlowingMNISTDataset` (``length`` defaults to the segment count).
    """

    def __init__(self, split: str = "train", *, data_dir: PathLike = None, download: bool = False,
                 frame_size: int = 32, seq_len: int = 16, step: int = 2, velocities: Any = 2,
                 flip: bool | None = None, length: int | None = None, seed: int = 0,
                 device: torch.device | str = "cpu", videos: KTHVideos | None = None) -> None:
        videos = videos or load_kth(split, data_dir=data_dir, download=download, frame_size=frame_size)
        self.seq_len, self.step = check_count("seq_len", seq_len), check_count("step", step)
        span = self.seq_len * self.step
        segments = [s for s in videos.segments if s.stop - s.start >= span]
        if not segments:
            raise ValueError(f"no KTH segment of the {split!r} split has seq_len * step = {span} frames; "
                             "use a shorter seq_len or step")
        super().__init__(len(segments) if length is None else length, seed, device)
        self.flip = split == "train" if flip is None else bool(flip)
        self.velocities = parse_velocities("velocities", velocities).to(self.device)
        self.frames = torch.as_tensor(videos.frames, device=self.device)
        rows = [videos.offsets[s.video][0] for s in segments]
        self.first = torch.tensor([r + s.start for r, s in zip(rows, segments)], device=self.device)
        self.room = torch.tensor([s.stop - s.start - span + 1 for s in segments], device=self.device)
        self.labels = torch.tensor([s.label for s in segments], device=self.device)
        self.num_classes = len(ACTIONS)

    def generate(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        clips = self.clips(batch_size, generator)
        frames = clips.pop("clips").unsqueeze(2).to(torch.float32).div_(255.0)
        return {"frames": frames, **clips}

    def clips(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Like :meth:`generate`, with ``clips (B, T, S, S)`` uint8 instead of float ``frames``."""
        device = self.device
        pick = torch.randint(len(self.labels), (batch_size,), generator=generator, device=device)
        offset = (torch.rand(batch_size, generator=generator, device=device) * self.room[pick]).long()
        index = (self.first[pick] + offset)[:, None] + self.step * torch.arange(self.seq_len, device=device)
        clips = self.frames[index]  # (B, T, S, S)
        if self.flip:
            flipped = torch.rand(batch_size, generator=generator, device=device) < 0.5
            clips = torch.where(flipped[:, None, None, None], clips.flip(-1), clips)
        velocities = self.velocities[torch.randint(len(self.velocities), (batch_size,), generator=generator,
                                                   device=device)]
        shifts = velocities[:, None, None, :] * torch.arange(self.seq_len, device=device)[None, :, None, None]
        moved = render_layers(clips, shifts)[:, :, 0]  # each frame is its own sprite, moved by v t
        return {"clips": moved, "labels": self.labels[pick], "velocities": velocities}
