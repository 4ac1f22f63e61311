"""``fernn-rl bench step | rotation | world-model``: training-step cost of our models against the papers'
way of writing them, measured in one run (each row in a fresh process).

* ``step`` (translation predictor, for each velocity grid radius): ``fernn`` (fused shift+pad gather,
  channels-last state), ``roll-loop (paper)`` (:class:`fernn.agents.bench.reference.RollLoopPredictor`), the
  ``no-flow floor`` (every velocity set to zero: same convolutions, padding, pooling and decoder, no
  flow), ``G-RNN xV batch`` (one velocity channel at batch ``B * V``), ``fernn bf16 autocast``.
  A step: 10 context + 10 predicted frames, MSE, backward, Adam.
* ``rotation`` (rotation predictor, C_N regular fields): ``fernn`` (one sparse CSR product for every
  velocity channel's rotation, filters expanded once per sequence) against ``grid_sample loop (paper)``
  and the ``no-flow floor`` (the same model with an identity transport: what the convolutions cost).
* ``world-model`` (FloWM): ``fernn`` (velocity and action shifts in one gather) against
  ``per-sample loop (paper)`` and the ``no self-motion floor`` (the same model without the action
  shift). A step: teacher-forced next-window prediction over the sequence, MSE, backward, Adam.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F

from fernn._validation import check_int
from fernn.flows import RotationFlow, TranslationFlow
from fernn.models import NextFramePredictor
from fernn.world_model import WorldModel
from fernn.agents.bench.reference import PerSampleWorldModel, RollLoopPredictor, RotationLoopPredictor


@dataclass
class StepTiming:
    """One measured configuration: seconds per call (median over repeats), MiB saved for backward,
    and the loss after the warm-up and timed training steps. ``group`` names the configuration whose
    first row (ours) the ratios are taken against."""

    name: str
    group: str
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


def measure_step(name: str, group: str, velocities: int, batch: int, parameters: Sequence[torch.nn.Parameter],
                 loss_fn: Callable[[], torch.Tensor], repeats: int, device: torch.device, *,
                 autocast: bool = False, with_forward: bool = True) -> StepTiming:
    """Time an Adam training step on ``loss_fn`` (and, optionally, ``loss_fn`` under ``no_grad``)."""
    optimizer = torch.optim.Adam(parameters, lr=1e-4)

    def loss_under_autocast() -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            return loss_fn().float()

    def train_step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_under_autocast()
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    def forward_only() -> float:
        with torch.no_grad():
            return float(loss_under_autocast())

    train_s, loss = _time(train_step, repeats, device)
    saved = _saved_activation_mib(loss_under_autocast)
    forward_s = _time(forward_only, repeats, device)[0] if with_forward else None
    return StepTiming(name, group, velocities, batch, train_s, forward_s, saved, loss)


def _predictor_loss(run: Callable[[torch.Tensor, int], torch.Tensor], frames: torch.Tensor,
                    context: int) -> Callable[[], torch.Tensor]:
    inputs, targets = frames[:, :context], frames[:, context:]
    return lambda: F.mse_loss(run(inputs, targets.shape[1]), targets)


def _measure_rows(measure: Callable[..., StepTiming], rows: Sequence[tuple], common: dict, rounds: int,
                  progress: Callable[[str], None] | None, label: Callable[[tuple], str],
                  fresh_processes: bool = True) -> list[StepTiming]:
    """``measure(*row, **common)`` for every row, each call in a fresh process (``spawn``), ``rounds`` times
    round-robin; each row reports the median over its rounds (:func:`median_timing`).

    Fresh processes: a step at the papers' sizes keeps several GiB for backward, and a process that already
    ran another configuration holds its freed heap (with warm allocations, see :mod:`fernn.allocator`),
    which skews timings and, round after round, runs a 24 GiB machine out of memory. ``fresh_processes=False``
    measures in this process instead: seconds faster to start (no interpreter and torch import per row), for
    small sizes where the held heap does not matter. A worker that dies (killed for memory) raises an error
    naming the row instead of waiting for it. Rounds: a shared machine's speed drifts over minutes; measured
    round-robin, a slow minute slows every row alike instead of whichever ran in it.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    check_int("rounds", rounds, minimum=1)
    say = progress or (lambda _msg: None)
    measured: dict[tuple, list[StepTiming]] = {row: [] for row in rows}
    for round_ in range(rounds):
        for row in rows:
            say(label(row) + (f" (round {round_ + 1}/{rounds})" if rounds > 1 else ""))
            if not fresh_processes:
                measured[row].append(measure(*row, **common))
                continue
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                try:
                    measured[row].append(pool.submit(measure, *row, **common).result())
                except BrokenProcessPool as error:
                    raise RuntimeError(f"the process measuring {label(row)} died before it reported (killed for "
                                       "memory?): lower the sizes, or measure fewer rows") from error
    return [median_timing(measured[row]) for row in rows]


def median_timing(timings: Sequence[StepTiming]) -> StepTiming:
    """One row from repeated measurements of the same configuration: the median times (``forward_s``
    ``None`` if any is), the saved memory and final loss of the first (both deterministic)."""
    forwards = [t.forward_s for t in timings]
    return replace(timings[0], train_s=statistics.median(t.train_s for t in timings),
                   forward_s=None if None in forwards else statistics.median(forwards))


def _start_measurement(warm_allocations: bool, seed: int) -> None:
    if warm_allocations:
        from fernn.allocator import keep_allocations_warm

        keep_allocations_warm()
    torch.manual_seed(seed)


def bench_step(*, batch_size: int = 16, image_size: int = 28, hidden_channels: int = 32,
               vmaxes: tuple[int, ...] = (0, 1, 2), context: int = 10, predicted: int = 10, repeats: int = 3,
               rounds: int = 1, device: str = "cpu", bf16: bool = True, grnn_floor: bool = True, seed: int = 0,
               relaxed: int = 0, warm_allocations: bool = True, fresh_processes: bool = True,
               progress: Callable[[str], None] | None = None) -> list[StepTiming]:
    """Time the translation predictor's training step for each grid radius in ``vmaxes`` (every row in a
    fresh process, ``rounds`` times round-robin: see :func:`_measure_rows`); ``relaxed=L`` adds the relaxed FERNN
    with ``L`` filter banks (:mod:`fernn.relaxed`) for every grid with more than one velocity."""
    rows = []
    for vmax in vmaxes:
        num_v = TranslationFlow(vmax).num_velocities
        rows += [(vmax, "fernn"), (vmax, "roll-loop (paper)")]
        if relaxed and num_v > 1:
            rows.append((vmax, f"relaxed L={relaxed}"))
        if num_v > 1:
            rows.append((vmax, "no-flow floor"))
            if grnn_floor:
                rows.append((vmax, f"G-RNN x{num_v} batch"))
        if bf16:
            rows.append((vmax, "fernn bf16 autocast"))
    common = dict(batch_size=batch_size, image_size=image_size, hidden_channels=hidden_channels, context=context,
                  predicted=predicted, repeats=repeats, device=device, seed=seed, warm_allocations=warm_allocations)
    return _measure_rows(_measure_translation, rows, common, rounds, progress,
                         lambda row: f"V={TranslationFlow(row[0]).num_velocities}: {row[1]}", fresh_processes)


def _measure_translation(vmax: int, name: str, *, batch_size: int, image_size: int, hidden_channels: int,
                         context: int, predicted: int, repeats: int, device: str, seed: int,
                         warm_allocations: bool) -> StepTiming:
    """One row of :func:`bench_step` (run in its own process)."""
    _start_measurement(warm_allocations, seed)
    dev = torch.device(device)
    flow = TranslationFlow(vmax)
    num_v, group = flow.num_velocities, f"V={flow.num_velocities}"
    gen = torch.Generator().manual_seed(seed)
    frames = torch.rand(batch_size, context + predicted, 1, image_size, image_size, generator=gen).to(dev)
    batch, nv = batch_size, num_v
    if name.startswith("G-RNN"):  # the literal floor: one velocity channel, every sequence V times
        flow, frames, batch, nv = TranslationFlow(0), frames.repeat(num_v, 1, 1, 1, 1), batch_size * num_v, 1
    banks = int(name.split("=")[1]) if name.startswith("relaxed") else 0
    model = NextFramePredictor(1, hidden_channels, flow, relaxed=banks).to(dev)
    if name == "no-flow floor":  # the same model with every shift zero
        model.rnn.core.velocities.zero_()
    run = RollLoopPredictor(model) if name == "roll-loop (paper)" else model
    bf16 = name == "fernn bf16 autocast"
    return measure_step(name, group, nv, batch, list(model.parameters()), _predictor_loss(run, frames, context),
                        repeats, dev, autocast=bf16, with_forward=not (bf16 or name.startswith("G-RNN")))


ROTATION_IMPLEMENTATIONS = ("fernn", "grid_sample loop (paper)", "no-flow floor")


def bench_rotation(*, batch_size: int = 16, image_size: int = 28, pad: int = 6, hidden_channels: Sequence[int] = (32,),
                   group_order: int = 8, angular_velocities: Sequence[float] = (-40, -30, -20, -10, 0, 10, 20, 30, 40),
                   context: int = 5, predicted: int = 5, repeats: int = 2, rounds: int = 1, device: str = "cpu",
                   seed: int = 0, warm_allocations: bool = True, fresh_processes: bool = True,
                   progress: Callable[[str], None] | None = None) -> list[StepTiming]:
    """Time the rotation predictor's training step (ours, the per-velocity ``grid_sample`` loop, the no-flow
    floor) and the transport alone (forward + backward of every velocity channel's rotation), for each
    width in ``hidden_channels`` (every row in a fresh process, ``rounds`` times round-robin: see
    :func:`_measure_rows`)."""
    rows = [(name, hidden) for hidden in hidden_channels
            for name in (*ROTATION_IMPLEMENTATIONS, "transport: fernn", "transport: grid_sample loop (paper)")]
    common = dict(batch_size=batch_size, image_size=image_size, pad=pad, group_order=group_order,
                  angular_velocities=list(angular_velocities), context=context, predicted=predicted,
                  repeats=repeats, device=device, seed=seed, warm_allocations=warm_allocations)
    return _measure_rows(_measure_rotation, rows, common, rounds, progress, lambda row: f"{row[1]} fields: {row[0]}",
                         fresh_processes)


def _measure_rotation(name: str, hidden: int, *, batch_size: int, image_size: int, pad: int, group_order: int,
                      angular_velocities: list[float], context: int, predicted: int, repeats: int, device: str,
                      seed: int, warm_allocations: bool) -> StepTiming:
    """One row of :func:`bench_rotation` (run in its own process)."""
    _start_measurement(warm_allocations, seed)
    dev = torch.device(device)
    flow = RotationFlow(angular_velocities, group_order)
    group = f"V={flow.num_velocities}, {hidden} fields" + (", transport" if name.startswith("transport") else "")
    model = NextFramePredictor(1, hidden, flow).to(dev)
    naive = RotationLoopPredictor(model)
    gen = torch.Generator().manual_seed(seed)
    if name.startswith("transport"):  # forward + backward of the transport of a random state
        size, core = image_size + 2 * pad, model.rnn.core
        shape = (batch_size, flow.num_velocities, size, size, hidden * group_order)  # ours: channels-last maps
        if name.endswith("(paper)"):
            shape = (batch_size, flow.num_velocities, hidden * group_order, size, size)
        state = torch.rand(shape, generator=gen).to(dev).requires_grad_(True)
        weight = torch.rand(shape, generator=gen).to(dev)
        scale = torch.nn.Parameter(torch.ones((), device=dev))  # the optimizer's only parameter: a no-op step
        transport = naive._shift_all if name.endswith("(paper)") else \
            (lambda h: core.advected(core.transport(h), batch_size))

        def loss_fn() -> torch.Tensor:
            state.grad = None  # not the optimizer's: don't time the accumulation of gradients across calls
            return (transport(state) * weight).sum() * scale

        return measure_step(name, group, flow.num_velocities, batch_size, [scale], loss_fn, repeats, dev)
    frames = F.pad(torch.rand(batch_size, context + predicted, 1, image_size, image_size, generator=gen), [pad] * 4)
    frames = frames.to(dev)
    run = naive if name.startswith("grid_sample") else model
    if name == "no-flow floor":  # the same convolutions, pooling and decoder; the transport only relayouts
        model.rnn.core.transport = lambda h, offsets=None: h.flatten(0, 1).permute(0, 3, 1, 2)
    return measure_step(name, group, flow.num_velocities, batch_size, list(model.parameters()),
                        _predictor_loss(run, frames, context), repeats, dev)


WORLD_MODEL_IMPLEMENTATIONS = ("fernn", "per-sample loop (paper)", "no self-motion floor")


def bench_world_model(*, batch_size: int = 16, world_size: int = 50, window_size: int = 32,
                      hidden_channels: int = 64, vmax: int = 2, frames: int = 8, max_action: int = 10,
                      repeats: int = 2, rounds: int = 1, device: str = "cpu", seed: int = 0,
                      warm_allocations: bool = True, fresh_processes: bool = True,
                      progress: Callable[[str], None] | None = None) -> list[StepTiming]:
    """Time the FloWM training step: ours against the per-sample loop and the no-self-motion floor (every
    row in a fresh process, ``rounds`` times round-robin: see :func:`_measure_rows`)."""
    common = dict(batch_size=batch_size, world_size=world_size, window_size=window_size,
                  hidden_channels=hidden_channels, vmax=vmax, frames=frames, max_action=max_action, repeats=repeats,
                  device=device, seed=seed, warm_allocations=warm_allocations)
    group = f"V={TranslationFlow(vmax).num_velocities}"
    return _measure_rows(_measure_world_model, [(name,) for name in WORLD_MODEL_IMPLEMENTATIONS], common, rounds,
                         progress, lambda row: f"{group}: {row[0]}", fresh_processes)


def _measure_world_model(name: str, *, batch_size: int, world_size: int, window_size: int, hidden_channels: int,
                         vmax: int, frames: int, max_action: int, repeats: int, device: str, seed: int,
                         warm_allocations: bool) -> StepTiming:
    """One row of :func:`bench_world_model` (run in its own process)."""
    _start_measurement(warm_allocations, seed)
    dev = torch.device(device)
    flow = TranslationFlow(vmax)
    gen = torch.Generator().manual_seed(seed)
    obs = torch.rand(batch_size, frames, 1, window_size, window_size, generator=gen).to(dev)
    actions = torch.randint(-max_action, max_action + 1, (batch_size, frames, 2), generator=gen).to(dev)
    model = WorldModel(1, hidden_channels, flow, world_size=world_size, window_size=window_size,
                       self_motion=name != "no self-motion floor").to(dev)
    forward = PerSampleWorldModel(model) if name.startswith("per-sample") else model

    def loss_fn() -> torch.Tensor:
        return F.mse_loss(forward(obs, actions)[:, 1:], obs[:, 1:])

    return measure_step(name, f"V={flow.num_velocities}", flow.num_velocities, batch_size, list(model.parameters()),
                        loss_fn, repeats, dev)


def timings_as_dicts(results: list[StepTiming]) -> list[dict]:
    return [asdict(r) for r in results]
