"""The settings of a run that learns in imagination (``config.json`` of a ``dream`` run)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fernn.agents.settings import (RunSettings, check_choice, check_env_kwargs, check_integers, check_number,
                                   check_seed, check_strings)
from fernn.devices import check_device_name

SCORES = ("target-ink", "reward-head")


#: the real-env settings a tracking policy is evaluated on (cells of :data:`fernn.envs.tracking_studies.STUDY_CELLS`)
TRACKING_SETTINGS = ("seen", "unseen", "unseen-gap4")


@dataclass
class DreamConfig(RunSettings):
    """A policy learned in a world model's imagination (see the module docstring); saved as ``config.json``."""

    world_model: str = ""
    """The world-model run (``fernn-rl train --data FILE`` on episodes with window moves), stored as an absolute
    path."""
    world_model_digest: str = ""
    """SHA-256 of the world model's checkpoint the policy was learned in (set when the run starts): a dream refuses
    a world model that changed since (retrained or overwritten), instead of pairing its policy with another."""
    env: str = "MNISTWorldTrack-v0"
    """The real env the policy acts in (its windows and action_moves() must be the world model's)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """``gym.make`` keyword arguments of the env."""
    horizon: int = 15
    """Imagined steps per trajectory (DreamerV3: 15)."""
    steps: int = 2000
    """Actor-critic updates."""
    batch_size: int = 16
    """Imagined trajectories per update."""
    context: int = 10
    """Real windows the world model observes before each start state."""
    lr: float = 3e-4
    """Adam learning rate of the actor and the critic."""
    gamma: float = 0.99
    """Discount."""
    lambda_: float = 0.95
    """λ of the λ-returns."""
    entropy: float = 3e-3
    """Weight of the entropy bonus."""
    score: str = "target-ink"
    """target-ink (the tracking reward on imagined windows) | reward-head (fitted to recorded rewards)."""
    reward_data: str | None = None
    """score reward-head: the trajectory file to fit it on (default: the world model's training data)."""
    checkpoint: str = "best"
    """The world model's checkpoint: best | last."""
    eval_every: int = 250
    """Evaluate in the real env every this many updates."""
    eval_episodes: int = 10
    """Seeded episodes per evaluation during training (the final evaluation: 20 per setting)."""
    log_every: int = 25
    """Updates per metrics row."""
    seed: int = 0
    """Seed of the start states, the imagined actions and the networks."""
    device: str = "auto"
    """auto | cpu | cuda | cuda:N."""
    out: str = "runs"
    """Parent directory of runs."""
    name: str = ""
    """Run name (default: dream-<world model run>-s<seed>)."""

    def __post_init__(self) -> None:
        from fernn.envs import ENV_IDS

        if not isinstance(self.world_model, str) or not self.world_model:
            raise ValueError("world_model must name a world-model run directory (fernn-rl train --data FILE.npz)")
        check_strings(self, ("env", "score", "checkpoint", "device", "out", "name", "world_model_digest"))
        self.world_model = os.path.abspath(self.world_model)  # the run it depends on, wherever eval is run from
        self.env = ENV_IDS.get(self.env, self.env)  # a short name is stored as its id
        if not self.name:
            self.name = f"dream-{Path(self.world_model).name}-s{self.seed}"
        for name, high in (("horizon", 100), ("steps", 10 ** 7), ("batch_size", 4096), ("context", 1000),
                           ("eval_every", 10 ** 7), ("eval_episodes", 10 ** 5), ("log_every", 10 ** 7)):
            check_integers(self, (name,), maximum=high)
        check_number(self, "lr", high=1, low_open=True)
        for name, high in (("gamma", 1), ("lambda_", 1), ("entropy", 10)):
            check_number(self, name, high=high)
        check_choice(self, "score", SCORES)
        if self.reward_data is not None and self.score != "reward-head":
            raise ValueError("reward_data is what the reward-head score is fitted on: use score reward-head")
        check_choice(self, "checkpoint", ("best", "last"))
        check_env_kwargs(self.env_kwargs)
        check_device_name(self.device)
        check_seed(self)
