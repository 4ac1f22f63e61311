"""How much of a first-person protocol's prediction tests memory: the shares of the predicted block pixels that are
in view at the end of the context, *memory* (seen earlier, out of view at its end) and *never seen* in the context,
measured from a trajectory file's ground truth (no model involved).

    python experiments/flowm3d_protocol.py --data blocks8.npz --context 32 --horizons 32,96 --name flowm-3d-cpu \
        [--json experiments/results/flowm3d_protocol.json]

With ``--json`` the measurement is stored under ``--name`` in the file (other protocols' entries kept).

A protocol tests memory when, at the trained horizon, *memory* holds most of the predicted block pixels and *never
seen* few of them: no model can draw a block it never saw, and a model that only draws what is in view scores the
same as one that remembers when nothing was out of view.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def shares(data: Path, context: int, horizons: list[int], sequences: int, seed: int = 20_011) -> dict:
    """``{horizon: {"in_view", "memory", "never_seen", "block_pixels"}}`` over ``sequences`` windows of the file's
    held-out and training episodes alike (the split does not matter for a property of the data)."""
    from fernn.agents.supervised.config import TrainConfig
    from fernn.agents.supervised.evaluation_3d import BLOCK_CLASSES, view_masks
    from fernn.agents.supervised.tasks import make_task

    longest = max(horizons)
    task = make_task(TrainConfig.from_dict({"env": "trajectories", "data": str(data), "model": "fernn-3d",
                                            "context": context, "predict": min(horizons)}), torch.device("cpu"))
    task.data.file.windows(context + longest)
    task.data.file.generator.manual_seed(seed)
    batch = task.data.file.sample_batch(sequences)
    masks = view_masks(task, batch, context)
    result = {}
    for horizon in horizons:
        counts = {label: int(masks[label][:, :horizon].sum()) for label in BLOCK_CLASSES}
        total = sum(counts.values())
        result[str(horizon)] = {**{label: count / total if total else None for label, count in counts.items()},
                                "block_pixels": total}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a first-person trajectory file with ground truth")
    parser.add_argument("--context", type=int, required=True, help="views observed before prediction")
    parser.add_argument("--horizons", type=lambda s: [int(x) for x in s.split(",")], required=True,
                        help="predicted views, e.g. 32,96")
    parser.add_argument("--sequences", type=int, default=64, help="windows measured")
    parser.add_argument("--name", default="protocol", help="the protocol's name in --json")
    parser.add_argument("--json", type=Path, help="also store the shares in this file, under --name")
    args = parser.parse_args()
    measured = shares(args.data, args.context, args.horizons, args.sequences)
    for horizon, row in measured.items():
        print(f"{args.context} + {horizon}: in view {100 * row['in_view']:.1f}%, memory {100 * row['memory']:.1f}%, "
              f"never seen {100 * row['never_seen']:.1f}% of {row['block_pixels']:,} block pixels")
    if args.json:
        from fernn.agents.runs import write_json
        from fernn.envs import TrajectoryDataset

        meta = TrajectoryDataset.load(args.data, window=1).meta
        stored = json.loads(args.json.read_text()) if args.json.is_file() else {"protocols": {}}
        stored["protocols"][args.name] = {"env": meta.get("env_id"), "env_kwargs": meta.get("env_kwargs"),
                                          "policy": meta.get("policy"), "context": args.context,
                                          "sequences": args.sequences, "shares": measured}
        write_json(args.json, stored)


if __name__ == "__main__":
    main()
