"""Draw the README's RL learning curves and table from ``runs/rl/<policy>-s<seed>/`` (see rl_curves.sh).

    python experiments/rl_learning_curves.py [--runs runs/rl] [--budget N] [--out docs/rl_learning_curves.png]

Every run is read from its ``eval.csv`` (finished or not) and cut at the common budget: ``--budget``, or by
default the most environment steps that every run has reached. With SB3's constant learning rate and clip
range (fernn-rl's defaults) the first N steps of a longer run are exactly a run with budget N. The
mean return over all evaluations (the area under the curve) measures sample efficiency.
Parameter counts come from ``experiments/results/bench_rl.json`` and the reference lines from ``experiments/results/track_bounds.json``
(``fernn-rl bench rl`` and ``fernn-rl bounds`` write them).
"""

import argparse
import json
from pathlib import Path

import numpy as np

from fernn.agents.rl import learning_curve, read_evaluations

POLICIES = {"fernn": "FERNN RecurrentPPO", "cnn-lstm": "CNN-LSTM RecurrentPPO", "frame-stack-cnn": "frame-stack PPO"}


def first_step_reaching(curve: list[dict[str, float]], level: float) -> float:
    return next((row["timesteps"] for row in curve if row["mean_return"] >= level), float("nan"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/rl"))
    parser.add_argument("--budget", type=int, default=None, help="environment steps per run (default: common max)")
    parser.add_argument("--bounds", type=Path, default=Path("experiments/results/track_bounds.json"))
    parser.add_argument("--bench", type=Path, default=Path("experiments/results/bench_rl.json"))
    parser.add_argument("--out", type=Path, default=Path("docs/rl_learning_curves.png"))
    args = parser.parse_args()
    runs = {policy: {p.name: curve for p in sorted(args.runs.glob(f"{policy}-s*"))
                     if (curve := read_evaluations(p / "eval.csv"))} for policy in POLICIES}
    runs = {policy: curves for policy, curves in runs.items() if curves}
    if not runs:
        raise SystemExit(f"no runs with an eval.csv under {args.runs}")
    reached = min(curve[-1]["timesteps"] for curves in runs.values() for curve in curves.values())
    budget = args.budget or int(reached)
    if budget > reached:
        raise SystemExit(f"--budget {budget} is beyond what every run has reached ({reached:.0f} steps)")
    bounds = json.loads(args.bounds.read_text())
    halfway = (bounds["random"]["mean"] + bounds["oracle"]["mean"]) / 2
    parameters = {}
    if args.bench.is_file():
        parameters = {row["policy"]: row["parameters"] for row in json.loads(args.bench.read_text())["rows"]}
    curves, rows = {}, []
    for policy, by_seed in runs.items():
        cut = {name: [row for row in curve if row["timesteps"] <= budget] for name, curve in by_seed.items()}
        curves[POLICIES[policy]] = list(cut.values())
        finals = [curve[-1]["mean_return"] for curve in cut.values()]
        reach = [first_step_reaching(curve, halfway) for curve in cut.values()]
        reach_text = ", ".join("never" if np.isnan(r) else f"{r / 1000:.0f}k" for r in reach)
        area = [np.mean([row["mean_return"] for row in curve]) for curve in cut.values()]
        rows.append(f"| {POLICIES[policy]} | {len(cut)} | {np.mean(finals):.2f} ± {np.std(finals):.2f} | "
                    f"{', '.join(f'{f:.1f}' for f in finals)} | {np.mean(area):.2f} ± {np.std(area):.2f} | "
                    f"{reach_text} | "
                    f"{parameters.get(policy, float('nan')):,} |")
    learning_curve(args.out, curves, bounds, title=f"MNISTWorldTrack-v0, {budget:,} env steps per run")
    print(f"budget: {budget:,} environment steps per run; halfway from random to oracle: {halfway:.2f}")
    print("| policy | seeds | final mean return (mean ± std over seeds) | per seed | mean over all evaluations "
          "(area under the curve) | first eval ≥ halfway, per seed | parameters |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
