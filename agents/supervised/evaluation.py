"""The evaluations the papers report, written as JSON-ready dicts and PNG/GIF files in the run dir.

* prediction (Flowing / Rotating MNIST): test MSE per predicted step; length generalisation (rollouts
  of 2x and 4x the trained sequence length, e.g. 40 and 80 frames for 10 + 10); velocity
  generalisation (MSE for every velocity of a grid, or every angular velocity, all digits of a sequence
  moving with it; cells outside the training set are "unseen"); rollout strips (PNG) and GIFs.
* classification (KTH): accuracy, per-class accuracy, confusion matrix, accuracy per camera velocity.
* world model (MNIST World): rollout MSE per step, split into window pixels that were inside the last
  observed window (in view) and outside it (they must be remembered or inferred); length generalisation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from fernn.envs import KTH_ACTIONS
from fernn.envs.velocities import velocity_grid
from fernn.agents import plots
from fernn.agents.runs import RunDir
from fernn.agents.supervised.tasks import Task

EVALUATIONS = ("test", "length", "velocity", "rollout", "equivariance")


def evaluate(task: Task, model: torch.nn.Module, run: RunDir, *, seed: int,
             what: tuple[str, ...] = EVALUATIONS) -> dict[str, Any]:
    """Run the evaluations named in ``what`` for ``task``; files go to ``run.path``."""
    unknown = sorted(set(what) - set(EVALUATIONS))
    if unknown:
        raise ValueError(f"unknown evaluation(s) {', '.join(unknown)}; accepted: {', '.join(EVALUATIONS)}")
    model.eval()
    with torch.no_grad():
        results = task.evaluate(model, run, seed, tuple(w for w in what if w != "equivariance"))
        if "equivariance" in what:
            measured, figure = measure_equivariance(task, model, run, seed)
            if measured is not None:
                results["equivariance"] = measured
            if figure is not None:
                results.setdefault("files", []).append(str(figure.relative_to(run.path)))
        return results


def measure_equivariance(task: Task, model: torch.nn.Module, run: RunDir, seed: int) -> tuple[dict | None, Path | None]:
    """The model's equivariance error on test sequences (:func:`fernn.equivariance_error`, relative, averaged over
    the flow's elements next to zero) and, for a relaxed recurrence, its combination weights (values and a figure):
    ``(results or None for a model without velocity channels, the figure or None)``."""
    from fernn.equivariance import equivariance_summary

    found = task.equivariance_inputs(model, seed)
    if found is None:
        return None, None
    rnn, inputs = found
    result = {**equivariance_summary(rnn, inputs), "split": "test", "sequences": int(inputs.shape[0])}
    figure = None
    if rnn.relaxed:
        figure = plots.combination_weights(run.path / "combination_weights.png",
                                           np.asarray(result["combination_weights"]), rnn.flow.velocities.numpy(),
                                           title=f"Combination weights: {_name(task)}")
    return result, figure


def _per_step(predictions: torch.Tensor, targets: torch.Tensor) -> list[float]:
    return (predictions.float() - targets).pow(2).mean((0, 2, 3, 4)).tolist()


def _name(task: Task) -> str:
    return f"{task.config.model} on {task.config.env}"


def evaluate_prediction(task: Task, model, run: RunDir, seed: int, what) -> dict[str, Any]:
    """Next-frame prediction: test MSE per step, length and velocity generalisation, rollout strips."""
    c, results, files = task.config, {}, []
    count = c.eval_sequences
    if "test" in what:
        frames = task.dataset("test", seed).sample_batch(count)["frames"]
        per_step = _per_step(task.predict(model, frames, c.predict), frames[:, c.context:])
        one_step = _per_step(task.predict(model, frames, c.predict, teacher_forcing=1.0), frames[:, c.context:])
        results["test"] = {"mse": float(np.mean(per_step)), "mse_per_step": per_step,
                           "one_step_mse": float(np.mean(one_step)), "one_step_mse_per_step": one_step,
                           "sequences": count}
        files.append(plots.curves(run.path / "test_mse_per_step.png", {"rollout (free-running)": per_step,
                                                                       "one step (teacher-forced)": one_step},
                                  xlabel="predicted frame", ylabel="MSE", title=f"Test MSE per step: {_name(task)}"))
    if "length" in what or "rollout" in what:
        trained = c.context + c.predict
        lengths = {}
        for wanted in (2 * trained, 4 * trained):
            frames = task.dataset("test", seed, seq_len=wanted).sample_batch(count)["frames"]
            total = frames.shape[1]  # collected episodes may be shorter than asked
            if str(total) in lengths:
                continue
            predictions = task.predict(model, frames, total - c.context)
            per_step = _per_step(predictions, frames[:, c.context:])
            lengths[str(total)] = {"mse": float(np.mean(per_step)), "mse_per_step": per_step,
                                   "mse_within_trained_horizon": float(np.mean(per_step[:c.predict])),
                                   "mse_beyond_trained_horizon": float(np.mean(per_step[c.predict:]))
                                   if total > trained else None}
            if wanted == 2 * trained and "rollout" in what:
                files += _rollout_files(run, frames[:2], predictions[:2], c.context, _name(task))
        if "length" in what:
            results["length_generalization"] = lengths
            files.append(plots.curves(run.path / "length_generalization.png",
                                      {f"{k} frames": v["mse_per_step"] for k, v in lengths.items()},
                                      xlabel="predicted frame", ylabel="MSE", marks={"trained": c.predict},
                                      title=f"Length generalisation: {_name(task)}"))
    if "velocity" in what and task.velocity_grid:
        results["velocity_generalization"], new_files = _velocity_prediction(task, model, run, seed, count)
        files += new_files
    results["files"] = [str(f.relative_to(run.path)) for f in files if f is not None]
    return results


def _velocity_prediction(task: Task, model, run: RunDir, seed: int, count: int) -> tuple[dict, list]:
    c = task.config

    def mse(**velocity_set) -> tuple[float, float]:
        """Rollout and one-step MSE of sequences whose digits all move with ``velocity_set``."""
        frames = task.dataset("test", seed, **velocity_set).sample_batch(count)["frames"]
        targets = frames[:, c.context:]
        rollout = float(np.mean(_per_step(task.predict(model, frames, c.predict), targets)))
        return rollout, float(np.mean(_per_step(task.predict(model, frames, c.predict, 1.0), targets)))

    if task.angular:
        omegas = list(c.eval_angular_velocities)
        values, one_step = zip(*[mse(angular_velocities=[w]) for w in omegas])
        seen = [w in c.data_angular_velocities for w in omegas]
        path = plots.curves(run.path / "velocity_generalization.png", {"rollout": values, "one step": one_step}, x=omegas,
                            xlabel="angular velocity (deg/frame)", ylabel="MSE",
                            title=f"Velocity generalisation: {_name(task)}")
        summary = {"angular_velocities": omegas, "seen": seen}
    else:
        grid = velocity_grid(c.eval_vmax)
        values, one_step = zip(*[mse(velocities=[v]) for v in grid])
        seen = [max(abs(vx), abs(vy)) <= c.data_vmax for vx, vy in grid]
        side = 2 * c.eval_vmax + 1
        table = np.zeros((side, side))
        mask = np.zeros((side, side), bool)
        for (vx, vy), value, ok in zip(grid, values, seen):
            table[vy + c.eval_vmax, vx + c.eval_vmax], mask[vy + c.eval_vmax, vx + c.eval_vmax] = value, ok
        path = plots.velocity_heatmap(run.path / "velocity_generalization.png", table, c.eval_vmax, mask,
                                      title=f"Rollout MSE per velocity: {_name(task)}\n(red: unseen in training)",
                                      label="MSE")
        summary = {"velocities": grid, "seen": seen}
    summary["one_step_mse"] = list(one_step)
    for label, series in (("mse", values), ("one_step_mse", one_step)):
        seen_values = [v for v, ok in zip(series, seen) if ok]
        unseen_values = [v for v, ok in zip(series, seen) if not ok]
        summary[f"{label}_seen"] = float(np.mean(seen_values)) if seen_values else None
        summary[f"{label}_unseen"] = float(np.mean(unseen_values)) if unseen_values else None
    summary["mse"] = list(values)
    return summary, [path]


def _rollout_files(run: RunDir, truth: torch.Tensor, predictions: torch.Tensor, context: int, name: str) -> list:
    files = []
    for i in range(len(truth)):
        rows = {"ground truth": truth[i, context:, 0].cpu().numpy(), "prediction": predictions[i, :, 0].float().cpu().numpy()}
        files.append(plots.strip(run.path / f"rollout_{i}.png", rows, title=f"{name}: rollout after {context} frames"))
        files.append(plots.gif(run.path / f"rollout_{i}.gif", rows, observed=0))
    return files


def evaluate_classification(task: Task, model, run: RunDir, seed: int, what) -> dict[str, Any]:
    """KTH: accuracy, per-class accuracy, confusion matrix, accuracy per camera velocity."""
    c, results, files = task.config, {}, []
    count = c.eval_sequences

    def predict(dataset) -> tuple[np.ndarray, np.ndarray]:
        batch = dataset.sample_batch(count)
        return model(batch["frames"]).argmax(1).cpu().numpy(), batch["labels"].cpu().numpy()

    if "test" in what:
        predicted, labels = predict(task.dataset("test", seed))
        matrix = np.zeros((6, 6), np.int64)
        np.add.at(matrix, (labels, predicted), 1)
        per_class = {name: float(matrix[i, i] / matrix[i].sum()) if matrix[i].sum() else None
                     for i, name in enumerate(KTH_ACTIONS)}
        results["test"] = {"accuracy": float((predicted == labels).mean()), "per_class_accuracy": per_class,
                           "confusion_matrix": matrix.tolist(), "clips": count}
        files.append(plots.confusion(run.path / "confusion_matrix.png", matrix, KTH_ACTIONS,
                                     title=f"KTH test confusion: {c.model}"))
    if "velocity" in what:
        grid = velocity_grid(c.eval_vmax)
        accuracy = []
        for velocity in grid:
            predicted, labels = predict(task.dataset("test", seed, velocities=[velocity]))
            accuracy.append(float((predicted == labels).mean()))
        seen = [max(abs(vx), abs(vy)) <= c.data_vmax for vx, vy in grid]
        side = 2 * c.eval_vmax + 1
        table, mask = np.zeros((side, side)), np.zeros((side, side), bool)
        for (vx, vy), value, ok in zip(grid, accuracy, seen):
            table[vy + c.eval_vmax, vx + c.eval_vmax], mask[vy + c.eval_vmax, vx + c.eval_vmax] = value, ok
        files.append(plots.velocity_heatmap(run.path / "velocity_generalization.png", table, c.eval_vmax, mask,
                                            title=f"Accuracy per camera velocity: {c.model}", label="accuracy",
                                            fmt=".2f"))
        results["velocity_generalization"] = {"velocities": grid, "accuracy": accuracy, "seen": seen}
    results["files"] = [str(f.relative_to(run.path)) for f in files if f is not None]
    return results


def fov_masks(positions: torch.Tensor, context: int, window: int | tuple[int, int],
              world: int | tuple[int, int]) -> torch.Tensor:
    """Pixels of each predicted window that lay inside the last observed window (in view).

    Args:
        positions: ``(B, T, 2)`` window top-lefts ``(x, y)``.
        window, world: ``(h, w)`` and ``(H, W)`` (or one side each).

    Returns:
        Bool ``(B, T - context, h, w)``.
    """
    (height, width), (world_h, world_w) = [(v, v) if isinstance(v, int) else tuple(v) for v in (window, world)]
    last = positions[:, context - 1, None, :]
    future = positions[:, context:]
    cols = (future[..., 0, None] + torch.arange(width, device=positions.device) - last[..., 0, None]) % world_w < width
    rows = (future[..., 1, None] + torch.arange(height, device=positions.device) - last[..., 1, None]) % world_h < height
    return rows[..., :, None] & cols[..., None, :]


def evaluate_world_model(task: Task, model, run: RunDir, seed: int, what) -> dict[str, Any]:
    """The 2-D world model: rollout MSE in and out of view, length generalisation, rollout strips."""
    c, results, files = task.config, {}, []
    count = c.eval_sequences
    if "test" in what:
        batch = task.dataset("test", seed).sample_batch(count)
        predictions = task.predict(model, batch).float()
        targets = batch["frames"][:, c.context:]
        error = (predictions - targets).pow(2)[:, :, 0]
        inside = fov_masks(batch["positions"], c.context, task.window_hw, task.world_hw)
        per_step = error.mean((0, 2, 3)).tolist()
        in_view = ((error * inside).sum((0, 2, 3)) / inside.sum((0, 2, 3)).clamp_min(1)).tolist()
        out_view = ((error * ~inside).sum((0, 2, 3)) / (~inside).sum((0, 2, 3)).clamp_min(1)).tolist()
        results["test"] = {"mse": float(np.mean(per_step)), "mse_per_step": per_step,
                           "mse_in_view_per_step": in_view, "mse_out_of_view_per_step": out_view,
                           "mse_in_view": float((error * inside).sum() / inside.sum().clamp_min(1)),
                           "mse_out_of_view": float((error * ~inside).sum() / (~inside).sum().clamp_min(1)),
                           "sequences": count}
        files.append(plots.curves(run.path / "rollout_mse.png", {"all pixels": per_step, "in view": in_view,
                                                                  "out of view": out_view},
                                  xlabel="predicted frame", ylabel="MSE", title=f"Rollout MSE: {_name(task)}"))
    if "length" in what or "rollout" in what:
        batch = task.dataset("test", seed, seq_len=c.context + 2 * c.predict).sample_batch(count)
        total = batch["frames"].shape[1]  # collected episodes may be shorter than asked
        predictions = task.predict(model, batch).float()
        per_step = _per_step(predictions, batch["frames"][:, c.context:])
        if "length" in what:
            results["length_generalization"] = {str(total): {
                "mse": float(np.mean(per_step)), "mse_per_step": per_step,
                "mse_within_trained_horizon": float(np.mean(per_step[:c.predict])),
                "mse_beyond_trained_horizon": float(np.mean(per_step[c.predict:])) if total > c.context + c.predict
                else None}}
            files.append(plots.curves(run.path / "length_generalization.png", {f"{total} frames": per_step},
                                      xlabel="predicted frame", ylabel="MSE", marks={"trained": c.predict},
                                      title=f"Length generalisation: {_name(task)}"))
        if "rollout" in what:
            files += _rollout_files(run, batch["frames"][:2], predictions[:2], c.context, _name(task))
    results["files"] = [str(f.relative_to(run.path)) for f in files if f is not None]
    return results


def evaluate_saved_run(run_dir: str | Path, *, what: tuple[str, ...] = EVALUATIONS, checkpoint: str = "best",
                       device: str = "auto") -> dict[str, Any]:
    """Rerun a saved supervised run's evaluations on its checkpoint and merge them into its ``results.json``.

    Args:
        run_dir: the run directory.
        what: evaluations to run (``test``, ``length``, ``velocity``, ``rollout``, ``equivariance``; those a task lacks
            are skipped).
        checkpoint: ``best`` or ``last``.
        device: where to evaluate.

    Raises:
        ValueError: bad arguments, or a config.json that is not one of a supervised run.
        FileNotFoundError, fernn.agents.runs.RunFileError: a missing or damaged file (checkpoint, results.json), or a
            checkpoint that does not hold the weights its config describes.
    """
    from fernn.devices import resolve_device
    from fernn.agents.runs import RunFileError
    from fernn.agents.supervised.config import TrainConfig
    from fernn.agents.supervised.tasks import TEST_SEED, make_task

    if checkpoint not in ("best", "last"):
        raise ValueError(f"checkpoint must be best or last; got {checkpoint!r}")
    unknown = sorted(set(what) - set(EVALUATIONS))
    if unknown or not what:
        raise ValueError(f"unknown evaluation(s) {', '.join(unknown) or '(none given)'}; accepted: {', '.join(EVALUATIONS)}")
    run = RunDir(run_dir)
    config = TrainConfig.from_dict(run.read_config(), str(run.config_path))
    target = resolve_device(device)
    if target.type == "cpu":
        from fernn.allocator import keep_allocations_warm

        keep_allocations_warm()  # every evaluation batch allocates the same large tensors: reuse them (page faults)
    task = make_task(config, target)
    available = [w for w in task.evaluations if w != "velocity" or task.velocity_grid]
    if not set(what) & set(available):
        raise ValueError(f"{', '.join(what)} does not apply to this run ({task.describe()}); its evaluations: "
                         f"{', '.join(available)}")
    model = task.build_model().to(target)
    payload = run.load_checkpoint(f"{checkpoint}.pt", target)
    weights = payload.get("model")
    if not isinstance(weights, dict):
        raise RunFileError(f"{run.checkpoints / (checkpoint + '.pt')} holds no model weights (a 'model' entry of "
                           "tensors); train the run again with --overwrite")
    try:
        model.load_state_dict(weights)
    except (RuntimeError, TypeError, KeyError) as error:
        raise RunFileError(f"{run.checkpoints / (checkpoint + '.pt')} does not hold the weights of the model its "
                           f"config.json describes: {str(error).splitlines()[0]}") from error
    splits = task.split_record()
    if checkpoint == "last":  # the last checkpoint: chosen by no validation
        splits["selection"] = {"checkpoint": "last", "split": None}
    results = {**evaluate(task, model, run, seed=TEST_SEED, what=tuple(what)), "splits": splits}
    run.merge_results(results)
    return results
