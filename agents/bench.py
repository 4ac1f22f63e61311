"""``fernn-rl bench step``: the cost of the FERNN next-frame predictor's training step.

For each velocity grid radius it times, in one process and one run:

* ``fernn``: our predictor (fused shift+pad gather, channels-last state): training step and forward;
* ``roll-loop``: the same function written the paper's way (:mod:`fernn.agents.naive`);
* ``no-flow floor``: our predictor with every velocity set to zero -- the same convolutions, padding,
  pooling and decoder, without any flow;
* ``G-RNN x V``: a G-RNN (one velocity channel) at batch ``B * V``, the floor the issue names;
* ``fernn bf16``: our training step under CPU/GPU bf16 autocast, with its effect on the loss.

A training step is: 10 context frames + 10 predicted, MSE, backward, Adam.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from fernn.flows import TranslationFlow
from fernn.models import NextFramePredictor
from fernn.agents.naive import RollLoopPredictor


@dataclass
class StepTiming:
    """One measured configuration: seconds per call (median over repeats), MiB saved for backward,
    and the loss after the warm-up and timed training steps."""

    name: str
    vmax: int
    velocities: int
    batch: int
    train_s: float
    forward_s: float | None
    saved_mib: float
    final_loss: float


def _saved_activation_mib(loss_fn: Callable[[], torch.Tensor]) -> float:
    """MiB of tensors autograd keeps for backward during ``loss_fn()`` (unique storages): the memory a
    training step needs beyond the weights, deterministic unlike a process's peak RSS."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss_fn()
    return sum(storages.values()) / 2**20


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn: Callable[[], float], repeats: int, device: torch.device) -> tuple[float, float]:
    fn()  # warm-up: allocator, kernels, index caches
    times, loss = [], float("nan")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        loss = fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), loss


def _measure(name: str, model: NextFramePredictor, run: Callable[[torch.Tensor, int], torch.Tensor], batch: int,
             vmax: int, num_v: int, frames: torch.Tensor, context: int, repeats: int, device: torch.device,
             autocast: bool = False, with_forward: bool = True) -> StepTiming:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    inputs, targets = frames[:, :context], frames[:, context:]
    pred_len = targets.shape[1]

    def loss_fn() -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            return torch.nn.functional.mse_loss(run(inputs, pred_len).float(), targets)

    def train_step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    def forward_only() -> float:
        with torch.no_grad():
            return float(torch.nn.functional.mse_loss(run(inputs, pred_len), targets))

    train_s, loss = _time(train_step, repeats, device)
    saved = _saved_activation_mib(loss_fn)
    forward_s = _time(forward_only, repeats, device)[0] if with_forward else None
    return StepTiming(name, vmax, num_v, batch, train_s, forward_s, saved, loss)


def bench_step(*, batch_size: int = 16, image_size: int = 28, hidden_channels: int = 32,
               vmaxes: tuple[int, ...] = (0, 1, 2), context: int = 10, predicted: int = 10, repeats: int = 3,
               device: str = "cpu", bf16: bool = True, grnn_floor: bool = True, seed: int = 0,
               progress: Callable[[str], None] | None = None) -> list[StepTiming]:
    """Time the predictor's training step for each grid radius in ``vmaxes``; see the module docstring."""
    dev = torch.device(device)
    results: list[StepTiming] = []
    say = progress or (lambda _msg: None)
    for vmax in vmaxes:
        flow = TranslationFlow(vmax)
        num_v = flow.num_velocities
        gen = torch.Generator().manual_seed(seed)
        frames = torch.rand(batch_size, context + predicted, 1, image_size, image_size, generator=gen).to(dev)

        def fresh(flow_: TranslationFlow = flow) -> NextFramePredictor:
            torch.manual_seed(seed)
            return NextFramePredictor(1, hidden_channels, flow_).to(dev)

        def measure(name: str, model: NextFramePredictor, run=None, batch=batch_size, data=frames, nv=num_v,
                    **kw) -> None:
            say(f"V={num_v}: {name}")
            results.append(_measure(name, model, run or model, batch, vmax, nv, data, context, repeats, dev, **kw))

        measure("fernn", fresh())
        naive = fresh()
        measure("roll-loop (paper)", naive, RollLoopPredictor(naive))
        if num_v > 1:
            floor = fresh()
            floor.rnn.core.velocities.zero_()
            measure("no-flow floor", floor)
            if grnn_floor:
                wide = frames.repeat(num_v, 1, 1, 1, 1)
                measure(f"G-RNN x{num_v} batch", fresh(TranslationFlow(0)), batch=batch_size * num_v, data=wide,
                        nv=1, with_forward=False)
        if bf16:
            measure("fernn bf16 autocast", fresh(), autocast=True, with_forward=False)
    return results


def timings_as_dicts(results: list[StepTiming]) -> list[dict]:
    return [asdict(r) for r in results]
