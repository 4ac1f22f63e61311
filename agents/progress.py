"""Progress of training runs: a rich progress bar per run (epoch, step, loss, it/s, ETA) on a terminal,
plain lines when the output is not a terminal, nothing with ``--quiet``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
            def plain(row: dict[str, Any]) -> None:
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

            def report(row: dict[str, Any]) -> None:
                nonlocal bar
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
