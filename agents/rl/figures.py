"""Reading an RL run's evaluations, its learning curve and an episode GIF."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fernn.agents.rl.config import EVAL_SEED
from fernn.agents.rl.models import load_policy
from fernn.agents.plots import optional
from fernn.io import atomic_write


def read_evaluations(path: Path) -> list[dict[str, float]]:
    """The rows of a run's ``eval.csv`` (``timesteps`` as an int; ``mean_return``, ``std_return``, ``seconds`` as
    floats, so that rewriting kept rows writes them unchanged); ``[]`` when the file does not exist yet."""
    import csv

    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return [{k: int(float(v)) if k == "timesteps" else float(v) for k, v in row.items()}
                for row in csv.DictReader(fh)]


def training_seconds(rows: list[dict[str, float]]) -> float:
    """Training wall-clock seconds by the last row of a run's ``eval.csv``. The ``seconds`` column counts on across
    resumes; in a file where it restarted at 0 after a resume, each restart is added to what came before."""
    total, last = 0.0, 0.0
    for row in rows:
        total += row["seconds"] - last if row["seconds"] >= last else row["seconds"]
        last = row["seconds"]
    return total


@optional
def bound_colour(name: str) -> str:
    """The colour of a reference return's line: random grey, oracle black, any other reference brown."""
    return {"random": "grey", "oracle": "black"}.get(name, "tab:brown")


def learning_curve(path: Path, curves: dict[str, list[list[dict[str, float]]] | list[dict[str, float]]],
                   bounds: dict[str, dict[str, float]], *, title: str) -> Path:
    """Mean return (± std across seeds, or across episodes for one seed) against environment steps,
    with the random and oracle returns as dashed lines."""
    from fernn.agents.plots import pyplot, save_figure

    plt = pyplot()

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
        axis.axhline(value["mean"], linestyle="--", color=bound_colour(name), linewidth=1)
        axis.text(axis.get_xlim()[0], value["mean"], f" {name}", va="bottom", fontsize=8)
    axis.set(xlabel="environment steps", ylabel="mean episode return", title=title)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return save_figure(figure, path)


def episode_gif(run_dir: Path, path: Path, *, seed: int = EVAL_SEED, max_steps: int = 100,
                env_kwargs: dict | None = None, side: int | None = None) -> Path:
    """A GIF of one deterministic episode of a trained RL run, rendered by the env (``rgb_array``: for
    MNIST World the whole world with the window drawn on it). ``env_kwargs`` are laid over the run's own
    (e.g. an unseen target velocity, a longer gap); ``side`` resizes the frames (nearest neighbour) to
    ``side`` pixels high."""
    from PIL import Image

    model, envs, _ = load_policy(run_dir, env_kwargs=env_kwargs, render=True)
    envs.seed(seed)
    obs, state, start, frames = envs.reset(), None, np.ones(1, bool), []
    for _ in range(max_steps):
        frame = Image.fromarray(envs.env_method("render")[0])
        if side is not None:
            frame = frame.resize((round(frame.width * side / frame.height), side), Image.NEAREST)
        frames.append(frame)
        action, state = model.predict(obs, state=state, episode_start=start, deterministic=True)
        obs, _, done, _ = envs.step(action)
        start = done
        if done[0]:
            break
    envs.close()
    atomic_write(path, lambda tmp: frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                                                  duration=125, loop=0))
    return path
