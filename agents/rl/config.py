"""The configuration of an RL run: one typed dataclass, a docstring per field, saved as ``config.json``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from fernn.agents.runs import EVAL_SEED as EVAL_SEED  # re-exported: the RL evaluations use it
from fernn.agents.settings import (RunSettings, check_choice, check_env_kwargs, check_flags, check_integers,
                                   check_number, check_seed, check_strings)
from fernn.devices import check_device_name
from fernn.models import POOLS


RL_POLICIES = ("fernn", "cnn-lstm", "frame-stack-cnn", "frame-stack-fernn")
RL_ALGOS = ("recurrent-ppo", "ppo")
RL_READOUTS = (*POOLS, "velocities")


@dataclass
class RLConfig(RunSettings):
    """An RL run (defaults: the README's MNISTWorldTrack learning curves)."""

    env: str = "MNISTWorldTrack-v0"
    """A registered Gymnasium id or ``module:Id``, with a Discrete or Box action space."""
    env_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    """``gym.make`` keyword arguments of the env."""
    pixels: bool = False
    """Observe the env's rendered frames (``render_mode="rgb_array"`` + ``AddRenderObservation``): a state-based
    env becomes an image env."""
    frame_size: int | None = None
    """Resize pixel observations to this square side (with ``pixels``)."""
    grayscale: bool = False
    """Grayscale pixel observations (channel axis kept; with ``pixels``)."""
    add_channel: bool = False
    """Give 2-D ``(H, W)`` image observations a channel axis (a grayscale Atari env, ...)."""
    obs_key: str | None = None
    """Dict observations: the key of the image the policy sees (the other keys are dropped; MiniGrid: ``image``)."""
    algo: str = "recurrent-ppo"
    """recurrent-ppo (fernn, cnn-lstm) | ppo (frame-stack policies)."""
    policy: str = "fernn"
    """fernn | cnn-lstm | frame-stack-cnn | frame-stack-fernn."""
    timesteps: int = 100_000
    """Environment steps (all envs together)."""
    n_envs: int = 8
    """Parallel envs."""
    vec_env: str = "dummy"
    """dummy | subproc (SB3 vectorisation)."""
    n_steps: int = 128
    """Rollout length per env."""
    batch_size: int = 256
    """Transitions per minibatch (recurrent: whole envs of n_steps)."""
    n_epochs: int = 4
    """PPO epochs per rollout."""
    lr: float = 2.5e-4
    """Adam learning rate."""
    ent_coef: float = 0.01
    """Entropy bonus."""
    frames: int = 4
    """Frames of the frame-stack policies."""
    fernn_hidden: int = 16
    """FERNN hidden channels per velocity channel."""
    vmax: int = 2
    """FERNN velocity grid radius."""
    self_motion: bool = False
    """FERNN policy: append the applied move to the observations (ActionChannels) and shift the memory by it."""
    readout: str = "max"
    """FERNN policy: max | mean (pool the state over the velocity axis before the readout) | velocities (keep it)."""
    actor: str = "pooled"
    """FERNN policy: pooled (every action's logit from the pooled readout) | equivariant (a move's logit from that
    move's velocity channel, one head shared by all channels; the env's action_moves() gives the moves)."""
    relaxed: int = 0
    """FERNN policy: filter banks of an approximately equivariant recurrence (``fernn.relaxed``; 0: exact sharing)."""
    relax_alpha: float = 1e-4
    """FERNN policy with ``relaxed``: weight of the relaxation penalty added to every PPO update."""
    lstm_hidden: int = 256
    """LSTM size of the CNN-LSTM baseline."""
    reward_scale: float | None = None
    """Training rewards are multiplied by this (evaluations report unscaled returns). ``None``: 0.01 for the MNIST
    World tracking envs, 1 for every other env. Their returns of 100-step episodes with rewards in [0, 1] reach
    ~60; unscaled, the value loss's gradient dominates PPO's clipped global gradient norm (0.5) and the policy
    barely moves (entropy still uniform after 24k steps). Recorded in ``config.json`` as chosen."""
    eval_every: int = 10_000
    """Evaluate every this many environment steps."""
    eval_episodes: int = 10
    """Seeded episodes per evaluation."""
    seed: int = 0
    """Seed of the model, the envs and the evaluation episodes' order."""
    device: str = "auto"
    """auto | cpu | cuda."""
    out: str = "runs"
    """Parent directory of runs."""
    name: str = ""
    """Run name (default <env>-<policy>-s<seed>)."""

    field_word = "RL setting"

    def __post_init__(self) -> None:
        from fernn.envs import ENV_IDS

        check_strings(self, ("env", "algo", "policy", "vec_env", "readout", "actor", "device", "out", "name"))
        self.env = ENV_IDS.get(self.env, self.env)  # a short name is stored as its id
        if self.reward_scale is None:
            self.reward_scale = scaled_reward_default(self.env)
        if not self.name:
            from fernn.agents.runs import env_slug

            self.name = f"{env_slug(self.env)}-{self.policy}-s{self.seed}"
        check_choice(self, "policy", RL_POLICIES)
        check_choice(self, "algo", RL_ALGOS)
        recurrent = self.policy in ("fernn", "cnn-lstm")
        if recurrent != (self.algo == "recurrent-ppo"):
            raise ValueError(f"policy {self.policy!r} runs with --algo {'recurrent-ppo' if recurrent else 'ppo'}, "
                             f"not {self.algo!r}")
        if self.self_motion and self.policy != "fernn":
            raise ValueError("self_motion applies to --policy fernn only")
        check_choice(self, "readout", RL_READOUTS)
        if self.readout != "max" and self.policy != "fernn":
            raise ValueError("readout applies to --policy fernn only")
        from fernn.agents.rl.memory import ACTORS

        check_choice(self, "actor", ACTORS)
        if self.actor != "pooled" and self.policy != "fernn":
            raise ValueError("actor applies to --policy fernn only")
        check_integers(self, ("relaxed",), minimum=0)
        check_number(self, "relax_alpha", low=0)
        if self.relaxed and self.policy != "fernn":
            raise ValueError("relaxed applies to --policy fernn only (the FERNN memory's recurrence)")
        if self.relaxed and self.vmax == 0:
            raise ValueError("relaxed relaxes the weight sharing across velocity channels: it needs vmax >= 1")
        check_number(self, "reward_scale", low=0, low_open=True)
        check_number(self, "lr", low=0, low_open=True)
        check_number(self, "ent_coef")
        check_integers(self, ("vmax",), minimum=0)
        check_choice(self, "vec_env", ("dummy", "subproc"))
        check_integers(self, ("timesteps", "n_envs", "n_steps", "batch_size", "n_epochs", "frames", "fernn_hidden",
                              "lstm_hidden", "eval_every", "eval_episodes"))
        check_flags(self, ("pixels", "grayscale", "add_channel", "self_motion"))
        check_device_name(self.device)
        check_seed(self)
        check_env_kwargs(self.env_kwargs)
        if (self.frame_size is not None or self.grayscale) and not self.pixels:
            raise ValueError("frame_size and grayscale apply to pixel observations: pass pixels=True (--pixels) too")
        check_integers(self, ("frame_size",), minimum=8, maximum=512, optional=("frame_size",))
        check_strings(self, ("obs_key",), optional=True, meaning="the name of an image in the Dict observations")
        from fernn.envs import resolve_env_id

        resolve_env_id(self.env)  # a clear error for an unknown id (a module:Id's module is imported)

    def with_env_kwargs(self, overrides: dict[str, Any] | None) -> RLConfig:
        """This config with ``overrides`` laid over its ``env_kwargs`` (evaluate on other target velocities or
        gaps than in training); itself when there are none."""
        if not overrides:
            return self
        check_env_kwargs(overrides)
        return dataclasses.replace(self, env_kwargs={**self.env_kwargs, **overrides})


#: the envs whose training rewards are scaled by 0.01 by default (MNIST World tracking: returns up to 100)
SCALED_ENVS = ("MNISTWorldTrack-v0", "MNISTWorldTrackOccluded-v0")


def scaled_reward_default(env: str) -> float:
    """The default ``reward_scale`` of an env (see :attr:`RLConfig.reward_scale`)."""
    from fernn.envs import ENV_IDS

    name = ENV_IDS.get(env, env).split(":")[-1]
    return 0.01 if name in SCALED_ENVS else 1.0
