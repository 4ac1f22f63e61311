"""Tracking through occlusion at unseen velocities: the RL generalisation grid of docs/rl.md.

    python experiments/rl_occlusion.py run [--out runs/occlusion] [--jobs 2] [--timesteps 32768]
    python experiments/rl_occlusion.py report [--runs runs/occlusion ...] [--docs docs] [--results experiments/results]

``run`` trains every policy x seed on ``MNISTWorldTrackOccluded-v0`` with target velocities ``|vx|, |vy| <= 1``
(the window dark for 4 of every 10 steps), then evaluates each final policy on every cell of the grid: the
seen target velocities and the unseen ones with a component of 2 (``fernn.envs.unseen_velocities(1, 2)``), at
gap lengths 0 to 8 of every 10 steps. It is resumable: a finished run is not trained again, a killed one
resumes from its last checkpoint (``fernn-rl train --resume``), and finished evaluations (``grid.json`` in each
run) are kept. Runs go ``--jobs`` at a time, one thread each (``OMP_NUM_THREADS=1``).

``report`` reads the runs and writes, under ``--docs``, the table (markdown), the return-vs-gap figure, the
learning curves and a GIF per policy on an unseen velocity through a gap; under ``--results``,
``rl_occlusion.json`` (every cell, every seed) and a copy of each run's ``config.json``, ``eval.csv``,
``grid.json`` and ``results.json`` in ``rl_occlusion_runs/``. Those copies are runs the report reads again:
``--runs runs/occlusion experiments/results/rl_occlusion_runs`` reports new runs beside the kept ones (a run
in the first folder wins; a kept copy has no policy to draw a GIF from, so its GIF is kept).

``experiments/rl_occlusion_inside.py`` looks inside the FERNN policies' memory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from fernn.envs.tracking_studies import GAP_EVERY, STUDY_GAP

POLICIES = {  # name -> (RLConfig fields, label)
    "fernn": ({"algo": "recurrent-ppo", "policy": "fernn"}, "FERNN RecurrentPPO"),
    "fernn-self-motion": ({"algo": "recurrent-ppo", "policy": "fernn", "self_motion": True},
                          "FERNN RecurrentPPO, self-motion"),
    "fernn-self-motion-velocity-readout": ({"algo": "recurrent-ppo", "policy": "fernn", "self_motion": True,
                                            "readout": "velocities"},
                                           "FERNN RecurrentPPO, self-motion, velocity readout"),
    "fernn-self-motion-equivariant": ({"algo": "recurrent-ppo", "policy": "fernn", "self_motion": True,
                                       "actor": "equivariant"},
                                      "FERNN RecurrentPPO, self-motion, equivariant actor"),
    "cnn-lstm": ({"algo": "recurrent-ppo", "policy": "cnn-lstm"}, "CNN-LSTM RecurrentPPO"),
    "frame-stack-cnn": ({"algo": "ppo", "policy": "frame-stack-cnn"}, "frame-stack PPO"),
}
ENV = "MNISTWorldTrackOccluded-v0"
TRAIN_GAP = STUDY_GAP
GIF_GAP = 6
GIF_VELOCITY = [2, -1]  # one unseen target velocity for the GIFs
BOUNDS = ("random", "oracle", "best fixed move")


def velocity_sets() -> dict[str, list[list[int]]]:
    """The seen (training) and unseen target velocities, as JSON-able lists."""
    from fernn.envs.tracking_studies import target_velocities

    return {which: target_velocities(which) for which in ("seen", "unseen")}


def cell_name(velocities: str, gap: int) -> str:
    return f"{velocities}/gap={gap}"


def train_and_evaluate(name: str, seed: int, args: dict) -> dict:
    """One run: train (or resume, or skip when finished), then evaluate the grid cells not yet in grid.json."""
    import torch

    torch.set_num_threads(1)
    from fernn.agents.rl import RLConfig, evaluate_run, train_rl
    from fernn.agents.runs import RunDir, write_json

    fields, _ = POLICIES[name]
    sets = velocity_sets()
    config = RLConfig(env=ENV, env_kwargs={"target_velocities": sets["seen"], "gap_every": GAP_EVERY,
                                           "gap_length": TRAIN_GAP},
                      timesteps=args["timesteps"], n_envs=args["n_envs"], n_steps=args["n_steps"],
                      batch_size=args["batch_size"], eval_every=args["eval_every"],
                      eval_episodes=args["eval_episodes"], seed=seed, device="cpu", out=args["out"],
                      name=f"{name}-s{seed}", **fields)
    run = RunDir(Path(args["out"]) / config.name)
    started = time.perf_counter()
    finished = (run.path / "results.json").is_file() and \
        json.loads((run.path / "results.json").read_text())["config"]["timesteps"] >= config.timesteps
    if not finished:
        train_rl(config, resume=run.config_path.is_file(), explicit=("timesteps",),
                 bounds_episodes=args["eval_episodes"])
    grid_path = run.path / "grid.json"
    grid = json.loads(grid_path.read_text()) if grid_path.is_file() and finished else {}
    for velocities, targets in sets.items():
        for gap in args["gaps"]:
            key = cell_name(velocities, gap)
            if key in grid and grid[key]["episodes"] == args["grid_episodes"]:
                continue
            grid[key] = evaluate_run(run.path, episodes=args["grid_episodes"], device="cpu",
                                     env_kwargs={"target_velocities": targets, "gap_length": gap})
            write_json(grid_path, grid)  # atomically, after every cell: a kill loses one cell at most
    return {"run": config.name, "seconds": time.perf_counter() - started}


def run_grid(args: argparse.Namespace) -> None:
    from rich.progress import Progress

    os.environ["OMP_NUM_THREADS"] = "1"  # the workers inherit it: one thread each
    settings = {key: getattr(args, key) for key in ("timesteps", "n_envs", "n_steps", "batch_size", "eval_every",
                                                    "eval_episodes", "grid_episodes", "out", "gaps")}
    settings["out"] = str(args.out)
    tasks = [(name, seed) for seed in args.seeds for name in args.policies]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool, Progress(disable=args.quiet) as progress:
        bar = progress.add_task(f"{len(tasks)} runs, {args.jobs} at a time", total=len(tasks))
        futures = {pool.submit(train_and_evaluate, name, seed, settings): (name, seed) for name, seed in tasks}
        for future in as_completed(futures):
            done = future.result()
            progress.console.print(f"{done['run']}: trained and evaluated ({done['seconds']:.0f} s)")
            progress.advance(bar)
    print(f"grid complete under {args.out}; now: python experiments/rl_occlusion.py report --runs {args.out}")


def read_runs(roots: list[Path]) -> dict[str, dict[int, dict]]:
    """``{policy: {seed: {"path", "grid", "curve", "parameters", "seconds"}}}`` of the runs with a grid.json in
    the folders ``roots`` (a run found in an earlier folder wins)."""
    from fernn.agents.rl import read_evaluations, training_seconds

    runs: dict[str, dict[int, dict]] = {}
    for name in POLICIES:
        for path in (p for root in reversed(roots) for p in sorted(root.glob(f"{name}-s*"))):  # earlier roots last
            policy, _, seed = path.name.rpartition("-s")
            if policy != name or not seed.isdigit() or not (path / "grid.json").is_file():
                continue  # fernn-s* also matches fernn-self-motion-s*
            results = json.loads((path / "results.json").read_text())
            curve = read_evaluations(path / "eval.csv")
            runs.setdefault(name, {})[int(seed)] = {
                "run": path.name, "path": path, "grid": json.loads((path / "grid.json").read_text()), "curve": curve,
                "parameters": results["parameters"], "seconds": training_seconds(curve),
                "timesteps": results["config"]["timesteps"]}
    return runs


def grid_bounds(gaps: list[int], episodes: int) -> dict[str, dict[str, dict]]:
    """Random, oracle and best-fixed-move returns per velocity set (none looks at observations: the gap does not
    change them). The best fixed move is the one action that, repeated every step, scores best on these episodes:
    a policy at or below it has learned no more than to keep moving one way."""
    from fernn.agents.rl import RLConfig, policy_bounds

    return {velocities: policy_bounds(RLConfig(env=ENV, env_kwargs={"target_velocities": targets,
                                                                     "gap_length": gaps[0]}), episodes, fixed_moves=True)
            for velocities, targets in velocity_sets().items()}


def summarise(runs: dict[str, dict[int, dict]]) -> dict:
    """Mean ± std over seeds of every cell, the seen-to-unseen drop, parameters and wall-clock per policy."""
    summary = {}
    for name, by_seed in runs.items():
        cells = sorted(next(iter(by_seed.values()))["grid"])
        table = {}
        for cell in cells:
            per_seed = [by_seed[s]["grid"][cell]["mean_return"] for s in sorted(by_seed) if cell in by_seed[s]["grid"]]
            table[cell] = {"mean": float(np.mean(per_seed)), "std": float(np.std(per_seed)), "per_seed": per_seed}
        summary[name] = {"label": POLICIES[name][1], "runs": [by_seed[s]["run"] for s in sorted(by_seed)],
                         "seeds": sorted(by_seed), "cells": table,
                         "parameters": next(iter(by_seed.values()))["parameters"],
                         "seconds": [by_seed[s]["seconds"] for s in sorted(by_seed)],
                         "timesteps": next(iter(by_seed.values()))["timesteps"],
                         "final_train_eval": [by_seed[s]["curve"][-1]["mean_return"] for s in sorted(by_seed)]}
    return summary


def gaps_of(summary: dict) -> list[int]:
    cells = next(iter(summary.values()))["cells"]
    return sorted({int(cell.split("gap=")[1]) for cell in cells})


def markdown_table(summary: dict, bounds: dict) -> str:
    gaps = gaps_of(summary)
    header = ["policy"] + [f"{v} gap {g}" for v in ("seen", "unseen") for g in gaps]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for entry in summary.values():
        cells = [f"{entry['cells'][cell_name(v, g)]['mean']:.1f} ± {entry['cells'][cell_name(v, g)]['std']:.1f}"
                 for v in ("seen", "unseen") for g in gaps]
        lines.append(f"| {entry['label']} | " + " | ".join(cells) + " |")
    for bound in BOUNDS:
        cells = [f"{bounds[v][bound]['mean']:.1f}" for v in ("seen", "unseen") for _ in gaps]
        lines.append(f"| {bound} | " + " | ".join(cells) + " |")
    lines += ["", "| policy | seeds | drop seen → unseen, at the training gap | drop, mean over gaps | "
                  "training env, final eval | parameters | wall-clock per run (s) |", "|---|---|---|---|---|---|---|"]
    for entry in summary.values():
        drop = [entry["cells"][cell_name("seen", g)]["mean"] - entry["cells"][cell_name("unseen", g)]["mean"]
                for g in gaps]
        at_train = drop[gaps.index(TRAIN_GAP)] if TRAIN_GAP in gaps else float("nan")
        lines.append(f"| {entry['label']} | {len(entry['seeds'])} | {at_train:.1f} | {np.mean(drop):.1f} | "
                     f"{np.mean(entry['final_train_eval']):.1f} ± {np.std(entry['final_train_eval']):.1f} | "
                     f"{entry['parameters']:,} | {np.mean(entry['seconds']):.0f} ± {np.std(entry['seconds']):.0f} |")
    key_cells = [cell_name("seen", TRAIN_GAP), cell_name("unseen", 0), cell_name("unseen", TRAIN_GAP),
                 cell_name("unseen", gaps[-1])]
    key_cells = [cell for cell in key_cells if cell in next(iter(summary.values()))["cells"]]
    lines += ["", "| policy, every seed | " + " | ".join(key_cells) + " |", "|---|" + "---|" * len(key_cells)]
    for entry in summary.values():
        values = [" / ".join(f"{v:.1f}" for v in entry["cells"][cell]["per_seed"]) for cell in key_cells]
        lines.append(f"| {entry['label']} (seeds {', '.join(map(str, entry['seeds']))}) | " + " | ".join(values) + " |")
    return "\n".join(lines)


def gap_figure(path: Path, summary: dict, bounds: dict) -> None:
    from fernn.agents.plots import pyplot, save_figure
    from fernn.agents.rl.figures import bound_colour

    plt = pyplot()
    gaps = gaps_of(summary)
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for axis, velocities in zip(axes, ("seen", "unseen")):
        for entry in summary.values():
            mean = np.array([entry["cells"][cell_name(velocities, g)]["mean"] for g in gaps])
            std = np.array([entry["cells"][cell_name(velocities, g)]["std"] for g in gaps])
            axis.plot(gaps, mean, marker="o", label=entry["label"])
            axis.fill_between(gaps, mean - std, mean + std, alpha=0.15)
        for bound in BOUNDS:
            axis.axhline(bounds[velocities][bound]["mean"], linestyle="--", color=bound_colour(bound), linewidth=1)
            axis.text(gaps[0], bounds[velocities][bound]["mean"], f" {bound}", va="bottom", fontsize=8)
        axis.axvline(TRAIN_GAP, color="grey", linewidth=0.8, linestyle=":")
        axis.set(title=f"{velocities} target velocities", xlabel=f"gap length (dark steps of every {GAP_EVERY})")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("mean episode return (± std over seeds)")
    axes[0].legend(fontsize=8)
    save_figure(figure, path)


def report(args: argparse.Namespace) -> None:
    from fernn.agents.rl import episode_gif, learning_curve
    from fernn.agents.runs import write_json

    runs = read_runs(args.runs)
    if not runs:
        raise SystemExit(f"no finished runs (with a grid.json) under {', '.join(map(str, args.runs))}: run the grid first")
    summary = summarise(runs)
    bounds = grid_bounds(gaps_of(summary), args.bound_episodes)
    args.docs.mkdir(parents=True, exist_ok=True)
    write_json(args.results / "rl_occlusion.json", {"env": ENV, "train": {"gap_every": GAP_EVERY, "gap_length": TRAIN_GAP,
                                                                       "velocities": "seen"},
                                                 "velocity_sets": velocity_sets(), "bounds": bounds,
                                                 "policies": summary})
    gap_figure(args.docs / "rl_occlusion_gaps.png", summary, bounds)
    learning_curve(args.docs / "rl_occlusion_curves.png",
                   {POLICIES[name][1]: [runs[name][s]["curve"] for s in sorted(runs[name])] for name in runs},
                   bounds["seen"], title=f"{ENV} (gap {TRAIN_GAP} of {GAP_EVERY}, seen velocities)")
    if args.gifs:
        for name in runs:
            path = runs[name][min(runs[name])]["path"]
            if not (path / "model.zip").is_file():
                continue  # a kept copy: its GIF stays as it was drawn
            episode_gif(path, args.docs / f"rl_occlusion_{name}.gif", max_steps=50, side=200,
                        env_kwargs={"target_velocities": [GIF_VELOCITY], "gap_length": GIF_GAP})
    for name, by_seed in runs.items():  # the runs' configs and evaluations, kept beside the figures
        for entry in by_seed.values():
            kept = args.results / "rl_occlusion_runs" / entry["run"]
            if kept.resolve() == entry["path"].resolve():
                continue
            kept.mkdir(parents=True, exist_ok=True)
            for file in ("config.json", "eval.csv", "grid.json", "results.json"):
                shutil.copyfile(entry["path"] / file, kept / file)
    table = markdown_table(summary, bounds)
    (args.docs / "rl_occlusion_table.md").write_text(table + "\n")
    print(table)
    print(f"wrote {args.results}/rl_occlusion.json and rl_occlusion_runs/; {args.docs}/rl_occlusion_gaps.png, "
          f"rl_occlusion_curves.png, rl_occlusion_table.md" + (", rl_occlusion_<policy>.gif" if args.gifs else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="train and evaluate the grid (resumable)")
    run.add_argument("--out", type=Path, default=Path("runs/occlusion"))
    run.add_argument("--policies", type=lambda s: s.split(","), default=list(POLICIES))
    run.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 2])
    run.add_argument("--jobs", type=int, default=2, help="runs side by side, one thread each")
    run.add_argument("--timesteps", type=int, default=32_768, help="environment steps per run (32 x 8 x 128)")
    run.add_argument("--n-envs", type=int, default=8)
    run.add_argument("--n-steps", type=int, default=128)
    run.add_argument("--batch-size", type=int, default=256)
    run.add_argument("--eval-every", type=int, default=4096)
    run.add_argument("--eval-episodes", type=int, default=20, help="episodes per evaluation during training")
    run.add_argument("--grid-episodes", type=int, default=20, help="episodes per grid cell")
    run.add_argument("--gaps", type=lambda s: [int(x) for x in s.split(",")], default=[0, 2, 4, 6, 8])
    run.add_argument("--quiet", action="store_true")
    rep = commands.add_parser("report", help="tables, figures and GIFs from the runs")
    rep.add_argument("--runs", type=Path, nargs="+", default=[Path("runs/occlusion")])
    rep.add_argument("--docs", type=Path, default=Path("docs"))
    rep.add_argument("--results", type=Path, default=Path("experiments/results"))
    rep.add_argument("--bound-episodes", type=int, default=100)
    rep.add_argument("--no-gifs", dest="gifs", action="store_false")
    args = parser.parse_args()
    if args.command == "run":
        unknown = sorted(set(args.policies) - set(POLICIES))
        if unknown:
            parser.error(f"unknown policies {unknown}; choose from {', '.join(POLICIES)}")
        if any(not 0 <= g < GAP_EVERY for g in args.gaps):
            parser.error(f"--gaps must lie in [0, {GAP_EVERY - 1}] (dark steps of every {GAP_EVERY})")
        run_grid(args)
    else:
        report(args)


if __name__ == "__main__":
    main()
