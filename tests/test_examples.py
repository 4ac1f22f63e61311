"""The README's examples, executed."""

import runpy
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_quickstart_runs():
    runpy.run_path(str(EXAMPLES / "quickstart.py"), run_name="__main__")


def test_envs_quickstart_runs():
    runpy.run_path(str(EXAMPLES / "envs_quickstart.py"), run_name="__main__")


def test_atari_pong_example_runs_on_a_tiny_budget(tmp_path, monkeypatch):
    """The Pong example end to end on a tiny budget (skipped without the [atari] extra)."""
    import pytest

    pytest.importorskip("ale_py")
    monkeypatch.setattr(sys, "argv", ["atari_pong.py", "--out", str(tmp_path), "--episodes", "4", "--steps", "12",
                                      "--train-steps", "2", "--hidden", "2", "--batch-size", "2"])
    namespace = runpy.run_path(str(EXAMPLES / "atari_pong.py"), run_name="pong")
    summary = namespace["main"](sys.argv[1:])
    assert set(summary["models"]) == {"grnn", "fernn"} and (tmp_path / "pong.npz").is_file()
    moves = [tuple(int(v) for v in key.strip("()").split(",")) for key in summary["ball_velocities_px_per_step"]]
    assert moves and max(max(abs(dx), abs(dy)) for dx, dy in moves) <= 3
