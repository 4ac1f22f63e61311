"""Progress of long steps: a rich progress bar per training run (epoch, step, loss, it/s, ETA) and per counted task
(collecting episodes, evaluating, planning: done / total, elapsed, ETA) on a terminal, plain lines when the output
is not a terminal, nothing with ``--quiet``. Deep loops (an evaluation's rollouts) report through
:func:`report_progress`, which the caller that shows them scopes with :func:`progress_hook`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

Reporter = Callable[[dict[str, Any]], None]
#: rows that are not metrics: what the run trains (before the first step) and how long a step took
ANNOUNCEMENTS = ("setup", "first-step")


def announcement(title: str, row: dict[str, Any]) -> str:
    """One line for a ``setup`` or ``first-step`` row of the trainer."""
    if row["split"] == "setup":
        notes = "".join(f"\n[{title}] note: {note}" for note in row.get("notes", []))
        return (f"[{title}] {row['model']} on {row['task']}: {row['parameters']:,} parameters, hidden {row['hidden']}, "
                f"batch {row['batch_size']}, about {row['step_memory_mib']:,} MiB kept per step for backward; "
                f"{row['total'] - row['step']} steps to go{notes}")
    return (f"[{title}] first step {row['seconds']:.2f} s: about {row['estimated_minutes']:.0f} min for the "
            f"{row['total']} steps")


@contextmanager
def progress_display(console: Console, *, quiet: bool) -> Iterator[Callable[[str], Reporter | None]]:
    """Yield ``for_run(title)``, which gives the ``reporter`` of :func:`fernn.agents.supervised.trainer.train` for a
    run (rows of logged metrics) -- or None when quiet."""
    if quiet:
        yield lambda title: None
        return
    if not console.is_terminal:
        def plain_for(title: str) -> Reporter:
            evaluating = None

            def plain(row: dict[str, Any]) -> None:
                nonlocal evaluating
                if row.get("split") == "evaluation":  # its clock starts with the evaluation
                    evaluating = evaluating or plain_counter(console, f"[{title}] evaluating", "sequences")
                    evaluating(row["done"], row["total"])
                    return
                if row.get("split") in ANNOUNCEMENTS:
                    console.print(announcement(title, row), highlight=False, markup=False)
                    return
                values = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                                  if k != "total" and v != "")
                console.print(f"[{title}] {values}", highlight=False, markup=False)
            return plain
        yield plain_for
        return
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("epoch {task.fields[epoch]} loss {task.fields[loss]}"), TextColumn("{task.fields[rate]} it/s"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        def rich_for(title: str) -> Reporter:
            bar, last = None, {"step": None, "seconds": 0.0}

            evaluation = None

            def report(row: dict[str, Any]) -> None:
                nonlocal bar, evaluation
                if row.get("split") == "evaluation":
                    if evaluation is None:
                        evaluation = progress.add_task(f"{title}: evaluating", total=row["total"], epoch="-",
                                                       loss="-", rate="-")
                    progress.update(evaluation, completed=row["done"], total=row["total"])
                    return
                if row.get("split") in ANNOUNCEMENTS:
                    progress.console.print(announcement(title, row), highlight=False, markup=False)
                    return
                if bar is None:
                    bar = progress.add_task(title, total=row["total"], epoch="-", loss="-", rate="-")
                if row["split"] == "val":
                    shown = {k: v for k, v in row.items() if k.startswith("val_")}
                    progress.console.print(f"{title} epoch {row['epoch']}: "
                                           + ", ".join(f"{k} {v:.4g}" for k, v in shown.items()))
                    return
                rate = "-" if last["step"] is None else \
                    f"{(row['step'] - last['step']) / max(row['seconds'] - last['seconds'], 1e-9):.2f}"
                last.update(step=row["step"], seconds=row["seconds"])
                progress.update(bar, completed=row["step"], epoch=row["epoch"], loss=f"{row['loss']:.4g}", rate=rate)
            return report
        yield rich_for


Counter = Callable[[int, int], None]
#: the callback that :func:`report_progress` calls, set by :func:`progress_hook` (none: reports go nowhere)
_HOOK: ContextVar[Counter | None] = ContextVar("fernn_progress_hook", default=None)


@contextmanager
def progress_hook(counter: Counter | None) -> Iterator[None]:
    """Within the block, :func:`report_progress` calls ``counter(done, total)``."""
    token = _HOOK.set(counter)
    try:
        yield
    finally:
        _HOOK.reset(token)


def report_progress(done: int, total: int) -> None:
    """Report ``done`` of ``total`` units of the current long step to whoever shows progress (or to nobody)."""
    counter = _HOOK.get()
    if counter is not None:
        counter(done, total)


@contextmanager
def counted_progress(console: Console, description: str, total: int, unit: str, *,
                     quiet: bool = False) -> Iterator[Counter]:
    """Yield ``update(done, total)`` for a long step of ``total`` ``unit``: a rich bar with the time elapsed and
    remaining on a terminal; otherwise a plain line at each tenth (done / total, seconds, about how many left)."""
    if quiet:
        yield lambda done, total: None
        return
    if not console.is_terminal:
        plain = plain_counter(console, description, unit)
        if total:
            plain(0, total)
        yield plain
        return
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        bar = progress.add_task(description, total=total)
        yield lambda done, count: progress.update(bar, completed=done, total=count)


def plain_counter(console: Console, description: str, unit: str) -> Counter:
    """``update(done, total)`` printing a plain line at each tenth of the way and at the end: done / total, the
    seconds since the first call and about how many are left."""
    started, shown = time.perf_counter(), {"tenth": -1}

    def plain(done: int, count: int) -> None:
        tenth = 10 * done // max(count, 1)
        if tenth <= shown["tenth"] and done < count:
            return
        shown["tenth"] = tenth
        elapsed = time.perf_counter() - started
        left = f", about {elapsed / done * (count - done):.0f} s left" if 0 < done < count else ""
        console.print(f"{description}: {done}/{count} {unit}, {elapsed:.0f} s{left}", highlight=False, markup=False)
    return plain
