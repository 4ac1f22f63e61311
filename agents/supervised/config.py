"""The configuration of a supervised run: one typed dataclass, a docstring per field, saved as
``runs/<name>/config.json`` (everything needed to rerun), with validation that names the field."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from fernn.agents.settings import (RunSettings, check_choice, check_flags, check_integers, check_number, check_seed,
                                   check_strings)
from fernn.devices import check_device_name


def __getattr__(name: str) -> Any:
    """``TASKS``, ``MODELS`` and ``TASK_MODELS``: the names of the task registry
    (:data:`fernn.agents.supervised.tasks.TASKS` and each task's ``models`` table)."""
    if name in ("TASKS", "MODELS", "TASK_MODELS"):
        from fernn.agents.supervised.tasks import task_models

        table = task_models()
        return {"TASKS": tuple(table), "TASK_MODELS": table,
                "MODELS": tuple(dict.fromkeys(m for models in table.values() for m in models))}[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: the fields a task sizes when they are left unset (``None``): to its data and the memory budget
SIZED = ("hidden", "vmax", "batch_size", "world_size", "context", "predict", "eval_sequences")


@dataclass
class TrainConfig(RunSettings):
    """A supervised training run (next-frame prediction, KTH classification or MNIST World)."""

    env: str = "flowing-mnist"
    """Task: flowing-mnist | rotating-mnist | kth-camera | mnist-world | trajectories (set by ``data``)."""
    data: str | None = None
    """A trajectory file (``fernn-rl collect``): with the observer's moves recorded the action-conditioned world
    model is trained on it, without them the next-frame predictor. Sets ``env`` to ``trajectories``."""
    model: str = "fernn"
    """fernn | grnn (one velocity channel) | grnn-plus (learned shifts) | cnn3d (KTH) |
    action-concat / fernn-no-self-motion (MNIST World ablations)."""
    name: str = ""
    """Run name: the directory ``<out>/<name>`` (default: ``<env>-<model>``; with ``data``: ``<file name>-<model>``)."""
    out: str = "runs"
    """Parent directory of runs."""
    vmax: int | None = None
    """Model velocity grid radius for translation flows (FERNN-V1: 1, V2: 2; G-RNN ignores it). ``None``: the
    task's default (2; a trajectory file: sized to its frames and the memory budget)."""
    velocities: list[list[int]] | None = None
    """Explicit model velocities ``[[vx, vy], ...]`` instead of the ``vmax`` grid."""
    angular_velocities: list[float] = field(default_factory=lambda: [-40, -30, -20, -10, 0, 10, 20, 30, 40])
    """Model angular velocities for rotation flows, degrees per frame (FERNN-V4^R)."""
    group_order: int = 8
    """N of the rotation group C_N."""
    data_vmax: int = 2
    """Training data velocity set, as a grid radius (Flowing MNIST digit velocities, KTH camera motion,
    MNIST World digit velocities)."""
    data_angular_velocities: list[float] = field(default_factory=lambda: [-40, -30, -20, -10, 0, 10, 20, 30, 40])
    """Training data angular velocities (Rotating MNIST)."""
    eval_vmax: int = 2
    """Velocity-generalisation grid radius (translation heat map, KTH camera velocities)."""
    eval_angular_velocities: list[float] = field(default_factory=lambda: [-50, -40, -30, -20, -10, 0, 10, 20, 30, 40, 50])
    """Velocity-generalisation angular velocities (rotation)."""
    hidden: int | None = None
    """Hidden channels per velocity channel (C_N fields for rotation). ``None``: the task's default (32; a trajectory
    file: sized to its frames and the memory budget)."""
    decoder_layers: int = 4
    """Hidden conv layers of the frame decoder (FERNN paper: 4; FloWM: 1)."""
    context: int | None = None
    """Observed frames before prediction (``None``: the task's default, 10; the papers: Flowing MNIST 10, MNIST
    World 50)."""
    predict: int | None = None
    """Predicted frames (``None``: the task's default, 10; MNIST World: 20)."""
    relaxed: int = 0
    """Filter banks of an approximately equivariant recurrence (:mod:`fernn.relaxed`: velocity channel ``v`` convolved
    with ``sum_l w_l(v) K_l``, exactly equivariant at initialisation); 0: exact weight sharing. Translation-flow
    FERNN models only."""
    relax_alpha: float = 1e-4
    """Weight of the relaxation penalty ``mean |w(v) - w(v')|`` over neighbouring velocities, added to the loss."""
    boundary: str = "wrap"
    """Flowing MNIST: digits wrap around the frame (a torus, the paper) or bounce off its borders (``bounce``, a flow
    the world breaks; needs ``image_size`` > 28)."""
    image_size: int = 28
    """Flowing MNIST frame side (the paper: 28)."""
    clip_len: int = 16
    """KTH frames per clip."""
    frame_size: int = 32
    """KTH frame side (Table 2: 32)."""
    world_size: int | None = None
    """Side of the world model's map: MNIST World's torus (``None``: 50); for a trajectory file with window moves,
    larger than the frames (``None``: the frame side plus 16)."""
    window_size: int = 32
    """MNIST World window side."""
    num_digits: int = 2
    """Digits per scene (MNIST World: 5)."""
    source: str = "auto"
    """MNIST source: auto | embedded | full."""
    data_dir: str | None = None
    """Data directory (default: $FERNN_DATA or ~/.cache/fernn)."""
    download: bool = False
    """Download missing data (MNIST, KTH)."""
    epochs: int = 10
    """Epochs of ``steps_per_epoch`` optimiser steps."""
    steps_per_epoch: int = 100
    """Optimiser steps per epoch (data is generated, so an epoch is a number of batches)."""
    batch_size: int | None = None
    """Global batch size, split over DDP ranks (``None``: the task's default, 16; a trajectory file: sized to its
    frames and the memory budget)."""
    lr: float = 1e-3
    """Adam learning rate (papers: 1e-4 for long GPU runs; 1e-3 for short CPU runs)."""
    grad_clip: float | None = 1.0
    """Gradient-norm clipping (None: off; the rotation paper runs use none)."""
    teacher_forcing: float = 0.0
    """Probability of feeding the true frame instead of the prediction, at the start of training."""
    teacher_forcing_end: float | None = None
    """Teacher forcing at the end of training, reached linearly (a curriculum; None: constant)."""
    val_batches: int = 4
    """Validation batches (fixed seed) per epoch."""
    eval_sequences: int | None = None
    """Sequences per evaluation (per cell of the velocity-generalisation grid); default 64, and for ``--data`` runs
    at most an eighth of the sequences the run trains on (at least 8), so a short run evaluates in seconds."""
    eval_context: int | None = None
    """First-person world models: views observed before free-running prediction in the evaluation (default:
    ``context``)."""
    eval_horizons: list[int] | None = None
    """First-person world models: the numbers of predicted views the evaluation reports (default: ``predict`` and
    ``4 predict``; FloWM's protocol: 70 and 210 after 70 context views)."""
    seed: int = 0
    """Seed of the model, the data and every RNG of the run."""
    device: str = "auto"
    """auto (CUDA when present) | cpu | cuda | cuda:N."""
    amp: bool = True
    """bf16 autocast on CUDA (ignored on the CPU)."""
    compile: bool = False
    """torch.compile the model (optional)."""
    checkpoint_every: int = 50
    """Save checkpoints/last.pt every this many steps (and at every epoch end)."""
    log_every: int = 10
    """Write a metrics row every this many steps."""
    preset: str | None = None
    """The preset this config started from (informational)."""

    field_word = "field"

    def __post_init__(self) -> None:
        if self.data is not None:
            self.env = "trajectories"
        if not self.name:  # a data run is named after its file: two datasets never share a run directory
            stem = str(self.data).replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".npz") if self.data else self.env
            self.name = f"{stem}-{self.model}"
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field and what is accepted."""
        from fernn.agents.supervised.tasks import task_models

        check_strings(self, ("env", "model", "name", "out", "source", "device"))
        check_strings(self, ("data", "data_dir", "preset"), optional=True, meaning="a path (a string)")
        for name in ("angular_velocities", "data_angular_velocities", "eval_angular_velocities"):
            value = getattr(self, name)
            if not isinstance(value, list) or not value or not all(
                    isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) for w in value):
                raise ValueError(f"{name} must be a non-empty list of numbers (degrees per frame); got {value!r}")
        if self.velocities is not None and not (isinstance(self.velocities, list) and self.velocities and all(
                isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in v)
                for v in self.velocities)):
            raise ValueError(f"velocities must be a list of integer pairs [[vx, vy], ...]; got {self.velocities!r}")
        check_flags(self, ("download", "amp", "compile"))
        table = task_models()
        if self.env not in table:
            raise ValueError(f"env must be one of {', '.join(table)}; got {self.env!r}")
        if self.model not in table[self.env]:
            raise ValueError(f"model {self.model!r} is not available for {self.env}; accepted: "
                             f"{', '.join(table[self.env])}")
        check_integers(self, ("hidden", "context", "predict", "clip_len", "frame_size", "world_size", "window_size",
                              "num_digits", "epochs", "steps_per_epoch", "batch_size", "val_batches", "eval_sequences",
                              "group_order", "checkpoint_every", "log_every"), optional=SIZED)
        check_integers(self, ("vmax", "data_vmax", "eval_vmax", "decoder_layers"), minimum=0, optional=SIZED)
        check_integers(self, ("eval_context",), optional=("eval_context",))
        if self.eval_horizons is not None and not (isinstance(self.eval_horizons, list) and self.eval_horizons and all(
                isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in self.eval_horizons)):
            raise ValueError(f"eval_horizons must be a non-empty list of integers >= 1; got {self.eval_horizons!r}")
        if (self.eval_context is not None or self.eval_horizons is not None) and self.env != "trajectories":
            raise ValueError("eval_context and eval_horizons set the evaluation of first-person world models, trained on "
                             "a trajectory file of the block world (--data FILE.npz)")
        from fernn.envs.scenes import DIGIT_SIZE, MAX_SIDE, check_boundary

        check_integers(self, ("relaxed",), minimum=0)
        check_number(self, "relax_alpha", low=0)
        check_integers(self, ("image_size",), minimum=DIGIT_SIZE, maximum=MAX_SIDE)
        check_boundary(self.boundary, self.image_size)
        if (self.boundary != "wrap" or self.image_size != DIGIT_SIZE) and self.env != "flowing-mnist":
            raise ValueError(f"boundary and image_size set Flowing MNIST's frames (--env flowing-mnist); got env "
                             f"{self.env!r}")
        check_number(self, "lr", low=0, low_open=True)
        check_number(self, "grad_clip", low=0, low_open=True, optional=True)
        for name in ("teacher_forcing", "teacher_forcing_end"):
            check_number(self, name, low=0, high=1, optional=True, meaning="a probability")
        if (self.env == "trajectories") != (self.data is not None):
            raise ValueError("env 'trajectories' goes with data=<trajectory file> (--data FILE.npz), and data with it")
        side = self.frame_side()
        for name in ("vmax", "data_vmax", "eval_vmax") if side else ():
            if getattr(self, name) is not None and getattr(self, name) > (side - 1) // 2:
                raise ValueError(f"{name} must be <= {(side - 1) // 2} for {self.env}'s {side}-px frames (a velocity "
                                 f"of half the frame or more is the same as a smaller one on a torus); got "
                                 f"{getattr(self, name)}")
        check_seed(self)
        if self.env == "mnist-world" and self.world_size is not None and self.window_size > self.world_size:
            raise ValueError(f"window_size must be <= world_size; got {self.window_size} > {self.world_size}")
        check_choice(self, "source", ("auto", "embedded", "full"))
        check_device_name(self.device)

    def frame_side(self) -> int:
        """The side of the frames (or, for MNIST World, of the world) that the task's velocities move on (0: known
        once the data is read, which the task then checks)."""
        from fernn.agents.supervised.tasks import TASKS

        task = TASKS[self.env]
        return task.frame_side(self) if isinstance(task, type) else 0

    def sized(self, sizes: dict[str, Any]) -> TrainConfig:
        """This config with its unset (``None``) sizes taken from ``sizes`` (:data:`SIZED` fields)."""
        return self.replace(**{k: v for k, v in sizes.items() if k in SIZED and getattr(self, k) is None})

