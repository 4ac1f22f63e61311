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
from fernn.envs import FlowingMNISTDataset, KTHCameraDataset, MNISTWorldDataset, RotatingMNISTDataset, SceneDataset
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

    def __init__(self, config: TrainConfig, device: torch.device) -> None:
        self.config, self.device = config, device

    def dataset(self, split: str, seed: int, **overrides: Any) -> SceneDataset:
        raise NotImplementedError

    def build_model(self) -> nn.Module:
        raise NotImplementedError

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

    def dataset(self, split: str, seed: int, **overrides: Any) -> SceneDataset:
        c = self.config
        kwargs = dict(source=c.source, data_dir=c.data_dir, download=c.download, world_size=c.world_size,
                      window_size=c.window_size, num_digits=c.num_digits, seq_len=c.context + c.predict,
                      velocities=c.data_vmax, seed=seed, device=self.device)
        kwargs.update(overrides)
        return MNISTWorldDataset(split, **kwargs)

    def build_model(self) -> nn.Module:
        c = self.config
        return ContextRollout(WorldModel(1, c.hidden, translation_flow(c), world_size=c.world_size,
                                         window_size=c.window_size, self_motion=c.model in ("fernn", "grnn"),
                                         action_concat=c.model == "action-concat", decoder_layers=c.decoder_layers))

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


def make_task(config: TrainConfig, device: torch.device) -> Task:
    cls = {"flowing-mnist": PredictionTask, "rotating-mnist": PredictionTask, "kth-camera": ClassificationTask,
           "mnist-world": WorldModelTask}[config.env]
    return cls(config, device)
