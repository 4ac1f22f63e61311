"""Evaluations of RL policies over seeded episodes, the random and oracle reference returns, and the callback
that evaluates and checkpoints during training."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback

from fernn.agents.rl.config import EVAL_SEED, RLConfig
from fernn.agents.rl.envs import make_vec_env
from fernn.agents.rl.figures import training_seconds
from fernn.agents.runs import RunDir, write_csv, write_json
from fernn.io import atomic_write


#: episodes an RL evaluation steps side by side (its returns are those of one at a time: see evaluate_policy)
EVAL_PARALLEL = 10


def evaluate_policy(act: Callable[[np.ndarray, Any, np.ndarray], tuple[np.ndarray, Any]], config: RLConfig,
                    episodes: int, seed: int = EVAL_SEED, parallel: int = 1) -> list[float]:
    """Returns of ``episodes`` episodes with seeds ``seed + i`` (frame-stacked when needed), ``parallel`` of them
    stepped side by side in one vector env (one batched ``act`` per step): episode ``i`` is the same whatever
    ``parallel`` is (env ``j`` of a wave starting at episode ``k`` is reset with seed ``seed + k + j``; an env whose
    episode ended keeps stepping, unrecorded, until the wave's last one ends).

    ``act(obs, state, episode_start) -> (action, state)`` is ``model.predict`` or a scripted policy, on a batch of
    ``parallel`` envs (the training callback and ``eval`` use :data:`EVAL_PARALLEL`)."""
    width = max(1, min(int(parallel), episodes))
    envs = make_vec_env(dataclasses.replace(config, n_envs=width, vec_env="dummy", reward_scale=1.0), seed=seed)
    returns = []
    for first in range(0, episodes, width):
        count = min(width, episodes - first)
        envs.seed(seed + first)  # env j: seed + first + j at the reset below
        obs, state, start = envs.reset(), None, np.ones(width, bool)
        totals, running = np.zeros(width), np.arange(width) < count
        while running.any():
            action, state = act(obs, state, start)
            obs, reward, done, _ = envs.step(action)
            totals += np.where(running, reward, 0.0)
            running &= ~done
            start = done
        returns.extend(float(total) for total in totals[:count])
    envs.close()
    return returns


def policy_bounds(config: RLConfig, episodes: int = 100, *, fixed_moves: bool = False) -> dict[str, dict[str, float]]:
    """Mean and std of the return of a uniformly random policy and of the env's scripted oracle
    (``oracle_action``; MNISTWorldTrack-v0) over ``episodes`` seeded episodes; with ``fixed_moves`` (a Discrete
    action space) also the best fixed move (:func:`best_fixed_move`)."""
    single = gym.make(config.env, **config.env_kwargs)
    space = single.action_space
    space.seed(config.seed)

    def random_act(obs, state, start):
        return np.array([space.sample() for _ in range(len(obs))]), state

    # one episode at a time: the space's samples then go to the episodes in their order (the recorded figures')
    bounds = {"random": evaluate_policy(random_act, config, episodes, parallel=1)}
    if hasattr(single.unwrapped, "oracle_action"):
        bounds["oracle"] = _oracle_returns(config.env, episodes, env_kwargs=config.env_kwargs)
    single.close()
    figures = {name: {"mean": float(np.mean(v)), "std": float(np.std(v)), "episodes": episodes}
               for name, v in bounds.items()}
    if fixed_moves:
        figures["best fixed move"] = best_fixed_move(config, episodes)
    return figures


def env_bounds(env: str, *, env_kwargs: dict[str, Any] | None = None, episodes: int = 100,
               fixed_moves: bool = False) -> dict[str, dict[str, float]]:
    """:func:`policy_bounds` of an env by id (what ``fernn-rl bounds`` prints): its observations as a run of the
    default settings sees them."""
    from fernn.envs import resolve_env_id

    return policy_bounds(RLConfig(env=resolve_env_id(env), env_kwargs=dict(env_kwargs or {})), episodes,
                         fixed_moves=fixed_moves)


def best_fixed_move(config: RLConfig, episodes: int = 100) -> dict[str, float]:
    """The return of the best *fixed* move: the one action that, repeated every step, scores best over the
    ``episodes`` seeded episodes (``{"mean", "std", "episodes", "action"}``). It sees nothing, so a policy at or
    below it has learned no more than to keep moving one way; above it, the policy uses what it observes.

    Raises:
        ValueError: the env's action space is not Discrete.
    """
    space = gym.make(config.env, **config.env_kwargs).action_space
    if not isinstance(space, gym.spaces.Discrete):
        raise ValueError(f"the best fixed move is one of a Discrete action space's actions; {config.env} has {space}")
    returns = [evaluate_policy(lambda obs, state, start, a=action: (np.full(len(obs), a), state), config, episodes,
                               parallel=EVAL_PARALLEL)
               for action in range(space.start, space.start + space.n)]
    best = int(np.argmax([np.mean(r) for r in returns]))
    return {"mean": float(np.mean(returns[best])), "std": float(np.std(returns[best])), "episodes": episodes,
            "action": best + int(space.start)}


def cached_bounds(config: RLConfig, episodes: int, cache: Path) -> dict[str, dict[str, float]]:
    """:func:`policy_bounds` of ``config``'s env settings, computed once and kept in the folder ``cache`` (one JSON per
    env, kwargs, observation settings, episodes and seed): every run of the same env shares them."""
    import hashlib
    import json

    from fernn.agents.runs import RunFileError, read_json

    key = {name: getattr(config, name) for name in ("env", "env_kwargs", "pixels", "frame_size", "grayscale",
                                                    "add_channel", "obs_key", "seed")}
    key["episodes"] = episodes
    digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = Path(cache) / f"{digest}.json"
    if path.is_file():
        try:
            stored = read_json(path)
            if isinstance(stored, dict) and stored.get("key") == json.loads(json.dumps(key, default=str)):
                return stored["bounds"]
        except RunFileError:
            pass  # a damaged cache entry is computed again
    bounds = policy_bounds(config, episodes)
    write_json(path, {"key": key, "bounds": bounds})
    return bounds


def _oracle_returns(env_id: str, episodes: int, seed: int = EVAL_SEED,
                    env_kwargs: dict[str, Any] | None = None) -> list[float]:
    env = gym.make(env_id, **(env_kwargs or {}))
    returns = []
    for episode in range(episodes):
        env.reset(seed=seed + episode)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.unwrapped.oracle_action())
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
    return returns


class EvalCheckpointCallback(BaseCallback):
    """Every ``config.eval_every`` steps, at the first rollout boundary after them (so after the PPO update of
    the rollout that crossed them): evaluate on seeded episodes, append to ``eval.csv`` / ``eval.json``, and save
    the resume point, ``checkpoints/last.zip`` (model and optimizer) and ``checkpoints/rng.pt`` (the torch,
    numpy and Python RNG states), each atomically. Logs ``eval/mean_return`` to TensorBoard."""

    def __init__(self, config: RLConfig, run: RunDir, rows: list[dict[str, float]],
                 reporter: Callable[[dict], None] | None = None) -> None:
        super().__init__()
        self.config, self.run, self.rows, self.reporter = config, run, rows, reporter
        self.next_eval = (rows[-1]["timesteps"] if rows else 0) + config.eval_every
        # eval.csv's seconds go on from the last row's on resume: they count training time across resumes
        self.started = time.perf_counter() - (training_seconds(rows) if rows else 0.0)

    def _on_rollout_start(self) -> None:
        if self.num_timesteps >= self.next_eval:
            self.evaluate()
            while self.next_eval <= self.num_timesteps:
                self.next_eval += self.config.eval_every

    def _on_step(self) -> bool:
        return True

    def evaluate(self) -> None:
        """Evaluate now, and save the resume point first (a kill between the two loses only the row)."""
        save_resume_point(self.model, self.run)
        returns = evaluate_policy(lambda o, s, e: self.model.predict(o, state=s, episode_start=e, deterministic=True),
                                  self.config, self.config.eval_episodes, parallel=EVAL_PARALLEL)
        row = {"timesteps": self.num_timesteps, "mean_return": float(np.mean(returns)),
               "std_return": float(np.std(returns)), "seconds": time.perf_counter() - self.started}
        self.rows.append(row)
        self.logger.record("eval/mean_return", row["mean_return"])
        write_csv(self.run.path / "eval.csv", self.rows, list(row))
        write_json(self.run.path / "eval.json", self.rows)
        if self.reporter is not None:
            self.reporter(row)


def save_resume_point(model, run: RunDir) -> None:
    """``checkpoints/last.zip`` and ``checkpoints/rng.pt`` (plain data: loads with ``weights_only=True``)."""
    import random

    import torch

    run.checkpoints.mkdir(parents=True, exist_ok=True)
    atomic_write(run.checkpoints / "last.zip", lambda tmp: model.save(tmp))
    kind, keys, position, has_gauss, cached = np.random.get_state()
    states = {"timesteps": int(model.num_timesteps), "torch": torch.get_rng_state(),
              "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                        "has_gauss": int(has_gauss), "cached": float(cached)},
              "python": [list(part) if isinstance(part, tuple) else part for part in random.getstate()]}
    atomic_write(run.checkpoints / "rng.pt", lambda tmp: torch.save(states, tmp))


def restore_rngs(run: RunDir, timesteps: int) -> bool:
    """Restore the RNG states saved with the resume point at ``timesteps``; ``False`` when there are none."""
    import random

    import torch

    from fernn.agents.runs import load_checkpoint

    path = run.checkpoints / "rng.pt"
    if not path.is_file():
        return False
    states = load_checkpoint(path)
    if states.get("timesteps") != timesteps:
        return False
    torch.set_rng_state(states["torch"])
    numpy = states["numpy"]
    np.random.set_state((numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["position"],
                         numpy["has_gauss"], numpy["cached"]))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    return True


def evaluate_run(run_dir: Path, *, episodes: int = 20, seed: int = EVAL_SEED, checkpoint: str = "final",
                 device: str = "auto", env_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Re-evaluate a saved RL run's policy (deterministic actions) over ``episodes`` seeded episodes.

    Args:
        run_dir: the run directory.
        checkpoint: ``"final"`` (``model.zip``) or ``"last"`` (``checkpoints/last.zip``).
        env_kwargs: ``gym.make`` keyword arguments laid over the run's own (evaluate on other target velocities
            or occlusion gaps than in training, e.g. ``{"gap_length": 8}``).

    Returns:
        ``{"episodes", "seed", "checkpoint", "env_kwargs", "mean_return", "std_return", "returns"}``
        (``env_kwargs``: the overrides).
    """
    from fernn.agents.rl.models import load_policy

    model, envs, config = load_policy(run_dir, checkpoint=checkpoint, device=device, env_kwargs=env_kwargs)
    envs.close()
    returns = evaluate_policy(lambda o, s, e: model.predict(o, state=s, episode_start=e, deterministic=True),
                              config, episodes, seed, parallel=EVAL_PARALLEL)
    result = {"episodes": episodes, "seed": seed, "checkpoint": checkpoint, "env_kwargs": dict(env_kwargs or {}),
              "mean_return": float(np.mean(returns)), "std_return": float(np.std(returns)), "returns": returns}
    equivariance = policy_equivariance(model, config, seed)
    if equivariance is not None:
        result["equivariance"] = equivariance
    return result


def policy_equivariance(model, config: RLConfig, seed: int = EVAL_SEED, steps: int = 16) -> dict[str, Any] | None:
    """The FERNN policy memory's equivariance error (:func:`fernn.equivariance_error`) on the first ``steps``
    observations of the seeded episode ``seed`` (the policy acting deterministically), and for a relaxed memory its
    combination weights; ``None`` for other policies and for a memory with one velocity channel."""
    from fernn.equivariance import equivariance_summary

    if config.policy != "fernn" or model.policy.lstm_actor.rnn.num_velocities < 2:
        return None
    memory = model.policy.lstm_actor
    envs = make_vec_env(dataclasses.replace(config, n_envs=1, vec_env="dummy", reward_scale=1.0), seed=seed)
    envs.seed(seed)
    obs, state, start = envs.reset(), None, np.ones(1, bool)
    observed = [obs]
    while len(observed) < steps:
        action, state = model.predict(obs, state=state, episode_start=start, deterministic=True)
        obs, _, start, _ = envs.step(action)
        if start[0]:
            break
        observed.append(obs)
    envs.close()
    with torch.no_grad():
        tensor, _ = model.policy.obs_to_tensor(np.concatenate(observed))
        frames = model.policy.extract_features(tensor).reshape(1, len(observed), *memory.observation_shape)
    if memory.self_motion:  # the two action channels are the agent's moves, not the image
        frames = frames[:, :, :-2]
    return {**equivariance_summary(memory.rnn, frames.float()), "steps": len(observed), "seed": seed}
