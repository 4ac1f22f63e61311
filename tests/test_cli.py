"""Smoke tests of the command line with tiny budgets, and its one-line errors."""

import json
import math

import pytest
from typer.testing import CliRunner

from fernn.agents.cli import app

runner = CliRunner()


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "bench" in result.output and "demo" in result.output


def test_bench_step_tiny(tmp_path):
    out = tmp_path / "bench.json"
    result = runner.invoke(app, ["bench", "step", "--image-size", "6", "--hidden", "2", "--vmax", "0,1",
                                 "--repeats", "1", "--batch-size", "2", "--in-process", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    names = {r["name"] for r in report["results"]}
    assert {"fernn", "roll-loop (paper)", "no-flow floor", "G-RNN x9 batch", "fernn bf16 autocast"} <= names
    assert report["rounds"] == 1 and len(report["results"]) == 3 + 5  # V=1: 3 rows, V=9: 5 rows


def test_bench_step_bad_flags_are_one_line_errors():
    result = runner.invoke(app, ["bench", "step", "--vmax", "a,b"])
    assert result.exit_code == 2
    assert "--vmax must be comma-separated integers" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["bench", "step", "--vmax", "-1"])
    assert result.exit_code == 2 and ">= 0" in result.output
    result = runner.invoke(app, ["bench", "rotation", "--rounds", "0"])
    assert result.exit_code == 2 and "--rounds" in result.output and "Traceback" not in result.output


def test_bench_rounds_must_be_a_positive_count():
    from fernn.agents.bench.models import bench_world_model

    with pytest.raises(ValueError, match="rounds"):
        bench_world_model(rounds=0)


def test_demo_pipeline_on_a_tiny_budget(tmp_path):
    from fernn.agents.supervised.demo import run_demo

    summary = run_demo(str(tmp_path), epochs=1, steps_per_epoch=2, hidden=2, eval_sequences=2, eval_vmax=2)
    folder = tmp_path / "demo"
    assert json.loads((folder / "results.json").read_text())["models"].keys() == {"grnn", "fernn"}
    assert summary["unseen_rollout_mse_ratio_fernn_over_grnn"] > 0
    for name in summary["files"]:
        assert (folder / name).is_file()


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    """The main job as `make demo` runs it: it must show FERNN <= 0.5x G-RNN on unseen velocities."""
    result = runner.invoke(app, ["demo", "--out", str(tmp_path), "--quiet"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "demo" / "results.json").read_text())
    assert summary["unseen_rollout_mse_ratio_fernn_over_grnn"] <= 0.5
    assert "FERNN / G-RNN on unseen velocities" in result.output


def test_envs_play_and_bounds_commands(tmp_path):
    result = runner.invoke(app, ["envs"], env={"COLUMNS": "250"})
    assert result.exit_code == 0 and "MNISTWorldTrack-v0" in result.output and "kth-camera" in result.output
    result = runner.invoke(app, ["play", "--env", "mnist-world-track", "--max-steps", "3", "--fps", "100"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["play", "--env", "flowing-mnist", "--max-steps", "1"])
    assert result.exit_code == 2 and "no keyboard mapping" in result.output
    out = tmp_path / "bounds.json"
    result = runner.invoke(app, ["bounds", "--episodes", "2", "--json", str(out)])
    assert result.exit_code == 0 and set(json.loads(out.read_text())) == {"random", "oracle"}
    result = runner.invoke(app, ["bounds", "--episodes", "1", "--fixed-moves", "--json", str(out)])
    fixed = json.loads(out.read_text())["best fixed move"]
    assert result.exit_code == 0 and 0 <= fixed["action"] < 9 and fixed["mean"] >= 0 and "best fixed move" in result.output
    result = runner.invoke(app, ["train", "--env", "pong-v9", "--algo", "ppo", "--policy", "frame-stack-cnn"])
    assert result.exit_code == 2 and "pong-v9" in result.output


@pytest.mark.parametrize("args", [
    ["rotation", "--image-size", "4", "--pad", "1", "--hidden", "1", "--group-order", "4", "--angular-velocities",
     "-90,0,90", "--context", "1", "--predicted", "1", "--batch-size", "2", "--repeats", "1", "--rounds", "2",
     "--in-process"],
    ["world-model", "--world-size", "8", "--window-size", "4", "--hidden", "1", "--vmax", "1", "--frames", "2",
     "--max-action", "2", "--repeats", "1", "--batch-size", "2"],  # fresh processes, the default
    ["scenes", "--batch-size", "2", "--seconds", "0.1", "--num-envs", "2"],
    ["rl", "--n-envs", "1", "--n-steps", "8", "--hidden", "1", "--vmax", "1", "--repeats", "1"],
    ["plan", "--world-size", "8", "--window-size", "4", "--hidden", "1", "--horizon", "2", "--candidates", "3",
     "--iterations", "1", "--rounds", "1"],
])
def test_every_benchmark_runs_tiny(tmp_path, args):
    out = tmp_path / "bench.json"
    result = runner.invoke(app, ["bench", *args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    figures = list(numbers(report))
    assert figures and all(math.isfinite(x) for x in figures) and any(x > 0 for x in figures), report
    if args[0] == "rotation":  # two rounds of five rows, merged into one row each
        assert report["rounds"] == 2 and len(report["results"]) == 5


def numbers(report):
    """Every number in a benchmark's JSON (the timings and ratios)."""
    if isinstance(report, dict):
        for value in report.values():
            yield from numbers(value)
    elif isinstance(report, list):
        for value in report:
            yield from numbers(value)
    elif isinstance(report, (int, float)) and not isinstance(report, bool):
        yield float(report)


def test_block_world_benchmark_runs_tiny(tmp_path):
    pytest.importorskip("miniworld")
    out = tmp_path / "bench.json"
    result = runner.invoke(app, ["bench", "block-world", "--num-envs", "2", "--obs-size", "16", "--steps", "10",
                                 "--rounds", "1", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["vector_steps_per_s"] > 0 and report["miniworld_steps_per_s"] > 0
    assert report["vector_vs_miniworld"] == report["vector_steps_per_s"] / report["miniworld_steps_per_s"]
    assert report["equal_envs_and_cores"] == report["vector_all_cores_steps_per_s"] / \
        report["miniworld_workers_steps_per_s"]  # MiniWorld's 2 envs in worker processes, the vector env on every core
    assert report["single_vs_miniworld"] == report["single_steps_per_s"] / report["miniworld_steps_per_s"]
    assert report["cores"] >= 1 and "2 envs on" in " ".join(result.output.split())


def test_median_timing_takes_the_median_of_rounds():
    from fernn.agents.bench.models import StepTiming, median_timing

    rounds = [StepTiming("fernn", "V=9", 9, 16, t, f, 10.0, 0.5) for t, f in ((3.0, 1.0), (1.0, None), (2.0, 2.0))]
    merged = median_timing(rounds)
    assert (merged.train_s, merged.forward_s, merged.saved_mib) == (2.0, None, 10.0)
    assert median_timing(rounds[::2]).forward_s == 1.5


def test_bench_takes_the_devices_every_command_takes(tmp_path):
    out = tmp_path / "bench.json"
    result = runner.invoke(app, ["bench", "step", "--device", "auto", "--image-size", "6", "--hidden", "2", "--vmax", "0",
                                 "--repeats", "1", "--batch-size", "2", "--no-bf16", "--json", str(out)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["bench", "step", "--device", "gpu"])
    assert result.exit_code == 2 and "must be auto, cpu, cuda or cuda:N" in result.output
