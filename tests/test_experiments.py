"""The research drivers of experiments/ on tiny budgets: they run, resume without redoing work, and report
(figures, tables, JSON). The long ones are marked slow (make test-all)."""

import runpy
import sys
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def test_render_envs_writes_a_picture_of_every_env(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["render_envs.py", "--out", str(tmp_path), "--gif-steps", "5"])
    runpy.run_path(str(EXPERIMENTS / "render_envs.py"), run_name="__main__")
    assert sorted(p.name for p in tmp_path.glob("env_*.png")) == [
        "env_DynamicBlockWorld.png", "env_FlowingMNIST.png", "env_KTHCamera.png", "env_MNISTWorld.png",
        "env_MNISTWorldTrack.png", "env_RotatingMNIST.png"]
    assert (tmp_path / "env_DynamicBlockWorld_walk.gif").stat().st_size > 0


def _fake_run(directory: Path, returns: list[float]) -> None:
    directory.mkdir(parents=True)
    lines = ["timesteps,mean_return,std_return,seconds"]
    lines += [f"{8192 * (i + 1)},{r},1.0,{10.0 * (i + 1)}" for i, r in enumerate(returns)]
    (directory / "eval.csv").write_text("\n".join(lines) + "\n")


def test_rl_learning_curves_cuts_every_run_at_the_common_budget(tmp_path, monkeypatch, capsys):
    runs = tmp_path / "runs"
    _fake_run(runs / "fernn-s0", [50.0, 80.0, 90.0])
    _fake_run(runs / "fernn-s1", [60.0, 70.0])           # the shortest run sets the budget: 16,384 steps
    _fake_run(runs / "cnn-lstm-s0", [55.0, 65.0, 99.0, 100.0])
    bounds = tmp_path / "bounds.json"
    bounds.write_text('{"random": {"mean": 44.0, "std": 8.0}, "oracle": {"mean": 100.0, "std": 0.0}}')
    out = tmp_path / "curves.png"
    monkeypatch.setattr(sys, "argv", ["rl_learning_curves.py", "--runs", str(runs), "--bounds", str(bounds),
                                      "--bench", str(tmp_path / "absent.json"), "--out", str(out)])
    runpy.run_path(str(EXPERIMENTS / "rl_learning_curves.py"), run_name="__main__")
    printed = capsys.readouterr().out
    assert "budget: 16,384 environment steps per run; halfway from random to oracle: 72.00" in printed
    assert "| FERNN RecurrentPPO | 2 | 75.00 ± 5.00 | 80.0, 70.0 | 65.00 ± 0.00 | 16k, never |" in printed
    assert "| CNN-LSTM RecurrentPPO | 1 | 65.00 ± 0.00 | 65.0 | 60.00 ± 0.00 | never |" in printed
    assert out.stat().st_size > 0


@pytest.mark.slow
def test_rl_occlusion_grid_runs_resumes_and_reports_on_a_tiny_budget(tmp_path, monkeypatch, capsys):
    """The occlusion grid end to end on a tiny budget: every policy trained and evaluated on every cell, a second
    call trains and evaluates nothing again, and the report writes the table, figures, GIFs and JSON."""
    import json

    runs, docs = tmp_path / "runs", tmp_path / "docs"
    tiny = ["run", "--out", str(runs), "--seeds", "0", "--jobs", "2", "--timesteps", "128", "--n-envs", "2",
            "--n-steps", "64", "--batch-size", "64", "--eval-every", "128", "--eval-episodes", "1",
            "--grid-episodes", "1", "--gaps", "0,4,8", "--quiet"]
    monkeypatch.setattr(sys, "argv", ["rl_occlusion.py", *tiny])
    runpy.run_path(str(EXPERIMENTS / "rl_occlusion.py"), run_name="__main__")
    names = ["cnn-lstm-s0", "fernn-s0", "fernn-self-motion-equivariant-s0", "fernn-self-motion-s0",
             "fernn-self-motion-velocity-readout-s0", "frame-stack-cnn-s0"]
    assert sorted(p.name for p in runs.iterdir() if p.is_dir()) == names
    grid = json.loads((runs / "fernn-s0" / "grid.json").read_text())
    assert sorted(grid) == sorted(f"{v}/gap={g}" for v in ("seen", "unseen") for g in (0, 4, 8))
    assert grid["unseen/gap=8"]["env_kwargs"]["gap_length"] == 8
    assert json.loads((runs / "fernn-self-motion-s0" / "config.json").read_text())["self_motion"] is True
    assert json.loads((runs / "fernn-self-motion-velocity-readout-s0" / "config.json").read_text())["readout"] == \
        "velocities"
    stamps = {name: (runs / name / "grid.json").stat().st_mtime_ns for name in names}
    runpy.run_path(str(EXPERIMENTS / "rl_occlusion.py"), run_name="__main__")  # resumes: all done, nothing redone
    assert {name: (runs / name / "grid.json").stat().st_mtime_ns for name in names} == stamps
    capsys.readouterr()  # the run phases' lines: the reports' output is compared below
    results = tmp_path / "results"
    monkeypatch.setattr(sys, "argv", ["rl_occlusion.py", "report", "--runs", str(runs), "--docs", str(docs),
                                      "--results", str(results), "--bound-episodes", "2"])
    runpy.run_path(str(EXPERIMENTS / "rl_occlusion.py"), run_name="__main__")
    table = capsys.readouterr().out
    assert "| FERNN RecurrentPPO, self-motion |" in table and "| oracle | 100.0 |" in table
    assert "| best fixed move |" in table
    summary = json.loads((results / "rl_occlusion.json").read_text())
    assert set(summary["policies"]) == {"fernn", "fernn-self-motion", "fernn-self-motion-velocity-readout",
                                        "fernn-self-motion-equivariant", "cnn-lstm", "frame-stack-cnn"}
    assert summary["policies"]["fernn"]["cells"]["unseen/gap=4"]["per_seed"]
    assert summary["policies"]["fernn"]["runs"] == ["fernn-s0"]  # not fernn-self-motion-s0, which fernn-s* matches
    assert (results / "rl_occlusion_runs" / "cnn-lstm-s0" / "grid.json").is_file()
    for name in ("rl_occlusion_gaps.png", "rl_occlusion_curves.png", "rl_occlusion_table.md",
                 "rl_occlusion_fernn.gif", "rl_occlusion_frame-stack-cnn.gif"):
        assert (docs / name).stat().st_size > 0
    # the kept copies are runs the report reads again: the same table from them alone, their GIFs left as they are
    gif = (docs / "rl_occlusion_fernn.gif").stat().st_mtime_ns
    monkeypatch.setattr(sys, "argv", ["rl_occlusion.py", "report", "--runs", str(results / "rl_occlusion_runs"),
                                      "--docs", str(docs), "--results", str(results), "--bound-episodes", "2"])
    runpy.run_path(str(EXPERIMENTS / "rl_occlusion.py"), run_name="__main__")
    again = capsys.readouterr().out.splitlines()
    rows = [line for line in table.splitlines() if line.startswith("|")]
    assert rows and [line for line in again if line.startswith("|")] == rows  # the same table, row for row
    assert json.loads((results / "rl_occlusion.json").read_text())["policies"] == summary["policies"]
    assert (docs / "rl_occlusion_fernn.gif").stat().st_mtime_ns == gif
    monkeypatch.setattr(sys, "argv", ["rl_occlusion_inside.py", "--run", str(runs / "fernn-self-motion-s0"),
                                      str(runs / "fernn-s0"), "--episodes", "1", "--out", str(docs / "inside.png"),
                                      "--json", str(results / "inside.json")])
    runpy.run_path(str(EXPERIMENTS / "rl_occlusion_inside.py"), run_name="__main__")
    inside = json.loads((results / "inside.json").read_text())
    assert inside["chance"] == 1 / 25 and inside["gap"]["steps"] + inside["in_view"]["steps"] > 0
    assert set(inside["in_view"]["target_correlation"]) == {"pooled", "own", "relative", "best"}
    assert set(inside["per_run"]) == {"fernn-self-motion-s0", "fernn-s0"}
    for argv, message in ((["--run", str(runs / "cnn-lstm-s0")], "is a cnn-lstm run"),
                          (["--run", str(tmp_path / "nowhere")], "no finished run"),
                          (["--gap", "10"], "--gap must lie in")):
        monkeypatch.setattr(sys, "argv", ["rl_occlusion_inside.py", *argv])
        with pytest.raises(SystemExit) as stop:
            runpy.run_path(str(EXPERIMENTS / "rl_occlusion_inside.py"), run_name="__main__")
        assert stop.value.code not in (0, None)
        assert message in capsys.readouterr().err + str(stop.value.code)


@pytest.mark.slow
def test_planning_grid_plans_with_every_trained_world_model_and_reports(tmp_path, monkeypatch, capsys):
    """experiments/planning_grid.py on a tiny world model: the settings run through fernn-rl plan, a second call redoes
    nothing, untrained models are skipped, and the report writes the table, the error figure and planning.json."""
    import json

    from typer.testing import CliRunner

    from fernn.agents.cli import app

    runner, data = CliRunner(), tmp_path / "track.npz"
    result = runner.invoke(app, ["collect", "--env", "mnist-world-track", "--episodes", "3", "--max-steps", "12",
                                 "--out", str(data), "--quiet"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["train", "--data", str(data), "--model", "grnn", "--world-size", "50", "--hidden", "2",
                                 "--context", "3", "--predict", "2", "--epochs", "1", "--steps-per-epoch", "1",
                                 "--batch-size", "2", "--val-batches", "1", "--eval-sequences", "2", "--device", "cpu",
                                 "--quiet", "--out", str(tmp_path), "--name", "wm-grnn-s0"])
    assert result.exit_code == 0, result.output
    tiny = ["run", "--world-models", str(tmp_path), "--models", "grnn,fernn", "--seeds", "0", "--settings",
            "seen,unseen-gap4", "--episodes", "2", "--parallel", "2", "--horizon", "2", "--candidates", "2"]
    monkeypatch.setattr(sys, "argv", ["planning_grid.py", *tiny])
    runpy.run_path(str(EXPERIMENTS / "planning_grid.py"), run_name="__main__")
    assert "wm-fernn-s0: not trained yet, skipped" in capsys.readouterr().out
    first = (tmp_path / "wm-grnn-s0" / "plan-seen" / "results.json").stat().st_mtime_ns
    assert (tmp_path / "wm-grnn-s0" / "plan-unseen-gap4" / "episode.gif").is_file()
    runpy.run_path(str(EXPERIMENTS / "planning_grid.py"), run_name="__main__")
    assert (tmp_path / "wm-grnn-s0" / "plan-seen" / "results.json").stat().st_mtime_ns == first
    monkeypatch.setattr(sys, "argv", ["planning_grid.py", "report", "--world-models", str(tmp_path), "--rl-results",
                                      str(tmp_path / "no-rl.json"), "--docs", str(tmp_path / "docs"),
                                      "--results", str(tmp_path / "results"), "--bound-episodes", "2"])
    runpy.run_path(str(EXPERIMENTS / "planning_grid.py"), run_name="__main__")
    assert "| planner, no velocity channels (V = 1) |" in capsys.readouterr().out
    summary = json.loads((tmp_path / "results" / "planning.json").read_text())
    assert list(summary["models"]) == ["grnn"] and len(summary["models"]["grnn"]["imagined_mse_per_step"]) == 2
    assert (tmp_path / "docs" / "planning_error.png").stat().st_size > 0



def test_the_block_world_benchmark_is_the_documented_command():
    """The stored figures (their table is tests/test_doc_tables.py's) were measured with the settings docs/benchmarks.md
    names, equal envs and cores included."""
    import json

    root = EXPERIMENTS.parent
    figures = json.loads((root / "experiments/results/bench_block_world.json").read_text())
    assert figures["num_envs"] == 16 and figures["obs_size"] == 64 and figures["rounds"] == 5
    assert figures["miniworld_workers_steps_per_s"] and figures["equal_envs_and_cores"] is not None


def _approximate_equivariance():
    sys.path.insert(0, str(EXPERIMENTS))
    try:
        import approximate_equivariance
    finally:
        sys.path.remove(str(EXPERIMENTS))
    return approximate_equivariance


def test_approximate_equivariance_runs_resumes_and_reports_on_a_tiny_budget(tmp_path, monkeypatch, capsys):
    import json

    from fernn.agents.supervised.presets import Preset

    grid = _approximate_equivariance()
    tiny = {"steps_per_epoch": 2, "eval_sequences": 2, "val_batches": 1, "hidden": 2, "batch_size": 2}
    presets = {name: Preset(p.reproduces, {**p.settings, **tiny}, p.collect) for name, p in grid.PRESETS.items()}
    monkeypatch.setattr(grid, "PRESETS", presets)
    for model in grid.MODELS:
        assert grid.run_one("bounce", model, 0, str(tmp_path)).endswith(" s")
    assert grid.run_one("bounce", "grnn", 0, str(tmp_path)).endswith("done before")  # resumes, redoes nothing
    grid.report(tmp_path, tmp_path / "summary.json", tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    bounce = summary["tasks"]["bounce"]
    assert set(bounce["models"]) == set(grid.MODELS) and bounce["copy_last"]["rollout_mse"] > 0
    assert bounce["models"]["fernn-v2"]["0"]["equivariance_error"] < 1e-5
    assert "combination_weights" in bounce["models"]["relaxed-a1e-2"]["0"]
    assert (tmp_path / "approx_weights_bounce_relaxed-a1e-2.png").is_file()
    table = (tmp_path / "approximate_equivariance_table.md").read_text()
    assert table == grid.tables(summary) and "| copy the last frame |" in table


def test_the_approximate_equivariance_tables_are_the_stored_results():
    """Every number of the doc's tables comes from experiments/results/approximate_equivariance.json."""
    import json

    grid = _approximate_equivariance()
    root = EXPERIMENTS.parent
    summary = json.loads((root / "experiments/results/approximate_equivariance.json").read_text())
    tables = grid.tables(summary)
    assert (root / "docs/approximate_equivariance_table.md").read_text() == tables
    assert tables in (root / "docs/approximate_equivariance.md").read_text()


def test_the_relaxed_step_benchmark_table_is_the_recorded_run():
    import json

    root = EXPERIMENTS.parent
    figures = json.loads((root / "experiments/results/bench_step_relaxed.json").read_text())
    rows = {row["name"]: row for row in figures["results"]}
    page = (root / "docs/benchmarks.md").read_text()
    strict = rows["fernn"]["train_s"]
    for name, label in (("fernn", "fernn (strict)"), ("relaxed L=2", "relaxed L=2"), ("no-flow floor", "no-flow floor"),
                        ("roll-loop (paper)", "roll loop (paper)")):
        ratio = f"{rows[name]['train_s'] / strict:.2f}×"
        ratio = f"**{ratio}**" if name == "relaxed L=2" else ratio
        assert f"| {label} | {rows[name]['train_s']:.3f} | {rows[name]['saved_mib']:.0f} | {ratio} |" in page, label
    assert figures["relaxed"] == 2 and figures["hidden"] == 16 and figures["rounds"] == 3


def test_the_approximate_equivariance_prose_figures_are_the_stored_results():
    """The percentages and ratios the doc's text quotes, computed from experiments/results/approximate_equivariance.json."""
    import json

    import numpy as np

    root = EXPERIMENTS.parent
    tasks = json.loads((root / "experiments/results/approximate_equivariance.json").read_text())["tasks"]
    text = " ".join((root / "docs/approximate_equivariance.md").read_text().split())

    def mean(task, model, key="rollout_mse"):
        return float(np.mean([row[key] for row in tasks[task]["models"][model].values()]))

    def recovered(task, model):
        strict, grnn = mean(task, "fernn-v2"), mean(task, "grnn")
        return (strict - mean(task, model)) / (strict - grnn)

    pong_gain = 1 - mean("pong", "relaxed-a1e-4") / mean("pong", "fernn-v2")
    figures = [f"{pong_gain:.0%}".replace("%", " %") + " better than FERNN-V2",
               f"recovers {recovered('pong', 'relaxed-a1e-4'):.1%}".replace("%", " %"),
               f"recovers {recovered('pong', 'relaxed-a1e-2'):.0%}".replace("%", " %"),
               f"Relaxing recovers {recovered('bounce', 'relaxed-a1e-4'):.0%}".replace("%", " %"),
               f"{mean('pong', 'relaxed-a1e-4') / mean('pong', 'grnn') - 1:.0%}".replace("%", " %") + " above it",
               f"{mean('bounce', 'relaxed-a1e-4') / mean('bounce', 'grnn') - 1:.1%}".replace("%", " %") + " above G-RNN"]
    unseen = {model: mean("exact", model, "velocity_mse_unseen") for model in ("fernn-v2", "relaxed-a1e-4",
                                                                               "relaxed-a1e-2", "relaxed-a1", "grnn")}
    figures += [f"{unseen['relaxed-a1e-4'] / unseen['fernn-v2']:.1f}× FERNN-V2's",
                f"{unseen['relaxed-a1e-2'] / unseen['fernn-v2']:.2f}×)",
                f"{unseen['relaxed-a1'] / unseen['fernn-v2']:.2f}× FERNN-V2's mean",
                f"{unseen['grnn'] / unseen['relaxed-a1']:.0f}× below G-RNN's {unseen['grnn']:.3f}"]
    for figure in figures:
        assert figure in text, figure


def test_the_stage_zero_check_compares_drawn_blocks_with_the_room_without_them(tmp_path, monkeypatch, capsys):
    """experiments/flowm3d_stage0.py on a tiny budget: static episodes collected, FloWM-3D trained one step ahead,
    its in-view block error against the room drawn without blocks written as a ratio with its verdict."""
    import json

    out, summary = tmp_path / "stage0", tmp_path / "stage0.json"
    monkeypatch.setattr(sys, "argv", ["flowm3d_stage0.py", "--out", str(out), "--episodes", "6", "--epochs", "1",
                                      "--steps-per-epoch", "2", "--hidden", "2", "--json", str(summary)])
    runpy.run_path(str(EXPERIMENTS / "flowm3d_stage0.py"), run_name="__main__")
    [result] = json.loads(summary.read_text())["runs"].values()
    assert result["ratio"] == result["mse_in_view"] / result["painted_over_in_view"] and result["target"] == 0.3
    assert result["passed"] == (result["ratio"] <= 0.3) and "ratio" in capsys.readouterr().out
