"""Smoke tests of the command line with tiny budgets, and its one-line errors."""

import json

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
                                 "--repeats", "1", "--batch-size", "2", "--json", str(out)])
    assert result.exit_code == 0, result.output
    names = {r["name"] for r in json.loads(out.read_text())["results"]}
    assert {"fernn", "roll-loop (paper)", "no-flow floor", "G-RNN x9 batch", "fernn bf16 autocast"} <= names


def test_bench_step_bad_flags_are_one_line_errors():
    result = runner.invoke(app, ["bench", "step", "--vmax", "a,b"])
    assert result.exit_code == 2
    assert "--vmax must be comma-separated integers" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["bench", "step", "--vmax", "-1"])
    assert result.exit_code == 2 and ">= 0" in result.output


@pytest.mark.slow
def test_demo_runs_end_to_end():
    result = runner.invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    assert "Equivariance" in result.output and "roll-loop" in result.output
