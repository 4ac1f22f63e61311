"""Approximately flow-equivariant FERNNs measured where the flow's symmetry breaks and where it holds.

Three tasks, the same data and budget for every model of a task, several seeds:

* ``pong``: next-frame prediction on Pong frames (``examples/atari_pong.py``'s data: 48 random-policy episodes of
  30 steps, 40 x 40 grayscale), where the court is static, the paddle moves under control and the ball bounces;
* ``bounce``: Flowing MNIST whose digits bounce off the frame's borders (``boundary="bounce"``, 36-px frames,
  ``|v| <= 1``): a flow the world breaks at every wall;
* ``exact``: Flowing MNIST as the paper has it (a torus), trained on ``|v| <= 1`` and tested on ``|v| <= 2``: the
  flow holds exactly, and unseen velocities test whether relaxing costs the generalisation.

Models: G-RNN (one velocity channel), FERNN-V2 (25 velocity channels, exact sharing), and the relaxed FERNN-V2
(``relaxed=2`` filter banks) at two penalty weights; plus copying the last context frame. Every run is the preset
``approx-<task>-<model>`` (``fernn-rl train --preset ...``) with its seed: the demo's recipe (``fernn.agents.supervised.demo``: 600 Adam steps at lr 2e-3 of 16 sequences, 5 + 5 frames,
teacher forcing from 1 to 0, hidden 16, decoder 2 layers; Pong: 300 steps of 8, hidden 12, as
``docs/atari.md``), validated once at the end, so the evaluated checkpoint is the last one.

    python experiments/approximate_equivariance.py run --out runs/approx --seeds 0 1 --workers 2
    python experiments/approximate_equivariance.py report --out runs/approx

``run`` skips finished runs (their ``results.json``), so an interrupted grid resumes. ``report`` writes
``experiments/results/approximate_equivariance.json`` and the tables and figures of
``docs/approximate_equivariance.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results" / "approximate_equivariance.json"
DOCS = ROOT / "docs"

from fernn.agents.supervised.presets import APPROX_MODELS as MODELS, APPROX_RECIPE as RECIPE, \
    APPROX_TASKS as TASKS, PRESETS  # noqa: E402 - after the paths

LABELS = {"copy-last": "copy the last frame", "grnn": "G-RNN", "fernn-v2": "FERNN-V2",
          "relaxed-a1e-4": "relaxed FERNN-V2, alpha 1e-4", "relaxed-a1e-2": "relaxed FERNN-V2, alpha 1e-2",
          "relaxed-a1": "relaxed FERNN-V2, alpha 1"}
TASK_TITLES = {"pong": "Pong (ball bounces, paddle under control, static court)",
               "bounce": "Flowing MNIST, digits bouncing off the borders (36 px, |v| <= 1)",
               "exact": "Flowing MNIST on a torus, trained |v| <= 1, tested |v| <= 2"}


def pong_data(out: Path) -> Path:
    """The Pong trajectory file of ``examples/atari_pong.py`` (collected once)."""
    path = out / "pong.npz"
    if not path.is_file():
        sys.path.insert(0, str(ROOT / "examples"))
        from atari_pong import make_pong

        from fernn.envs import collect_episodes

        out.mkdir(parents=True, exist_ok=True)
        collect_episodes(make_pong(), 48, max_steps=30, seed=0).save(path)
    return path


def config_of(task: str, model: str, seed: int, out: Path):
    """The run of preset ``approx-<task>-<model>`` with ``seed`` (Pong: on ``<out>/pong.npz``)."""
    from fernn.agents import TrainConfig

    preset = f"approx-{task}-{model}"
    settings = {**PRESETS[preset].settings, "seed": seed, "out": str(out / task), "name": f"{model}-s{seed}",
                "preset": preset}
    if task == "pong":
        settings["data"] = str(out / "pong.npz")
    return TrainConfig(**settings)


def one_thread() -> None:
    """A worker's initialiser: one thread each, so that ``--workers`` runs share the cores without contention."""
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def run_one(task: str, model: str, seed: int, out: str) -> str:
    """Train and evaluate one run (skipped when its results exist)."""
    from fernn.agents import train

    config = config_of(task, model, seed, Path(out))
    if (Path(config.out) / config.name / "results.json").is_file():
        return f"{task}/{config.name}: done before"
    started = time.perf_counter()
    train(config, overwrite=True)
    return f"{task}/{config.name}: {time.perf_counter() - started:.0f} s"


def run(out: Path, seeds: list[int], tasks: list[str], workers: int, models: list[str] | None = None) -> None:
    if "pong" in tasks:
        pong_data(out)
    jobs = [(task, model, seed) for seed in seeds for task in tasks for model in models or MODELS]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=one_thread) as pool:
        for line in pool.map(run_one, *zip(*jobs), [str(out)] * len(jobs)):
            print(line, flush=True)


def copy_last(task: str, out: Path) -> dict[str, Any]:
    """MSE of repeating the last context frame, on the evaluation's test sequences (``TEST_SEED``)."""
    import torch

    from fernn.agents.supervised.tasks import TEST_SEED, make_task

    config = config_of(task, "fernn-v2", 0, out)
    work = make_task(config, torch.device("cpu"))
    frames = work.dataset("test", TEST_SEED).sample_batch(config.eval_sequences)["frames"]
    context = config.context
    repeated = frames[:, context - 1:context].expand_as(frames[:, context:])
    per_step = (repeated - frames[:, context:]).pow(2).mean((0, 2, 3, 4)).tolist()
    return {"rollout_mse": float(np.mean(per_step)), "rollout_mse_per_step": per_step}


def collect(out: Path) -> dict[str, Any]:
    """Every finished run's figures, by task, model and seed."""
    summary: dict[str, Any] = {"recipe": RECIPE, "tasks": {}, "command": "python experiments/approximate_equivariance.py "
                               "run --seeds 0 1 --workers 2 (and --tasks exact --models relaxed-a1)",
                               "hardware": "2-core x86 CPU, torch " + __import__("torch").__version__ + ", one thread a run"}
    for task in TASKS:
        rows: dict[str, Any] = {}
        for model in MODELS:
            seeds = {}
            for path in sorted((out / task).glob(f"{model}-s*/results.json")):
                result = json.loads(path.read_text())
                row = {"rollout_mse": result["test"]["mse"], "one_step_mse": result["test"]["one_step_mse"],
                       "rollout_mse_per_step": result["test"]["mse_per_step"],
                       "equivariance_error": result.get("equivariance", {}).get("relative_error"),
                       "seconds": _seconds(path.parent)}
                if "combination_weights" in result.get("equivariance", {}):
                    row["combination_weights"] = result["equivariance"]["combination_weights"]
                velocity = result.get("velocity_generalization", {})
                for key in ("mse_seen", "mse_unseen"):
                    if velocity.get(key) is not None:
                        row[f"velocity_{key}"] = velocity[key]
                seeds[path.parent.name.rsplit("-s", 1)[1]] = row
            if seeds:
                rows[model] = seeds
        if rows:
            summary["tasks"][task] = {"title": TASK_TITLES[task], "models": rows, "copy_last": copy_last(task, out)}
    return summary


def _seconds(run_dir: Path) -> float | None:
    import csv

    with open(run_dir / "metrics.csv") as handle:
        seconds = [float(row["seconds"]) for row in csv.DictReader(handle) if row.get("seconds")]
    return round(max(seconds), 1) if seconds else None


def mean_std(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3g} (1 seed)"
    return f"{np.mean(values):.3g} ± {np.std(values):.1g}"


def tables(summary: dict[str, Any]) -> str:
    """The markdown tables of the doc, from the stored summary (the docs test regenerates them)."""
    parts = []
    for task, data in summary["tasks"].items():
        unseen = task == "exact"
        header = "| model | rollout MSE | one-step MSE |" + (" unseen-velocity rollout MSE |" if unseen else "") + \
            " equivariance error | seeds |"
        lines = [f"**{data['title']}**", "", header, "|" + "---|" * (header.count("|") - 1)]
        lines.append(f"| {LABELS['copy-last']} | {data['copy_last']['rollout_mse']:.3g} | - |"
                     + (" - |" if unseen else "") + " - | - |")
        for model, seeds in data["models"].items():
            rows = list(seeds.values())
            cells = [mean_std([r["rollout_mse"] for r in rows]), mean_std([r["one_step_mse"] for r in rows])]
            if unseen:
                cells.append(mean_std([r.get("velocity_mse_unseen") for r in rows]))
            errors = [r["equivariance_error"] for r in rows if r["equivariance_error"] is not None]
            cells.append(f"{np.mean(errors):.1e}" if errors else "-")
            cells.append(str(len(rows)))
            lines.append(f"| {LABELS[model]} | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def figures(summary: dict[str, Any], docs: Path = DOCS) -> None:
    from fernn import TranslationFlow
    from fernn.agents import plots

    velocities = TranslationFlow(2).velocities.numpy()
    for task, data in summary["tasks"].items():
        for model in ("relaxed-a1e-4", "relaxed-a1e-2"):
            first = data["models"].get(model, {}).get("0")
            if first and "combination_weights" in first:
                plots.combination_weights(docs / f"approx_weights_{task}_{model}.png",
                                          np.asarray(first["combination_weights"]), velocities,
                                          title=f"{LABELS[model]}, {task}, seed 0")


def report(out: Path, results: Path = RESULTS, docs: Path = DOCS) -> None:
    """Write the summary JSON, the doc's table (``approximate_equivariance_table.md``) and the weight pictures."""
    summary = collect(out)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(summary, indent=1) + "\n")
    (docs / "approximate_equivariance_table.md").write_text(tables(summary))
    figures(summary, docs)
    print(tables(summary))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("run", "report"))
    parser.add_argument("--out", type=Path, default=Path("runs/approx"), help="Parent folder of the runs.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--models", nargs="+", default=None, choices=list(MODELS), help="A subset of the models.")
    parser.add_argument("--workers", type=int, default=2, help="Runs at once, one thread each.")
    parser.add_argument("--results", type=Path, default=RESULTS, help="Where report writes the summary JSON.")
    parser.add_argument("--docs", type=Path, default=DOCS, help="Where report writes the table and figures.")
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args.out, args.seeds, args.tasks, args.workers, args.models)
    else:
        report(args.out, args.results, args.docs)


if __name__ == "__main__":
    main()
