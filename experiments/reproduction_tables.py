"""The reproduction tables of docs/reproduction.md, from ``runs/repro/*/results.json`` (see reproduce_cpu.sh).

    python experiments/reproduction_tables.py [--runs runs/repro] [--json experiments/results/reproduction.json]

``--json`` keeps every run's ``results.json`` in one file, with the MNIST World floor (the MSE of predicting an
empty window for the same test sequences); :func:`tables` renders the page's tables from that file alone
(``experiments/doc_tables.py`` checks them). The best value of each column is in bold.
"""

import argparse
import json
from pathlib import Path

#: table -> (label, run) rows, in the page's order
ROWS = {
    "translation": [("G-RNN", "translation-grnn"), ("G-RNN+ (V = 25, learned kernels)", "translation-grnn-plus"),
                    ("FERNN-V1 (`\\|v\\| <= 1`, 9 channels)", "translation-fernn-v1"),
                    ("FERNN-V2 (`\\|v\\| <= 2`, 25 channels)", "translation-fernn-v2")],
    "rotation": [("G-RNN (escnn, one `w = 0` channel)", "rotation-grnn"),
                 ("FERNN-V4^R (`w` = -40 ... 40 step 10)", "rotation-fernn-v4r")],
    "world": [("FloWM-V2 (velocity channels + self-motion)", "world-flowm-v2"),
              ("FloWM-V0 (no velocity channels)", "world-flowm-v0"),
              ("FloWM-V2, no self-motion equivariance", "world-no-self-motion"),
              ("action-concat (actions as input channels)", "world-action-concat")],
    "kth": [("3D-CNN", "kth-3dcnn"), ("G-RNN", "kth-grnn"), ("G-RNN+ (V = 25, learned)", "kth-grnn-plus"),
            ("FERNN-V1", "kth-fernn-v1"), ("FERNN-V2", "kth-fernn-v2")],
}
HEADERS = {
    "translation": "| model | rollout MSE seen | rollout MSE **unseen** | one-step seen | one-step unseen | 2× length | "
                   "4× length |",
    "world": "| model | rollout MSE | in view | out of view | 2× length |",
    "kth": "| model | test accuracy | worst camera velocity | best camera velocity |",
}
HEADERS["rotation"] = HEADERS["translation"]
FLOOR = "world-empty-window"


def _values(table: str, r: dict) -> list[float]:
    """One row's numbers, in the header's order."""
    if table == "world":
        return [r["test"]["mse"], r["test"]["mse_in_view"], r["test"]["mse_out_of_view"],
                *(v["mse"] for v in r["length_generalization"].values())]
    if table == "kth":
        accuracy = r["velocity_generalization"]["accuracy"]
        return [r["test"]["accuracy"], min(accuracy), max(accuracy)]
    v, lengths = r["velocity_generalization"], r["length_generalization"]
    return [v["mse_seen"], v["mse_unseen"], v["one_step_mse_seen"], v["one_step_mse_unseen"],
            *(lengths[k]["mse"] for k in sorted(lengths, key=int))]


def table(name: str, results: dict) -> str:
    """The markdown table ``name`` of :data:`ROWS` from the runs' results (the best of each column in bold)."""
    rows = [(label, _values(name, results[run])) for label, run in ROWS[name] if run in results]
    digits, best = (3, max) if name == "kth" else (4, min)
    bests = [best(values[i] for _, values in rows) for i in range(len(rows[0][1]))]
    lines = [HEADERS[name], "|" + "---|" * (HEADERS[name].count("|") - 1)]
    if name == "world" and FLOOR in results:
        lines.append(f"| (predict an empty window) | {results[FLOOR]['mse']:.4f} | | | |")
    for label, values in rows:
        cells = [f"**{value:.{digits}f}**" if value == top else f"{value:.{digits}f}"
                 for value, top in zip(values, bests)]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def empty_window_floor(config: dict) -> float:
    """The MSE of predicting an empty window for the world model's test sequences: the floor a model must beat."""
    import torch

    from fernn.agents.supervised.config import TrainConfig
    from fernn.agents.supervised.tasks import TEST_SEED, make_task

    task = make_task(TrainConfig.from_dict(config), torch.device("cpu"))
    frames = task.dataset("test", TEST_SEED).sample_batch(config["eval_sequences"])["frames"]
    return float(frames[:, config["context"]:].pow(2).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/repro"))
    parser.add_argument("--json", type=Path, default=None, help="also write every run's results.json into one file")
    args = parser.parse_args()
    collected = {run: json.loads((args.runs / run / "results.json").read_text())
                 for rows in ROWS.values() for _, run in rows if (args.runs / run / "results.json").is_file()}
    world = ROWS["world"][0][1]
    if world in collected:
        collected[FLOOR] = {"mse": empty_window_floor(collected[world]["config"])}
    for name in ROWS:
        print(f"\n{name}\n\n{table(name, collected)}")
    if args.json is not None:
        from fernn.agents.runs import write_json

        write_json(args.json, collected)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
