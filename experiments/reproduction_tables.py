"""Print the README's reproduction tables from ``runs/repro/*/results.json`` (see reproduce_cpu.sh).

    python experiments/reproduction_tables.py [--runs runs/repro] [--json experiments/results/reproduction.json]
"""

import argparse
import json
from pathlib import Path

ROWS = {
    "Flowing MNIST (translation)": [("G-RNN", "translation-grnn"), ("G-RNN+ (V = 25, learned)", "translation-grnn-plus"),
                                    ("FERNN-V1", "translation-fernn-v1"), ("FERNN-V2", "translation-fernn-v2")],
    "Rotating MNIST": [("G-RNN", "rotation-grnn"), ("FERNN-V4^R", "rotation-fernn-v4r")],
    "MNIST World": [("FloWM-V2", "world-flowm-v2"), ("FloWM-V0 (no velocity channels)", "world-flowm-v0"),
                    ("FloWM-V2, no self-motion", "world-no-self-motion"), ("action-concat", "world-action-concat")],
    "KTH with camera motion (synthetic stand-in)": [("3D-CNN", "kth-3dcnn"), ("G-RNN", "kth-grnn"),
                                                    ("G-RNN+ (V = 25, learned)", "kth-grnn-plus"),
                                                    ("FERNN-V1", "kth-fernn-v1"), ("FERNN-V2", "kth-fernn-v2")],
}


def cell(value, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def prediction_row(label: str, r: dict) -> str:
    v, lengths = r["velocity_generalization"], r["length_generalization"]
    long = " | ".join(cell(lengths[k]["mse"]) for k in sorted(lengths, key=int))
    return (f"| {label} | {cell(v['mse_seen'])} | {cell(v['mse_unseen'])} | {cell(v['one_step_mse_seen'])} | "
            f"{cell(v['one_step_mse_unseen'])} | {long} |")


def world_row(label: str, r: dict) -> str:
    t, lengths = r["test"], r["length_generalization"]
    long = " | ".join(cell(v["mse"]) for v in lengths.values())
    return f"| {label} | {cell(t['mse'])} | {cell(t['mse_in_view'])} | {cell(t['mse_out_of_view'])} | {long} |"


def blank_world_row(config: dict) -> str:
    """The MSE of predicting an empty window for the same test sequences: the floor a world model must beat."""
    import torch

    from fernn.agents.supervised.config import TrainConfig
    from fernn.agents.supervised.tasks import TEST_SEED, make_task

    task = make_task(TrainConfig.from_dict(config), torch.device("cpu"))
    frames = task.dataset("test", TEST_SEED).sample_batch(config["eval_sequences"])["frames"]
    return f"| (predict an empty window) | {float(frames[:, config['context']:].pow(2).mean()):.4f} | | | |"


def kth_row(label: str, r: dict) -> str:
    v = r["velocity_generalization"]
    return (f"| {label} | {cell(r['test']['accuracy'], 3)} | {cell(min(v['accuracy']), 3)} | "
            f"{cell(max(v['accuracy']), 3)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/repro"))
    parser.add_argument("--json", type=Path, default=None, help="also write every run's results.json into one file")
    args = parser.parse_args()
    collected = {}
    for title, rows in ROWS.items():
        print(f"\n{title}\n")
        if title.startswith("MNIST World"):
            print("| model | rollout MSE | in view | out of view | 2x length |\n|---|---|---|---|---|")
        elif title.startswith("KTH"):
            print("| model | test accuracy | worst camera velocity | best camera velocity |\n|---|---|---|---|")
        else:
            print("| model | rollout MSE seen | rollout MSE unseen | one-step seen | one-step unseen | 2x length | 4x length |"
                  "\n|---|---|---|---|---|---|---|")
        for label, name in rows:
            path = args.runs / name / "results.json"
            if not path.is_file():
                print(f"| {label} | (not run) |")
                continue
            r = json.loads(path.read_text())
            collected[name] = r
            if title.startswith("MNIST World") and name == rows[0][1]:
                print(blank_world_row(r["config"]))
            row = world_row if title.startswith("MNIST World") else kth_row if title.startswith("KTH") else prediction_row
            print(row(label, r))

    if args.json is not None:
        from fernn.agents.runs import write_json

        write_json(args.json, collected)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
