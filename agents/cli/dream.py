"""``fernn-rl dream``: an actor-critic learned in a world model's imagination (:func:`fernn.agents.dream.train_dream`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from fernn.agents.cli.console import checked_device, console, parse_json_object


def dream(
    typer_context: typer.Context,
    world_model: Path = typer.Option(..., "--world-model", help="A 2-D world-model run (fernn-rl train --data FILE.npz "
                                                                "on episodes with window moves)."),
    env: str = typer.Option("mnist-world-track", "--env", help="The real env the policy acts in and is evaluated on."),
    env_kwargs: Optional[str] = typer.Option(None, "--env-kwargs", help="gym.make kwargs as JSON."),
    horizon: int = typer.Option(15, "--horizon", min=1, max=100, help="Imagined steps per trajectory."),
    steps: int = typer.Option(2000, "--steps", min=1, help="Actor-critic updates."),
    batch_size: int = typer.Option(16, "--batch-size", "-b", min=1, max=4096, help="Imagined trajectories per update."),
    context: int = typer.Option(10, "--context", min=1, max=1000, help="Real views the world model observes before "
                                                                       "each imagined trajectory starts."),
    lr: float = typer.Option(3e-4, "--lr", min=0.0, help="Adam learning rate."),
    entropy: float = typer.Option(3e-3, "--entropy", min=0.0, help="Weight of the entropy bonus."),
    score: str = typer.Option("target-ink", "--score", help="target-ink | reward-head (fitted to recorded rewards)."),
    reward_data: Optional[Path] = typer.Option(None, "--reward-data", help="--score reward-head: the trajectory file "
                                                                           "it is fitted on."),
    eval_every: int = typer.Option(250, "--eval-every", min=1, help="Real-env evaluation every this many updates."),
    eval_episodes: int = typer.Option(10, "--eval-episodes", min=1, help="Seeded episodes per evaluation."),
    seed: int = typer.Option(0, "--seed", min=0, max=2 ** 32 - 1, help="Seed of everything in the run."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N."),
    out: str = typer.Option("runs", "--out", help="Parent directory of runs."),
    name: Optional[str] = typer.Option(None, "--name", help="Run name [default: dream-<world model>-s<seed>]."),
    resume: bool = typer.Option(False, "--resume", metavar="", help="Continue the run from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", metavar="", help="Start the run in <out>/<name> over."),
    quiet: bool = typer.Option(False, "--quiet", "-q", metavar="", help="No progress lines."),
) -> None:
    """Learn a policy in the world model's imagination (an actor-critic on imagined rollouts, DreamerV3's recipe,
    the actor reading the map through the equivariant head), then evaluate it in the real env over seeded
    episodes. No environment steps beyond the world model's training data. Example: fernn-rl dream --world-model
    runs/track-fernn --env mnist-world-track --steps 2000."""
    from fernn.agents.dream import DreamConfig, train_dream

    checked_device(device)
    config = DreamConfig(world_model=str(world_model), env=env, env_kwargs=parse_json_object("--env-kwargs", env_kwargs),
                         horizon=horizon, steps=steps, batch_size=batch_size, context=context, lr=lr, entropy=entropy,
                         score=score, reward_data=None if reward_data is None else str(reward_data),
                         eval_every=eval_every,
                         eval_episodes=eval_episodes, seed=seed, device=device, out=out, name=name or "")
    typed = {name for name in ("horizon", "steps", "batch_size", "context", "lr", "entropy", "score", "reward_data",
                               "env", "env_kwargs", "eval_every", "eval_episodes")
             if (source := typer_context.get_parameter_source(name)) is not None and source.name == "COMMANDLINE"}

    def report(row: dict) -> None:
        if row["split"] == "eval":
            console.print(f"[{config.name}] update {row['update']:.0f}: real return {row['mean_return']:.2f} ± "
                          f"{row['std_return']:.2f}", highlight=False, markup=False)
        else:
            console.print(f"[{config.name}] update {row['update']}: imagined return {row['imagined_return']:.2f}, "
                          f"entropy {row['entropy']:.2f}", highlight=False, markup=False)

    results = train_dream(config, resume=resume, overwrite=overwrite, reporter=None if quiet else report,
                          explicit=tuple(typed))
    if results.get("interrupted"):
        console.print(f"interrupted after update {results['updates']}: checkpoint saved in {results['checkpoint']}; "
                      f"continue with: {resume_command(config)}", highlight=False, markup=False)
        raise typer.Exit(130)
    for setting, result in results["final"].items():
        console.print(f"{setting}: return {result['mean_return']:.2f} ± {result['std_return']:.2f} over "
                      f"{result['episodes']} episodes, {result['decisions_per_second']:.0f} decisions/s",
                      highlight=False)
    console.print(f"files in {config.out}/{config.name}")


def resume_command(config) -> str:
    """The command that continues a dream run, as it can be copied (its settings are stored in the run)."""
    import shlex

    return (f"fernn-rl dream --world-model {shlex.quote(config.world_model)} --resume --out {shlex.quote(config.out)} "
            f"--name {shlex.quote(config.name)}")
