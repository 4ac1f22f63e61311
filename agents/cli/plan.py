"""``fernn-rl plan``: model-predictive control with a trained world model, over seeded episodes."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from fernn.agents.cli.console import console, fail, parse_json_object, resolve_env


def plan(
    env: str = typer.Option(..., "--env", help="The env to act in: a short name (mnist-world-track, ...), a "
                                               "registered id or module:Id; its actions need an action_moves() table."),
    world_model: Path = typer.Option(..., "--world-model", help="A world-model run directory (fernn-rl train "
                                                                "--data FILE.npz, or --env mnist-world)."),
    horizon: int = typer.Option(6, "--horizon", min=1, max=100, help="Imagined steps per candidate (H)."),
    candidates: int = typer.Option(32, "--candidates", min=1, max=4096, help="Action sequences per decision (K)."),
    iterations: int = typer.Option(2, "--iterations", min=1, max=50, help="CEM rounds (1: random shooting)."),
    elites: int = typer.Option(4, "--elites", min=1, help="Sequences the CEM refits to (<= --candidates)."),
    episodes: int = typer.Option(20, "--episodes", min=1, help="Seeded episodes (seeds 50000 + i, as RL evaluations)."),
    parallel: int = typer.Option(10, "--parallel", min=1, help="Episodes planned side by side (one batched call)."),
    env_kwargs: Optional[str] = typer.Option(None, "--env-kwargs", help="gym.make kwargs as JSON, e.g. "
                                                                        "'{\"gap_length\": 6}'."),
    score: str = typer.Option("target-ink", "--score", help="target-ink (the tracking reward applied to the imagined "
                                                            "windows) | reward-head (a reward learned from recorded "
                                                            "rewards: any env)."),
    reward_data: Optional[Path] = typer.Option(None, "--reward-data", help="--score reward-head: the trajectory "
                                                                           "file to fit it on (default: the world "
                                                                           "model's training data)."),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best | last."),
    seed: int = typer.Option(0, "--seed", min=0, max=2 ** 32 - 1, help="Seed of the candidate sampling."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output directory (default: <world-model>/plan-<env>)."),
    gif: bool = typer.Option(True, "--gif/--no-gif", help="Write episode.gif: the world, the real window and the "
                                                          "imagined one."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Plan with a trained world model (CEM over action sequences, every candidate of every env imagined in one
    batched call; the map carried across real steps) and write results.json (returns, decisions per second,
    imagined-vs-real error over the horizon) and episode.gif. Example: fernn-rl plan --env mnist-world-track
    --world-model runs/planning/wm-fernn-s0 --horizon 4 --candidates 16 --iterations 1 --episodes 20."""
    import gymnasium as gym
    from rich.progress import Progress

    from fernn.agents.cli.train import _checked_device
    from fernn.agents.planning import CEMPlanner, fit_reward_head, target_ink
    from fernn.agents.planning_eval import env_action_moves, evaluate_planner, load_world_model
    from fernn.agents.runs import RunFileError, write_json
    from fernn.allocator import keep_allocations_warm
    from fernn.envs import TrajectoryFileError

    env_id = resolve_env(env)
    kwargs = parse_json_object("--env-kwargs", env_kwargs)
    if checkpoint not in ("best", "last"):
        fail(f"--checkpoint must be best or last; got {checkpoint!r}")
    if score not in ("target-ink", "reward-head"):
        fail(f"--score must be target-ink or reward-head; got {score!r}")
    if reward_data is not None and score != "reward-head":
        fail("--reward-data is what --score reward-head is fitted on: add --score reward-head")
    if elites > candidates:
        fail(f"--elites ({elites}) must be <= --candidates ({candidates})")
    try:
        target = _checked_device(device)
        if target.type == "cpu":
            keep_allocations_warm()  # every decision allocates candidate maps of the same sizes: reuse them
        model, config = load_world_model(world_model, checkpoint=checkpoint, device=target)
        probe = gym.make(env_id, **kwargs)
        moves = env_action_moves(probe, model)
        probe.close()
        if score == "target-ink" and model.rnn.in_channels < 2:
            raise ValueError("--score target-ink scores the target channel (channel 1) of MNISTWorldTrack-v0's windows; "
                             "this world model sees 1 channel: use --score reward-head")
        scorer, fit = target_ink, None
        if score == "reward-head":
            head, fit = fit_reward_head(_reward_data(reward_data, config), seed=seed, device=target)
            scorer = head.score
        planner = CEMPlanner(model, moves, scorer, horizon=horizon, candidates=candidates, iterations=iterations,
                             elites=elites, seed=seed)
        folder = out or world_model / f"plan-{env_id.split(':')[-1].split('-v')[0].lower()}"
        folder.mkdir(parents=True, exist_ok=True)
        with Progress(console=console, disable=quiet, transient=True) as bar:
            task = bar.add_task(f"planning in {env_id}", total=episodes)
            result = evaluate_planner(planner, env_id, env_kwargs=kwargs, episodes=episodes, parallel=parallel,
                                      gif=folder / "episode.gif" if gif else None,
                                      reporter=lambda done, total: bar.update(task, completed=done))
    except (FileNotFoundError, ValueError, TypeError, RunFileError, TrajectoryFileError, OSError) as error:
        fail(str(error))
    settings = {"env": env_id, "env_kwargs": kwargs, "world_model": str(world_model), "model": config["model"],
                "checkpoint": checkpoint, "score": score, "reward_head_fit": fit, "horizon": horizon,
                "candidates": candidates, "iterations": iterations, "elites": elites, "seed": seed,
                "device": str(target)}
    write_json(folder / "results.json", {"settings": settings, **result})
    console.print(f"{config['model']} world model planning in {env_id}: return {result['mean_return']:.2f} ± "
                  f"{result['std_return']:.2f} over {episodes} episodes, {result['decisions_per_second']:.1f} "
                  f"decisions/s, imagined MSE {result['imagined_mse']:.4f} over {horizon} steps")
    console.print(f"wrote {folder}/results.json" + (" and episode.gif" if gif else ""))


def _reward_data(path: Path | None, config: dict) -> Path:
    """The trajectory file a reward head is fitted on: ``--reward-data``, or the world model's training data."""
    if path is not None:
        return path
    if config.get("data") is None:
        raise ValueError("--score reward-head needs recorded rewards: this world model was not trained on a "
                         "trajectory file, so pass --reward-data FILE.npz (fernn-rl collect)")
    return Path(config["data"])
