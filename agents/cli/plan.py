"""``fernn-rl plan``: model-predictive control with a trained world model, over seeded episodes
(:func:`fernn.agents.planning_eval.plan_run`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from fernn.agents.cli.console import checked_device, console, parse_json_object, pixel_size_flag


def plan(
    env: str = typer.Option(..., "--env", help="The env to act in: a short name (mnist-world-track, "
                                               "dynamic-block-world-find-red, ...), a registered id or module:Id. Its "
                                               "actions need an action_moves() table: how each moves the observer "
                                               "(docs/planning.md)."),
    world_model: Path = typer.Option(..., "--world-model", help="A world-model run directory (fernn-rl train --data "
                                                                "FILE.npz, or --env mnist-world)."),
    horizon: int = typer.Option(6, "--horizon", min=1, max=100, help="Imagined steps per candidate (H)."),
    candidates: int = typer.Option(32, "--candidates", min=1, max=4096, help="Action sequences per decision (K)."),
    iterations: int = typer.Option(2, "--iterations", min=1, max=50, help="CEM rounds (1: random shooting)."),
    elites: int = typer.Option(4, "--elites", min=1, help="Sequences the CEM refits to (<= --candidates)."),
    episodes: int = typer.Option(20, "--episodes", min=1, help="Seeded episodes (seeds 50000 + i, as RL evaluations)."),
    parallel: int = typer.Option(10, "--parallel", min=1, help="Episodes planned side by side (one batched call); "
                                                               "changes the speed, never the results."),
    env_kwargs: Optional[str] = typer.Option(None, "--env-kwargs", help="gym.make kwargs as JSON, e.g. "
                                                                        "'{\"gap_length\": 6}'."),
    pixels: bool = typer.Option(False, "--pixels", metavar="", help="Observe the env's rendered frames, as collected with "
                                                        "fernn-rl collect --pixels."),
    pixel_size: Optional[int] = typer.Option(None, "--pixel-size", min=8, max=512, help="With --pixels: the side of "
                                                                                        "the resized frames."),
    frame_size: Optional[int] = typer.Option(None, "--frame-size", min=8, max=512, hidden=True,
                                             help="The old name of --pixel-size."),
    grayscale: bool = typer.Option(False, "--grayscale", metavar="", help="With --pixels: grayscale frames."),
    score: str = typer.Option("auto", "--score", help="auto (red-ink in a first-person world, target-ink in any "
                                                      "other env) | target-ink (the tracking reward applied "
                                                      "to the imagined windows) | red-ink (the red block's share of "
                                                      "imagined first-person views: find-red) | reward-head (a "
                                                      "reward learned from recorded rewards: any env)."),
    reward_data: Optional[Path] = typer.Option(None, "--reward-data", help="--score reward-head: the trajectory "
                                                                           "file to fit it on (default: the world "
                                                                           "model's training data)."),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best | last."),
    seed: int = typer.Option(0, "--seed", min=0, max=2 ** 32 - 1, help="Seed of the candidate sampling."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder [default: <world-model>/plan-<env>]; "
                                                           "never a folder of files that are not a planning run's."),
    gif: bool = typer.Option(True, "--gif/--no-gif", metavar="", help="Write episode.gif: the world, the real view and the "
                                                          "imagined one."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N."),
    quiet: bool = typer.Option(False, "--quiet", "-q", metavar="", help="No progress bar."),
) -> None:
    """Plan with a trained world model (CEM over action sequences, every candidate of every env imagined in one
    batched call; the map carried across real steps) and write results.json (returns, decisions per second,
    imagined-vs-real error over the horizon) and episode.gif. Example: fernn-rl plan --env mnist-world-track
    --world-model runs/planning/wm-fernn-s0 --horizon 4 --candidates 16 --iterations 1 --episodes 20."""
    from fernn.agents.planning_eval import plan_run
    from fernn.agents.progress import counted_progress

    checked_device(device)
    kwargs = parse_json_object("--env-kwargs", env_kwargs)  # the flags' checks are plan_run's, made before any work
    frame_size = pixel_size_flag(pixel_size, frame_size)
    with counted_progress(console, f"planning in {env}", episodes, "episodes", quiet=quiet) as update:
        result, folder = plan_run(env, world_model, horizon=horizon, candidates=candidates, iterations=iterations,
                                  elites=elites, episodes=episodes, parallel=parallel, env_kwargs=kwargs, score=score,
                                  reward_data=reward_data, checkpoint=checkpoint, seed=seed, out=out, gif=gif,
                                  device=device, pixels=pixels, frame_size=frame_size, grayscale=grayscale,
                                  reporter=update)
    final = result["final_info"]
    extra = f", final red distance {sum(final['red_distance']) / len(final['red_distance']):.2f}" \
        if "red_distance" in final else ""
    console.print(f"world model planning in {env}: return {result['mean_return']:.2f} ± {result['std_return']:.2f} "
                  f"over {episodes} episodes, {result['decisions_per_second']:.1f} decisions/s, imagined MSE "
                  f"{result['imagined_mse']:.4f} over {horizon} steps{extra}")
    console.print(f"wrote {folder}/results.json" + (" and episode.gif" if gif else ""))
