"""The README's examples, executed."""

import runpy
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_quickstart_runs():
    runpy.run_path(str(EXAMPLES / "quickstart.py"), run_name="__main__")


def test_envs_quickstart_runs():
    runpy.run_path(str(EXAMPLES / "envs_quickstart.py"), run_name="__main__")


def test_render_envs_writes_a_picture_of_every_env(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["render_envs.py", "--out", str(tmp_path)])
    runpy.run_path(str(EXAMPLES / "render_envs.py"), run_name="__main__")
    assert sorted(p.name for p in tmp_path.glob("env_*.png")) == [
        "env_FlowingMNIST.png", "env_KTHCamera.png", "env_MNISTWorld.png", "env_MNISTWorldTrack.png",
        "env_RotatingMNIST.png"]
