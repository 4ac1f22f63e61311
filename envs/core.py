"""One batch of scenes per env family, stepped by both the single Gymnasium env (a batch of one scene) and
the native vector env (a batch of N scenes, ``gym.make_vec(..., vectorization_mode="vector_entry_point")``).

A batch holds N scenes and advances all of them in one batched op. Each scene has its own
``torch.Generator`` (seeded from the env's ``np_random`` on ``reset``), so scene ``i`` of a vector env
reset with seed ``s`` is the same episode as a single env reset with seed ``s + i`` (Gymnasium's
``SyncVectorEnv`` convention); drawing a new scene's random parameters is per scene, rendering is
batched.
"""

from __future__ import annotations

import abc
import inspect
import os
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from fernn.envs.rendering import HumanViewer

RENDER_MODES = ("rgb_array", "human")
SEED_RANGE = 2**63 - 1
_IMPORTED_BY = os.getpid()  # an env built in another process with this module already loaded was forked


#: the memory of one CPU ``torch.Generator`` (its Mersenne-Twister state and the object: about 2.6 KiB measured, with
#: margin): every scene of a batch has its own
GENERATOR_BYTES = 4096


class EnvBatch(abc.ABC):
    """N scenes of one env family. Subclasses set ``single_observation_space`` and
    ``single_action_space`` and implement the abstract methods; every array they return is fresh."""

    single_observation_space: gym.Space
    single_action_space: gym.Space

    def __init__(self, num_envs: int) -> None:
        from fernn.budget import check_fits

        self.num_envs = num_envs
        check_fits(float(GENERATOR_BYTES) * num_envs, f"one random generator for each of {num_envs:,} scenes (about "
                   f"{GENERATOR_BYTES / 1024:.0f} KiB each)", "lower num_envs", "cpu")
        self.generators = [torch.Generator() for _ in range(num_envs)]

    @abc.abstractmethod
    def reset_envs(self, indices: np.ndarray) -> None:
        """Start new episodes in scenes ``indices`` (drawn from their own generators)."""

    @abc.abstractmethod
    def observe(self) -> np.ndarray:
        """The current observations ``(N, *obs_shape)``."""

    @abc.abstractmethod
    def advance(self, actions: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        """Apply ``actions`` to the scenes where ``active``: ``(reward, terminated, truncated, info)``,
        arrays of length N (entries of inactive scenes are ignored); ``info`` maps names to arrays."""

    def reset_info(self, index: int) -> dict[str, Any]:
        """Info returned by ``reset`` for scene ``index``."""
        return {}

    def reset_infos(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """The reset infos of scenes ``indices``, batched: ``{key: (len(indices), ...)}``."""
        infos = [self.reset_info(int(i)) for i in indices]
        if not infos or not infos[0]:
            return {}
        return {key: np.stack([np.asarray(info[key]) for info in infos]) for key in infos[0]}

    def final_info(self, index: int) -> dict[str, Any]:
        """Extra info on the last step of an episode of scene ``index``."""
        return {}

    @abc.abstractmethod
    def render_rgb(self, index: int) -> np.ndarray:
        """An ``(H, W, 3)`` uint8 picture of scene ``index``."""


def check_action(space: gym.Space, action: Any) -> np.ndarray:
    """``action`` as an array of the space's dtype, or a ``ValueError`` saying what the space accepts."""
    try:
        array = np.asarray(action, dtype=space.dtype)
    except (TypeError, ValueError, OverflowError) as error:
        raise ValueError(f"action {action!r} cannot be read as {space}: {error}") from error
    if isinstance(space, gym.spaces.Discrete) and array.shape == ():
        ok = space.contains(int(array)) and float(np.asarray(action)) == int(array)
    else:
        ok = space.contains(array) and np.array_equal(np.asarray(action, dtype=np.float64), array.astype(np.float64))
    if not ok:
        shown = action if np.size(action) <= 8 else f"an array of shape {np.shape(action)}"
        raise ValueError(f"action {shown} is outside the action space {space}")
    return array


def single_thread_if_forked() -> None:
    """In a forked env worker (AsyncVectorEnv, SubprocVecEnv with fork) use one torch thread before any
    torch op: like a DataLoader worker, it must not use its copy of the parent's OpenMP pool (it deadlocks)."""
    if os.getpid() != _IMPORTED_BY:
        torch.set_num_threads(1)


def scene_options(make_batch: Any) -> dict[str, Any]:
    """The ``gym.make`` kwargs a batch builder accepts, with their defaults."""
    parameters = list(inspect.signature(make_batch).parameters.values())[1:]
    return {p.name: p.default for p in parameters}


def build_batch(make_batch: Any, num_envs: int, kwargs: dict[str, Any], env_name: str) -> EnvBatch:
    """Call ``make_batch(num_envs, **kwargs)`` after checking that every kwarg is one it accepts."""
    accepted = scene_options(make_batch)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise TypeError(f"{env_name} got unknown argument(s) {', '.join(map(repr, unknown))}; accepted: "
                        f"{', '.join(accepted)} (and render_mode)")
    return make_batch(num_envs, **kwargs)


def check_render_mode(render_mode: str | None, modes: tuple[str, ...]) -> str | None:
    if render_mode is not None and render_mode not in modes:
        raise ValueError(f"render_mode must be one of {modes} or None, got {render_mode!r}")
    return render_mode


class CoreEnv(gym.Env):
    """A single-scene Gymnasium env over a :class:`EnvBatch` of one; subclasses implement
    :meth:`make_batch`."""

    metadata: dict[str, Any] = {"render_modes": list(RENDER_MODES), "render_fps": 8}

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        self.render_mode = check_render_mode(render_mode, tuple(self.metadata["render_modes"]))
        single_thread_if_forked()
        self.batch = build_batch(self.make_batch, 1, kwargs, type(self).__name__)
        self.observation_space = self.batch.single_observation_space
        self.action_space = self.batch.single_action_space
        self._running = False
        self._viewer: HumanViewer | None = None

    @classmethod
    def make_batch(cls, num_envs: int, **kwargs: Any) -> EnvBatch:
        """Build the batch of ``num_envs`` scenes from the env's ``gym.make`` kwargs (validated there)."""
        raise NotImplementedError

    @property
    def core(self) -> EnvBatch:
        """The former name of :attr:`batch`."""
        return self.batch

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.batch.generators[0].manual_seed(int(self.np_random.integers(SEED_RANGE)))
        self.batch.reset_envs(np.array([0]))
        self._running = True
        if self.render_mode == "human":
            self.render()
        return self.batch.observe()[0], self.batch.reset_info(0)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        if not self._running:
            raise RuntimeError("step() was called before reset() or after the episode ended (terminated or "
                               "truncated); call reset() to start a new episode")
        array = check_action(self.action_space, action)
        reward, terminated, truncated, info = self.batch.advance(array[None], np.ones(1, bool))
        done = bool(terminated[0] or truncated[0])
        info = {key: _item(value[0]) for key, value in info.items()}
        if done:
            self._running = False
            info.update(self.batch.final_info(0))
        if self.render_mode == "human":
            self.render()
        return self.batch.observe()[0], float(reward[0]), bool(terminated[0]), bool(truncated[0]), info

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("render() needs a render_mode: gym.make(id, render_mode='rgb_array' or 'human')")
            return None
        rgb = self.batch.render_rgb(0)
        if self.render_mode == "rgb_array":
            return rgb
        if self._viewer is None:
            self._viewer = HumanViewer(type(self).__name__, self.metadata["render_fps"])
        self._viewer.show(rgb)
        return None

    def close(self) -> None:
        if self._viewer is not None:
            self._viewer.close()
            self._viewer = None


class CoreVectorEnv(VectorEnv):
    """N scenes stepped in one batched op (next-step autoreset, as Gymnasium's default): after an
    episode ends, the following ``step`` ignores that scene's action, starts a new episode and returns
    its first observation with reward 0. ``max_episode_steps`` (from the spec with ``gym.make_vec``)
    truncates episodes, as ``TimeLimit`` does for the single env. Subclasses implement :meth:`make_batch`."""

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 8,
                                "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, render_mode: str | None = None, max_episode_steps: int | None = None,
                 **kwargs: Any) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        if max_episode_steps is not None and (not isinstance(max_episode_steps, int) or max_episode_steps < 1):
            raise ValueError(f"max_episode_steps must be an integer >= 1 or None, got {max_episode_steps!r}")
        self.max_episode_steps = max_episode_steps
        self._steps = np.zeros(num_envs, np.int64)
        self.render_mode = check_render_mode(render_mode, tuple(self.metadata["render_modes"]))
        self.num_envs = num_envs
        single_thread_if_forked()
        self.batch = build_batch(self.make_batch, num_envs, kwargs, type(self).__name__)
        self.single_observation_space = self.batch.single_observation_space
        self.single_action_space = self.batch.single_action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._needs_reset = np.zeros(num_envs, bool)
        self._started = False

    @classmethod
    def make_batch(cls, num_envs: int, **kwargs: Any) -> EnvBatch:
        """Build the batch of ``num_envs`` scenes from the env's ``gym.make_vec`` kwargs."""
        raise NotImplementedError

    @property
    def core(self) -> EnvBatch:
        """The former name of :attr:`batch`."""
        return self.batch

    def reset(self, *, seed: int | list[int] | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        if isinstance(seed, (np.integer, int)) and not isinstance(seed, bool):
            seed = int(seed)
        super().reset(seed=seed if isinstance(seed, int) else None)
        if seed is None:
            seeds = [int(self.np_random.integers(SEED_RANGE)) for _ in range(self.num_envs)]
        elif isinstance(seed, int):
            seeds = [seed + i for i in range(self.num_envs)]
        else:
            if not isinstance(seed, (list, tuple, np.ndarray)) or len(seed) != self.num_envs or not all(
                    isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 0 for s in seed):
                raise ValueError(f"seed must be None, an int or a list of {self.num_envs} non-negative ints (one per "
                                 f"env), got {seed!r}")
            seeds = [int(s) for s in seed]
        mask = np.ones(self.num_envs, bool)
        if options and "reset_mask" in options:
            mask = np.asarray(options["reset_mask"])
            if mask.dtype != bool or mask.shape != (self.num_envs,):
                raise ValueError(f"options['reset_mask'] must be a bool array of shape ({self.num_envs},), got "
                                 f"{options['reset_mask']!r}")
        indices = np.flatnonzero(mask)
        if len(indices) == 0:  # nothing to reset: a no-op, once there is something to observe
            if not self._started:
                raise ValueError("options['reset_mask'] selects no env, but no env has been reset yet: the first "
                                 "reset must reset every env")
            return self.batch.observe(), {}
        for i in indices:
            self.batch.generators[i].manual_seed(int(np.random.default_rng(seeds[i]).integers(SEED_RANGE)))
        self.batch.reset_envs(indices)
        self._needs_reset[indices] = False
        self._steps[indices] = 0
        self._started = True
        return self.batch.observe(), self._with_reset_info({}, indices)

    def _with_reset_info(self, infos: dict[str, np.ndarray], indices: np.ndarray) -> dict[str, np.ndarray]:
        """``infos`` with the reset info of scenes ``indices`` laid over it (their ``_key`` masks set), as
        Gymnasium's vector envs report the first info of a new episode."""
        fresh = self.batch.reset_infos(indices)
        for key, values in fresh.items():
            if key not in infos:
                infos[key] = np.zeros((self.num_envs, *values.shape[1:]), values.dtype)
                infos[f"_{key}"] = np.zeros(self.num_envs, bool)
            infos[key][indices] = values
            infos[f"_{key}"][indices] = True
        return infos

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        if not self._started:
            raise RuntimeError("step() was called before reset(); call reset() first")
        actions = check_action(self.action_space, actions)
        restarting = self._needs_reset.copy()
        reward, terminated, truncated, info = self.batch.advance(actions, ~restarting)
        if restarting.any():
            self.batch.reset_envs(np.flatnonzero(restarting))
        self._steps = np.where(restarting, 0, self._steps + 1)
        if self.max_episode_steps is not None:
            truncated = truncated | (self._steps >= self.max_episode_steps)
        reward = np.where(restarting, 0.0, reward).astype(np.float32)
        terminated, truncated = terminated & ~restarting, truncated & ~restarting
        self._needs_reset = terminated | truncated
        infos = {}
        for key, value in info.items():
            infos[key], infos[f"_{key}"] = value, ~restarting
        if restarting.any():
            infos = self._with_reset_info(infos, np.flatnonzero(restarting))
        return self.batch.observe(), reward, terminated, truncated, infos

    def render(self) -> tuple[np.ndarray, ...] | None:
        if self.render_mode is None:
            gym.logger.warn("render() needs render_mode='rgb_array': gym.make_vec(id, render_mode='rgb_array')")
            return None
        return tuple(self.batch.render_rgb(i) for i in range(self.num_envs))


BatchedCore = EnvBatch  # the former name, kept for subclasses written against it


def _item(value: Any) -> Any:
    return value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value
