"""``fernn-rl demo`` (``make demo``): the central result of the FERNN paper in minutes on a CPU.

G-RNN and FERNN-V2 (velocity grid radius 2, 25 velocity channels) are trained with the same data,
budget and seed on Flowing MNIST from the embedded digits, with training velocities restricted to
``|vx|, |vy| <= 1``; both are then tested on every velocity with ``|vx|, |vy| <= 2`` -- the 16 with a
component of 2 were never seen in training -- and on rollouts 2x and 4x longer than trained.

Objective: next-frame prediction (5 context + 5 predicted frames) with a teacher-forcing curriculum:
every predicted step is fed the true frame at first, then linearly fewer, down to free-running at the
end. Teacher forcing spends the short CPU budget on learning the dynamics (a feasibility run with
free-running training from the start collapsed to blank frames in the same time); ending free-running
trains the rollouts that are evaluated. Both one-step (teacher-forced) and free-running rollout errors
are reported. Both models: 600 Adam steps (lr 2e-3) of 16 sequences, hidden 16, decoder 2 layers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fernn.agents import plots
from fernn.agents.supervised.config import TrainConfig
from fernn.agents.runs import write_json
from fernn.agents.supervised.trainer import train

DEMO_MODELS = {"grnn": "G-RNN", "fernn": "FERNN-V2"}
DEMO_SETTINGS = dict(env="flowing-mnist", source="embedded", vmax=2, data_vmax=1, eval_vmax=2, hidden=16,
                     decoder_layers=2, context=5, predict=5, epochs=10, steps_per_epoch=60, batch_size=16, lr=2e-3,
                     teacher_forcing=1.0, teacher_forcing_end=0.0, eval_sequences=32, val_batches=2, seed=0,
                     device="cpu", log_every=10, checkpoint_every=60)


def demo_config(model: str, out: str, **overrides: Any) -> TrainConfig:
    """The demo run of ``model`` (``grnn`` or ``fernn``) in ``<out>/demo/<model>``."""
    return TrainConfig(model=model, name=f"demo/{model}", out=out, **{**DEMO_SETTINGS, **overrides})


def run_demo(out: str = "runs", *, reporter_for: Callable[[str], Any] | None = None,
             **overrides: Any) -> dict[str, Any]:
    """Train and evaluate both models; write ``<out>/demo/results.json`` and the comparison figures.

    Args:
        out: parent of the ``demo`` directory.
        reporter_for: ``reporter_for(title)`` gives the progress reporter of each run (see
            :func:`fernn.agents.supervised.trainer.train`).
        overrides: TrainConfig fields changed for both models (tests shrink the budget).

    Returns:
        The summary written to ``results.json``.
    """
    runs = {}
    for model, label in DEMO_MODELS.items():
        config = demo_config(model, out, **overrides)
        reporter = reporter_for(label) if reporter_for is not None else None
        runs[model] = train(config, overwrite=True, reporter=reporter)
    folder = Path(out) / "demo"
    from fernn.devices import describe_machine

    summary = {"models": {}, "settings": {**DEMO_SETTINGS, **overrides}, "hardware": describe_machine()}
    for model, result in runs.items():
        r = result.results
        velocity = r["velocity_generalization"]
        summary["models"][model] = {
            "label": DEMO_MODELS[model],
            "rollout_mse_seen": velocity["mse_seen"], "rollout_mse_unseen": velocity["mse_unseen"],
            "one_step_mse_seen": velocity["one_step_mse_seen"], "one_step_mse_unseen": velocity["one_step_mse_unseen"],
            "test_rollout_mse": r["test"]["mse"], "test_one_step_mse": r["test"]["one_step_mse"],
            "length_generalization_mse": {k: v["mse"] for k, v in r["length_generalization"].items()},
            "train_seconds": _train_seconds(result.run_dir.read_metrics()),
            "run_dir": str(result.run_dir.path),
        }
    fernn, grnn = summary["models"]["fernn"], summary["models"]["grnn"]
    summary["unseen_rollout_mse_ratio_fernn_over_grnn"] = fernn["rollout_mse_unseen"] / grnn["rollout_mse_unseen"]
    summary["unseen_one_step_mse_ratio_fernn_over_grnn"] = fernn["one_step_mse_unseen"] / grnn["one_step_mse_unseen"]
    summary["files"] = _figures(folder, runs)
    write_json(folder / "results.json", summary)
    return summary


def _train_seconds(rows: list[dict[str, str]]) -> float:
    seconds = [float(r["seconds"]) for r in rows if r.get("seconds")]
    return max(seconds) if seconds else 0.0


def _figures(folder: Path, runs: dict) -> list[str]:
    """Side-by-side velocity heat maps on one colour scale, and the rollout strips of both models."""
    if not plots.available():
        return []
    plt = plots.pyplot()

    velocity = {m: r.results["velocity_generalization"] for m, r in runs.items()}
    vmax = max(max(abs(vx), abs(vy)) for vx, vy in velocity["grnn"]["velocities"])
    side = 2 * vmax + 1
    figure, axes = plt.subplots(1, len(runs), figsize=(4.4 * len(runs), 4))
    top = max(max(v["mse"]) for v in velocity.values())
    for axis, (model, values) in zip(axes, velocity.items()):
        table = np.zeros((side, side))
        for (vx, vy), mse, seen in zip(values["velocities"], values["mse"], values["seen"]):
            table[vy + vmax, vx + vmax] = mse
            if not seen:
                axis.add_patch(plt.Rectangle((vx - 0.5, vy - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.5))
            axis.text(vx, vy, f"{mse:.3f}", ha="center", va="center", fontsize=7, color="white")
        image = axis.imshow(table, vmin=0, vmax=top, extent=(-vmax - 0.5, vmax + 0.5, vmax + 0.5, -vmax - 0.5))
        axis.set(title=f"{DEMO_MODELS[model]}: rollout MSE", xlabel="vx", ylabel="vy")
    figure.colorbar(image, ax=list(axes), label="MSE (red: velocities unseen in training)")
    files = [plots.save_figure(figure, folder / "velocity_heatmaps.png")]
    for model, result in runs.items():
        for name in ("rollout_0.png", "rollout_0.gif"):
            source = result.run_dir.path / name
            if source.is_file():
                files.append(source)
    return [str(f.relative_to(folder)) for f in files]
