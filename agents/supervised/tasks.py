"""The supervised tasks: for each, its datasets (the adapters of :mod:`fernn.envs`, batches generated
on the training device), its model, its loss and its validation metric.

* ``flowing-mnist`` / ``rotating-mnist``: next-frame prediction, ``context`` frames in, ``predict``
  frames out (autoregressive, with optional teacher forcing), MSE.
* ``kth-camera``: action classification of clips with camera motion, cross-entropy.
* ``mnist-world``: the FloWM world model, ``context`` windows and actions in, ``predict`` windows
  imagined from the future actions, MSE.

Validation and test data come from the ``test`` digits (MNIST) or the ``val`` / ``test`` persons
(KTH), with fixed seeds, so every epoch is validated on the same sequences.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fernn import (CNN3DClassifier, NextFramePredictor, RotationFlow, SequenceClassifier, TranslationFlow,
                   WorldModel)
from fernn.envs import (FlowingMNISTDataset, KTHCameraDataset, MNISTWorldDataset, RotatingMNISTDataset, SceneDataset,
                        TrajectoryDataset)
from fernn.agents.supervised.config import TrainConfig

VAL_SEED, TEST_SEED = 10_007, 20_011


def translation_flow(config: TrainConfig) -> TranslationFlow:
    """The model's translation velocities (G-RNN: the single zero velocity)."""
    if config.model in ("grnn", "action-concat"):
        return TranslationFlow(0)
    return TranslationFlow(velocities=config.velocities) if config.velocities else TranslationFlow(config.vmax)


class Task:
    """Base class; see the module docstring. ``batch`` dicts come from :meth:`SceneDataset.sample_batch`."""

    kind = ""
    #: whether the data can be generated at any velocity of a grid (the velocity-generalisation evaluation)
    velocity_grid = True

    def __init__(self, config: TrainConfig, device: torch.device) -> None:
        self.config, self.device = config, device

    def dataset(self, split: str, seed: int, **overrides: Any) -> SceneDataset:
        raise NotImplementedError

    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def model_spec(self) -> dict[str, Any]:
        """Sizes the model was built for that its weights do not record (saved in the checkpoints)."""
        return {}

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor], progress: float) -> tuple[torch.Tensor, dict]:
        """Training loss on ``batch`` at ``progress`` in [0, 1] of the run, and metrics to log."""
        raise NotImplementedError

    @torch.no_grad()
    def validate(self, model: nn.Module, dataset: SceneDataset, batches: int) -> dict[str, float]:
        """Metrics over ``batches`` fixed batches (``dataset`` must be freshly seeded)."""
        raise NotImplementedError

    def teacher_forcing(self, progress: float) -> float:
        start, end = self.config.teacher_forcing, self.config.teacher_forcing_end
        return start if end is None else start + (end - start) * progress


class PredictionTask(Task):
    """Next-frame prediction on Flowing or Rotating MNIST."""

    kind = "prediction"

    def dataset(self, split: str, seed: int, **overrides: Any) -> SceneDataset:
        c = self.config
        common = dict(source=c.source, data_dir=c.data_dir, download=c.download, num_digits=c.num_digits,
                      seq_len=c.context + c.predict, seed=seed, device=self.device)
        common.update(overrides)
        if c.env == "flowing-mnist":
            common.setdefault("velocities", c.data_vmax)
            return FlowingMNISTDataset(split, **common)
        common.setdefault("angular_velocities", c.data_angular_velocities)
        return RotatingMNISTDataset(split, **common)

    def build_model(self) -> nn.Module:
        c = self.config
        if c.env == "rotating-mnist":
            flow = RotationFlow([0.0] if c.model == "grnn" else c.angular_velocities, c.group_order)
        else:
            flow = translation_flow(c)
        recurrence = "learned" if c.model == "grnn-plus" else "exact"
        return NextFramePredictor(1, c.hidden, flow, decoder_layers=c.decoder_layers, recurrence=recurrence)

    def predict(self, model: nn.Module, frames: torch.Tensor, predict: int, teacher_forcing: float = 0.0) -> torch.Tensor:
        context, targets = frames[:, :self.config.context], frames[:, self.config.context:]
        return model(context, predict, targets=targets if teacher_forcing > 0 else None, teacher_forcing=teacher_forcing)

    def loss(self, model, batch, progress):
        frames = batch["frames"]
        forcing = self.teacher_forcing(progress)
        predictions = self.predict(model, frames, self.config.predict, forcing)
        loss = F.mse_loss(predictions.float(), frames[:, self.config.context:])
        return loss, {"teacher_forcing": forcing}

    @torch.no_grad()
    def validate(self, model, dataset, batches):
        total = 0.0
        for _ in range(batches):
            frames = dataset.sample_batch(self.config.batch_size)["frames"]
            total += float(F.mse_loss(self.predict(model, frames, self.config.predict).float(),
                                      frames[:, self.config.context:]))
        return {"val_mse": total / batches}


class ClassificationTask(Task):
    """KTH action classification with camera motion."""

    kind = "classification"

    def dataset(self, split: str, seed: int, **overrides: Any) -> SceneDataset:
        c = self.config
        kwargs = dict(data_dir=c.data_dir, download=c.download, frame_size=c.frame_size, seq_len=c.clip_len,
                      velocities=c.data_vmax, seed=seed, device=self.device)
        kwargs.update(overrides)
        return KTHCameraDataset(split, **kwargs)

    def build_model(self) -> nn.Module:
        c = self.config
        if c.model == "cnn3d":
            return CNN3DClassifier(1, 6)
        return SequenceClassifier(1, c.hidden, translation_flow(c), 6,
                                  recurrence="learned" if c.model == "grnn-plus" else "exact")

    def loss(self, model, batch, progress):
        logits = model(batch["frames"])
        loss = F.cross_entropy(logits.float(), batch["labels"])
        return loss, {"accuracy": float((logits.argmax(1) == batch["labels"]).float().mean())}

    @torch.no_grad()
    def validate(self, model, dataset, batches):
        losses, correct, count = 0.0, 0, 0
        for _ in range(batches):
            batch = dataset.sample_batch(self.config.batch_size)
            logits = model(batch["frames"]).float()
            losses += float(F.cross_entropy(logits, batch["labels"]))
            correct += int((logits.argmax(1) == batch["labels"]).sum())
            count += len(batch["labels"])
        return {"val_loss": losses / batches, "val_accuracy": correct / count}


class ContextRollout(nn.Module):
    """A :class:`fernn.WorldModel` whose ``forward`` is :meth:`~fernn.WorldModel.rollout`, so that DDP
    (which hooks ``forward``) synchronises its gradients."""

    def __init__(self, world_model: WorldModel) -> None:
        super().__init__()
        self.world_model = world_model

    def forward(self, obs: torch.Tensor, actions: torch.Tensor, future_actions: torch.Tensor,
                targets: torch.Tensor | None = None, teacher_forcing: float = 0.0) -> torch.Tensor:
        return self.world_model.rollout(obs, actions, future_actions, targets=targets,
                                        teacher_forcing=teacher_forcing)


class WorldModelTask(Task):
    """MNIST World: FloWM and its ablations (the trained module is a :class:`ContextRollout`)."""

    kind = "world-model"

    in_channels = 1

    @property
    def window_hw(self) -> tuple[int, int]:
        return self.config.window_size, self.config.window_size

    @property
    def world_hw(self) -> tuple[int, int]:
        return self.config.world_size, self.config.world_size

    def model_spec(self) -> dict[str, Any]:
        """What the world model's weights do not say but a planner must match: observation channels, window and
        world sizes (saved in the checkpoints)."""
        return {"in_channels": self.in_channels, "window_hw": list(self.window_hw), "world_hw": list(self.world_hw)}

    def dataset(self, split: str, seed: int, **overrides: Any) -> SceneDataset:
        c = self.config
        kwargs = dict(source=c.source, data_dir=c.data_dir, download=c.download, world_size=c.world_size,
                      window_size=c.window_size, num_digits=c.num_digits, seq_len=c.context + c.predict,
                      velocities=c.data_vmax, seed=seed, device=self.device)
        kwargs.update(overrides)
        return MNISTWorldDataset(split, **kwargs)

    def build_model(self) -> nn.Module:
        return ContextRollout(build_world_model(self.config, self.model_spec()))

    def predict(self, model: nn.Module, batch: dict[str, torch.Tensor], teacher_forcing: float = 0.0) -> torch.Tensor:
        frames, actions, context = batch["frames"], batch["actions"], self.config.context
        targets = frames[:, context:]
        return model(frames[:, :context], actions[:, :context], actions[:, context:],
                     targets if teacher_forcing > 0 else None, teacher_forcing)

    def loss(self, model, batch, progress):
        forcing = self.teacher_forcing(progress)
        predictions = self.predict(model, batch, forcing)
        return F.mse_loss(predictions.float(), batch["frames"][:, self.config.context:]), {"teacher_forcing": forcing}

    @torch.no_grad()
    def validate(self, model, dataset, batches):
        total = 0.0
        for _ in range(batches):
            batch = dataset.sample_batch(self.config.batch_size)
            total += float(F.mse_loss(self.predict(model, batch).float(), batch["frames"][:, self.config.context:]))
        return {"val_mse": total / batches}


def step_memory(config: TrainConfig) -> float:
    """Bytes one training step keeps for backward, at least: batch x steps x V x C x H x W floats, twice (each
    step's state and its transport; measured: 1,698 MiB at batch 16, 20 frames, V = 25, 32 channels, 28 x 28,
    i.e. 2.2 floats per element)."""
    c = config
    if c.model == "cnn3d":
        return 0.0
    if c.env == "rotating-mnist":
        velocities = 1 if c.model == "grnn" else len(c.angular_velocities)
        channels = c.hidden * c.group_order
    else:
        velocities = 1 if c.model in ("grnn", "action-concat") else \
            (len(c.velocities) if c.velocities else (2 * c.vmax + 1) ** 2)
        channels = c.hidden
    steps = c.clip_len if c.env == "kth-camera" else c.context + c.predict
    side = c.frame_side()
    return 2 * 4 * c.batch_size * steps * velocities * channels * side * side


class _TrajectoryData:
    """A trajectory file opened once, split by episodes (the last 10% are the test set)."""

    def __init__(self, config: TrainConfig, device: torch.device) -> None:
        from fernn.envs import TrajectoryDataset

        self.config, self.device = config, device
        self.file = TrajectoryDataset.load(config.data, window=1, device=device)
        height, width, channels = self.file.observation_shape
        self.frame_hw, self.channels = (height, width), channels
        side = min(height, width)
        for name in ("vmax", "eval_vmax"):
            if getattr(config, name) > (side - 1) // 2:
                raise ValueError(f"{name} must be <= {(side - 1) // 2} for the {height}x{width} frames of "
                                 f"{config.data}; got {getattr(config, name)}")
        self.parts = dict(zip(("train", "test"), self.file.split(0.1, min_steps=config.context + config.predict)))
        longest = int(self.file.lengths.max()) + 1
        if config.context + config.predict > longest:
            raise ValueError(f"context + predict = {config.context + config.predict} frames, but the longest episode "
                             f"of {config.data} has {longest}; lower --context / --predict or collect longer episodes")

    def dataset(self, split: str, seed: int, seq_len: int | None = None) -> TrajectoryDataset:
        part = self.parts["test" if split in ("val", "test") else "train"]
        wanted = seq_len or self.config.context + self.config.predict
        longest = int(part.lengths.max()) + 1
        part.windows(max(min(wanted, longest), self.config.context + 1))
        part.generator.manual_seed(seed)
        return part


class TrajectoryPredictionTask(PredictionTask):
    """Next-frame prediction on collected episodes without recorded moves (``--data FILE.npz``)."""

    velocity_grid = False

    def __init__(self, config: TrainConfig, device: torch.device, data: _TrajectoryData) -> None:
        super().__init__(config, device)
        self.data = data

    def dataset(self, split: str, seed: int, **overrides: Any):
        return self.data.dataset(split, seed, overrides.get("seq_len"))

    def build_model(self) -> nn.Module:
        c = self.config
        if c.model in ("fernn-no-self-motion", "action-concat"):
            raise ValueError(f"model {c.model!r} conditions on the observer's moves, which {c.data} does not record; "
                             "collect with moves (an info key or a function: --moves) or train fernn / grnn / grnn-plus")
        return NextFramePredictor(self.data.channels, c.hidden, translation_flow(c), decoder_layers=c.decoder_layers,
                                  recurrence="learned" if c.model == "grnn-plus" else "exact")


class TrajectoryWorldModelTask(WorldModelTask):
    """The action-conditioned world model on collected episodes with recorded moves (``--data FILE.npz``): the
    window is the observation, the world ``max(world_size, frame)`` along each axis."""

    velocity_grid = False

    def __init__(self, config: TrainConfig, device: torch.device, data: _TrajectoryData) -> None:
        super().__init__(config, device)
        self.data = data

    @property
    def window_hw(self) -> tuple[int, int]:
        return self.data.frame_hw

    @property
    def world_hw(self) -> tuple[int, int]:
        return tuple(max(self.config.world_size, side) for side in self.data.frame_hw)

    def dataset(self, split: str, seed: int, **overrides: Any):
        return self.data.dataset(split, seed, overrides.get("seq_len"))

    @property
    def in_channels(self) -> int:
        return self.data.channels

    def build_model(self) -> nn.Module:
        if self.config.model == "grnn-plus":
            raise ValueError("grnn-plus is a next-frame predictor; a trajectory file with moves trains the world model "
                             "(fernn, grnn, fernn-no-self-motion, action-concat)")
        return super().build_model()


def build_world_model(config: TrainConfig, spec: dict[str, Any]) -> WorldModel:
    """The :class:`fernn.WorldModel` of a world-model run: FloWM (``fernn``) or an ablation (``grnn``: no velocity
    channels; ``fernn-no-self-motion``; ``action-concat``), sized by ``spec`` (:meth:`WorldModelTask.model_spec`)."""
    c = config
    return WorldModel(spec["in_channels"], c.hidden, translation_flow(c), world_size=tuple(spec["world_hw"]),
                      window_size=tuple(spec["window_hw"]), self_motion=c.model in ("fernn", "grnn"),
                      action_concat=c.model == "action-concat", decoder_layers=c.decoder_layers)


def make_task(config: TrainConfig, device: torch.device) -> Task:
    if config.env == "trajectories":
        data = _TrajectoryData(config, device)
        cls = TrajectoryWorldModelTask if data.file.has_moves else TrajectoryPredictionTask
        return cls(config, device, data)
    cls = {"flowing-mnist": PredictionTask, "rotating-mnist": PredictionTask, "kth-camera": ClassificationTask,
           "mnist-world": WorldModelTask}[config.env]
    return cls(config, device)
