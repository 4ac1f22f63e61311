"""The stage-0 check of the CPU protocol: can FloWM-3D draw the blocks it sees at all?

    python experiments/flowm3d_stage0.py [--out runs/stage0] [--epochs 10] [--json experiments/results/flowm3d_stage0.json]

On the *static* block world (blocks do not move) at the CPU protocol's room and view size (8 cells, 32 px),
FloWM-3D is trained to predict the next view from the views before it (one step, teacher-forced: every context view
is a real one), and its error on the pixels of blocks in view is compared with the error of the room drawn
perfectly without its blocks (``painted_over``, from the ground truth). The check passes at a ratio of at most 0.3:
below it, the lift and readout draw blocks, and memory over many steps is what the four-model comparison of
``--preset flowm-3d-cpu`` tests; above it, the lift or readout is the bottleneck, to be fixed first. Runs resume
(``--resume`` per run): call it again after an interruption. The JSON keeps one entry per training budget.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

STATIC = ("DynamicBlockWorldStatic-v0", {"obs_size": 32, "room_size": 8})
TARGET = 0.3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/stage0"))
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--context", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--steps-per-epoch", type=int, default=80)
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--json", type=Path, default=Path("experiments/results/flowm3d_stage0.json"))
    args = parser.parse_args()

    from fernn.agents.collect import collect_file
    from fernn.agents.runs import RunDir, write_json
    from fernn.agents.supervised.config import TrainConfig
    from fernn.agents.supervised.trainer import train

    args.out.mkdir(parents=True, exist_ok=True)
    data = args.out / "static8.npz"
    if not data.is_file():
        collect_file(STATIC[0], data, episodes=args.episodes, max_steps=4 * args.context, policy="biased-walk",
                     env_kwargs=STATIC[1])
    config = TrainConfig.from_dict({
        "data": str(data), "model": "fernn-3d", "context": args.context, "predict": 1, "eval_horizons": [1],
        "hidden": args.hidden, "batch_size": 8, "epochs": args.epochs, "steps_per_epoch": args.steps_per_epoch,
        "lr": 2e-3, "teacher_forcing": 1.0, "out": str(args.out), "name": "fernn-3d-one-step", "device": "cpu"})
    run = args.out / "fernn-3d-one-step"
    if not (run / "results.json").is_file():  # a finished run is read, an interrupted one resumed
        train(config, resume=(run / "run.json").is_file())
    results = json.loads((run / "results.json").read_text())
    test = results["test"]
    ratio = test["mse_in_view"] / test["painted_over"]["in_view"]
    summary = {"env": STATIC[0], "env_kwargs": STATIC[1], "context": args.context, "hidden": args.hidden,
               "steps": results["steps"], "mse_in_view": test["mse_in_view"],
               "painted_over_in_view": test["painted_over"]["in_view"], "ratio": ratio, "target": TARGET,
               "passed": ratio <= TARGET, "training_seconds": max(float(row["seconds"]) for row in
                                                                   RunDir(run).read_metrics() if row.get("seconds"))}
    stored = json.loads(args.json.read_text()) if args.json.is_file() else {}
    runs = stored.get("runs", {})
    runs[f"{results['steps']} steps"] = summary  # one entry per training budget, the others kept
    write_json(args.json, {"runs": runs})
    print(f"in-view block pixels: MSE {test['mse_in_view']:.4f}, the room without blocks "
          f"{test['painted_over']['in_view']:.4f}: ratio {ratio:.2f} (target <= {TARGET}): "
          f"{'passed' if ratio <= TARGET else 'not passed'}")


if __name__ == "__main__":
    main()
