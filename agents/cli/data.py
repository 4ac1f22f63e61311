"""``fernn-rl collect``: episodes of any Gymnasium env with image (or rendered) observations, into one ``.npz``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from fernn.agents.cli.console import console, parse_json_object, pixel_size_flag, resolve_env


def collect(
    env: str = typer.Option(..., "--env", help="A registered id, module:Id, or a short name (mnist-world, ...)."),
    out: Path = typer.Option(..., "--out", help="The trajectory file to write (.npz, atomically)."),
    episodes: int = typer.Option(100, "--episodes", min=1, help="Episodes to collect."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="Cut episodes after this many steps."),
    env_kwargs: Optional[str] = typer.Option(None, "--env-kwargs", help="gym.make kwargs as JSON, e.g. "
                                                                        "'{\"world_size\": 40}'."),
    policy: str = typer.Option("random", "--policy", help="random (uniform); a scripted policy of the env (the block "
                                                          "world's biased-walk, FloWM's data policy); or an RL run "
                                                          "directory whose saved policy acts (deterministic)."),
    pixels: bool = typer.Option(False, "--pixels", metavar="", help="Observe the env's rendered frames (render_mode="
                                                        "'rgb_array'): for state-based envs."),
    pixel_size: Optional[int] = typer.Option(None, "--pixel-size", min=8, max=512,
                                             help="Resize pixel observations to this side (with --pixels)."),
    frame_size: Optional[int] = typer.Option(None, "--frame-size", min=8, max=512, hidden=True,
                                             help="The old name of --pixel-size."),
    grayscale: bool = typer.Option(False, "--grayscale", metavar="", help="Grayscale pixel observations (with --pixels)."),
    add_channel: bool = typer.Option(False, "--add-channel", metavar="", help="Give 2-D (H, W) image observations a "
                                                                              "channel axis."),
    obs_key: Optional[str] = typer.Option(None, "--obs-key", help="Dict observations: the image key to record (the "
                                                                  "other keys are dropped), e.g. image."),
    moves: Optional[str] = typer.Option(None, "--moves", help="The info key holding the observer's own move (dx, dy); "
                                                              "default: info['action'] (window moves) or "
                                                              "info['self_motion'] (first-person) when the env reports "
                                                              "one."),
    seed: int = typer.Option(0, "--seed", min=0, max=2 ** 32 - 1, help="Seed of the first reset and the policy."),
    quiet: bool = typer.Option(False, "--quiet", "-q", metavar="", help="No progress bar."),
) -> None:
    """Collect episodes (observations, actions, rewards, terminations, and the observer's moves when the env
    reports them) into one compressed .npz that `fernn-rl train --data FILE` trains on. Examples:
    fernn-rl collect --env mnist-world --episodes 200 --max-steps 40 --out world.npz;
    fernn-rl collect --env CartPole-v1 --pixels --pixel-size 32 --grayscale --episodes 50 --out cartpole.npz;
    fernn-rl collect --env dynamic-block-world --policy biased-walk --episodes 100 --out blocks.npz."""
    from fernn.agents.collect import collect_file
    from fernn.agents.progress import counted_progress

    env_id = resolve_env(env)
    kwargs = parse_json_object("--env-kwargs", env_kwargs)
    frame_size = pixel_size_flag(pixel_size, frame_size)
    with counted_progress(console, f"collecting {env_id}", episodes, "episodes", quiet=quiet) as update:
        dataset = collect_file(env_id, out, episodes=episodes, max_steps=max_steps, env_kwargs=kwargs, policy=policy,
                               pixels=pixels, frame_size=frame_size, grayscale=grayscale, add_channel=add_channel,
                               obs_key=obs_key, moves=moves, seed=seed, progress=update)
    lengths = dataset.lengths
    console.print(f"wrote {out}: {len(lengths)} episodes of {int(lengths.min())}-{int(lengths.max())} steps, "
                  f"observations {dataset.observation_shape}, moves {'recorded' if dataset.has_moves else 'not recorded'}")
    if dataset.meta.get("cut_at") is not None:
        console.print(f"note: {env_id} sets no time limit, so episodes were cut at {dataset.meta['cut_at']:,} steps; "
                      "choose another length with --max-steps")
