"""Reinforcement learning runs: ``fernn-rl train --env mnist-world-track --algo recurrent-ppo --policy fernn``.

Policies:

=====================  ===========================  ==================================================
``--policy``           algorithm                    encoder
=====================  ===========================  ==================================================
``fernn``              :class:`FERNNRecurrentPPO`   the FERNN core (recurrent; lean rollout buffer)
``cnn-lstm``           ``RecurrentPPO``             :class:`SmallCNN` + LSTM (sb3-contrib's policy)
``frame-stack-cnn``    ``PPO``                      :class:`SmallCNN` over a ``VecFrameStack`` of 4
``frame-stack-fernn``  ``PPO``                      :class:`FERNNFrameStackExtractor` over the stack
=====================  ===========================  ==================================================

A run directory holds ``config.json``, ``model.zip`` (final), ``checkpoints/last.zip`` (resume),
TensorBoard logs, ``eval.csv`` / ``eval.json`` (mean and std of the return over seeded episodes at every
evaluation), ``learning_curve.png`` (with the random and oracle returns as reference lines) and
``results.json``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnvWrapper

from fernn.envs.allocator import keep_allocations_warm
from fernn.agents.runs import RunDir, RunExistsError, write_csv, write_json

RL_POLICIES = ("fernn", "cnn-lstm", "frame-stack-cnn", "frame-stack-fernn")
RL_ALGOS = ("recurrent-ppo", "ppo")
EVAL_SEED = 50_000


@dataclass
class RLConfig:
    """An RL run (defaults: the README's MNISTWorldTrack learning curves)."""

    env: str = "MNISTWorldTrack-v0"
    """A registered Gymnasium id with a Discrete or Box action space."""
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
    lstm_hidden: int = 256
    """LSTM size of the CNN-LSTM baseline."""
    reward_scale: float = 0.01
    """Training rewards are multiplied by this (evaluations report unscaled returns). Returns of 100-step
    episodes with rewards in [0, 1] reach ~60; unscaled, the value loss's gradient dominates PPO's clipped
    global gradient norm (0.5) and the policy barely moves (entropy still uniform after 24k steps)."""
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

    def __post_init__(self) -> None:
        if not self.name:
            self.name = f"{self.env.split('-v')[0].lower()}-{self.policy}-s{self.seed}"
        if self.policy not in RL_POLICIES:
            raise ValueError(f"policy must be one of {', '.join(RL_POLICIES)}; got {self.policy!r}")
        if self.algo not in RL_ALGOS:
            raise ValueError(f"algo must be one of {', '.join(RL_ALGOS)}; got {self.algo!r}")
        recurrent = self.policy in ("fernn", "cnn-lstm")
        if recurrent != (self.algo == "recurrent-ppo"):
            raise ValueError(f"policy {self.policy!r} runs with --algo {'recurrent-ppo' if recurrent else 'ppo'}, "
                             f"not {self.algo!r}")
        if self.self_motion and self.policy != "fernn":
            raise ValueError("self_motion applies to --policy fernn only")
        if isinstance(self.reward_scale, bool) or not isinstance(self.reward_scale, (int, float)) \
                or not 0 < self.reward_scale < float("inf"):
            raise ValueError(f"reward_scale must be a positive number; got {self.reward_scale!r}")
        if self.vec_env not in ("dummy", "subproc"):
            raise ValueError(f"vec_env must be dummy or subproc; got {self.vec_env!r}")
        for name in ("timesteps", "n_envs", "n_steps", "batch_size", "n_epochs", "frames", "fernn_hidden",
                     "lstm_hidden", "eval_every", "eval_episodes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
        if gym.spec(self.env) is None:  # raises gym's NameNotFound for unknown ids
            raise ValueError(f"unknown env {self.env!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def make_vec_env(config: RLConfig, seed: int | None = None, env_kwargs: dict[str, Any] | None = None):
    """The training envs: SB3 VecEnv of ``n_envs`` (frame-stacked for the frame-stack policies), rewards
    multiplied by ``config.reward_scale``."""
    from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecFrameStack

    env_id = config.env if ":" in config.env or not config.env.endswith("-v0") else f"fernn.envs:{config.env}"
    env_id = env_id if env_id.split(":")[-1] in _fernn_ids() else config.env
    from fernn.envs.wrappers import ActionChannels

    envs = sb3_make_vec_env(env_id, n_envs=config.n_envs, seed=config.seed if seed is None else seed,
                            vec_env_cls=SubprocVecEnv if config.vec_env == "subproc" else DummyVecEnv,
                            env_kwargs=env_kwargs, wrapper_class=ActionChannels if config.self_motion else None)
    if config.policy.startswith("frame-stack"):
        envs = VecFrameStack(envs, config.frames)
    return ScaledReward(envs, config.reward_scale) if config.reward_scale != 1 else envs


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


def _fernn_ids() -> set[str]:
    from fernn.envs import ENV_IDS

    return set(ENV_IDS.values())


def make_model(config: RLConfig, envs, tensorboard: str | None = None):
    """The SB3 model of ``config`` on ``envs``."""
    from sb3_contrib import RecurrentPPO
    from stable_baselines3 import PPO

    from fernn.agents.sb3_fernn import FERNNFrameStackExtractor, FERNNRecurrentPPO, SmallCNN

    common = dict(n_steps=config.n_steps, batch_size=config.batch_size, n_epochs=config.n_epochs,
                  learning_rate=config.lr, ent_coef=config.ent_coef, seed=config.seed, device=config.device,
                  tensorboard_log=tensorboard, verbose=0)
    if config.policy == "fernn":
        return FERNNRecurrentPPO("FERNNPolicy", envs, policy_kwargs=dict(fernn_hidden=config.fernn_hidden,
                                                                          vmax=config.vmax,
                                                                          self_motion=config.self_motion), **common)
    if config.policy == "cnn-lstm":
        # sb3-contrib's defaults: a critic LSTM of its own (its shared_lstm=True would detach the critic from
        # the shared features: in this task its explained variance then stayed negative for 200k steps)
        kwargs = dict(features_extractor_class=SmallCNN, lstm_hidden_size=config.lstm_hidden,
                      enable_critic_lstm=True, shared_lstm=False, net_arch=dict(pi=[64], vf=[64]))
        return RecurrentPPO("CnnLstmPolicy", envs, policy_kwargs=kwargs, **common)
    extractor = SmallCNN if config.policy == "frame-stack-cnn" else FERNNFrameStackExtractor
    extractor_kwargs = {} if config.policy == "frame-stack-cnn" else dict(frames=config.frames,
                                                                          fernn_hidden=config.fernn_hidden,
                                                                          vmax=config.vmax)
    return PPO("CnnPolicy", envs, policy_kwargs=dict(features_extractor_class=extractor,
                                                     features_extractor_kwargs=extractor_kwargs,
                                                     net_arch=dict(pi=[64], vf=[64])), **common)


def load_model(config: RLConfig, path: Path, envs):
    from sb3_contrib import RecurrentPPO
    from stable_baselines3 import PPO

    from fernn.agents.sb3_fernn import FERNNRecurrentPPO

    cls = {"fernn": FERNNRecurrentPPO, "cnn-lstm": RecurrentPPO}.get(config.policy, PPO)
    return cls.load(path, env=envs, device=config.device)


def evaluate_policy(act: Callable[[np.ndarray, Any, np.ndarray], tuple[np.ndarray, Any]], config: RLConfig,
                    episodes: int, seed: int = EVAL_SEED) -> list[float]:
    """Returns of ``episodes`` episodes with seeds ``seed + i`` (one env, frame-stacked when needed).

    ``act(obs, state, episode_start) -> (action, state)`` is ``model.predict`` or a scripted policy."""
    envs = make_vec_env(dataclasses.replace(config, n_envs=1, vec_env="dummy", reward_scale=1.0), seed=seed)
    returns = []
    for episode in range(episodes):
        envs.seed(seed + episode)
        obs, state, start, total = envs.reset(), None, np.ones(1, bool), 0.0
        while True:
            action, state = act(obs, state, start)
            obs, reward, done, _ = envs.step(action)
            total, start = total + float(reward[0]), done
            if done[0]:
                break
        returns.append(total)
    envs.close()
    return returns


def policy_bounds(config: RLConfig, episodes: int = 100) -> dict[str, dict[str, float]]:
    """Mean and std of the return of a uniformly random policy and of the env's scripted oracle
    (``oracle_action``; MNISTWorldTrack-v0) over ``episodes`` seeded episodes."""
    space = gym.make(config.env).action_space
    space.seed(config.seed)

    def random_act(obs, state, start):
        return np.array([space.sample()]), state

    bounds = {"random": evaluate_policy(random_act, config, episodes)}
    single = gym.make(config.env)
    if hasattr(single.unwrapped, "oracle_action"):
        bounds["oracle"] = _oracle_returns(config.env, episodes)
    single.close()
    return {name: {"mean": float(np.mean(v)), "std": float(np.std(v)), "episodes": episodes}
            for name, v in bounds.items()}


def _oracle_returns(env_id: str, episodes: int, seed: int = EVAL_SEED) -> list[float]:
    env = gym.make(env_id)
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
    """Every ``config.eval_every`` steps: evaluate on seeded episodes, append to ``eval.csv`` / ``eval.json``
    and save ``checkpoints/last.zip`` (atomically); logs ``eval/mean_return`` to TensorBoard."""

    def __init__(self, config: RLConfig, run: RunDir, rows: list[dict[str, float]],
                 reporter: Callable[[dict], None] | None = None) -> None:
        super().__init__()
        self.config, self.run, self.rows, self.reporter = config, run, rows, reporter
        self.next_eval = (rows[-1]["timesteps"] if rows else 0) + config.eval_every
        self.started = time.perf_counter()

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.next_eval:
            self.evaluate()
            self.next_eval += self.config.eval_every
        return True

    def evaluate(self) -> None:
        returns = evaluate_policy(lambda o, s, e: self.model.predict(o, state=s, episode_start=e, deterministic=True),
                                  self.config, self.config.eval_episodes)
        row = {"timesteps": self.num_timesteps, "mean_return": float(np.mean(returns)),
               "std_return": float(np.std(returns)), "seconds": time.perf_counter() - self.started}
        self.rows.append(row)
        self.logger.record("eval/mean_return", row["mean_return"])
        write_csv(self.run.path / "eval.csv", self.rows, list(row))
        write_json(self.run.path / "eval.json", self.rows)
        self.run.checkpoints.mkdir(parents=True, exist_ok=True)
        from fernn.envs.storage import atomic_write

        atomic_write(self.run.checkpoints / "last.zip", lambda tmp: self.model.save(tmp))
        if self.reporter is not None:
            self.reporter(row)


def train_rl(config: RLConfig, *, resume: bool = False, overwrite: bool = False,
             reporter: Callable[[dict], None] | None = None, bounds_episodes: int = 20) -> dict[str, Any]:
    """Train ``config`` in ``<out>/<name>`` (see the module docstring); return ``results.json``'s content."""
    run = RunDir(Path(config.out) / config.name)
    eval_csv = run.path / "eval.csv"
    if (run.path / "config.json").is_file():
        if resume:
            stored = json.loads((run.path / "config.json").read_text())
            config = RLConfig(**{**stored, "timesteps": max(stored["timesteps"], config.timesteps)})
        elif not overwrite:
            raise RunExistsError(f"run directory {run.path} already holds a run; pass --resume to continue it or "
                                 "--overwrite to start over")
        else:
            import shutil

            shutil.rmtree(run.path)
    elif resume:
        raise FileNotFoundError(f"cannot resume: {run.path / 'config.json'} does not exist")
    run.path.mkdir(parents=True, exist_ok=True)
    write_json(run.path / "config.json", config.to_dict())
    keep_allocations_warm()
    envs = make_vec_env(config)
    tensorboard = str(run.path / "tensorboard")
    rows: list[dict[str, float]] = []
    if resume and (run.checkpoints / "last.zip").is_file():
        model = load_model(config, run.checkpoints / "last.zip", envs)
        model.tensorboard_log = tensorboard
        rows = [r for r in read_evaluations(eval_csv) if r["timesteps"] <= model.num_timesteps]
    else:
        model = make_model(config, envs, tensorboard)
    callback = EvalCheckpointCallback(config, run, rows, reporter)
    remaining = config.timesteps - model.num_timesteps
    if remaining > 0:
        model.learn(remaining, callback=callback, reset_num_timesteps=not resume, tb_log_name="rl")
    if not rows or rows[-1]["timesteps"] < model.num_timesteps:
        callback.evaluate()
    from fernn.envs.storage import atomic_write

    atomic_write(run.path / "model.zip", lambda tmp: model.save(tmp))
    envs.close()
    bounds = policy_bounds(config, bounds_episodes)
    results = {"config": config.to_dict(), "final": rows[-1], "evaluations": rows, "bounds": bounds,
               "parameters": sum(p.numel() for p in model.policy.parameters())}
    learning_curve(run.path / "learning_curve.png", {config.policy: rows}, bounds, title=config.name)
    write_json(run.path / "results.json", results)
    return results


def read_evaluations(path: Path) -> list[dict[str, float]]:
    """The rows of a run's ``eval.csv`` (``timesteps``, ``mean_return``, ``std_return``, ``seconds``) as
    floats; ``[]`` when the file does not exist yet."""
    import csv

    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def learning_curve(path: Path, curves: dict[str, list[list[dict[str, float]]] | list[dict[str, float]]],
                   bounds: dict[str, dict[str, float]], *, title: str) -> Path:
    """Mean return (± std across seeds, or across episodes for one seed) against environment steps,
    with the random and oracle returns as dashed lines."""
    import matplotlib.pyplot as plt

    from fernn.agents.plots import save_figure

    figure, axis = plt.subplots(figsize=(6.4, 4))
    for name, runs in curves.items():
        runs = runs if runs and isinstance(runs[0], list) else [runs]
        steps = np.array([r["timesteps"] for r in runs[0]])
        means = np.array([[r["mean_return"] for r in rows[:len(steps)]] for rows in runs])
        centre = means.mean(0)
        spread = means.std(0) if len(runs) > 1 else np.array([r["std_return"] for r in runs[0]])
        axis.plot(steps, centre, label=f"{name} ({len(runs)} seed{'s' if len(runs) > 1 else ''})")
        axis.fill_between(steps, centre - spread, centre + spread, alpha=0.2)
    for name, value in bounds.items():
        axis.axhline(value["mean"], linestyle="--", color="grey" if name == "random" else "black", linewidth=1)
        axis.text(axis.get_xlim()[0], value["mean"], f" {name}", va="bottom", fontsize=8)
    axis.set(xlabel="environment steps", ylabel="mean episode return", title=title)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return save_figure(figure, path)


def episode_gif(run_dir: Path, path: Path, *, seed: int = EVAL_SEED, max_steps: int = 100) -> Path:
    """A GIF of one deterministic episode of a trained RL run, rendered by the env (``rgb_array``: for
    MNIST World the whole world with the window drawn on it)."""
    from PIL import Image

    from fernn.envs.storage import atomic_write

    config = RLConfig(**json.loads((run_dir / "config.json").read_text()))
    envs = make_vec_env(dataclasses.replace(config, n_envs=1, vec_env="dummy"), seed=seed,
                        env_kwargs={"render_mode": "rgb_array"})
    model = load_model(config, run_dir / "model.zip", envs)
    envs.seed(seed)
    obs, state, start, frames = envs.reset(), None, np.ones(1, bool), []
    for _ in range(max_steps):
        frames.append(Image.fromarray(envs.env_method("render")[0]))
        action, state = model.predict(obs, state=state, episode_start=start, deterministic=True)
        obs, _, done, _ = envs.step(action)
        start = done
        if done[0]:
            break
    envs.close()
    atomic_write(path, lambda tmp: frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                                                  duration=125, loop=0))
    return path
