"""The ``fernn-rl`` command line (typer + rich)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Flow-equivariant recurrent networks for world models and RL.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
bench_app = typer.Typer(help="Benchmarks: figures as ratios against baselines measured in the same run.",
                        no_args_is_help=True)
app.add_typer(bench_app, name="bench")
console = Console()


def fail(message: str) -> None:
    """Print one clear error line and exit with status 2."""
    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(2)


def parse_int_list(name: str, text: str) -> tuple[int, ...]:
    """Parse ``"0,1,2"`` into integers, or fail with a clear message."""
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        fail(f"{name} must be comma-separated integers such as 0,1,2; got {text!r}")
    if not values:
        fail(f"{name} must name at least one integer; got {text!r}")
    return values


def write_json_atomic(path: Path, payload: object) -> None:
    """Write JSON through a temporary file and a rename, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}x" if denominator else "-"


@bench_app.command("step")
def bench_step_command(
    batch_size: int = typer.Option(16, "--batch-size", "-b", min=1, help="Sequences per batch."),
    image_size: int = typer.Option(28, "--image-size", min=3, help="Frame height and width (the paper: 28)."),
    hidden: int = typer.Option(32, "--hidden", min=1, help="Hidden channels per velocity channel (the paper: 128)."),
    vmax: str = typer.Option("0,1,2", "--vmax", help="Velocity grid radii to time (V = (2 vmax + 1)^2)."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Timed repeats per measurement (median reported)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N."),
    bf16: bool = typer.Option(True, "--bf16/--no-bf16", help="Also time the step under bf16 autocast."),
    grnn_floor: bool = typer.Option(True, "--grnn-floor/--no-grnn-floor",
                                    help="Also time G-RNN at batch B x V (the literal floor)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the figures to this JSON file."),
) -> None:
    """Time one training step (10 context + 10 predicted frames, MSE, backward, Adam) and forward alone.

    Compares the FERNN predictor with the paper's roll-loop implementation and with two floors, all
    measured in this run; prints a table of seconds, memory saved for backward and ratios.
    """
    import torch

    from fernn.agents.bench import bench_step, timings_as_dicts

    vmaxes = parse_int_list("--vmax", vmax)
    if any(v < 0 for v in vmaxes):
        fail(f"--vmax values must be >= 0; got {vmax!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        fail(f"--device {device} asked for CUDA, but torch sees no CUDA device (torch {torch.__version__})")
    with console.status("benchmarking") as status:
        results = bench_step(batch_size=batch_size, image_size=image_size, hidden_channels=hidden, vmaxes=vmaxes,
                             repeats=repeats, device=device, bf16=bf16, grnn_floor=grnn_floor,
                             progress=lambda msg: status.update(f"benchmarking {msg}"))
    device_name = torch.cuda.get_device_name(device) if device.startswith("cuda") else f"CPU, {torch.get_num_threads()} threads"
    table = Table(title=f"Predictor step: batch {batch_size}, {image_size}x{image_size}, hidden {hidden}, "
                        f"10+10 frames ({device_name}, torch {torch.__version__})")
    for column in ("V", "implementation", "batch", "train step s", "forward s", "saved for backward MiB", "loss",
                   "vs fernn (train)"):
        table.add_column(column, justify="right" if column not in ("implementation",) else "left")
    ours = {r.vmax: r for r in results if r.name == "fernn"}
    for r in results:
        table.add_row(str(r.velocities), r.name, str(r.batch), f"{r.train_s:.3f}",
                      "-" if r.forward_s is None else f"{r.forward_s:.3f}", f"{r.saved_mib:.0f}",
                      f"{r.final_loss:.4f}", _ratio(r.train_s, ours[r.vmax].train_s))
    console.print(table)
    console.print("[dim]'vs fernn' > 1 means slower than ours. Targets at V = 25: roll-loop >= 2x, "
                  "fernn <= 1.15x of the floor (i.e. floor column >= 0.87x).[/]")
    if json_out is not None:
        write_json_atomic(json_out, {"device": device_name, "torch": torch.__version__, "batch_size": batch_size,
                                     "image_size": image_size, "hidden": hidden,
                                     "results": timings_as_dicts(results)})
        console.print(f"wrote {json_out}")


@app.command()
def demo() -> None:
    """The main job on the embedded defaults (for now: the equivariance check and the step benchmark)."""
    import torch

    from fernn import NextFramePredictor, TranslationFlow, check_equivariance

    torch.manual_seed(0)
    table = Table(title="Equivariance of the hidden states, 28x28, nu = (1, -1), float32")
    for column in ("model", "max |h' - S h| / max |h|"):
        table.add_column(column)
    x = torch.rand(2, 8, 1, 28, 28)
    for name, recurrence in (("FERNN-V2", "exact"), ("G-RNN+ (learned kernels)", "learned")):
        model = NextFramePredictor(1, 16, TranslationFlow(2), recurrence=recurrence)
        report = check_equivariance(model.rnn, TranslationFlow(2), (1, -1), x)
        table.add_row(name, f"{report.max_rel:.2e}")
    console.print(table)
    bench_step_command(batch_size=16, image_size=28, hidden=32, vmax="0,1,2", repeats=2, device="cpu", bf16=True,
                       grnn_floor=True, json_out=None)


if __name__ == "__main__":  # pragma: no cover - `python -m fernn.agents.cli`
    app(prog_name="fernn-rl")
