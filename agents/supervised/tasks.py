"""The supervised tasks: for each, its datasets (the adapters of :mod:`fernn.envs`, batches generated on the
training device), the models it trains (a table of builders), its loss, its validation metric and its
evaluations.

* ``flowing-mnist`` / ``rotating-mnist``: next-frame prediction, ``context`` frames in, ``predict`` frames out
  (autoregressive, with optional teacher forcing), MSE.
* ``kth-camera``: action classification of clips with camera motion, cross-entropy.
* ``mnist-world``: the FloWM world model, ``context`` windows and actions in, ``predict`` windows imagined from the
  future actions, MSE.
* ``trajectories`` (``--data FILE``): collected episodes; the file decides the task: the 2-D world model when it
  records window moves, the 3-D one (:mod:`fernn.agents.supervised.tasks_3d`) when it records a first-person
  agent's self-motions, the next-frame predictor when it records no moves.

A task is a class in :data:`TASKS`; a model is an entry of its task's ``models`` table. Everything that differs
between tasks (which models, which metric picks ``best.pt``, which columns the metrics have, which evaluations
run) is an attribute or a method of the task, so a new task or model is one class or one table entry.

Validation and test data come from the ``test`` digits (MNIST), the ``val`` / ``test`` persons (KTH) or the
held-out tenth of the episodes (trajectories), with fixed seeds, so every epoch is validated on the same sequences.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fernn import (FERNN, CNN3DClassifier, NextFramePredictor, RotationFlow, SequenceClassifier, TranslationFlow,
                   WorldModel)
from fernn.flows import grid_velocities
from fernn.envs import (FlowingMNISTDataset, KTHCameraDataset, MNISTWorldDataset, RotatingMNISTDataset, SceneDataset,
                        TrajectoryDataset)
from fernn.agents.supervised.config import TrainConfig

VAL_SEED, TEST_SEED = 10_007, 20_011
#: sequences the equivariance error is averaged over (:meth:`Task.equivariance_inputs`)
EQUIVARIANCE_SEQUENCES = 16
#: bytes per element of a state kept for backward: each step's state and its transport (measured: 1,698 MiB at
#: batch 16, 20 frames, V = 25, 32 channels, 28 x 28, i.e. 2.2 floats per element)
STATE_BYTES = 2 * 4

ModelBuilder = Callable[["Task"], nn.Module]


def translation_flow(config: TrainConfig, *, single: bool = False) -> TranslationFlow:
    """The model's translation velocities (``single``: the one zero velocity of G-RNN and its kin)."""
    if single:
        return TranslationFlow(0)
    return TranslationFlow(velocities=config.velocities) if config.velocities else TranslationFlow(config.vmax)


def translation_channels(config: TrainConfig, single: bool, vmax: int | None = None) -> int:
    """Velocity channels of the translation flow ``config`` asks for (``vmax`` in place of the config's)."""
    if single:
        return 1
    return len(config.velocities) if config.velocities else grid_velocities(config.vmax if vmax is None else vmax)


#: why a task leaves another task's settings unused (:attr:`Task.unused`)
ROTATION = "rotation flows are Rotating MNIST's (--env rotating-mnist)"
TRANSLATION = "its flows are rotations (--angular-velocities, --data-angular-velocities), not translations"
MNIST_WORLD = "the window of MNIST World (--env mnist-world)"
KTH = "KTH's clips (--env kth-camera)"
DIGITS = "the MNIST digit scenes' settings, not KTH's"


class Task:
    """Base class; see the module docstring. ``batch`` dicts come from :meth:`SceneDataset.sample_batch`.

    Class attributes:
        models: model name -> builder (``task -> nn.Module``); the names ``--model`` accepts.
        single_velocity: the models of :attr:`models` with one velocity channel (G-RNN and kin).
        monitor: ``(metric, "min" | "max")``: the validation metric that selects ``best.pt``.
        columns: the task's extra columns of ``metrics.csv``.
        validation_split: the split validated on every epoch, which selects ``best.pt``: never the test split (a
            generated task's ``"val"`` scenes come from the training digits or persons and a seed of their own; a
            trajectory file's from episodes of their own).
        velocity_grid: whether data can be generated at any velocity of a grid (the velocity evaluation).
        relaxable: the models of :attr:`models` that take ``relaxed`` (a translation-flow FERNN with velocity
            channels: :mod:`fernn.relaxed`).
        evaluations: the evaluations (``fernn-rl eval --what``) that apply to the task's runs.
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""  # prediction | classification | world-model | world-model-3d
    models: ClassVar[dict[str, ModelBuilder]] = {}
    single_velocity: ClassVar[tuple[str, ...]] = ()
    monitor: ClassVar[tuple[str, str]] = ("val_mse", "min")
    columns: ClassVar[list[str]] = ["teacher_forcing", "val_mse"]
    validation_split: ClassVar[str] = "val"
    velocity_grid: ClassVar[bool] = True
    relaxable: ClassVar[tuple[str, ...]] = ()
    evaluations: ClassVar[tuple[str, ...]] = ("test", "length", "velocity", "rollout", "equivariance")

    def __init__(self, config: TrainConfig, device: torch.device) -> None:
        self.config, self.device = config, device
        #: what the user should know about the run's data (printed at start; warnings without a progress display)
        self.notes: list[str] = list(getattr(getattr(self, "data", None), "notes", []))
        if config.model not in self.models:
            raise ValueError(f"model {config.model!r} is not available for {self.describe()}; accepted: "
                             f"{', '.join(self.models)}")
        if config.relaxed and config.model not in self.relaxable:
            raise ValueError(f"relaxed weight sharing (--relaxed) is available for the translation-flow FERNN models "
                             f"with velocity channels ({', '.join(self.relaxable) or 'none here'}), not for model "
                             f"{config.model!r} on {self.describe()}" + (
                                 ": rotation flows and first-person (3-D) world models keep exact sharing (see "
                                 "docs/approximate_equivariance.md)" if not self.relaxable else ""))

    #: settings the task does not use, and why: given (not at their defaults), they are refused, never ignored
    unused: ClassVar[dict[str, str]] = {}

    @classmethod
    def unused_settings(cls) -> dict[str, str]:
        """:attr:`unused`, and ``eval_vmax`` for a task without a velocity grid: setting -> why it is not used."""
        unused = dict(cls.unused)
        if not cls.velocity_grid:
            unused["eval_vmax"] = "its data cannot be generated at chosen velocities, so it has no velocity evaluation"
        return unused

    def recorded_config(self) -> dict[str, Any]:
        """The config as ``config.json`` records it: only the settings the task uses (the others are refused when
        given, so they hold their defaults, which reading the file back restores)."""
        unused = self.unused_settings()
        return {key: value for key, value in self.config.to_dict().items() if key not in unused}

    @classmethod
    def check_unused(cls, config: TrainConfig) -> None:
        """Refuse the settings of :attr:`unused` (and ``eval_vmax`` for a task without a velocity grid) that differ
        from their defaults, before the task sizes what is unset: a flag is honoured or refused, never recorded as
        if used."""
        import dataclasses

        unused = cls.unused_settings()
        defaults = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
                    for f in dataclasses.fields(TrainConfig)}
        # a stored (resumed, evaluated) config holds the sizes the task chose for what was unset: those are no flags
        given = [name for name in unused if getattr(config, name) not in (defaults[name], cls.defaults.get(name))]
        if given:
            flags = ", ".join(f"--{name.replace('_', '-')}" for name in given)
            reasons = "; ".join(dict.fromkeys(unused[name] for name in given))
            raise ValueError(f"{flags} {'does' if len(given) == 1 else 'do'} not apply to {config.data or cls.name} "
                             f"({reasons}): leave {'it' if len(given) == 1 else 'them'} out")

    def describe(self) -> str:
        """What the task is, for messages and titles."""
        return self.name

    #: the sizes an unset (``None``) field of the config gets (:data:`fernn.agents.supervised.config.SIZED`)
    defaults: ClassVar[dict[str, int]] = {"hidden": 32, "vmax": 2, "batch_size": 16, "world_size": 50, "context": 10,
                                          "predict": 10, "eval_sequences": 64}

    @classmethod
    def frame_side(cls, config: TrainConfig) -> int:
        """The side of the frames (or world) the task's velocities move on (0: known once its data is read)."""
        return 0


    def dataset(self, split: str, seed: int, **overrides: Any) -> SceneDataset:
        raise NotImplementedError

    def build_model(self) -> nn.Module:
        return self.models[self.config.model](self)

    def model_spec(self) -> dict[str, Any]:
        """Sizes the model was built for that its weights do not record (saved in the checkpoints)."""
        return {}

    def step_memory(self) -> float:
        """Bytes one training step keeps for backward, at least (checked against the device's memory)."""
        return 0.0

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor], progress: float) -> tuple[torch.Tensor, dict]:
        """Training loss on ``batch`` at ``progress`` in [0, 1] of the run, and metrics to log."""
        raise NotImplementedError

    @torch.no_grad()
    def validate(self, model: nn.Module, dataset: SceneDataset, batches: int) -> dict[str, float]:
        """Metrics over ``batches`` fixed batches (``dataset`` must be freshly seeded)."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module, run, seed: int, what: tuple[str, ...]) -> dict[str, Any]:
        """The task's evaluations named in ``what``; files go to ``run.path``."""
        raise NotImplementedError

    def split_record(self) -> dict[str, Any]:
        """What ``results.json`` says of the splits: the split, metric and seed that selected ``best.pt``, the split
        every metric is on, and for a trajectory file the episodes of each part."""
        metric, mode = self.monitor
        record = {"selection": {"checkpoint": "best", "split": self.validation_split, "metric": metric, "mode": mode},
                  "metrics": "test", "seeds": {"val": VAL_SEED, "test": TEST_SEED}}
        data = getattr(self, "data", None)
        if isinstance(data, TrajectoryData):
            record["episodes"] = data.split_sizes()
        return record

    def equivariance_sequences(self) -> int:
        """Sequences of the equivariance measurement: :data:`EQUIVARIANCE_SEQUENCES`, or fewer when the run
        evaluates fewer (``--eval-sequences``: at large frames, every flow element is one more pass over them)."""
        return min(EQUIVARIANCE_SEQUENCES, self.config.eval_sequences or EQUIVARIANCE_SEQUENCES)

    def equivariance_inputs(self, model: nn.Module, seed: int) -> tuple[FERNN, torch.Tensor] | None:
        """The model's FERNN layer and a batch ``(B, T, C, H, W)`` of its inputs from the test split, on which
        :func:`fernn.equivariance_error` measures it; ``None`` for a model without velocity channels."""
        return None

    def teacher_forcing(self, progress: float) -> float:
        start, end = self.config.teacher_forcing, self.config.teacher_forcing_end
        return start if end is None else start + (end - start) * progress


def _predictor(task: Task, recurrence: str = "exact", single: bool = False) -> nn.Module:
    c = task.config
    return NextFramePredictor(task.in_channels, c.hidden, translation_flow(c, single=single),
                              decoder_layers=c.decoder_layers, recurrence=recurrence, relaxed=c.relaxed)


class PredictionTask(Task):
    """Next-frame prediction on Flowing MNIST (translation flows)."""

    name, kind = "flowing-mnist", "prediction"
    in_channels = 1
    angular = False  # velocities are angular (rotation flows)
    models = {"fernn": _predictor, "grnn": lambda task: _predictor(task, single=True),
              "grnn-plus": lambda task: _predictor(task, "learned")}
    single_velocity = ("grnn",)
    relaxable = ("fernn",)
    unused = {"angular_velocities": ROTATION, "data_angular_velocities": ROTATION, "group_order": ROTATION,
              "window_size": MNIST_WORLD, "world_size": MNIST_WORLD, "clip_len": KTH, "frame_size": KTH}

    def dataset(self, split: str, seed: int, **overrides: Any) -> SceneDataset:
        c = self.config
        common = dict(source=c.source, data_dir=c.data_dir, download=c.download, num_digits=c.num_digits,
                      seq_len=c.context + c.predict, seed=seed, device=self.device, velocities=c.data_vmax,
                      image_size=c.image_size, boundary=c.boundary)
        return FlowingMNISTDataset(split, **{**common, **overrides})

    @classmethod
    def frame_side(cls, config: TrainConfig) -> int:
        return config.image_size

    def side(self) -> int:
        return self.frame_side(self.config)

    def step_memory(self) -> float:
        c = self.config
        velocities = translation_channels(c, c.model in self.single_velocity)
        return STATE_BYTES * c.batch_size * (c.context + c.predict) * velocities * c.hidden * self.side() ** 2

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

    def equivariance_inputs(self, model, seed):
        if model.rnn.num_velocities < 2:
            return None
        frames = self.dataset("test", seed).sample_batch(self.equivariance_sequences())["frames"]
        return model.rnn, frames[:, :self.config.context]

    def evaluate(self, model, run, seed, what):
        from fernn.agents.supervised.evaluation import evaluate_prediction

        return evaluate_prediction(self, model, run, seed, what)


def _rotation_predictor(task: Task, single: bool = False) -> nn.Module:
    c = task.config
    flow = RotationFlow([0.0] if single else c.angular_velocities, c.group_order)
    return NextFramePredictor(1, c.hidden, flow, decoder_layers=c.decoder_layers)


class RotationPredictionTask(PredictionTask):
    """Next-frame prediction on Rotating MNIST (rotation flows on C_N fields)."""

    name = "rotating-mnist"
    angular = True
    models = {"fernn": _rotation_predictor, "grnn": lambda task: _rotation_predictor(task, single=True)}
    relaxable = ()
    unused = {"vmax": TRANSLATION, "velocities": TRANSLATION, "data_vmax": TRANSLATION, "eval_vmax": TRANSLATION,
              "window_size": MNIST_WORLD, "world_size": MNIST_WORLD, "clip_len": KTH,
              "frame_size": KTH}

    def dataset(self, split: str, seed: int, **overrides: Any) -> SceneDataset:
        c = self.config
        common = dict(source=c.source, data_dir=c.data_dir, download=c.download, num_digits=c.num_digits,
                      seq_len=c.context + c.predict, seed=seed, device=self.device,
                      angular_velocities=c.data_angular_velocities)
        return RotatingMNISTDataset(split, **{**common, **overrides})

    @classmethod
    def frame_side(cls, config: TrainConfig) -> int:
        return 40

    def step_memory(self) -> float:
        c = self.config
        velocities = 1 if c.model in self.single_velocity else len(c.angular_velocities)
        return STATE_BYTES * c.batch_size * (c.context + c.predict) * velocities * c.hidden * c.group_order * 40 ** 2


def _classifier(task: Task, recurrence: str = "exact", single: bool = False) -> nn.Module:
    c = task.config
    return SequenceClassifier(1, c.hidden, translation_flow(c, single=single), 6, recurrence=recurrence,
                              relaxed=c.relaxed)


class ClassificationTask(Task):
    """KTH action classification with camera motion."""

    name, kind = "kth-camera", "classification"
    models = {"fernn": _classifier, "grnn": lambda task: _classifier(task, single=True),
              "grnn-plus": lambda task: _classifier(task, "learned"), "cnn3d": lambda task: CNN3DClassifier(1, 6)}
    single_velocity = ("grnn",)
    relaxable = ("fernn",)
    evaluations = ("test", "velocity", "equivariance")
    monitor = ("val_accuracy", "max")
    unused = {"num_digits": DIGITS, "source": DIGITS, "window_size": MNIST_WORLD, "world_size": MNIST_WORLD,
              "angular_velocities": ROTATION, "data_angular_velocities": ROTATION, "group_order": ROTATION,
              "decoder_layers": "the classifier has no frame decoder"}
    columns = ["accuracy", "val_loss", "val_accuracy"]

    @classmethod
    def frame_side(cls, config: TrainConfig) -> int:
        return config.frame_size

    def dataset(self, split: str, seed: int, **overrides: Any) -> SceneDataset:
        from fernn.envs import load_kth

        c = self.config
        videos = getattr(self, "_videos", {})  # decoded once per split: an evaluation builds a dataset per velocity
        if split not in videos:
            videos[split] = load_kth(split, data_dir=c.data_dir, download=c.download, frame_size=c.frame_size)
            self._videos = videos
        kwargs = dict(frame_size=c.frame_size, seq_len=c.clip_len, velocities=c.data_vmax, seed=seed,
                      device=self.device, videos=videos[split])
        return KTHCameraDataset(split, **{**kwargs, **overrides})

    def step_memory(self) -> float:
        c = self.config
        if c.model == "cnn3d":
            return 0.0
        velocities = translation_channels(c, c.model in self.single_velocity)
        return STATE_BYTES * c.batch_size * c.clip_len * velocities * c.hidden * c.frame_size ** 2

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

    def equivariance_inputs(self, model, seed):
        if not isinstance(model, SequenceClassifier) or model.rnn.num_velocities < 2:
            return None
        clips = self.dataset("test", seed).sample_batch(self.equivariance_sequences())["frames"]
        features = model.encoder(clips.flatten(0, 1))  # circular convolutions: they commute with translations
        return model.rnn, features.view(*clips.shape[:2], *features.shape[1:])

    def evaluate(self, model, run, seed, what):
        from fernn.agents.supervised.evaluation import evaluate_classification

        return evaluate_classification(self, model, run, seed, what)


class ContextRollout(nn.Module):
    """A world model whose ``forward`` is its ``rollout``, so that DDP (which hooks ``forward``) synchronises its
    gradients."""

    def __init__(self, world_model: nn.Module) -> None:
        super().__init__()
        self.world_model = world_model

    def forward(self, obs: torch.Tensor, actions: torch.Tensor, future_actions: torch.Tensor,
                targets: torch.Tensor | None = None, teacher_forcing: float = 0.0) -> torch.Tensor:
        return self.world_model.rollout(obs, actions, future_actions, targets=targets,
                                        teacher_forcing=teacher_forcing)


#: the 2-D world model's variants: (velocity channels, self-motion, action-concat)
WORLD_MODELS = {"fernn": (True, True, False), "grnn": (False, True, False),
                "fernn-no-self-motion": (True, False, False), "action-concat": (False, False, True)}


def build_world_model(config: TrainConfig, spec: dict[str, Any]) -> WorldModel:
    """The :class:`fernn.WorldModel` of a world-model run: FloWM (``fernn``) or an ablation (``grnn``: no velocity
    channels; ``fernn-no-self-motion``; ``action-concat``), sized by ``spec`` (:meth:`WorldModelTask.model_spec`)."""
    velocities, self_motion, concat = WORLD_MODELS[config.model]
    return WorldModel(spec["in_channels"], config.hidden, translation_flow(config, single=not velocities),
                      world_size=tuple(spec["world_hw"]), window_size=tuple(spec["window_hw"]),
                      self_motion=self_motion, action_concat=concat, decoder_layers=config.decoder_layers,
                      relaxed=config.relaxed)


class WorldModelTask(Task):
    """MNIST World: FloWM and its ablations (the trained module is a :class:`ContextRollout`)."""

    name, kind = "mnist-world", "world-model"
    unused = {"eval_vmax": "the world model is evaluated on held-out episodes, not on a velocity grid",
              "clip_len": KTH, "frame_size": KTH,
              "angular_velocities": ROTATION, "data_angular_velocities": ROTATION, "group_order": ROTATION}
    models = {name: (lambda task: ContextRollout(build_world_model(task.config, task.model_spec())))
              for name in WORLD_MODELS}
    single_velocity = ("grnn", "action-concat")
    relaxable = ("fernn", "fernn-no-self-motion")
    evaluations = ("test", "length", "rollout", "equivariance")
    in_channels = 1

    @classmethod
    def frame_side(cls, config: TrainConfig) -> int:
        return config.world_size or cls.defaults["world_size"]

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

    def step_memory(self) -> float:
        c = self.config
        velocities = translation_channels(c, c.model in self.single_velocity)
        height, width = self.world_hw
        return STATE_BYTES * c.batch_size * (c.context + c.predict) * velocities * c.hidden * height * width

    def dataset(self, split: str, seed: int, **overrides: Any) -> SceneDataset:
        c = self.config
        kwargs = dict(source=c.source, data_dir=c.data_dir, download=c.download, world_size=c.world_size,
                      window_size=c.window_size, num_digits=c.num_digits, seq_len=c.context + c.predict,
                      velocities=c.data_vmax, seed=seed, device=self.device)
        return MNISTWorldDataset(split, **{**kwargs, **overrides})

    def predict(self, model: nn.Module, batch: dict[str, torch.Tensor], teacher_forcing: float = 0.0) -> torch.Tensor:
        frames, moves, context = batch["frames"], batch["moves"], self.config.context
        targets = frames[:, context:]
        return model(frames[:, :context], moves[:, :context], moves[:, context:],
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

    def equivariance_inputs(self, model, seed):
        world_model = model.world_model
        if world_model.num_velocities < 2:
            return None
        frames = self.dataset("test", seed).sample_batch(self.equivariance_sequences())["frames"][:, :self.config.context]
        (height, width), (h, w) = self.world_hw, self.window_hw
        # the windows as the map's FERNN sees them: encoded where the window is, on an empty world
        return world_model.rnn, F.pad(frames, (0, width - w, 0, height - h))

    def evaluate(self, model, run, seed, what):
        from fernn.agents.supervised.evaluation import evaluate_world_model

        return evaluate_world_model(self, model, run, seed, what)


class TrajectoryData:
    """A trajectory file opened once (lazily: its header, its lengths) and, once the run's sizes are known, split by
    episodes into training, validation and test episodes (the last 10% test, the 10% before them validation: at
    least one each)."""

    def __init__(self, path: str, device: torch.device) -> None:
        self.path, self.device = path, device
        self.file = TrajectoryDataset.load(path, window=1, device=device)
        height, width, channels = self.file.observation_shape
        self.frame_hw, self.channels = (height, width), channels
        self.moves = self.file.meta.get("moves", "action") if self.file.has_moves else None
        self.parts: dict[str, TrajectoryDataset] = {}
        self.notes: list[str] = []
        brightest = int(self.file.episode(0)["obs"].max())
        if brightest <= 16:
            self.notes.append(f"the observations of {path} hold values 0..{brightest}: symbolic codes, not pixels (a "
                              "FERNN sees them as nearly black images); record pixels instead (MiniGrid: "
                              "RGBImgPartialObsWrapper, or fernn-rl collect --pixels)")

    def steps(self) -> tuple[int, int]:
        """Default ``(context, predict)``: 10 + 10 observations, or half each of a median episode's."""
        median = int(np.median(self.file.lengths)) + 1
        context = max(1, min(10, median // 2))
        return context, max(1, min(10, median - context))

    def split(self, config: TrainConfig) -> None:
        """Split by episodes for ``config``'s windows (``context + predict`` observations)."""
        longest = int(self.file.lengths.max()) + 1
        if config.context + config.predict > longest:
            origin = f" (set by --preset {config.preset})" if config.preset else ""
            raise ValueError(f"context + predict = {config.context + config.predict} frames{origin}, but the longest "
                             f"episode of {config.data} has {longest}; collect longer episodes (--max-steps)"
                             + (f", or choose a preset or a --context / --predict that the episodes hold" if origin else
                                " or lower --context / --predict"))
        window = config.context + config.predict
        eligible = int((self.file.lengths + 1 >= window).sum())
        if eligible < 3:
            raise ValueError(f"{config.data} has {eligible} episode(s) of at least context + predict = {window} frames; "
                             "a --data run trains on some episodes, selects its checkpoint on others and reports its "
                             "test metrics on others still, none of them trained on, so it needs at least 3: collect "
                             "more episodes (--episodes) or lower --context / --predict")
        self.parts = dict(zip(("train", "val", "test"), self.file.train_val_test(0.1, min_steps=window)))
        short = int((self.file.lengths + 1 < window).sum())
        if short:
            self.notes.append(f"{short} of {len(self.file.lengths)} episodes of {config.data} are shorter than "
                              f"context + predict = {window} frames and are not used; lower --context / --predict to "
                              "use them")

    def check_vmax(self, config: TrainConfig) -> None:
        """The translation velocities must be smaller than half the frames."""
        side = min(self.frame_hw)
        for name in ("vmax", "eval_vmax"):
            if getattr(config, name) > (side - 1) // 2:
                raise ValueError(f"{name} must be <= {(side - 1) // 2} for the {self.frame_hw[0]}x{self.frame_hw[1]} "
                                 f"frames of {config.data}; got {getattr(config, name)}")

    def split_sizes(self) -> dict[str, int]:
        """Episodes in each part: ``{"train", "val", "test"}``."""
        return {name: len(part.lengths) for name, part in self.parts.items()}

    def dataset(self, config: TrainConfig, split: str, seed: int, seq_len: int | None = None) -> TrajectoryDataset:
        if split not in self.parts:
            raise ValueError(f"split must be one of {', '.join(self.parts)}, got {split!r}")
        part = self.parts[split]
        wanted = seq_len or config.context + config.predict
        longest = int(part.lengths.max()) + 1
        part.windows(max(min(wanted, longest), config.context + 1))
        part.generator.manual_seed(seed)
        return part


#: a ``--data`` run's model is sized so that one training step keeps at most this much for backward ...
SIZED_MEMORY = 4 << 30
#: ... and costs at most about this many floating-point operations (forward and backward; a few seconds on 2 cores)
SIZED_FLOPS = 60e9
#: the sizes tried, largest first: (hidden, vmax, batch)
SIZE_LADDER = ((32, 2, 16), (16, 2, 16), (16, 1, 16), (16, 1, 8), (8, 1, 8), (8, 1, 4), (4, 1, 4), (4, 1, 2),
               (4, 0, 2), (2, 0, 1))


def sized_to_frames(config: TrainConfig, pixels: int, channels: int, steps: int, device: torch.device,
                    single: bool) -> dict[str, int]:
    """The largest (hidden, velocity grid, batch) of :data:`SIZE_LADDER` whose training step fits the memory
    budget (``min(SIZED_MEMORY, device memory / 4)``) and :data:`SIZED_FLOPS`; the config's own values (given)
    are kept. ``pixels``: the state's ``H W``; ``steps``: ``context + predict``."""
    from fernn.budget import device_memory

    budget = min(SIZED_MEMORY, device_memory(device) / 4)
    for hidden, vmax, batch in SIZE_LADDER:
        hidden, vmax = config.hidden or hidden, config.vmax if config.vmax is not None else vmax
        batch = config.batch_size or batch
        velocities = translation_channels(config, single, vmax)
        states = batch * steps * velocities * pixels
        flops = 3 * 2 * 9 * states * hidden * (hidden + channels)
        if STATE_BYTES * states * hidden <= budget and flops <= SIZED_FLOPS:
            break
    return {"hidden": hidden, "vmax": vmax, "batch_size": batch}


class TrajectoryPredictionTask(PredictionTask):
    """Next-frame prediction on collected episodes without recorded moves (``--data FILE.npz``)."""

    name = "trajectories"
    velocity_grid = False
    unused = {"world_size": "the next-frame predictor keeps no map larger than the frames"}

    def __init__(self, config: TrainConfig, device: torch.device, data: TrajectoryData) -> None:
        self.data = data
        if config.model in WORLD_MODELS and config.model not in self.models:
            raise ValueError(f"model {config.model!r} conditions on the observer's moves, which {config.data} does not "
                             "record; collect with moves (an info key or a function: --moves) or train "
                             f"{' / '.join(self.models)}")
        super().__init__(config, device)
        data.check_vmax(config)

    @classmethod
    def sizes(cls, config: TrainConfig, data: TrajectoryData, device: torch.device) -> dict[str, int]:
        context, predict = config.context or data.steps()[0], config.predict or data.steps()[1]
        height, width = data.frame_hw
        return {"context": context, "predict": predict,
                **sized_to_frames(config, height * width, data.channels, context + predict, device,
                                  config.model in cls.single_velocity)}

    @property
    def in_channels(self) -> int:
        return self.data.channels

    def describe(self) -> str:
        return f"{self.config.data} (episodes without recorded moves: the next-frame predictor)"

    def side(self) -> int:
        return max(self.data.frame_hw)

    def dataset(self, split: str, seed: int, **overrides: Any):
        return self.data.dataset(self.config, split, seed, overrides.get("seq_len"))


class TrajectoryWorldModelTask(WorldModelTask):
    """The action-conditioned world model on collected episodes with recorded window moves (``--data FILE.npz``):
    the window is the observation, the world ``max(world_size, frame)`` along each axis."""

    name = "trajectories"
    velocity_grid = False
    unused = {}

    def __init__(self, config: TrainConfig, device: torch.device, data: TrajectoryData) -> None:
        self.data = data
        if config.model == "grnn-plus":
            raise ValueError("grnn-plus is a next-frame predictor; a trajectory file with moves trains the world model "
                             f"({', '.join(self.models)})")
        super().__init__(config, device)
        data.check_vmax(config)
        if any(world <= side for world, side in zip(self.world_hw, data.frame_hw)):
            raise ValueError(f"world_size must be larger than the frames ({data.frame_hw[0]}x{data.frame_hw[1]} of "
                             f"{config.data}) so that the map keeps what leaves the view; got {config.world_size} "
                             "(leave it unset for the frame side plus 16)")

    @classmethod
    def sizes(cls, config: TrainConfig, data: TrajectoryData, device: torch.device) -> dict[str, int]:
        context, predict = config.context or data.steps()[0], config.predict or data.steps()[1]
        world = config.world_size or max(data.frame_hw) + 16
        height, width = (max(world, side) for side in data.frame_hw)
        return {"context": context, "predict": predict, "world_size": world,
                **sized_to_frames(config, height * width, data.channels, context + predict, device,
                                  config.model in cls.single_velocity)}

    def describe(self) -> str:
        return f"{self.config.data} (episodes with window moves: the 2-D world model)"

    @property
    def window_hw(self) -> tuple[int, int]:
        return self.data.frame_hw

    @property
    def world_hw(self) -> tuple[int, int]:
        return tuple(max(self.config.world_size, side) for side in self.data.frame_hw)

    def dataset(self, split: str, seed: int, **overrides: Any):
        return self.data.dataset(self.config, split, seed, overrides.get("seq_len"))

    @property
    def in_channels(self) -> int:
        return self.data.channels


def evaluation_sequences(config: TrainConfig) -> int:
    """The default evaluation size of a ``--data`` run: 64 sequences, or an eighth of the sequences it trains on
    (``epochs x steps_per_epoch x batch_size``), at least 8: a short run evaluates in seconds."""
    trained = config.epochs * config.steps_per_epoch * (config.batch_size or Task.defaults["batch_size"])
    return max(8, min(Task.defaults["eval_sequences"], trained // 8))


def trajectory_task(config: TrainConfig, device: torch.device) -> Task:
    """The task a trajectory file asks for: by the moves it records."""
    from fernn.agents.supervised.tasks_3d import WorldModel3DTask

    data = TrajectoryData(config.data, device)
    if data.moves == "self_motion" or "first_person" in data.file.meta:  # a first-person world's episodes
        task = WorldModel3DTask
        if config.model == "fernn":  # FloWM itself: on first-person data, its 3-D form
            config = config.replace(model="fernn-3d", name=config.name)
    elif config.eval_context is not None or config.eval_horizons is not None:
        raise ValueError(f"eval_context and eval_horizons set the evaluation of first-person world models; {config.data} "
                         "records no first-person self-motion")
    elif config.model in WorldModel3DTask.models:
        raise ValueError(f"model {config.model!r} is the first-person (3-D) world model; {config.data} records "
                         + ("window moves (dx, dy), which the 2-D models take: "
                            f"{', '.join(TrajectoryWorldModelTask.models)}" if data.moves else
                            "no self-motion (collect from the block world: fernn-rl collect --env dynamic-block-world)"))
    else:
        task = TrajectoryWorldModelTask if data.moves is not None else TrajectoryPredictionTask
    task.check_unused(config)
    config = config.sized(task.sizes(config, data, device))
    config = config.sized({"eval_sequences": evaluation_sequences(config)})
    data.split(config)
    return task(config, device, data)


#: task name (``--env``; ``trajectories`` comes with ``--data``) -> its class, or the function that picks it
TASKS: dict[str, Callable[[TrainConfig, torch.device], Task]] = {
    "flowing-mnist": PredictionTask, "rotating-mnist": RotationPredictionTask, "kth-camera": ClassificationTask,
    "mnist-world": WorldModelTask, "trajectories": trajectory_task,
}


def task_models() -> dict[str, tuple[str, ...]]:
    """Task name -> the models it can train (a trajectory file: those of every kind of file)."""
    from fernn.agents.supervised.tasks_3d import WorldModel3DTask

    table = {name: tuple(task.models) for name, task in TASKS.items() if isinstance(task, type)}
    table["trajectories"] = tuple(dict.fromkeys([*TrajectoryWorldModelTask.models, *TrajectoryPredictionTask.models,
                                                 *WorldModel3DTask.models]))
    return table


def make_task(config: TrainConfig, device: torch.device) -> Task:
    """The task of ``config`` (for a trajectory file: the one its recorded moves ask for), with the config's unset
    sizes filled (``task.config``): the task's defaults, or for a trajectory file sized to its data."""
    task = TASKS[config.env]
    if isinstance(task, type):
        task.check_unused(config)
        return task(config.sized(task.defaults), device)
    return task(config, device)


def step_memory(config: TrainConfig) -> float:
    """Bytes one training step of ``config`` keeps for backward, at least (:meth:`Task.step_memory`)."""
    return make_task(config, torch.device("cpu")).step_memory()
