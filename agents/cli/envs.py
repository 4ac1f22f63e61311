"""``fernn-rl envs``, ``play`` and ``bounds``: the environments, keyboard play and the RL reference returns."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from fernn.agents.cli.console import console, fail, parse_json_object, resolve_env


def envs() -> None:
    """List every environment: id, CLI name, spaces, reward and gym.make defaults."""
    from fernn.agents.catalog import catalog

    table = Table(title="fernn.envs (import fernn.envs, then gym.make(id, **kwargs))", show_lines=True)
    table.add_column("id / CLI name", no_wrap=True)  # ids are copied into commands: never broken across lines
    for column in ("observation", "action", "reward", "defaults (gym.make kwargs)"):
        table.add_column(column, overflow="fold")
    for entry in catalog():
        defaults = ", ".join(f"{k}={v!r}" for k, v in entry.defaults.items())
        if entry.max_episode_steps:
            defaults += f"; max_episode_steps={entry.max_episode_steps}"
        table.add_row(f"{entry.env_id}\n[dim]{entry.cli_name}[/]", entry.observation_space, entry.action_space,
                      entry.reward, defaults)
    console.print(table)


def play(
    env: str = typer.Option("mnist-world-track", "--env", help="CLI name or id of a playable env."),
    fps: int = typer.Option(8, "--fps", min=1, help="Steps per second."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the first episode."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="Stop after this many steps."),
) -> None:
    """Play an env with the keyboard, Esc quits. MNIST World: the arrow keys move the window (two arrows:
    diagonals). The block world: left / right turn, up walks forward."""
    from fernn.agents.play import play as play_env

    env_id = resolve_env(env)
    console.print(f"playing {env_id}: arrow keys act (no key: stay), Esc quits")
    try:
        play_env(env_id, fps=fps, seed=seed, max_steps=max_steps,
                 report=lambda episode, total: console.print(f"episode {episode}: return {total:.2f}"))
    except ValueError as error:
        fail(str(error))


def bounds(
    env: str = typer.Option("mnist-world-track", "--env", help="CLI name or id (an env with oracle_action())."),
    episodes: int = typer.Option(100, "--episodes", min=1, help="Seeded episodes per policy (seeds 50000+)."),
    env_kwargs: Optional[str] = typer.Option(None, "--env-kwargs", help="gym.make kwargs as JSON, e.g. "
                                                                        "'{\"gap_length\": 6}'."),
    fixed_moves: bool = typer.Option(False, "--fixed-moves", metavar="", help="Also the best fixed move: the "
                                     "one action that, repeated every step, scores best (Discrete actions)."),
    json_out: Optional[str] = typer.Option(None, "--json", help="Also write the figures to this JSON file."),
) -> None:
    """Mean return of a uniformly random policy, of the env's scripted oracle and (--fixed-moves) of the best fixed
    move: the RL reference lines."""
    from pathlib import Path

    from fernn.agents.rl.evaluation import env_bounds
    from fernn.agents.runs import write_json

    figures = env_bounds(resolve_env(env), env_kwargs=parse_json_object("--env-kwargs", env_kwargs), episodes=episodes,
                         fixed_moves=fixed_moves)
    table = Table(title=f"{resolve_env(env)}: returns over {episodes} seeded episodes")
    for column in ("policy", "mean return", "std"):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for name, value in figures.items():
        table.add_row(name, f"{value['mean']:.2f}", f"{value['std']:.2f}")
    console.print(table)
    if json_out:
        write_json(Path(json_out), figures)
