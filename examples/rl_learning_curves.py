"""Draw the README's RL learning curves and table from ``runs/rl/<policy>-s<seed>/`` (see rl_curves.sh).

    python examples/rl_learning_curves.py [--runs runs/rl] [--out docs/rl_learning_curves.png]
"""

import argparse
import json
from pathlib import Path

import numpy as np

from fernn.agents.rl import learning_curve

POLICIES = {"fernn": "FERNN RecurrentPPO", "cnn-lstm": "CNN-LSTM RecurrentPPO", "frame-stack-cnn": "frame-stack PPO"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/rl"))
    parser.add_argument("--out", type=Path, default=Path("docs/rl_learning_curves.png"))
    args = parser.parse_args()
    curves, bounds, rows = {}, None, []
    for policy, label in POLICIES.items():
        results = [json.loads(p.read_text()) for p in sorted(args.runs.glob(f"{policy}-s*/results.json"))]
        if not results:
            continue
        curves[label] = [r["evaluations"] for r in results]
        bounds = bounds or results[0]["bounds"]
        finals = [r["final"]["mean_return"] for r in results]
        rows.append(f"| {label} | {len(results)} | {results[0]['config']['timesteps']:,} | {np.mean(finals):.2f} ± "
                    f"{np.std(finals):.2f} | {', '.join(f'{f:.1f}' for f in finals)} | {results[0]['parameters']:,} |")
    learning_curve(args.out, curves, bounds, title="MNISTWorldTrack-v0")
    print("| policy | seeds | env steps | final mean return (mean ± std over seeds) | per seed | parameters |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    print("\nbounds (seeded eval episodes): " + ", ".join(f"{k} {v['mean']:.2f} ± {v['std']:.2f}" for k, v in bounds.items()))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
