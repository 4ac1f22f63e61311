"""One trainer for the supervised tasks: device choice, bf16 autocast on CUDA, gradient clipping, Adam,
seeded runs, optional ``torch.compile``, DDP under ``torchrun``, atomic checkpoints, exact resume,
Ctrl-C handling, metrics (CSV + TensorBoard) and progress display.

Resuming restores the model, the optimizer, the step, the running averages and every RNG (torch's
global generator, the CUDA generators and the training data generator), and drops any metrics row
written after the checkpoint, so a killed run continues exactly where its checkpoint left it.

Under DDP every rank generates the same global batch from the same seed and trains on its slice, so
a run on N processes sees the data of a single process with the same global batch.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from fernn._extras import install_line, installed
from fernn.allocator import keep_allocations_warm
from fernn.budget import check_fits
from fernn.devices import resolve_device
from fernn.relaxed import relaxation_penalty
from fernn.agents.supervised.config import TrainConfig
from fernn.agents.interrupts import StopOnFirstInterrupt
from fernn.agents.progress import progress_hook
from fernn.agents.runs import RunDir, check_inputs_outside, open_run, run_path, write_json
from fernn.agents.supervised.tasks import TEST_SEED, VAL_SEED, Task, make_task

BASE_COLUMNS = ["step", "epoch", "split", "loss", "lr", "sequences_per_s", "seconds"]


@dataclass
class TrainResult:
    """What :func:`train` did."""

    run_dir: RunDir
    step: int
    interrupted: bool = False
    best: float | None = None
    results: dict[str, Any] = field(default_factory=dict)


@dataclass
class Distributed:
    """The process group of a ``torchrun`` launch (world size 1 without one)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls, device_name: str) -> Distributed:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls()
        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() and device_name != "cpu" else "gloo"
            dist.init_process_group(backend)
        return cls(dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()


def monitor(task: Task) -> tuple[str, str]:
    """The validation metric that selects ``best.pt`` and whether lower is better."""
    return task.monitor


def train(config: TrainConfig, *, resume: bool = False, overwrite: bool = False,
          reporter: Callable[[dict[str, Any]], None] | None = None, evaluate_at_end: bool = True,
          stop_after: int | None = None, explicit: Iterable[str] = ()) -> TrainResult:
    """Train ``config`` in ``<out>/<name>``, evaluate the best checkpoint, and return what happened.

    Args:
        config: the run.
        resume: continue the run stored in the directory from ``checkpoints/last.pt``.
        overwrite: delete an existing run directory first.
        reporter: called on the main rank with a dict per logged row (progress display).
        evaluate_at_end: run :func:`fernn.agents.supervised.evaluation.evaluate` on ``best.pt`` when training ends.
        stop_after: stop (as if interrupted, with a checkpoint) after this many steps in this call.
        explicit: the config fields the caller set on purpose (the CLI's flags): with ``resume``, any of them
            that differs from the stored run is refused (``epochs`` may be raised to train longer).

    The run directory is created only once the task's data and model are set up (:func:`fernn.agents.runs.open_run`),
    and the run's lock is held while it trains.

    Raises:
        fernn.agents.runs.RunExistsError: the directory holds a run and neither flag was given.
        fernn.agents.runs.RunLockedError: another process is training the run.
    """
    group = Distributed.from_environment(config.device)
    device = resolve_device(config.device, group.local_rank)
    if device.type == "cpu":
        keep_allocations_warm()
    run = RunDir(run_path(config.out, config.name))
    check_inputs_outside(run.path, {"--data": config.data})
    with run.lock() if group.main else nullcontext():
        return _train_locked(run, config, group, device, resume=resume, overwrite=overwrite, reporter=reporter,
                             evaluate_at_end=evaluate_at_end, stop_after=stop_after, explicit=explicit)


@dataclass
class _Setup:
    """What a run needs before its directory is created: the task, its model and data, the optimizer."""

    config: TrainConfig
    task: Task
    model: nn.Module
    optimizer: torch.optim.Optimizer
    train_data: Any
    validation: Any


def _setup(values: dict[str, Any], device: torch.device) -> _Setup:
    task = make_task(TrainConfig.from_dict(values), device)
    config = task.config  # its unset sizes now chosen (for the task's data)
    check_fits(task.step_memory(), "the hidden states of one training step (batch x frames x velocities x "
               "channels x height x width, and their transports)",
               "lower --batch-size, --vmax, --hidden (or --group-order, --context, --predict)", device)
    torch.manual_seed(config.seed)
    model = task.build_model().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    train_data = task.dataset("train", config.seed)
    validation = task.dataset(task.validation_split, VAL_SEED)
    return _Setup(config, task, model, optimizer, train_data, validation)


def _train_locked(run: RunDir, config: TrainConfig, group: Distributed, device: torch.device, *, resume: bool,
                  overwrite: bool, reporter, evaluate_at_end: bool, stop_after: int | None,
                  explicit: Iterable[str]) -> TrainResult:
    if group.main:
        _, prepared = open_run(run, config.to_dict(), "supervised", resume=resume, overwrite=overwrite,
                               setup=lambda values: _setup(values, device), explicit=explicit, extend="epochs",
                               stored=lambda prepared: prepared.task.recorded_config())
    group.barrier()
    if not group.main:
        prepared = _setup(run.read_config(), device)  # what the main process wrote
    config, task, model, optimizer = prepared.config, prepared.task, prepared.model, prepared.optimizer
    train_data, validation = prepared.train_data, prepared.validation
    if config.batch_size % group.world_size:
        raise ValueError(f"batch_size {config.batch_size} must be divisible by the {group.world_size} DDP processes")
    metric_name, mode = monitor(task)
    columns = BASE_COLUMNS + task_columns(task)
    state = {"step": 0, "best": None, "window_loss": 0.0, "window_steps": 0, "window_extra": {}, "seconds": 0.0}
    rows = []
    if resume:
        checkpoint = run.load_checkpoint("last.pt", map_location=device)
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        state.update(checkpoint["state"])
        _restore_rngs(checkpoint["rngs"], train_data, device)
        rows = [r for r in run.read_metrics() if int(r["step"]) <= state["step"]]
    trained = _wrap(model, config, group, device)
    writer = _tensorboard(run) if group.main else None
    total = config.epochs * config.steps_per_epoch
    local_batch = config.batch_size // group.world_size
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and config.amp else nullcontext()
    # the seconds column counts training time across resumes: a resumed run starts from its checkpoint's clock
    started, steps_this_call, interrupted = time.perf_counter() - state["seconds"], 0, False

    def save_state(name: str) -> None:
        state["seconds"] = time.perf_counter() - started
        if group.main:
            run.save_checkpoint(name, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                       "state": dict(state), "rngs": _rngs(train_data, device),
                                       "config": config.to_dict(), "model_spec": task.model_spec()})

    def log(row: dict[str, Any]) -> None:
        rows.append(row)
        if group.main:
            run.write_metrics(rows, columns)
            for key, value in (row.items() if writer is not None else ()):
                if key not in ("step", "epoch", "split") and isinstance(value, (int, float)):
                    writer.add_scalar(f"{row['split']}/{key}", value, row["step"])
            if reporter is not None:
                reporter({**row, "total": total})

    if group.main and reporter is None:
        for note in task.notes:
            warnings.warn(note, stacklevel=2)
    if group.main and reporter is not None:
        reporter({"split": "setup", "step": state["step"], "total": total, "task": task.describe(), "notes": task.notes,
                  "model": config.model, "parameters": sum(p.numel() for p in model.parameters()),
                  "hidden": config.hidden, "batch_size": config.batch_size,
                  "step_memory_mib": round(task.step_memory() / 2 ** 20, 1)})
    stop = StopOnFirstInterrupt()
    try:
        window_start = time.perf_counter()
        first_step = state["step"]
        while state["step"] < total:
            if (stop_after is not None and steps_this_call >= stop_after) or stop.requested:
                interrupted = True
                break
            step = state["step"]
            batch = train_data.sample_batch(config.batch_size)
            batch = {k: v[group.rank * local_batch:(group.rank + 1) * local_batch] for k, v in batch.items()}
            trained.train()
            with autocast:
                loss, extra = task.loss(trained, batch, step / total)
                if config.relaxed and config.relax_alpha > 0:  # fernn.relaxed: keep neighbouring velocities close
                    loss = loss + config.relax_alpha * relaxation_penalty(model)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            state["step"] = step + 1
            steps_this_call += 1
            state["window_loss"] += float(loss.detach())
            state["window_steps"] += 1
            for key, value in extra.items():
                state["window_extra"][key] = state["window_extra"].get(key, 0.0) + float(value)
            if state["step"] == first_step + 1 and group.main and reporter is not None:
                seconds = time.perf_counter() - window_start
                reporter({"split": "first-step", "step": state["step"], "total": total, "seconds": round(seconds, 3),
                          "estimated_minutes": round(seconds * (total - first_step) / 60, 1)})
            if state["step"] % config.log_every == 0 or state["step"] == total:
                elapsed = time.perf_counter() - window_start
                count = state["window_steps"]
                log({"step": state["step"], "epoch": (state["step"] - 1) // config.steps_per_epoch + 1,
                     "split": "train", "loss": state["window_loss"] / count, "lr": optimizer.param_groups[0]["lr"],
                     "sequences_per_s": count * config.batch_size / max(elapsed, 1e-9),
                     "seconds": time.perf_counter() - started,
                     **{k: v / count for k, v in state["window_extra"].items()}})
                state.update(window_loss=0.0, window_steps=0, window_extra={})
                window_start = time.perf_counter()
            if state["step"] % config.steps_per_epoch == 0:
                metrics = _validate(task, model, validation, config, group)
                value = metrics[metric_name]
                improved = state["best"] is None or (value < state["best"] if mode == "min" else value > state["best"])
                if improved:
                    state["best"] = value
                log({"step": state["step"], "epoch": state["step"] // config.steps_per_epoch, "split": "val",
                     "loss": metrics.get("val_loss", metrics.get("val_mse")), **metrics,
                     "seconds": time.perf_counter() - started})
                if improved:
                    save_state("best.pt")
                save_state("last.pt")
            elif state["step"] % config.checkpoint_every == 0:
                save_state("last.pt")
    except KeyboardInterrupt:  # a second Ctrl-C, or one outside the main thread's handler
        interrupted = True
    finally:
        stop.restore()
    if interrupted:
        save_state("last.pt")
    result = TrainResult(run, state["step"], interrupted, state["best"])
    if writer is not None:
        writer.close()
    if group.world_size > 1:
        result.results["ddp"] = _check_ranks_agree(model, group)
    if group.main and not interrupted and evaluate_at_end:
        from fernn.agents.supervised.evaluation import evaluate

        best = run.load_checkpoint("best.pt" if (run.checkpoints / "best.pt").is_file() else "last.pt", device)
        model.load_state_dict(best["model"])
        counter = None if reporter is None else \
            (lambda done, total: reporter({"split": "evaluation", "done": done, "total": total}))
        with progress_hook(counter):
            result.results.update(evaluate(task, model, run, seed=TEST_SEED))
        result.results.update({"config": task.recorded_config(), "steps": state["step"], "best_" + metric_name: state["best"],
                               "splits": task.split_record()})
        write_json(run.path / "results.json", result.results)
    group.barrier()
    return result


def task_columns(task: Task) -> list[str]:
    return list(task.columns)


def _validate(task: Task, model: nn.Module, dataset, config: TrainConfig, group: Distributed) -> dict[str, float]:
    model.eval()
    dataset.generator.manual_seed(VAL_SEED)
    metrics = task.validate(model, dataset, config.val_batches)
    model.train()
    return metrics


def _wrap(model: nn.Module, config: TrainConfig, group: Distributed, device: torch.device) -> nn.Module:
    wrapped = torch.compile(model) if config.compile else model
    if group.world_size > 1:
        ids = [device.index] if device.type == "cuda" else None
        wrapped = nn.parallel.DistributedDataParallel(wrapped, device_ids=ids)
    return wrapped


def _tensorboard(run: RunDir):
    """A TensorBoard writer in the run directory, or ``None`` (with a warning) without the package."""
    if not installed("tensorboard"):
        warnings.warn(f"TensorBoard logs skipped (tensorboard missing): {install_line('rl')}", stacklevel=2)
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(run.path / "tensorboard"))


def _rngs(data, device: torch.device) -> dict[str, Any]:
    states = {"torch": torch.get_rng_state(), "data": data.generator.get_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def _restore_rngs(states: dict[str, Any], data, device: torch.device) -> None:
    torch.set_rng_state(states["torch"].cpu())
    data.generator.set_state(states["data"].cpu())
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"].cpu(), device)


def _check_ranks_agree(model: nn.Module, group: Distributed) -> dict[str, Any]:
    """Largest difference between this rank's parameters and rank 0's (all ranks take part)."""
    flat = torch.cat([p.detach().reshape(-1).float().cpu() for p in model.parameters()])
    reference = flat.clone()
    dist.broadcast(reference, src=0)
    difference = (flat - reference).abs().max()
    dist.all_reduce(difference, op=dist.ReduceOp.MAX)
    return {"world_size": group.world_size, "max_parameter_difference_across_ranks": float(difference)}
