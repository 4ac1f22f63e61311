"""Planning with a trained world model over seeded episodes: ``fernn-rl plan``.

A world-model run (``fernn-rl train --data FILE.npz`` on episodes with recorded moves, or ``--env mnist-world``)
is loaded weights-only, checked against the env it will act in (window, channels, action table), and a
:class:`~fernn.agents.planning.CEMPlanner` acts in ``parallel`` envs at once (every candidate of every env
imagined in one batched call). The result: the return of every episode (seeds ``seed + i``, the seeds of the RL
evaluations), decisions per second, and the world model's imagined-vs-real error over the horizon: from the
carried map at every ``error_every``-th step, the windows imagined along the actions then taken against the
windows that arrived (visible ones only: a dark window of a gap says nothing about what the model imagined).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from fernn import WorldModel
from fernn._extras import require
from fernn._validation import check_int
from fernn.agents.planning import CEMPlanner
from fernn.agents.runs import EVAL_SEED
from fernn.io import atomic_write


def load_world_model(run_dir: str | Path, *, checkpoint: str = "best",
                     device: str | torch.device = "cpu") -> tuple[WorldModel, dict[str, Any]]:
    """The :class:`fernn.WorldModel` of a world-model run and its config, loaded weights-only.

    Raises:
        ValueError: the run is not a world-model run (a next-frame predictor, a classifier, an RL run).
        FileNotFoundError, RunFileError: no such run or checkpoint, or a damaged one.
    """
    from fernn.agents.runs import RunDir
    from fernn.agents.supervised.config import TrainConfig
    from fernn.agents.supervised.tasks import build_world_model, make_task

    run = RunDir(run_dir)
    if run.kind() != "supervised":
        raise ValueError(f"{run_dir} is an RL run; --world-model takes a world-model run (fernn-rl train --data "
                         "FILE.npz with recorded moves, or --env mnist-world)")
    config = TrainConfig.from_dict(run.read_config())
    if config.env not in ("mnist-world", "trajectories"):
        raise ValueError(f"{run_dir} trained a {config.env} model, not a world model; --world-model takes a run of "
                         "fernn-rl train --data FILE.npz (episodes with moves) or --env mnist-world")
    payload = run.load_checkpoint(f"{checkpoint}.pt", device)
    # checkpoints written before they recorded the sizes: the task says them (a trajectory file's header)
    spec = payload.get("model_spec") or make_task(config, torch.device("cpu")).model_spec()
    model = build_world_model(config, spec)
    weights = {k.removeprefix("world_model."): v for k, v in payload["model"].items()}
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        raise ValueError(f"{run_dir}/checkpoints/{checkpoint}.pt does not hold the weights of the world model its "
                         f"config describes: {str(error).splitlines()[0]}") from error
    return model.to(device).eval(), config.to_dict()


def env_action_moves(env: gym.Env, model: WorldModel) -> np.ndarray:
    """The env's ``(A, 2)`` table of window moves, checked against the world model; one clear error for an env
    whose observations the model cannot take or whose actions it cannot imagine."""
    space, name = env.observation_space, env.spec.id if env.spec else type(env.unwrapped).__name__
    wanted = (*model.window_hw, model.rnn.in_channels)
    if not isinstance(space, gym.spaces.Box) or space.dtype != np.uint8 or tuple(space.shape) != wanted:
        raise ValueError(f"the world model takes uint8 windows of shape (h, w, C) = {wanted}; {name} observes "
                         f"{getattr(space, 'dtype', '?')} {getattr(space, 'shape', space)}. Plan in the env the model "
                         "was trained on (same window_size and channels)")
    if not isinstance(env.action_space, gym.spaces.Discrete):
        raise ValueError(f"the planner searches a Discrete action space; {name} has {env.action_space}")
    table = getattr(env.unwrapped, "action_moves", None)
    if table is None:
        raise ValueError(f"{name} does not say how its actions move the observer: the world model imagines the "
                         "window's moves, so the env needs an action_moves() method returning the (A, 2) table of "
                         "(dx, dy) per action (MNISTWorld-v0 and MNISTWorldTrack-v0 have it)")
    moves = np.asarray(table(), dtype=np.int64)
    if moves.shape != (env.action_space.n, 2):
        raise ValueError(f"{name}.action_moves() must return shape ({env.action_space.n}, 2); got {moves.shape}")
    return moves


def evaluate_planner(planner: CEMPlanner, env_id: str, *, env_kwargs: dict[str, Any] | None = None,
                     episodes: int = 20, parallel: int = 10, seed: int = EVAL_SEED, error_every: int = 10,
                     gif: Path | None = None, reporter: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Run ``planner`` for ``episodes`` seeded episodes, ``parallel`` at a time (see the module docstring).

    Returns:
        ``{"returns", "mean_return", "std_return", "decisions", "planning_seconds", "decisions_per_second",
        "imagined_mse_per_step" (horizon,), "imagined_mse", "one_step_mse"}``.
    """
    for name, value in (("episodes", episodes), ("parallel", parallel), ("error_every", error_every)):
        check_int(name, value, minimum=1)
    if gif is not None:
        require("PIL", "plots", "the episode GIF")  # before the work, not after it
    returns, decisions, seconds = [], 0, 0.0
    errors, counts, one_step = np.zeros(planner.horizon), np.zeros(planner.horizon), []
    done_episodes = 0
    for first in range(0, episodes, parallel):
        count = min(parallel, episodes - first)
        batch = _run_batch(planner, env_id, env_kwargs or {}, [seed + first + i for i in range(count)], error_every,
                           gif if first == 0 else None)
        returns += batch["returns"]
        decisions, seconds = decisions + batch["decisions"], seconds + batch["seconds"]
        errors, counts = errors + batch["errors"], counts + batch["counts"]
        one_step += batch["one_step"]
        done_episodes += count
        if reporter is not None:
            reporter(done_episodes, episodes)
    per_step = np.where(counts > 0, errors / np.maximum(counts, 1), np.nan)
    return {"episodes": episodes, "seed": seed, "returns": returns, "mean_return": float(np.mean(returns)),
            "std_return": float(np.std(returns)), "decisions": decisions, "planning_seconds": seconds,
            "decisions_per_second": decisions / seconds, "imagined_mse_per_step": per_step.tolist(),
            "imagined_mse": float(np.nanmean(per_step)), "one_step_mse": float(np.mean(one_step))}


def _run_batch(planner: CEMPlanner, env_id: str, env_kwargs: dict[str, Any], seeds: list[int], error_every: int,
               gif: Path | None) -> dict[str, Any]:
    """One batch of episodes side by side: returns, timing, and the sums of the imagined-vs-real errors."""
    render = {"render_mode": "rgb_array"} if gif is not None else {}
    envs = gym.vector.SyncVectorEnv([lambda: gym.make(env_id, **env_kwargs, **render) for _ in seeds])
    obs, _ = envs.reset(seed=seeds)
    state, start = None, np.ones(len(seeds), bool)
    totals, seconds, decisions = np.zeros(len(seeds)), 0.0, 0
    windows, actions, snapshots, one_step, frames = [obs], [], {}, [], []
    visible = [np.ones(len(seeds), bool)]
    while True:
        began = time.perf_counter()
        action, state = planner.predict(obs, state, start)
        seconds, decisions = seconds + time.perf_counter() - began, decisions + len(seeds)
        real = torch.as_tensor(obs).permute(0, 3, 1, 2).float().div(255)
        shown = visible[-1]
        if len(actions) and shown.any():  # the first prediction comes from the empty map: not a model error
            one_step.append(float((state.predictions.cpu()[shown] - real[shown]).pow(2).mean()))
        if len(actions) % error_every == 0:
            snapshots[len(actions)] = state.maps.clone()
        if gif is not None:
            frames.append(_gif_frame(envs.envs[0], obs[0], state.predictions[0].cpu()))
        obs, reward, terminated, truncated, info = envs.step(action)
        totals += reward
        actions.append(action)
        windows.append(obs)
        visible.append(~np.asarray(info.get("occluded", np.zeros(len(seeds), bool)), bool))
        start = np.zeros(len(seeds), bool)
        if (terminated | truncated).any():
            break
    envs.close()
    errors, counts = _imagination_errors(planner, snapshots, windows, actions, visible)
    if gif is not None:
        from PIL import Image

        images = [Image.fromarray(frame) for frame in frames]
        atomic_write(gif, lambda tmp: images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                                                     duration=125, loop=0))
    return {"returns": totals.tolist(), "seconds": seconds, "decisions": decisions, "errors": errors,
            "counts": counts, "one_step": one_step}


@torch.no_grad()
def _imagination_errors(planner: CEMPlanner, snapshots: dict[int, torch.Tensor], windows: list[np.ndarray],
                        actions: list[np.ndarray], visible: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Sums and counts, per horizon step, of the MSE between the windows imagined from each snapshot along the
    actions taken and the visible windows that arrived."""
    horizon = planner.horizon
    errors, counts = np.zeros(horizon), np.zeros(horizon)
    for t, maps in snapshots.items():
        if t + horizon > len(actions):
            continue
        taken = np.stack(actions[t:t + horizon], 1)  # (B, H)
        moves = planner.moves[torch.as_tensor(taken)].to(maps.device)
        imagined = planner.world_model.imagine(maps, moves).cpu()  # (B, H, C, h, w)
        real = torch.as_tensor(np.stack(windows[t + 1:t + 1 + horizon], 1)).permute(0, 1, 4, 2, 3).float().div(255)
        shown = torch.as_tensor(np.stack(visible[t + 1:t + 1 + horizon], 1))  # (B, H)
        squared = (imagined - real).pow(2).mean((-3, -2, -1))  # (B, H)
        errors += (squared * shown).sum(0).numpy()
        counts += shown.sum(0).numpy()
    return errors, counts


def _gif_frame(env: gym.Env, window: np.ndarray, prediction: torch.Tensor) -> np.ndarray:
    """The world with the window drawn on it | the real window | the model's prediction of it (made before it
    arrived; during a gap the real window is dark and the prediction is all the planner has)."""
    from fernn.envs.rendering import TARGET_COLOUR, side_by_side, tint, to_rgb

    world = env.render()
    scale = max(1, world.shape[0] // window.shape[0])

    def panel(image: np.ndarray) -> np.ndarray:  # (h, w, C) uint8 -> RGB, the target (channel 1) tinted
        rgb = to_rgb(image[..., 0], scale)
        return tint(rgb, image[..., 1], TARGET_COLOUR, scale) if image.shape[-1] > 1 else rgb

    imagined = (prediction.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    return side_by_side(world, panel(window), panel(imagined))[::2, ::2]  # half size: a GIF for a web page
