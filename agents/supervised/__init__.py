"""Supervised training: the papers' tasks (next-frame prediction, KTH classification, the FloWM world
model) with one trainer.

============  =============================================================================
module        what lives there
============  =============================================================================
``config``    :class:`TrainConfig`, one run's settings (typed, validated, saved as JSON)
``tasks``     each task's datasets, model, loss and validation metric
``trainer``   :func:`train`: device, AMP, DDP, checkpoints, exact resume, metrics
``evaluation``  the papers' evaluations (per-step MSE, length and velocity generalisation, ...)
``presets``   the papers' runs by name
``demo``      G-RNN vs FERNN on unseen velocities (``fernn-rl demo``)
============  =============================================================================
"""

from fernn.agents.supervised.config import MODELS, TASK_MODELS, TASKS, TrainConfig
from fernn.agents.supervised.evaluation import evaluate
from fernn.agents.supervised.presets import PRESETS
from fernn.agents.supervised.tasks import Task, make_task
from fernn.agents.supervised.trainer import TrainResult, resolve_device, train

__all__ = ["MODELS", "PRESETS", "TASKS", "TASK_MODELS", "Task", "TrainConfig", "TrainResult", "evaluate",
           "make_task", "resolve_device", "train"]
