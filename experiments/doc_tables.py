"""The results tables of README.md and docs/*.md, each rendered from its stored source under experiments/results/.

    python experiments/doc_tables.py            # check every marked table against its source (what CI does)
    python experiments/doc_tables.py --write    # rewrite the marked tables from their sources, after a re-run

A table in a page sits between the lines ``<!-- results: NAME -->`` and ``<!-- /results -->``.
:data:`TABLES` maps each name to its source (a JSON file under ``experiments/results/``), the command that writes
that source, and the function that renders the table from it. ``tests/test_doc_tables.py`` runs the check for
every marked table of every page: a table that differs from its source, or names no registered source, fails.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments" / "results"
MARK = re.compile(r"^<!-- results: (?P<name>[\w-]+) -->\n(?P<block>.*?)\n<!-- /results -->$", re.M | re.S)


@dataclass(frozen=True)
class ResultsTable:
    """A table of the docs: its source file under ``experiments/results/``, the command that writes it, and the
    renderer ``source -> markdown lines`` (no trailing newline)."""

    source: str
    command: str
    render: Callable[[dict[str, Any]], str]

    def load(self, results: Path = RESULTS) -> dict[str, Any]:
        return json.loads((results / self.source).read_text())


def demo_table(summary: dict[str, Any]) -> str:
    """The demo's table: rollout and one-step MSE of both models on seen and unseen velocities, at 2x length, and
    their training time; the better model's unseen figures in bold."""
    rows = ["| model | rollout MSE, seen velocities | rollout MSE, **unseen** velocities | one-step MSE seen | "
            "one-step MSE unseen | rollout MSE at 2× length | training time |", "|---|---|---|---|---|---|---|"]
    models = summary["models"]
    best_seen = min(m["rollout_mse_seen"] for m in models.values())
    best_unseen = min(m["rollout_mse_unseen"] for m in models.values())
    for model in ("grnn", "fernn"):
        m = models[model]
        seen, unseen = f"{m['rollout_mse_seen']:.4f}", f"{m['rollout_mse_unseen']:.4f}"
        seen = f"**{seen}**" if m["rollout_mse_seen"] == best_seen else seen
        unseen = f"**{unseen}**" if m["rollout_mse_unseen"] == best_unseen else unseen
        longest = list(m["length_generalization_mse"].values())[0]
        rows.append(f"| {m['label']} | {seen} | {unseen} | {m['one_step_mse_seen']:.4f} | "
                    f"{m['one_step_mse_unseen']:.4f} | {longest:.3f} | {m['train_seconds']:.0f} s |")
    return "\n".join(rows)


def demo_ratio(summary: dict[str, Any]) -> str:
    """The demo's headline: FERNN's error on unseen velocities as a multiple of G-RNN's."""
    return (f"**FERNN / G-RNN on unseen velocities: {summary['unseen_rollout_mse_ratio_fernn_over_grnn']:.2f}× "
            f"(rollout), {summary['unseen_one_step_mse_ratio_fernn_over_grnn']:.2f}× (one-step).**")


def block_world_table(figures: dict[str, Any]) -> str:
    """The block world against MiniWorld: equal envs and cores first, then one core each, then one env each."""
    n, cores, side = figures["num_envs"], figures["cores"], figures["obs_size"]
    rows = [f"| comparison ({side} × {side} px) | block world (env steps/s) | MiniWorld (env steps/s) | ratio |",
            "|---|---|---|---|"]
    for label, ours, theirs, ratio in (
            (f"**{n} envs on the same {cores} cores**: the vector env on every core; MiniWorld in {n} worker processes",
             "vector_all_cores_steps_per_s", "miniworld_workers_steps_per_s", "equal_envs_and_cores"),
            (f"one core each: the vector env of {n} scenes on one thread; one MiniWorld env", "vector_steps_per_s",
             "miniworld_steps_per_s", "vector_vs_miniworld"),
            ("one env each", "single_steps_per_s", "miniworld_steps_per_s", "single_vs_miniworld")):
        rows.append(f"| {label} | {figures[ours]:,.0f} | {figures[theirs]:,.0f} | {figures[ratio]:.1f}× |")
    return "\n".join(rows)


#: the step benchmark's implementations as the table names them
STEP_LABELS = {"fernn": "fernn (ours)", "roll-loop (paper)": "roll loop (paper)", "no-flow floor": "no-flow floor",
               "fernn bf16 autocast": "fernn, bf16 autocast"}


def step_table(figures: dict[str, Any]) -> str:
    """The predictor step per velocity count: every implementation measured, its time against ours of the same V;
    at the largest V, our step and the roll loop's and bf16's ratios in bold."""
    lines = ["| V | implementation | batch | train step (s) | forward (s) | saved for backward (MiB) | vs ours |",
             "|---|---|---|---|---|---|---|"]
    def group(row: dict[str, Any]) -> int:  # the V of the comparison a row belongs to (G-RNN's own is 1)
        return int(row["group"].removeprefix("V="))

    largest = max(map(group, figures["results"]))
    ours = {group(row): row["train_s"] for row in figures["results"] if row["name"] == "fernn"}
    for row in figures["results"]:
        v = group(row)
        label = STEP_LABELS.get(row["name"], f"G-RNN at batch {figures['batch_size']} × {v}"
                                if row["name"].startswith("G-RNN") else row["name"])
        train, ratio = f"{row['train_s']:.3f}", f"{row['train_s'] / ours[v]:.2f}×"
        if v == largest and row["name"] == "fernn":
            train = f"**{train}**"
        if v == largest and row["name"] in ("roll-loop (paper)", "fernn bf16 autocast"):
            ratio = f"**{ratio}**"
        forward = "-" if row["forward_s"] is None else f"{row['forward_s']:.3f}"
        lines.append(f"| {v} | {label} | {row['batch']} | {train} | {forward} | {row['saved_mib']:.0f} | {ratio} |")
    return "\n".join(lines)


def relaxed_step_table(figures: dict[str, Any]) -> str:
    """The relaxed FERNN's training step against the strict one, the no-flow floor and the paper's roll loop."""
    rows = {row["name"]: row for row in figures["results"]}
    strict = rows["fernn"]["train_s"]
    lines = ["| implementation | train step (s) | saved for backward (MiB) | vs strict FERNN |", "|---|---|---|---|"]
    relaxed = f"relaxed L={figures['relaxed']}"
    for name, label in (("fernn", "fernn (strict)"), (relaxed, relaxed), ("no-flow floor", "no-flow floor"),
                        ("roll-loop (paper)", "roll loop (paper)")):
        ratio = f"{rows[name]['train_s'] / strict:.2f}×"
        ratio = f"**{ratio}**" if name.startswith("relaxed") else ratio
        lines.append(f"| {label} | {rows[name]['train_s']:.3f} | {rows[name]['saved_mib']:.0f} | {ratio} |")
    return "\n".join(lines)


def _experiment(name: str):
    """The module of ``experiments/<name>.py`` (the report that renders its tables)."""
    sys.path.insert(0, str(ROOT / "experiments"))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(ROOT / "experiments"))


def _reproduction(table: str) -> Callable[[dict[str, Any]], str]:
    return lambda results: _experiment("reproduction_tables").table(table, results)


def _planning(summary: dict[str, Any]) -> str:
    return _experiment("planning_grid").planning_table(summary, json.loads((RESULTS / "rl_occlusion.json").read_text()))


def _approximate_equivariance(summary: dict[str, Any]) -> str:
    return _experiment("approximate_equivariance").tables(summary).rstrip("\n")


def _rl_occlusion(summary: dict[str, Any]) -> str:
    return _experiment("rl_occlusion").markdown_table(summary["policies"], summary["bounds"])


def protocol_shares(stored: dict[str, Any]) -> str:
    """Each first-person protocol's predicted block pixels by class (experiments/flowm3d_protocol.py)."""
    rows = ["| protocol | data | observed + predicted views | in view | **memory** | never seen | block pixels |",
            "|---|---|---|---|---|---|---|"]
    for name, entry in stored["protocols"].items():
        kwargs = entry["env_kwargs"] or {}
        data = f"room {kwargs.get('room_size', 16)}, {kwargs.get('obs_size', 64)} px, {entry['policy']}"
        for horizon, share in entry["shares"].items():
            rows.append(f"| `{name}` | {data} | {entry['context']} + {horizon} | {100 * share['in_view']:.1f}% | "
                        f"**{100 * share['memory']:.1f}%** | {100 * share['never_seen']:.1f}% | "
                        f"{share['block_pixels']:,} |")
    return "\n".join(rows)


def stage_zero(stored: dict[str, Any]) -> str:
    """The stage-0 check per training budget (experiments/flowm3d_stage0.py)."""
    rows = ["| training steps | MSE, in-view block pixels | the room without blocks | ratio (target ≤ 0.3) |",
            "|---|---|---|---|"]
    for entry in sorted(stored["runs"].values(), key=lambda entry: entry["steps"]):
        rows.append(f"| {entry['steps']:,} | {entry['mse_in_view']:.4f} | {entry['painted_over_in_view']:.4f} | "
                    f"**{entry['ratio']:.2f}** ({'passed' if entry['passed'] else 'not passed'}) |")
    return "\n".join(rows)


DEMO = "fernn-rl demo --json experiments/results/demo.json"
TABLES: dict[str, ResultsTable] = {
    "demo": ResultsTable("demo.json", DEMO, demo_table),
    "demo-ratio": ResultsTable("demo.json", DEMO, demo_ratio),
    "block-world": ResultsTable("bench_block_world.json", "fernn-rl bench block-world --rounds 5 --json "
                                "experiments/results/bench_block_world.json", block_world_table),
    "flowm3d-protocol": ResultsTable("flowm3d_protocol.json", "python experiments/flowm3d_protocol.py --data FILE "
                                     "--context C --horizons H --name NAME --json "
                                     "experiments/results/flowm3d_protocol.json", protocol_shares),
    "flowm3d-stage0": ResultsTable("flowm3d_stage0.json", "python experiments/flowm3d_stage0.py --epochs E --json "
                                   "experiments/results/flowm3d_stage0.json", stage_zero),
    **{f"reproduction-{name}": ResultsTable("reproduction.json", "bash experiments/reproduce_cpu.sh, then python "
                                            "experiments/reproduction_tables.py --json "
                                            "experiments/results/reproduction.json", _reproduction(name))
       for name in ("translation", "rotation", "world", "kth")},
    "step": ResultsTable("bench_step_h32.json", "fernn-rl bench step --repeats 1 --rounds 3 --json "
                         "experiments/results/bench_step_h32.json", step_table),
    "relaxed-step": ResultsTable("bench_step_relaxed.json", "fernn-rl bench step --hidden 16 --vmax 2 --relaxed 2 "
                                 "--no-bf16 --no-grnn-floor --repeats 1 --rounds 3 --json "
                                 "experiments/results/bench_step_relaxed.json", relaxed_step_table),
    "approximate-equivariance": ResultsTable("approximate_equivariance.json", "python "
                                             "experiments/approximate_equivariance.py report (writes "
                                             "experiments/results/approximate_equivariance.json)",
                                             _approximate_equivariance),
    "planning": ResultsTable("planning.json", "python experiments/planning_grid.py report (writes "
                             "experiments/results/planning.json; its RL rows: rl_occlusion.json)", _planning),
    "rl-occlusion": ResultsTable("rl_occlusion.json", "python experiments/rl_occlusion.py report (writes "
                                 "experiments/results/rl_occlusion.json)", _rl_occlusion),
}


def pages(root: Path = ROOT) -> list[Path]:
    """The pages whose tables are checked: README.md and docs/*.md."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def marked(text: str) -> list[tuple[str, int, int]]:
    """``(name, start, end)`` of each marked table of a page: the character span between its two marker lines."""
    return [(match["name"], match.start("block"), match.end("block")) for match in MARK.finditer(text)]


def differences(root: Path = ROOT, results: Path = RESULTS) -> list[str]:
    """One line per marked table that differs from its source or names none (empty: every table is its source's)."""
    problems = []
    for page in pages(root):
        text = page.read_text()
        for name, start, end in marked(text):
            where = f"{page.relative_to(root)}: table {name!r}"
            if name not in TABLES:
                problems.append(f"{where} names no registered source (experiments/doc_tables.py TABLES)")
                continue
            if text[start:end] != TABLES[name].render(TABLES[name].load(results)):
                problems.append(f"{where} differs from experiments/results/{TABLES[name].source} (written by "
                                f"{TABLES[name].command}): python experiments/doc_tables.py --write")
    return problems


def write(root: Path = ROOT, results: Path = RESULTS) -> list[Path]:
    """Rewrite every marked table from its source; the pages that changed."""
    changed = []
    for page in pages(root):
        text = page.read_text()
        for name, start, end in reversed(marked(text)):
            if name in TABLES:
                text = text[:start] + TABLES[name].render(TABLES[name].load(results)) + text[end:]
        if text != page.read_text():
            page.write_text(text)
            changed.append(page)
    return changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the marked tables from their sources")
    args = parser.parse_args()
    if args.write:
        for page in write():
            print(f"rewrote the tables of {page.relative_to(ROOT)}")
        return
    problems = differences()
    for problem in problems:
        print(problem, file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
