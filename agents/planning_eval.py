"""Planning with a trained world model over seeded episodes: ``fernn-rl plan`` is :func:`plan_run`.

A world-model run (``fernn-rl train --data FILE.npz`` on episodes with recorded moves, or ``--env mnist-world``; a
first-person one, FloWM-3D or the RSSM, on the block world's episodes) is loaded weights-only, checked against
the env it will act in (views, channels, action table), and a
:class:`~fernn.agents.planning.CEMPlanner` acts in ``parallel`` envs at once (every candidate of every env
imagined in one batched call). The result: the return of every episode (seeds ``seed + i``, the seeds of the RL
evaluations), decisions per second, and the world model's imagined-vs-real error over the horizon: from the
carried map at every ``error_every``-th step, the windows imagined along the actions then taken against the
windows that arrived (visible ones only: a dark window of a gap says nothing about what the model imagined).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from fernn.imagination import WorldModelProtocol
from fernn._extras import require
from fernn._validation import check_int
from fernn.flows import grid_velocities
from fernn.agents.planning import ModelPolicy
from fernn.agents.runs import EVAL_SEED
from fernn.envs.image_spaces import read_image_space
from fernn.io import atomic_write


def load_world_model(run_dir: str | Path, *, checkpoint: str = "best",
                     device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """The world model of a world-model run (:class:`fernn.WorldModel`, or a first-person
    :class:`fernn.WorldModel3D` / :class:`fernn.RSSM`) and its config, loaded weights-only.

    Raises:
        ValueError: the run is not a world-model run (a next-frame predictor, a classifier, an RL run).
        FileNotFoundError, RunFileError: no such run or checkpoint, or a damaged one, or weights that do not fit.
    """
    from fernn.agents.runs import RunDir, RunFileError
    from fernn.agents.supervised.config import TrainConfig
    from fernn.agents.supervised.tasks import WORLD_MODELS, build_world_model
    from fernn.agents.supervised.tasks_3d import MODELS_3D

    run = RunDir(run_dir)
    if run.kind() != "supervised":
        raise ValueError(f"{run_dir} is not a supervised run (it is a {run.kind()} run); --world-model takes a "
                         "world-model run (fernn-rl train --data FILE.npz with recorded moves, or --env mnist-world)")
    config = TrainConfig.from_dict(run.read_config(), str(run.config_path))
    path = run.checkpoints / f"{checkpoint}.pt"
    payload = run.load_checkpoint(f"{checkpoint}.pt", device)
    spec = payload.get("model_spec")
    first_person = config.model in MODELS_3D
    needed = ("in_channels", "view_size", "room_size", "fov") if first_person else ("in_channels", "window_hw",
                                                                                     "world_hw")
    if config.model not in WORLD_MODELS and not first_person or (config.env not in ("mnist-world", "trajectories")):
        raise ValueError(f"{run_dir} trained a {config.model} model on {config.env}, not a world model; --world-model "
                         "takes a run of fernn-rl train --data FILE.npz (episodes with moves) or --env mnist-world")
    if spec is None and config.env == "mnist-world":
        spec = {"in_channels": 1, "window_hw": [config.window_size] * 2, "world_hw": [config.world_size] * 2}
    if not isinstance(spec, dict) or not spec:
        raise ValueError(f"{run_dir} is a next-frame predictor (its checkpoint records no world-model sizes): it "
                         "trained on episodes without moves, so it cannot imagine what actions do; train a world "
                         "model on episodes with moves (fernn-rl collect records them when the env reports them)")
    missing = [key for key in needed if key not in spec]
    if missing:
        raise RunFileError(f"{path}: model_spec lacks {', '.join(missing)}; it is not a checkpoint of this version's "
                           "world models (train the run again)")
    if first_person:
        from types import SimpleNamespace

        model = MODELS_3D[config.model](SimpleNamespace(config=config, model_spec=lambda: spec))
    else:
        from fernn.budget import check_fits

        check_fits(4.0 * config.hidden * int(np.prod(spec["world_hw"])) * grid_velocities(config.vmax or 0),
                   f"one map of the world model in {path} (world {spec['world_hw']})",
                   "this checkpoint's recorded sizes cannot be planned with here", device)
        model = build_world_model(config, spec)
    weights = payload.get("model")
    if not isinstance(weights, dict):
        raise RunFileError(f"{path} holds no model weights (a 'model' entry of tensors)")
    weights = {k.removeprefix("world_model."): v for k, v in weights.items()}
    try:
        model.load_state_dict(weights)
    except (RuntimeError, TypeError) as error:
        raise RunFileError(f"{path} does not hold the weights of the world model its config describes: "
                           f"{str(error).splitlines()[0]}") from error
    return model.to(device).eval(), {**config.to_dict(), "model_spec": spec}


def env_action_moves(env: gym.Env, model: WorldModelProtocol, spec: dict[str, Any] | None = None) -> np.ndarray:
    """The env's table of how its actions move the observer, checked against the world model and in the model's
    terms (``model.motions.env_table``): ``(A, 2)`` window moves for :class:`fernn.WorldModel`, ``(A,)`` motions
    (0 turn left, 1 turn right, 2 forward, 3 stay) for a first-person one. One clear error for an env whose
    observations the model cannot take or whose actions it cannot imagine.

    ``action_moves()`` is how an env tells a planner what its actions do to the observer (the world model imagines
    motions, not action ids): an ``(A, 2)`` table, one row per action, of the window's move ``(dx, dy)`` in pixels
    (MNIST World). An env of your own plans once it has the method, e.g. ``def action_moves(self): return
    np.array([[0, 0], [1, 0], ...])``. A first-person world declares its motions, room and field of view
    (:mod:`fernn.envs.first_person_world`, a wrapper may declare them); with the checkpoint's ``spec`` (its
    ``model_spec``), the room and field of view must be the world model's."""
    from fernn.envs.first_person_world import first_person_geometry

    space, name = env.observation_space, env.spec.id if env.spec else type(env.unwrapped).__name__
    channels, height, width = model.view_shape
    wanted = (height, width, channels)
    if read_image_space(space, f"the world model ({name})", channels_last=True).hwc != wanted:
        raise ValueError(f"the world model takes uint8 views of shape (h, w, C) = {wanted}; {name} observes "
                         f"{space.dtype} {space.shape}. Plan in the env the model was trained on (same window / view size and "
                         "channels; --pixels --pixel-size --grayscale as when it was collected)")
    if not isinstance(env.action_space, gym.spaces.Discrete):
        raise ValueError(f"the planner searches a Discrete action space; {name} has {env.action_space}")
    geometry = first_person_geometry(env)
    if geometry is not None and spec:
        trained = {key: spec.get(key) for key in ("room_size", "fov")}
        given = {"room_size": geometry.room_size, "fov": geometry.fov}
        differ = [f"{key} {given[key]} (the world model's: {trained[key]})" for key in given
                  if trained[key] is not None and float(trained[key]) != float(given[key])]
        if differ:
            raise ValueError(f"{name} has {', '.join(differ)}: the world model's map and lift are built for its own "
                             "room and field of view; plan in the env it was trained on (--env-kwargs room_size / fov)")
    return model.motions.env_table(env, name)


def evaluate_planner(planner: ModelPolicy, env_id: str, *, env_kwargs: dict[str, Any] | None = None,
                     episodes: int = 20, parallel: int = 10, seed: int = EVAL_SEED, error_every: int = 10,
                     gif: Path | None = None, reporter: Callable[[int, int], None] | None = None,
                     make_env: Callable[[], gym.Env] | None = None) -> dict[str, Any]:
    """Run ``planner`` for ``episodes`` seeded episodes, ``parallel`` at a time (see the module docstring).

    Args:
        make_env: builds one env (default: ``gym.make(env_id, **env_kwargs)``); for pixel observations, the same
            wrappers as when the model's data was collected.

    Returns:
        ``{"returns", "lengths", "mean_return", "std_return", "decisions", "planning_seconds",
        "decisions_per_second", "imagined_mse_per_step" (horizon,), "imagined_mse", "one_step_mse", "final_info"}``
        (``final_info``: the numeric ``info`` entries at each episode's end, e.g. the block world's red_distance).
    """
    for name, value in (("episodes", episodes), ("parallel", parallel), ("error_every", error_every)):
        check_int(name, value, minimum=1)
    if gif is not None:
        require("PIL", "plots", "the episode GIF")  # before the work, not after it
    if make_env is None:
        make_env = plain_env(env_id, env_kwargs or {})
    returns, lengths, decisions, seconds, final = [], [], 0, 0.0, {}
    errors, counts, one_step = np.zeros(planner.horizon), np.zeros(planner.horizon), []
    done_episodes = 0
    for first in range(0, episodes, parallel):
        count = min(parallel, episodes - first)
        batch = _run_batch(planner, make_env, [seed + first + i for i in range(count)], error_every,
                           gif if first == 0 else None)
        returns += batch["returns"]
        lengths += batch["lengths"]
        for key, values in batch["final_info"].items():
            final.setdefault(key, []).extend(values)
        decisions, seconds = decisions + batch["decisions"], seconds + batch["seconds"]
        errors, counts = errors + batch["errors"], counts + batch["counts"]
        one_step += batch["one_step"]
        done_episodes += count
        if reporter is not None:
            reporter(done_episodes, episodes)
    per_step = np.where(counts > 0, errors / np.maximum(counts, 1), np.nan)
    return {"episodes": episodes, "seed": seed, "returns": returns, "lengths": lengths,
            "mean_return": float(np.mean(returns)), "std_return": float(np.std(returns)), "decisions": decisions,
            "planning_seconds": seconds, "decisions_per_second": decisions / seconds,
            "imagined_mse_per_step": per_step.tolist(), "imagined_mse": float(np.nanmean(per_step)),
            "one_step_mse": float(np.mean(one_step)) if one_step else None, "final_info": final}


def _run_batch(planner: ModelPolicy, make_env: Callable[..., gym.Env], seeds: list[int], error_every: int,
               gif: Path | None) -> dict[str, Any]:
    """One batch of episodes side by side, each run to its own end: returns, lengths, timing, the final infos and
    the sums of the imagined-vs-real errors. An env whose episode has ended keeps being stepped (its next episode
    is ignored) until every episode of the batch has ended, so ``parallel`` changes the speed, never the results."""
    render = {"render_mode": "rgb_array"} if gif is not None else {}
    envs = vector_env(make_env, len(seeds), render)
    obs, _ = envs.reset(seed=seeds)
    count = len(seeds)
    state, start = planner.initial_state(count, seeds=seeds), np.zeros(count, bool)
    totals, lengths, seconds, decisions = np.zeros(count), np.zeros(count, np.int64), 0.0, 0
    running = np.ones(count, bool)
    final: dict[str, list] = {}
    windows, actions, snapshots, one_step, frames = [obs], [], {}, [], []
    visible = [np.ones(count, bool)]
    while running.any():
        began = time.perf_counter()
        action, state = planner.predict(obs, state, start)
        seconds, decisions = seconds + time.perf_counter() - began, decisions + int(running.sum())
        real = torch.as_tensor(obs).permute(0, 3, 1, 2).float().div(255)
        shown = visible[-1] & running
        if len(actions) and shown.any():  # the first prediction comes from the empty map: not a model error
            one_step.append(float((state.predictions.cpu()[shown] - real[shown]).pow(2).mean()))
        if len(actions) % error_every == 0:
            snapshots[len(actions)] = (state.model_state.clone(), running.copy())
        if gif is not None and running[0]:
            frames.append(_gif_frame(envs.render()[0], obs[0], state.predictions[0].cpu()))
        obs, reward, terminated, truncated, info = envs.step(action)
        totals += np.where(running, reward, 0.0)
        lengths += running
        actions.append(action)
        windows.append(obs)
        visible.append(~np.asarray(info.get("occluded", np.zeros(count, bool)), bool) & running)
        ended = running & (terminated | truncated)
        for key, value in info.items():
            value = np.asarray(value)
            if not key.startswith("_") and value.shape == (count,) and value.dtype.kind in "biuf":
                for i in np.flatnonzero(ended):
                    final.setdefault(key, []).append(float(value[i]))
        running &= ~ended
        start = np.zeros(count, bool)
    envs.close()
    errors, counts = _imagination_errors(planner, snapshots, windows, actions, visible)
    if gif is not None:
        from PIL import Image

        images = [Image.fromarray(frame) for frame in frames]
        atomic_write(gif, lambda tmp: images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                                                     duration=125, loop=0))
    return {"returns": totals.tolist(), "lengths": lengths.tolist(), "seconds": seconds, "decisions": decisions,
            "errors": errors, "counts": counts, "one_step": one_step, "final_info": final}


@torch.no_grad()
def _imagination_errors(planner: ModelPolicy, snapshots: dict[int, torch.Tensor], windows: list[np.ndarray],
                        actions: list[np.ndarray], visible: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Sums and counts, per horizon step, of the MSE between the windows imagined from each snapshot along the
    actions taken and the visible windows that arrived."""
    horizon = planner.horizon
    errors, counts = np.zeros(horizon), np.zeros(horizon)
    for t, (states, alive) in snapshots.items():
        if t + horizon > len(actions):
            continue
        taken = np.stack(actions[t:t + horizon], 1)  # (B, H)
        moves = planner.moves_of(torch.as_tensor(taken)).to(states.device)
        imagined = planner.world_model.imagine(states, moves).cpu()  # (B, H, C, h, w)
        real = torch.as_tensor(np.stack(windows[t + 1:t + 1 + horizon], 1)).permute(0, 1, 4, 2, 3).float().div(255)
        shown = torch.as_tensor(np.stack(visible[t + 1:t + 1 + horizon], 1) & alive[:, None])  # (B, H)
        squared = (imagined - real).pow(2).mean((-3, -2, -1))  # (B, H)
        errors += (squared * shown).sum(0).numpy()
        counts += shown.sum(0).numpy()
    return errors, counts


def plain_env(env_id: str, env_kwargs: dict[str, Any]) -> Callable[..., gym.Env]:
    """``gym.make(env_id, **env_kwargs, **render)``, marked as plain (no wrappers), so its native vector version may
    stand in for a batch of them."""
    def make(**render: Any) -> gym.Env:
        return gym.make(env_id, **env_kwargs, **render)

    make.plain, make.kwargs = True, dict(env_kwargs)
    return make


def vector_env(make_env: Callable[..., gym.Env], count: int, render: dict[str, Any]) -> gym.vector.VectorEnv:
    """``count`` envs stepped together: the env's native vector version when it has one (its info keeps one shape
    for every env), else Gymnasium's ``SyncVectorEnv``. Both autoreset on the next step and render every env."""
    probe = make_env(**render)
    spec = probe.spec
    probe.close()
    if spec is not None and spec.vector_entry_point is not None and getattr(make_env, "plain", False):
        return gym.make_vec(spec.id, num_envs=count, vectorization_mode="vector_entry_point",
                            **getattr(make_env, "kwargs", {}), **render)
    return gym.vector.SyncVectorEnv([lambda: make_env(**render) for _ in range(count)])


def _gif_frame(world: np.ndarray, window: np.ndarray, prediction: torch.Tensor) -> np.ndarray:
    """The world with the window drawn on it | the real window | the model's prediction of it (made before it
    arrived; during a gap the real window is dark and the prediction is all the planner has)."""
    from fernn.envs.rendering import TARGET_COLOUR, side_by_side, tint, to_rgb

    scale = max(1, world.shape[0] // window.shape[0])

    def panel(image: np.ndarray) -> np.ndarray:  # (h, w, C) uint8 -> RGB (a 2-channel window: the target tinted)
        if image.shape[-1] == 3:
            return image.repeat(scale, 0).repeat(scale, 1)
        rgb = to_rgb(image[..., 0], scale)
        return tint(rgb, image[..., 1], TARGET_COLOUR, scale) if image.shape[-1] > 1 else rgb

    imagined = (prediction.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    return side_by_side(world, panel(window), panel(imagined))[::2, ::2]  # half size: a GIF for a web page


SCORES = ("target-ink", "red-ink", "reward-head")


PLAN_KIND = "plan"
"""The ``kind`` of a planning run's ``results.json``: the one mark of a folder ``fernn-rl plan`` may write into."""


def plan_folder(out: Path | None, world_model: Path, env_id: str) -> Path:
    """The output folder of a planning run (default ``<world-model>/plan-<env>``), checked: never a symbolic link
    or reached through one, never a run directory (it has ``run.json``) and never a folder of anyone else's files:
    a folder that exists must be empty or hold a planning run's results (``results.json`` of kind ``plan``), so a
    demo's, a training run's or a user's ``results.json`` is never replaced, whatever its keys."""
    from fernn.agents.runs import env_slug

    folder = Path(out) if out is not None else Path(world_model) / f"plan-{env_slug(env_id)}"
    for part in (folder, *folder.parents):
        if part.is_symlink():
            raise ValueError(f"{folder}: {part} is a symbolic link; plan results are written only into real folders")
    if folder.exists():
        if not folder.is_dir():
            raise ValueError(f"--out {folder} is a file; give a folder for the planning results")
        if (folder / "run.json").exists():
            raise ValueError(f"--out {folder} is a run directory (it has run.json); planning results are never "
                             "written into a run: give a new or empty folder (the default is a plan-<env> folder "
                             "inside the world-model run)")
        if any(folder.iterdir()) and not is_plan_folder(folder):
            raise ValueError(f"--out {folder} holds files that are not a planning run's (no results.json of fernn-rl "
                             "plan); they are never written into: give an empty or new folder")
    return folder


def is_plan_folder(folder: Path) -> bool:
    """Whether ``folder`` holds the results of ``fernn-rl plan`` (its ``results.json`` is of kind ``plan``)."""
    try:
        results = json.loads((folder / "results.json").read_text())
    except (OSError, ValueError, TypeError):
        return False
    return isinstance(results, dict) and results.get("kind") == PLAN_KIND


def plan_run(env: str, world_model: str | Path, *, horizon: int = 6, candidates: int = 32, iterations: int = 2,
             elites: int = 4, episodes: int = 20, parallel: int = 10, env_kwargs: dict[str, Any] | None = None,
             score: str = "auto", reward_data: str | Path | None = None, checkpoint: str = "best",
             seed: int = 0, out: str | Path | None = None, gif: bool = True, device: str = "auto",
             pixels: bool = False, frame_size: int | None = None, grayscale: bool = False,
             reporter: Callable[[int, int], None] | None = None) -> tuple[dict[str, Any], Path]:
    """Plan with a trained world model in ``env`` over seeded episodes and write the results: what
    ``fernn-rl plan`` does.

    The world model is loaded weights-only and checked against the env (views, channels, the env's
    :func:`env_action_moves`); a :class:`~fernn.agents.planning.CEMPlanner` acts (every candidate of every env
    imagined in one batched call); ``results.json`` (settings, returns, decisions per second, imagined-vs-real
    error over the horizon, the final infos) and ``episode.gif`` go to the output folder (:func:`plan_folder`),
    whose old results are removed first, so a killed run never leaves old results beside a new GIF.

    Args:
        env: a short name, registered id or ``module:Id``; pixel flags as ``fernn-rl collect``'s.
        score: ``auto`` (``red-ink`` in a first-person world, ``target-ink`` in any other env), ``target-ink``
            (the tracking reward on imagined windows), ``red-ink`` (the red block's share of
            imagined first-person views: the find-red task) or ``reward-head`` (a reward fitted to a trajectory
            file's recorded rewards: ``reward_data``, default the world model's training data).
        Others: the CEM's sizes, the episodes, the checkpoint, the seed of the candidate sampling.

    Returns:
        ``(results, folder)``.
    """
    from fernn.allocator import keep_allocations_warm
    from fernn.budget import check_fits
    from fernn.devices import resolve_device
    from fernn.envs import make_env, pixel_observations
    from fernn.agents.planning import CEMPlanner, fit_reward_head, red_ink, target_ink
    from fernn.agents.runs import write_json

    from fernn.envs import resolve_env_id

    env_id = resolve_env_id(env)
    kwargs = dict(env_kwargs or {})
    if checkpoint not in ("best", "last"):
        raise ValueError(f"--checkpoint must be best or last; got {checkpoint!r}")
    if score != "auto" and score not in SCORES:
        raise ValueError(f"--score must be auto or one of {', '.join(SCORES)}; got {score!r}")
    if reward_data is not None and score != "reward-head":
        raise ValueError("--reward-data is what --score reward-head is fitted on: add --score reward-head")
    if elites > candidates:
        raise ValueError(f"--elites ({elites}) must be <= --candidates ({candidates})")
    if (frame_size is not None or grayscale) and not pixels:
        raise ValueError("--pixel-size and --grayscale apply to rendered frames: add --pixels")
    folder = plan_folder(Path(out) if out is not None else None, Path(world_model), env_id)
    target = resolve_device(device)
    if target.type == "cpu":
        keep_allocations_warm()  # every decision allocates candidate maps of the same sizes: reuse them

    def pixel_env(**render: Any) -> gym.Env:
        return pixel_observations(make_env(env_id, kwargs, render_mode="rgb_array"), frame_size=frame_size,
                                  grayscale=grayscale)

    build = pixel_env if pixels else plain_env(env_id, kwargs)

    model, config = load_world_model(world_model, checkpoint=checkpoint, device=target)
    state_bytes = model.initial_state(1, device="cpu").numel() * 4
    check_fits(6.0 * state_bytes * candidates * min(parallel, episodes), f"imagining {candidates} candidates for "
               f"{min(parallel, episodes)} episodes at once (the world model's state of {state_bytes / 2 ** 20:.1f} "
               "MiB each, and its transports)", "lower --candidates or --parallel", target)
    from fernn.envs.first_person_world import first_person_geometry

    probe = build()
    moves = env_action_moves(probe, model, config["model_spec"])
    first_person = first_person_geometry(probe) is not None  # the env's kind decides the default score
    probe.close()
    scorer, fit = target_ink, None
    if score == "auto":
        score = "red-ink" if first_person else "target-ink"
    if score == "target-ink" and (first_person or model.view_shape[0] < 2):
        raise ValueError("--score target-ink scores the target channel (channel 1) of MNISTWorldTrack-v0's windows; "
                         f"this world model sees {'first-person views' if first_person else 'one channel'}: use "
                         f"--score {'red-ink (the find-red task) or ' if first_person else ''}reward-head")
    if score == "red-ink":
        if not first_person or model.view_shape[0] != 3:
            raise ValueError("--score red-ink scores the red block in the block world's first-person RGB views; this "
                             f"world model sees {model.view_shape[0]}-channel {'views' if first_person else 'windows'}"
                             ": use --score reward-head")
        scorer = red_ink
    if score == "reward-head":
        source = reward_data if reward_data is not None else config.get("data")
        if source is None:
            raise ValueError("--score reward-head needs recorded rewards: this world model was not trained on a "
                             "trajectory file, so pass --reward-data FILE.npz (fernn-rl collect)")
        head, fit = fit_reward_head(Path(source), seed=seed, device=target, view_shape=model.view_shape)
        scorer = head.score
    planner = CEMPlanner(model, moves, scorer, horizon=horizon, candidates=candidates, iterations=iterations,
                         elites=elites, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in ("results.json", "episode.gif"):  # a run in progress leaves no old results beside new files
        (folder / stale).unlink(missing_ok=True)
    result = evaluate_planner(planner, env_id, env_kwargs=kwargs, episodes=episodes, parallel=parallel,
                              gif=folder / "episode.gif" if gif else None, reporter=reporter, make_env=build)
    settings = {"env": env_id, "env_kwargs": kwargs, "pixels": pixels, "frame_size": frame_size,
                "grayscale": grayscale, "world_model": str(world_model), "model": config["model"],
                "checkpoint": checkpoint, "score": score, "reward_head_fit": fit, "horizon": horizon,
                "candidates": candidates, "iterations": iterations, "elites": elites, "seed": seed,
                "device": str(target)}
    write_json(folder / "results.json", {"kind": PLAN_KIND, "settings": settings, **result})
    return result, folder
