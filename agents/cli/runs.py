"""``fernn-rl eval``, ``rollout`` and ``demo``: saved runs re-evaluated and pictured (by their recorded kind), and
the README's demo."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from fernn.agents.cli.console import check_json_path, checked_device, console, fail, write_json_flag

SAFE_TO_OPEN = """

    Safe on runs from others: checkpoints load as data only, and an RL run's model.zip is read for its
    weights alone (SB3's own PPO.load would unpickle objects stored in the archive and can run code from
    an untrusted file; see docs/reliability.md)."""


def evaluate_command(
    run_dir: str = typer.Argument(..., help="A run directory (runs/<name>), supervised or RL."),
    what: str = typer.Option("test,length,velocity,rollout,equivariance", "--what",
                             help="Supervised runs: comma-separated test, length, velocity, rollout, equivariance "
                                  "(the model's equivariance error)."),
    checkpoint: str = typer.Option("best", "--checkpoint", help="Supervised: best | last. RL: final (model.zip; "
                                                                "also what 'best' means for RL runs) | last."),
    episodes: int = typer.Option(20, "--episodes", min=1, help="RL runs: seeded evaluation episodes."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N."),
    quiet: bool = typer.Option(False, "--quiet", "-q", metavar="", help="Print only where the results went."),
) -> None:
    """Rerun the evaluations of a trained run on its checkpoint and merge them into results.json (RL runs:
    the saved policy over seeded episodes)."""
    from fernn.agents.cli.train_supervised import print_results
    from fernn.agents.progress import counted_progress, progress_hook
    from fernn.agents.saved_runs import evaluate_saved

    checked_device(device)
    with counted_progress(console, f"evaluating {run_dir}", 0, "sequences", quiet=quiet) as update, \
            progress_hook(update):
        kind, results = evaluate_saved(run_dir, what=tuple(w.strip() for w in what.split(",") if w.strip()),
                                       checkpoint=checkpoint, episodes=episodes, device=device)
    if kind == "rl":
        result = results["reevaluation"]
        console.print(f"{run_dir}: return {result['mean_return']:.2f} ± {result['std_return']:.2f} over "
                      f"{result['episodes']} seeded episodes ({result['checkpoint']} policy)"
                      + (f", equivariance error {result['equivariance']['relative_error']:.2e}"
                         if "equivariance" in result else "") + f"; merged into {run_dir}/results.json")
    elif kind == "dream":
        for setting, result in results["reevaluation"].items():
            console.print(f"{run_dir} {setting}: return {result['mean_return']:.2f} ± {result['std_return']:.2f} over "
                          f"{result['episodes']} seeded episodes", highlight=False)
        console.print(f"merged into {run_dir}/results.json")
    elif quiet:
        console.print(f"merged into {run_dir}/results.json")
    else:
        print_results(results, run_dir)


evaluate_command.__doc__ += SAFE_TO_OPEN


def rollout(
    run_dir: str = typer.Argument(..., help="A run directory (runs/<name>), supervised or RL."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N."),
) -> None:
    """Write rollout strips (PNG) and GIFs of a trained run: ground truth against prediction, or for an RL
    run a GIF of an episode (for MNIST World: the whole world with the window drawn on it)."""
    from fernn.agents.saved_runs import rollout_saved

    checked_device(device)
    paths = rollout_saved(run_dir, device=device)
    if not paths:
        fail(f"{run_dir}: nothing was written (no rollout pictures; is the [plots] extra installed? "
             "pip install '.[plots]')")
    console.print("wrote " + ", ".join(str(path) for path in paths))


rollout.__doc__ += SAFE_TO_OPEN


def demo(
    out: str = typer.Option("runs", "--out", help="Parent directory; the demo writes <out>/demo/."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the summary to this JSON file "
                                                                 "(atomically), e.g. experiments/results/demo.json."),
    quiet: bool = typer.Option(False, "--quiet", "-q", metavar="", help="No progress display."),
) -> None:
    """The main job: G-RNN vs FERNN-V2 on Flowing MNIST (embedded digits), trained on |v| <= 1 and tested on
    |v| <= 2 and on longer rollouts; prints a table and writes <out>/demo/ (results.json, heat maps, strips)."""
    from fernn.agents.progress import progress_display
    from fernn.agents.supervised.demo import DEMO_MODELS, run_demo

    check_json_path(json_out)

    with progress_display(console, quiet=quiet) as reporter_for:
        summary = run_demo(out, reporter_for=reporter_for)
    table = Table(title="Flowing MNIST: trained on |v| <= 1, tested on |v| <= 2 (embedded digits, CPU)")
    for column in ("model", "rollout MSE seen", "rollout MSE unseen", "one-step MSE seen", "one-step MSE unseen",
                   "rollout MSE 2x length", "train s"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for model in DEMO_MODELS:
        m = summary["models"][model]
        longest = list(m["length_generalization_mse"].values())[0]
        table.add_row(m["label"], f"{m['rollout_mse_seen']:.4f}", f"{m['rollout_mse_unseen']:.4f}",
                      f"{m['one_step_mse_seen']:.4f}", f"{m['one_step_mse_unseen']:.4f}", f"{longest:.4f}",
                      f"{m['train_seconds']:.0f}")
    console.print(table)
    console.print(f"FERNN / G-RNN on unseen velocities: rollout {summary['unseen_rollout_mse_ratio_fernn_over_grnn']:.2f}x, "
                  f"one-step {summary['unseen_one_step_mse_ratio_fernn_over_grnn']:.2f}x (target <= 0.5x)")
    console.print(f"wrote {out}/demo/: results.json, " + ", ".join(summary["files"]))
    write_json_flag(json_out, summary)
