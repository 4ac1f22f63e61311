"""The vectorised training and evaluation envs of an RL run."""

from __future__ import annotations

from functools import partial
from typing import Any

from stable_baselines3.common.vec_env import VecEnvWrapper

from fernn.agents.rl.config import RLConfig


def make_vec_env(config: RLConfig, seed: int | None = None, env_kwargs: dict[str, Any] | None = None):
    """The training envs: SB3 VecEnv of ``n_envs`` (frame-stacked for the frame-stack policies), rewards
    multiplied by ``config.reward_scale``."""
    from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecFrameStack

    from fernn.envs.trajectories import importable_env_id

    env_id = importable_env_id(config.env)
    kwargs = {**config.env_kwargs, **(env_kwargs or {})}
    if config.pixels:
        kwargs["render_mode"] = "rgb_array"
    envs = sb3_make_vec_env(env_id, n_envs=config.n_envs, seed=config.seed if seed is None else seed,
                            vec_env_cls=SubprocVecEnv if config.vec_env == "subproc" else DummyVecEnv,
                            env_kwargs=kwargs, wrapper_class=partial(wrap_env, config=config))
    if config.policy.startswith("frame-stack"):
        envs = VecFrameStack(envs, config.frames)
    return ScaledReward(envs, config.reward_scale) if config.reward_scale != 1 else envs


def check_motion_flags(config: RLConfig) -> None:
    """Refuse, before anything is built or written, the flags that read the agent's own motion from an env that
    does not report it as 2-D window moves: ``--actor equivariant`` (a move's logit from that move's velocity
    channel: the env's ``action_moves()``, ``(A, 2)`` window moves) and ``--self-motion`` (the applied move in
    ``info["action"]``). A first-person world (:mod:`fernn.envs.first_person_world`: turns and steps) has neither."""
    if config.actor != "equivariant" and not config.self_motion:
        return
    from fernn.envs import make_env
    from fernn.envs.first_person_world import first_person_geometry
    from fernn.envs.wrappers import declared

    flags = " and ".join(flag for flag, used in (("--actor equivariant", config.actor == "equivariant"),
                                                 ("--self-motion", config.self_motion)) if used)
    probe = make_env(config.env, config.env_kwargs)
    try:
        if first_person_geometry(probe) is not None:
            raise ValueError(f"{flags} {'read' if ' and ' in flags else 'reads'} the agent's moves as 2-D window moves "
                             f"(dx, dy); {config.env}'s actions are first-person motions (turns and steps), which they "
                             f"cannot represent: leave {'them' if ' and ' in flags else 'it'} out (the pooled actor, no "
                             "self-motion channels)")
        if config.actor == "equivariant" and not callable(declared(probe, "action_moves")):
            raise ValueError(f"--actor equivariant scores each action from the velocity channel of its move, read from "
                             f"the env's action_moves() ((A, 2) window moves); {config.env} has none: use --actor "
                             "pooled (the default), or give the env an action_moves() method (docs/your_env.md)")
        if config.self_motion:
            _, info = probe.reset(seed=config.seed)
            if "action" not in info:
                raise ValueError(f"--self-motion gives the policy the move the env applied, from info['action'] (dx, "
                                 f"dy); {config.env} reports none: leave --self-motion out, or report the move in "
                                 "info['action'] (docs/your_env.md)")
    finally:
        probe.close()


def wrap_env(env, config: RLConfig):
    """The per-env wrappers of a run: an image key of Dict observations, a channel axis, pixel observations, then
    the action channels of self-motion; an observation that is still no image is one error naming the fix."""
    from fernn.envs import pixel_observations
    from fernn.envs.image_spaces import read_image_space
    from fernn.envs.wrappers import ActionChannels, ImageKey, with_channel_axis

    if config.obs_key is not None:
        env = ImageKey(env, config.obs_key)
    if config.pixels:
        env = pixel_observations(env, frame_size=config.frame_size, grayscale=config.grayscale)
    if config.add_channel:
        env = with_channel_axis(env)
    read_image_space(env.observation_space, f"--policy {config.policy}")  # a Dict, a vector, a 2-D image: one line
    return ActionChannels(env) if config.self_motion else env


class ScaledReward(VecEnvWrapper):
    """Multiply the rewards of a VecEnv by a constant (stateless, so resuming needs nothing saved). SB3's
    ``Monitor`` sits inside each env, so logged episode returns stay unscaled."""

    def __init__(self, venv, scale: float) -> None:
        super().__init__(venv)
        self.scale = float(scale)

    def reset(self):  # noqa: D102 - VecEnv API
        return self.venv.reset()

    def step_wait(self):  # noqa: D102 - VecEnv API
        observations, rewards, dones, infos = self.venv.step_wait()
        return observations, rewards * self.scale, dones, infos
