"""Trajectories: episodes of any Gymnasium env with image observations, collected once and trained on.

``collect_episodes(env, episodes)`` runs an env (an id, a ``module:Id``, an env or a vector env) with a policy
and returns a :class:`TrajectoryDataset`; ``save`` writes it as one ``.npz`` (data only: loaded with
``allow_pickle=False``), ``TrajectoryDataset.load`` reads it back lazily (one episode decompressed at a time),
so a dataset larger than memory still trains.

Step ``t`` of an episode holds the observation ``o_t`` and what led to it: ``actions[t]`` (the action taken after
``o_{t-1}``; zeros at ``t = 0``), ``rewards[t]``, ``terminated[t]``, ``truncated[t]`` and, when the env reports the
observer's own motion, ``moves[t] = (dx, dy)`` (the move just before ``o_t``; ``(0, 0)`` at ``t = 0``) -- the
convention of :class:`fernn.WorldModel`. Episodes may differ in length (ragged storage, one array per episode).
"""

from __future__ import annotations

import importlib
import json
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from fernn.envs.image_spaces import read_image_space
from fernn.envs.scenes import check_count
from fernn.io import atomic_write

from fernn.envs.trajectory_files import FORMAT, MAX_MEMBER_BYTES, VERSION, TrajectoryFileError, inspect_file

#: the episodes a file keeps decompressed at once, in bytes
CACHE_BYTES = 1 << 30


def resolve_env_id(env_id: str) -> str:
    """The registered Gymnasium id a name stands for: a short name of :data:`fernn.envs.ENV_IDS`
    (``dynamic-block-world``), a registered id, an Atari id (``ALE/Breakout-v5``: ale-py's ids are registered when
    ale-py is installed, as Gymnasium documents) or ``module:Id`` (the module is imported first, with the current
    directory on the import path, as ``python -c`` has it); a clear ``ValueError`` for an unknown one. Every command
    and API that takes an env id resolves it here."""
    import os
    import sys

    from fernn.envs import ENV_IDS

    name = ENV_IDS.get(env_id, env_id) if isinstance(env_id, str) else None
    if name is None:
        raise ValueError(f"an env id must be a string, got {env_id!r}")
    if name.startswith("MiniWorld-") or name.startswith("miniworld:"):  # OpenGL: headless, or one clear line
        from fernn.envs.miniworld import import_miniworld

        import_miniworld()
    if ":" in name:
        module, _, name = name.partition(":")
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ValueError(f"env {env_id!r}: cannot import module {module!r} ({error}); a module:Id names a module "
                             "importable from the current directory or the installed packages") from error
    if name not in gym.registry and name.startswith("ALE/"):
        try:
            import ale_py

            gym.register_envs(ale_py)
        except ImportError as error:
            raise ValueError(f"env {env_id!r} is an Atari id: install ale-py (pip install '.[atari]' from a clone, or "
                             "pip install ale-py)") from error
    if name not in gym.registry:
        raise ValueError(f"unknown env {env_id!r}; accepted: a registered Gymnasium id (Atari: ALE/Name-v5), "
                         f"'module:Id' (the module is imported first) or one of {', '.join(ENV_IDS)}")
    return name


registered_id = resolve_env_id  # the name of the first release


def importable_env_id(env_id: str) -> str:
    """The id of :func:`resolve_env_id` in the ``module:Id`` form that ``gym.make`` resolves in any process (a
    subprocess vec env's workers start without this process's imports): ``fernn.envs:Id``, ``ale_py:ALE/...``, the
    given ``module:Id``, or the plain id of an env Gymnasium itself registers."""
    from fernn.envs import ENV_IDS

    name = resolve_env_id(env_id)
    given = ENV_IDS.get(env_id, env_id)
    if ":" in given:
        return f"{given.partition(':')[0]}:{name}"
    if name in ENV_IDS.values():
        return f"fernn.envs:{name}"
    if name.startswith("ALE/"):
        return f"ale_py:{name}"
    return name


def make_env(env_id: str, env_kwargs: dict[str, Any] | None = None, **make_kwargs: Any) -> gym.Env:
    """``gym.make`` of :func:`resolve_env_id` ``(env_id)`` with ``env_kwargs``."""
    return gym.make(resolve_env_id(env_id), **(env_kwargs or {}), **make_kwargs)


def pixel_observations(env: gym.Env, *, frame_size: int | None = None, grayscale: bool = False) -> gym.Env:
    """Wrap an env rendered with ``render_mode="rgb_array"`` so that its observations are its frames
    (Gymnasium's ``AddRenderObservation``), optionally resized to ``frame_size`` (``ResizeObservation``, the
    ``[pixels]`` extra) and grayscale (``GrayscaleObservation``, channel axis kept). Envs that draw with pygame
    (classic control) render offscreen: without a display, set ``SDL_VIDEODRIVER=dummy``.

    An env whose rendered frame shows what its observations hide declares ``metadata["render_reveals_state"]``
    (the block world draws the room from above beside the view; the MNIST worlds draw the whole world around the
    window) and is refused: its frames as observations would give the hidden state away."""
    from gymnasium.wrappers import AddRenderObservation, GrayscaleObservation, ResizeObservation

    from fernn._extras import require

    if env.render_mode != "rgb_array":
        raise ValueError(f"pixel observations need an env made with render_mode='rgb_array', got "
                         f"render_mode={env.render_mode!r}")
    if env.unwrapped.metadata.get("render_reveals_state"):
        name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
        raise ValueError(f"{name}'s rendered frames show what its observations hide (the state the agent must infer), "
                         "so they are never recorded as observations: its observations already are images, so leave "
                         "out --pixels (their size and colours are the env's own kwargs, e.g. obs_size)")
    env = AddRenderObservation(env, render_only=True)
    if frame_size is not None:
        require("cv2", "pixels", "resizing rendered frames (Gymnasium's ResizeObservation)")
        env = ResizeObservation(env, (check_count("frame_size", frame_size), frame_size))
    if grayscale:
        env = GrayscaleObservation(env, keep_dim=True)
    return env


def check_image_space(space: gym.Space, where: str) -> tuple[int, int, int]:
    """``(H, W, C)`` of a uint8 image observation space, or a ``ValueError`` saying what is accepted."""
    return read_image_space(space, where, channels_last=True).hwc


#: info keys that report the observer's own motion, in the order they are looked for: ``action`` (the 2-D envs'
#: window move ``(dx, dy)``) and ``self_motion`` (the block world's ``(turn, forward)``)
MOTION_KEYS = ("action", "self_motion")


def _moves_reader(moves: str | Callable | None, info_keys: Sequence[str]) -> tuple[Callable | None, str | None]:
    """How to read the observer's move of a step from ``(action, info)``, and what to record it as."""
    if moves is None:
        key = next((key for key in MOTION_KEYS if key in info_keys), None)
        return ((lambda action, info: info[key]) if key else None), key
    if isinstance(moves, str):
        if moves not in info_keys:
            raise ValueError(f"moves={moves!r} names an info key the env does not report; its info has "
                             f"{sorted(info_keys) or 'no keys'}")
        return (lambda action, info: info[moves]), moves
    if callable(moves):
        return moves, "function"
    raise TypeError(f"moves must be None, an info key or a function (action, info) -> (dx, dy); got {moves!r}")


def _policy_function(policy: Any, space: gym.Space, env: Any, count: int,
                     seed: int | None) -> Callable[[np.ndarray, dict, np.ndarray], np.ndarray]:
    """``(obs batch, info batch, episode starts) -> action batch`` for None / ``"random"`` (uniform random), the
    name of one of the env's scripted policies (``env.unwrapped.scripted_policy(name)``, e.g. the block world's
    ``"biased-walk"``), an SB3 model (recurrent ones get their state reset at episode starts) or a callable
    ``obs -> action``."""
    if policy is None or policy == "random":
        return lambda obs, info, starts: np.stack([space.sample() for _ in range(len(obs))])
    if isinstance(policy, str):
        scripted = getattr(env.unwrapped, "scripted_policy", None)
        if scripted is None:
            raise ValueError(f"policy {policy!r}: this env has no scripted policies; accepted: 'random', an SB3 model "
                             "or a callable obs -> action")
        acting = scripted(policy, num_envs=count, seed=seed)
        return lambda obs, info, starts: np.asarray(acting(info, starts))
    if hasattr(policy, "predict"):
        state = {"value": None}

        def act(obs: np.ndarray, info: dict, starts: np.ndarray) -> np.ndarray:
            actions, state["value"] = policy.predict(obs, state=state["value"], episode_start=starts,
                                                     deterministic=True)
            return actions

        return act
    if callable(policy):
        return lambda obs, info, starts: np.stack([np.asarray(policy(o)) for o in obs])
    raise TypeError(f"policy must be None or 'random' (uniform random), a scripted policy's name, a callable obs -> "
                    f"action or an SB3 model; got {policy!r}")


def _batched_info(info: dict[str, Any], vector: bool) -> dict[str, np.ndarray]:
    """An env's ``info`` as arrays over envs (a single env's gets a leading axis of 1)."""
    if vector:
        return {key: value for key, value in info.items() if not key.startswith("_")}
    return {key: np.asarray(value)[None] for key, value in info.items()}


def _restart(env: gym.vector.VectorEnv, mask: np.ndarray, obs: np.ndarray, info: dict[str, np.ndarray],
             current: list, begin: Callable[[np.ndarray, dict], Any]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Reset the envs ``mask`` of a vector env (Gymnasium's ``reset_mask``) and begin their new episodes in
    ``current``: the observations and infos with theirs laid over the others'."""
    fresh, fresh_info = env.reset(options={"reset_mask": mask})
    fresh_info = _batched_info(fresh_info, True)
    obs = np.where(mask.reshape(-1, *[1] * (obs.ndim - 1)), fresh, obs)
    for key, value in fresh_info.items():
        if key in info and np.shape(value) == np.shape(info[key]):
            info[key] = np.where(mask.reshape(-1, *[1] * (np.ndim(value) - 1)), value, info[key])
    for i in np.flatnonzero(mask):
        current[i] = begin(obs[i], {key: value[i] for key, value in fresh_info.items()})
    return obs, info


def collect_episodes(env: str | gym.Env | gym.vector.VectorEnv, episodes: int, *, max_steps: int | None = None,
                     policy: Any = None, seed: int | None = None, moves: str | Callable | None = None,
                     env_kwargs: dict[str, Any] | None = None, ground_truth: bool | None = None,
                     progress: Callable[[int, int], None] | None = None,
                     on_steps: Callable[[int], None] | None = None) -> TrajectoryDataset:
    """Run ``env`` for ``episodes`` episodes and return them as a :class:`TrajectoryDataset`.

    Args:
        env: a registered id, a ``module:Id``, a short name, a ``gym.Env`` or a ``gym.vector.VectorEnv`` (all its
            envs step together; episodes are collected as they end).
        episodes: how many episodes to keep.
        max_steps: cut an episode after this many steps (it is then marked truncated).
        policy: ``None`` or ``"random"`` (uniform random, seeded by ``seed``), the name of a scripted policy of the
            env (the block world's ``"biased-walk"``), a callable ``obs -> action`` or an SB3 model.
        seed: the seed of the first reset (episode ``i`` of env ``j`` continues the env's own seeding).
        moves: the observer's own moves: ``None`` (``info["action"]``, the 2-D envs' window move ``(dx, dy)``, or
            ``info["self_motion"]``, the block world's ``(turn, forward)``, when the env reports one), an ``info``
            key, or a function ``(action, info) -> (dx, dy)``. ``meta["moves"]`` records which.
        env_kwargs: ``gym.make`` kwargs when ``env`` is an id.
        A first-person world's declaration (:mod:`fernn.envs.first_person_world`) is recorded as
            ``meta["first_person"]``.
        ground_truth: record the hidden state the env reports (``env.unwrapped.ground_truth(info)``: the block
            world's agent pose and blocks) as ``truth_<key>`` arrays per step; ``None``: when the env has it. The
            3-D world model's evaluation uses it to tell blocks that left the view from blocks still in it.
        progress: called with ``(episodes done, episodes)``.
        on_steps: called with the steps taken so far, every 100 steps.

    An env that sets no time limit, collected without ``max_steps``, has its episodes cut at
    :data:`DEFAULT_MAX_STEPS` (``meta["cut_at"]`` says so); the episodes are held in memory until saved, so
    ``episodes x steps`` frames that would not fit the machine are refused before the first step.
    """
    episodes = check_count("episodes", episodes)
    if max_steps is not None:
        max_steps = check_count("max_steps", max_steps)
    env_id = env if isinstance(env, str) else getattr(getattr(env, "spec", None), "id", None)
    if isinstance(env, str):
        env = make_env(env, env_kwargs)
    vector = isinstance(env, gym.vector.VectorEnv)
    space = env.single_observation_space if vector else env.observation_space
    action_space = env.single_action_space if vector else env.action_space
    shape = check_image_space(space, f"collect_episodes({env_id or type(env).__name__})")
    action_space.seed(seed)
    count = env.num_envs if vector else 1
    cut_at = None
    frame_bytes = int(np.prod(shape)) * np.dtype(space.dtype).itemsize
    fitting = MAX_MEMBER_BYTES // frame_bytes - 1  # the longest episode a trajectory file holds (one array per field)
    if max_steps is None and _time_limit(env) is None:
        max_steps = cut_at = min(DEFAULT_MAX_STEPS, fitting)
    longest = max_steps or _time_limit(env)
    if longest > fitting:
        raise ValueError(f"episodes of up to {longest:,} steps of {shape} observations would be stored as arrays of "
                         f"{(longest + 1) * frame_bytes / 2 ** 30:,.1f} GiB, and a trajectory file holds at most "
                         f"{MAX_MEMBER_BYTES / 2 ** 30:.0f} GiB per array (what train --data reads): cut episodes at "
                         f"{fitting:,} steps or fewer (--max-steps) or record smaller observations")
    from fernn.budget import check_fits

    check_fits(float(episodes) * longest * int(np.prod(shape)) * 1.2,
               f"{episodes:,} episodes of up to {longest:,} steps of {shape} frames, held in memory "
               "until saved", "collect fewer or shorter episodes (--episodes, --max-steps), several files if need be")
    act = _policy_function(policy, action_space, env, count, seed)
    obs, info = env.reset(seed=seed)
    obs = obs if vector else obs[None]
    info = _batched_info(info, vector)
    read_moves, moves_kind = _moves_reader(moves, list(info))
    truth_of = getattr(env.unwrapped, "ground_truth", None) if ground_truth is not False else None
    if ground_truth and truth_of is None:
        raise ValueError(f"ground_truth=True: {env_id or type(env).__name__} reports no ground truth "
                         "(env.unwrapped.ground_truth(info))")
    blank_action = np.zeros(action_space.shape, action_space.dtype)

    def begin(first_obs: np.ndarray, first_info: dict) -> _Episode:
        return _Episode(first_obs, blank_action, read_moves is not None,
                        None if truth_of is None else truth_of(first_info))

    current = [begin(o, {key: value[i] for key, value in info.items()}) for i, o in enumerate(obs)]
    done: list[_Episode] = []
    steps = 0
    while len(done) < episodes:
        steps += 1
        if on_steps is not None and steps % 100 == 0:
            on_steps(steps * count)
        actions = act(obs, info, np.array([c is not None and len(c) == 0 for c in current]))
        step_obs, rewards, terminated, truncated, step_info = env.step(actions if vector else actions[0])
        info = _batched_info(step_info, vector)
        if not vector:
            step_obs, rewards, terminated, truncated = step_obs[None], [rewards], [terminated], [truncated]
        infos = [{key: value[i] for key, value in info.items()} for i in range(count)]
        restart = np.zeros(count, bool)  # a vector env's episodes cut here, which the env itself has not ended
        for i in range(count):
            if current[i] is None:  # a vector env's autoreset step: the new episode's first observation
                current[i] = begin(step_obs[i], infos[i])
                continue
            move = None if read_moves is None else read_moves(actions[i], infos[i])
            cut = max_steps is not None and len(current[i]) + 1 >= max_steps
            current[i].add(step_obs[i], actions[i], rewards[i], terminated[i], truncated[i] or cut, move,
                           None if truth_of is None else truth_of(infos[i]))
            if terminated[i] or truncated[i] or cut:
                if len(done) < episodes:
                    done.append(current[i])
                    if progress is not None:
                        progress(len(done), episodes)
                current[i] = None
                restart[i] = vector and not (terminated[i] or truncated[i])
                if not vector:
                    step_obs[0], reset_info = env.reset()
                    info = _batched_info(reset_info, False)
                    current[0] = begin(step_obs[0], reset_info)
        if restart.any():  # a cut episode's env starts a new one now, not where the cut one stood
            step_obs, info = _restart(env, restart, step_obs, info, current, begin)
        obs = step_obs
    from fernn.envs.first_person_world import first_person_geometry

    geometry = first_person_geometry(env)
    meta = {"env_id": env_id, "env_kwargs": env_kwargs or {}, "seed": seed, "max_steps": max_steps,
            "policy": policy if isinstance(policy, str) else "random" if policy is None else type(policy).__name__,
            "moves": moves_kind, "ground_truth": truth_of is not None, "cut_at": cut_at,
            "observation_shape": list(shape), "action_space": str(action_space)}
    if geometry is not None:
        meta["first_person"] = geometry.to_dict()
    return TrajectoryDataset([e.arrays() for e in done], meta)


#: the episode length at which :func:`collect_episodes` cuts an env that sets no time limit
DEFAULT_MAX_STEPS = 10_000


def _time_limit(env: Any) -> int | None:
    """The ``max_episode_steps`` of an env's spec (a vector env's: its single env's, or its own attribute)."""
    spec = getattr(env, "spec", None)
    limit = getattr(spec, "max_episode_steps", None) or getattr(env.unwrapped, "max_episode_steps", None)
    return int(limit) if limit else None


class _Episode:
    """One episode being collected: lists of per-step arrays."""

    def __init__(self, first_obs: np.ndarray, blank_action: np.ndarray, with_moves: bool,
                 truth: dict[str, np.ndarray] | None = None) -> None:
        self.steps = {"obs": [np.array(first_obs)], "actions": [blank_action], "rewards": [0.0],
                      "terminated": [False], "truncated": [False]}
        if with_moves:
            self.steps["moves"] = [np.zeros(2, np.int64)]
        for key, value in (truth or {}).items():
            self.steps[f"truth_{key}"] = [np.array(value)]

    def __len__(self) -> int:
        return len(self.steps["obs"]) - 1

    def add(self, obs, action, reward, terminated, truncated, move, truth=None) -> None:
        for key, value in (("obs", np.array(obs)), ("actions", np.asarray(action)), ("rewards", float(reward)),
                           ("terminated", bool(terminated)), ("truncated", bool(truncated))):
            self.steps[key].append(value)
        if "moves" in self.steps:
            move = np.asarray(move, np.int64).reshape(-1)
            if move.shape != (2,):
                raise ValueError(f"the observer's move must be (dx, dy), got {move!r}")
            self.steps["moves"].append(move)
        for key, value in (truth or {}).items():
            self.steps[f"truth_{key}"].append(np.array(value))

    def arrays(self) -> dict[str, np.ndarray]:
        dtypes = {"obs": np.uint8, "rewards": np.float32, "terminated": bool, "truncated": bool, "moves": np.int64}
        return {key: np.stack(values).astype(dtypes.get(key, np.stack(values).dtype)) for key, values in self.steps.items()}


class TrajectoryDataset(torch.utils.data.Dataset):
    """Episodes of an env, served as fixed-length windows for training.

    ``len(dataset)`` and ``dataset[i]`` are the windows of ``window`` steps (set with :meth:`windows`; default: the
    shortest episode); items and :meth:`sample_batch` give ``frames`` float ``(T, C, H, W)`` / ``(B, T, C, H, W)``
    in [0, 1], the env's ``actions``, ``rewards``, ``terminated``, ``truncated`` and, when recorded, the observer's
    ``moves`` ``(B, T, 2)`` (window moves ``(dx, dy)``, with ``positions``, their running sum; or a first-person
    agent's ``(turn, forward)``), and any recorded ground truth (``truth_<key>``).

    Attributes:
        meta: the env id, its kwargs, the seed, the policy and the shapes, as recorded at collection.
        lengths: ``(N,)`` steps per episode (observations - 1).
    """

    def __init__(self, episodes: list[dict[str, np.ndarray]] | _LazyEpisodes, meta: dict[str, Any], *,
                 window: int | None = None, seed: int = 0, device: torch.device | str = "cpu") -> None:
        self._episodes, self.meta = episodes, meta
        self.lengths = np.array([len(e["obs"]) - 1 for e in episodes] if isinstance(episodes, list)
                                else episodes.lengths, np.int64)
        if len(self.lengths) == 0:
            raise ValueError("a trajectory dataset needs at least one episode")
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device if self.device.type == "cuda" else "cpu").manual_seed(seed)
        self.action_motions: np.ndarray | None = None
        self.windows(window or int(self.lengths.min()) + 1)

    @property
    def has_moves(self) -> bool:
        return "moves" in self.episode(0)

    @property
    def observation_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of the observations."""
        return tuple(int(s) for s in self.episode(0)["obs"].shape[1:])

    def episode(self, index: int) -> dict[str, np.ndarray]:
        """The arrays of episode ``index`` (loaded on demand from a file)."""
        return self._episodes[index]

    def field(self, key: str, index: int) -> np.ndarray:
        """One array of episode ``index`` (from a file, only that array is decompressed)."""
        episodes = self._episodes
        while isinstance(episodes, _Subset):
            episodes, index = episodes.episodes, episodes.indices[index]
        if isinstance(episodes, _LazyEpisodes):
            return episodes.field(key, index)
        return episodes[index][key]

    def windows(self, window: int) -> TrajectoryDataset:
        """Serve windows of ``window`` observations (every start in every episode long enough); returns ``self``."""
        window = check_count("window", window)
        starts = [(e, s) for e, length in enumerate(self.lengths) for s in range(int(length) + 2 - window)]
        if not starts:
            raise ValueError(f"no episode has {window} observations (the longest has {int(self.lengths.max()) + 1}); "
                             f"collect longer episodes (--max-steps) or ask for shorter windows")
        self.window, self.starts = window, np.array(starts, np.int64)
        return self

    def split(self, fraction: float, *, min_steps: int = 0, seed: int = 0) -> tuple[TrajectoryDataset, TrajectoryDataset]:
        """``(train, held out)`` by episodes: the last ``fraction`` (at least one) of the episodes with at least
        ``min_steps`` observations are held out; with a single such episode both parts hold it."""
        eligible = [i for i, length in enumerate(self.lengths) if length + 1 >= min_steps]
        if not eligible:
            raise ValueError(f"no episode has {min_steps} observations (the longest has {int(self.lengths.max()) + 1}); "
                             "collect longer episodes (--max-steps) or ask for shorter windows")
        held = eligible[-max(1, int(round(len(eligible) * fraction))):] if len(eligible) > 1 else []
        kept = [i for i in range(len(self.lengths)) if i not in held]
        parts = [TrajectoryDataset(_Subset(self._episodes, indices or eligible), self.meta, window=self.window,
                                   seed=seed, device=self.device) for indices in (kept, held)]
        return parts[0], parts[1]

    def train_val_test(self, fraction: float = 0.1, *, min_steps: int = 0, seed: int = 0
                       ) -> tuple[TrajectoryDataset, TrajectoryDataset, TrajectoryDataset]:
        """``(train, validation, test)`` by episodes, no episode in two parts: of the episodes with at least
        ``min_steps`` observations, the last ``fraction`` (at least one) are the test set and the ``fraction`` before
        them (at least one) the validation set; the rest, and the shorter episodes, train.

        Raises:
            ValueError: fewer than 3 such episodes (each part needs one).
        """
        eligible = [i for i, length in enumerate(self.lengths) if length + 1 >= min_steps]
        if len(eligible) < 3:
            raise ValueError(f"{len(eligible)} episode(s) have at least {min_steps} observations; training, "
                             "validation and test need one each, so at least 3")
        held = max(1, int(round(len(eligible) * fraction)))
        held = min(held, (len(eligible) - 1) // 2)
        test, validation = eligible[-held:], eligible[-2 * held:-held]
        train = [i for i in range(len(self.lengths)) if i not in test and i not in validation]
        return tuple(TrajectoryDataset(_Subset(self._episodes, indices), self.meta, window=self.window, seed=seed,
                                       device=self.device) for indices in (train, validation, test))

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} windows")
        return {key: value[0] for key, value in self._gather(self.starts[[index]]).items()}

    def sample_batch(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """``batch_size`` windows drawn uniformly (from the dataset's own generator by default), on ``device``."""
        batch_size = check_count("batch_size", batch_size)
        picks = torch.randint(len(self.starts), (batch_size,), generator=generator or self.generator,
                              device=self.generator.device).cpu().numpy()
        return self._gather(self.starts[picks])

    def _gather(self, starts: np.ndarray) -> dict[str, torch.Tensor]:
        by_episode: dict[int, dict[str, np.ndarray]] = {}
        fields: dict[str, list[np.ndarray]] = {}
        for episode, start in starts:
            if int(episode) not in by_episode:
                by_episode[int(episode)] = self._with_acted_moves(self.episode(int(episode)), int(episode))
            arrays = by_episode[int(episode)]
            for key, value in arrays.items():
                fields.setdefault(key, []).append(value[start:start + self.window])
        batch = {key: torch.from_numpy(np.stack(values)).to(self.device) for key, values in fields.items()}
        frames = batch.pop("obs").permute(0, 1, 4, 2, 3).float().div_(255)
        out = {"frames": frames, **batch}
        if "moves" in out and self.meta.get("moves", "action") not in ("self_motion", None):
            out["positions"] = out["moves"].cumsum(1)  # the window's place, from its moves
        return out

    def moves_from_actions(self, motions: Any) -> TrajectoryDataset:
        """Serve ``moves`` derived from the recorded actions for a file that records the actions but not the motion:
        row ``a`` of ``motions`` (``(A, 2)``) for action ``a``, and ``(0, 0)`` at each episode's first step (no
        action led to it). Returns ``self``."""
        self.action_motions = np.asarray(motions, np.int64)
        return self

    def _with_acted_moves(self, arrays: dict[str, np.ndarray], episode: int) -> dict[str, np.ndarray]:
        if self.action_motions is None or "moves" in arrays:
            return arrays
        actions = np.asarray(arrays["actions"]).reshape(len(arrays["actions"]), -1)[:, 0].astype(np.int64)
        if len(actions) > 1 and not ((actions[1:] >= 0) & (actions[1:] < len(self.action_motions))).all():
            raise ValueError(f"episode {episode} records actions outside the {len(self.action_motions)} the world "
                             "declares; the file is damaged or forged: collect it again")
        moves = self.action_motions[np.clip(actions, 0, len(self.action_motions) - 1)]
        moves[0] = 0
        return {**arrays, "moves": moves}

    def save(self, path: str | Path) -> Path:
        """Write one compressed ``.npz`` (atomically): per-episode arrays, the lengths, and ``meta`` as JSON."""
        path = Path(path)
        arrays = {"format": np.array(FORMAT), "version": np.array(VERSION), "lengths": self.lengths,
                  "meta": np.array(json.dumps(self.meta, default=str))}
        for index in range(len(self.lengths)):
            for key, value in self.episode(index).items():
                arrays[f"{key}_{index:06d}"] = value
        atomic_write(path, lambda tmp: np.savez_compressed(tmp, **arrays))
        return path

    @classmethod
    def load(cls, path: str | Path, *, window: int | None = None, seed: int = 0,
             device: torch.device | str = "cpu") -> TrajectoryDataset:
        """Open a file written by :meth:`save`, as data only (``allow_pickle=False``); episodes are decompressed
        when used. Raises :class:`TrajectoryFileError` naming the file for anything else."""
        lazy = _LazyEpisodes(Path(path))
        return cls(lazy, lazy.meta, window=window, seed=seed, device=device)


class _LazyEpisodes:
    """The episodes of a trajectory file, checked whole when opened (:func:`fernn.envs.trajectory_files.inspect_file`:
    headers only) and decompressed one at a time (the most recent kept, up to :data:`CACHE_BYTES`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        inventory = inspect_file(path)
        self.lengths, self.meta, self.keys = inventory.lengths, inventory.meta, inventory.keys
        try:
            self.npz = np.load(path, allow_pickle=False)
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
            raise TrajectoryFileError(f"{path} is not a readable trajectory file ({type(error).__name__}: "
                                      f"{str(error).splitlines()[0] if str(error) else 'damaged'}); collect it "
                                      "again") from error
        self._cache: dict[int, dict[str, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.lengths)

    def field(self, key: str, index: int) -> np.ndarray:
        try:
            return self.npz[f"{key}_{index:06d}"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as error:
            raise TrajectoryFileError(f"{self.path}: field {key!r} of episode {index} cannot be read ({error})") from error

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        if index not in self._cache:
            try:
                episode = {key: self.npz[f"{key}_{index:06d}"] for key in self.keys}
            except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as error:
                raise TrajectoryFileError(f"{self.path}: episode {index} cannot be read ({error}); the file is "
                                          "truncated or corrupt: collect it again") from error
            size = sum(array.nbytes for array in episode.values())
            while self._cache and sum(a.nbytes for e in self._cache.values() for a in e.values()) + size > CACHE_BYTES:
                self._cache.pop(next(iter(self._cache)))
            self._cache[index] = episode
        return self._cache[index]


class _Subset:
    """Some episodes of a list or of a file, re-indexed."""

    def __init__(self, episodes: list | _LazyEpisodes | _Subset, indices: list[int]) -> None:
        self.episodes, self.indices = episodes, indices
        lengths = episodes.lengths if hasattr(episodes, "lengths") else [len(e["obs"]) - 1 for e in episodes]
        self.lengths = np.asarray(lengths, np.int64)[indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return self.episodes[self.indices[index]]
