"""fernn.agents: training and evaluating FERNNs, as supervised models and as RL policies, and the CLI.

================  ==========================================================================
sub-package       what lives there
================  ==========================================================================
``supervised``    the papers' tasks, one trainer, evaluations, presets, the demo
``rl``            FERNN policies for Stable-Baselines3 / sb3-contrib, RL runs (``[rl]`` extra)
``bench``         benchmarks and the reference implementations they time
``cli``           the ``fernn-rl`` command line (typer + rich), one module per command group
``runs``          the run directory every kind of run uses (lifecycle, lock, files, checkpoints)
================  ==========================================================================

The names users import live here too, loaded on first use (so ``import fernn.agents`` pulls in
neither SB3 nor the trainer)::

    from fernn.agents import FERNNRecurrentPPO, FERNNRecurrentPolicy, train, TrainConfig
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainConfig": "fernn.agents.supervised.config",
    "train": "fernn.agents.supervised.trainer",
    "TrainResult": "fernn.agents.supervised.trainer",
    "evaluate": "fernn.agents.supervised.evaluation",
    "PRESETS": "fernn.agents.supervised.presets",
    "RLConfig": "fernn.agents.rl.config",
    "train_rl": "fernn.agents.rl.training",
    "evaluate_policy": "fernn.agents.rl.evaluation",
    "FERNNRecurrentPPO": "fernn.agents.rl.policies",
    "FERNNRecurrentPolicy": "fernn.agents.rl.policies",
    "FERNNCore": "fernn.agents.rl.policies",
    "FERNNMemory": "fernn.agents.rl.memory",
    "FERNNFrameStackExtractor": "fernn.agents.rl.policies",
    "SmallCNN": "fernn.agents.rl.policies",
    "RunDir": "fernn.agents.runs",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'fernn.agents' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
