"""Faults on the planning, dream, first-person and benchmark paths, each one clear line before any work starts (or, for
a peer that fails while measured, the peer left out and our figures kept)."""

import json
import time

import gymnasium as gym
import pytest
from typer.testing import CliRunner

import fernn.envs  # noqa: F401
from fernn.agents.cli import app
from fernn.budget import MemoryBudgetError

runner = CliRunner()
SMALL = {"world_size": 28, "window_size": 12, "num_digits": 2, "velocities": 1, "step_size": 1}
RL = ["--algo", "recurrent-ppo", "--policy", "fernn", "--timesteps", "32", "--n-envs", "2", "--n-steps", "8",
      "--batch-size", "16", "--hidden", "2", "--vmax", "1", "--eval-every", "16", "--eval-episodes", "1", "--device",
      "cpu", "--quiet"]


def one_line_error(result, *words):
    output = " ".join(result.output.split())
    assert result.exit_code == 2 and output.count("error:") == 1 and "Traceback" not in result.output, result.output
    assert all(word in output for word in words), output
    return output


@pytest.mark.parametrize("env_id", ["DynamicBlockWorld-v0", "MNISTWorld-v0", "FlowingMNIST-v0"])
def test_ten_million_vector_envs_are_refused_before_any_scene_is_built(env_id):
    started = time.perf_counter()
    with pytest.raises(MemoryBudgetError, match="GiB"):
        gym.make_vec(env_id, num_envs=10_000_000, vectorization_mode="vector_entry_point")
    assert time.perf_counter() - started < 5


def test_a_peer_that_fails_while_measured_is_left_out_and_our_figures_kept(monkeypatch):
    from fernn.agents.bench import block_world

    calls = []

    def failing(steps):
        calls.append(steps)
        if len(calls) > 1:
            raise RuntimeError("GL context lost")
        return 100.0

    monkeypatch.setattr(block_world, "peer_timer", lambda obs_size, seed: (failing, "MiniWorld (stub)"))
    result = block_world.bench_block_world(num_envs=2, obs_size=16, steps=4, rounds=2, workers=False)
    assert result["vector_steps_per_s"] > 0 and result["single_steps_per_s"] > 0
    assert result["miniworld_steps_per_s"] is None and result["vector_vs_miniworld"] is None
    assert "failed during round 2" in result["peer"] and "GL context lost" in result["peer"]


def test_bench_json_that_cannot_be_written_is_refused_before_the_benchmark():
    started = time.perf_counter()
    result = runner.invoke(app, ["bench", "step", "--image-size", "6", "--hidden", "2", "--vmax", "0", "--repeats", "1",
                                 "--batch-size", "2", "--no-bf16", "--json", "/proc/x.json"])
    output = one_line_error(result, "/proc/x.json cannot be written")
    assert ".tmp" not in output and time.perf_counter() - started < 5


def test_rl_motion_flags_are_refused_before_a_run_exists(tmp_path, monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    pixels = ["--env", "CartPole-v1", "--pixels", "--pixel-size", "16", "--grayscale"]
    blocks = ["--env", "dynamic-block-world-find-red", "--env-kwargs", '{"obs_size": 16, "room_size": 6}']
    for env, flag, words in ((pixels, ["--actor", "equivariant"], ("action_moves()", "--actor pooled")),
                             (pixels, ["--self-motion"], ("info['action']", "leave --self-motion out")),
                             (blocks, ["--actor", "equivariant"], ("first-person motions", "cannot represent")),
                             (blocks, ["--self-motion"], ("first-person motions", "cannot represent"))):
        one_line_error(runner.invoke(app, ["train", *env, *RL, *flag, "--out", str(tmp_path), "--name", "r"]), *words)
        assert not (tmp_path / "r").exists()
    result = runner.invoke(app, ["train", *blocks, *RL, "--out", str(tmp_path), "--name", "r"])  # the retry works
    assert result.exit_code == 0, result.output


def test_collect_with_a_saved_policy_refuses_an_env_of_other_observations(tmp_path):
    result = runner.invoke(app, ["train", "--env", "mnist-world-track", "--env-kwargs", json.dumps(SMALL), "--algo",
                                 "recurrent-ppo", "--policy", "cnn-lstm", "--timesteps", "16", "--n-envs", "2",
                                 "--n-steps", "8", "--batch-size", "8", "--eval-every", "16", "--eval-episodes", "1",
                                 "--device", "cpu", "--quiet", "--out", str(tmp_path), "--name", "agent"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["collect", "--env", "mnist-world-track", "--env-kwargs",
                                 '{"world_size": 40, "window_size": 16}', "--episodes", "1", "--max-steps", "3",
                                 "--policy", str(tmp_path / "agent"), "--out", str(tmp_path / "a.npz"), "-q"])
    one_line_error(result, "trained on MNISTWorldTrack-v0", "(16, 16, 2)", "--env-kwargs it was trained on")
    assert not (tmp_path / "a.npz").exists()


def test_a_plain_resume_of_a_data_run_keeps_its_data(tmp_path):
    data = tmp_path / "track.npz"
    assert runner.invoke(app, ["collect", "--env", "mnist-world-track", "--env-kwargs", json.dumps(SMALL), "--episodes",
                               "4", "--max-steps", "12", "--out", str(data), "-q"]).exit_code == 0
    train = ["train", "--model", "fernn", "--vmax", "1", "--world-size", "28", "--hidden", "2", "--context", "3",
             "--predict", "2", "--steps-per-epoch", "2", "--batch-size", "2", "--val-batches", "1",
             "--eval-sequences", "2", "--device", "cpu", "-q", "--out", str(tmp_path), "--name", "wm"]
    assert runner.invoke(app, [*train, "--data", str(data), "--epochs", "1"]).exit_code == 0
    result = runner.invoke(app, ["train", "--resume", "--out", str(tmp_path), "--name", "wm", "--epochs", "2", "-q"])
    assert result.exit_code == 0, result.output
    other = tmp_path / "other.npz"
    other.write_bytes(data.read_bytes())
    one_line_error(runner.invoke(app, ["train", "--resume", "--out", str(tmp_path), "--name", "wm", "--data",
                                       str(other), "--epochs", "3"]), "other.npz", "drop those flags")


def test_pixel_size_is_the_one_name_of_the_rendered_frame_side(tmp_path, monkeypatch):
    """--pixel-size resizes rendered frames in collect, plan and RL training; --frame-size there is its old name (a
    note says so; both at once is refused), and in train's supervised runs it is KTH's frame side only."""
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    collect = ["collect", "--env", "CartPole-v1", "--pixels", "--grayscale", "--episodes", "2", "--max-steps", "3"]
    result = runner.invoke(app, [*collect, "--pixel-size", "16", "--out", str(tmp_path / "a.npz"), "-q"])
    assert result.exit_code == 0 and "(16, 16, 1)" in result.output and "old name" not in result.output, result.output
    result = runner.invoke(app, [*collect, "--frame-size", "16", "--out", str(tmp_path / "b.npz"), "-q"])
    assert result.exit_code == 0 and "(16, 16, 1)" in result.output and "old name of --pixel-size" in result.output
    one_line_error(runner.invoke(app, [*collect, "--frame-size", "16", "--pixel-size", "16", "--out",
                                       str(tmp_path / "c.npz")]), "give --pixel-size only")
    assert not (tmp_path / "c.npz").exists()
    for command in ("collect", "plan", "train"):
        assert "--pixel-size" in " ".join(runner.invoke(app, [command, "--help"]).output.split())
