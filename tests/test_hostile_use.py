"""What a careless or hostile user cannot do: delete or write into a directory that is not a run, cut an episode
short with --parallel, raise a run's budget by resuming it, allocate gigabytes from a file's or a flag's sizes, or
reach through symbolic links; damaged run files and bad flags are one line each."""

import json
import os
import subprocess
import sys
import time

import gymnasium as gym
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import fernn.envs  # noqa: F401
from fernn import TranslationFlow, WorldModel
from fernn.agents.cli import app
from fernn.agents.planning import CEMPlanner, target_ink
from fernn.agents.planning_eval import evaluate_planner
from fernn.envs.mnist_world import DIRECTIONS

runner = CliRunner()
SMALL_TRACK = dict(world_size=28, window_size=12, num_digits=2, velocities=1, step_size=1)
TINY = ["--env", "flowing-mnist", "--vmax", "1", "--data-vmax", "1", "--eval-vmax", "1", "--hidden", "2",
        "--decoder-layers", "1", "--context", "2", "--predict", "2", "--steps-per-epoch", "2", "--batch-size", "2",
        "--val-batches", "1", "--eval-sequences", "2", "--source", "embedded", "--device", "cpu", "--quiet"]


def one_line_error(result, *words):
    output = " ".join(result.output.split())
    assert result.exit_code == 2 and output.count("error:") == 1 and "Traceback" not in result.output, result.output
    assert all(word in output for word in words), output
    return output


def test_a_directory_that_is_not_a_run_is_never_deleted_or_written_into(tmp_path):
    home = tmp_path / "home"
    documents = home / "Documents"
    documents.mkdir(parents=True)
    (documents / "thesis.txt").write_text("years of work")
    for extra in (["--overwrite"], [], ["--resume"]):
        result = runner.invoke(app, ["train", *TINY, "--epochs", "1", "--out", str(home), "--name", "Documents", *extra])
        one_line_error(result, "not a run of fernn-rl", "never deleted or written into")
        assert sorted(p.name for p in documents.iterdir()) == ["thesis.txt"]
        assert (documents / "thesis.txt").read_text() == "years of work"
    empty = home / "fresh"
    empty.mkdir()
    result = runner.invoke(app, ["train", *TINY, "--epochs", "1", "--out", str(home), "--name", "fresh"])
    assert result.exit_code == 0 and (empty / "run.json").is_file(), result.output


class VariableLength(gym.Wrapper):
    """MNISTWorldTrack whose episodes end after 5 + (seed % 7) steps: episodes of one batch differ in length."""

    def reset(self, *, seed=None, options=None):
        self.limit, self.steps = 5 + (seed or 0) % 7, 0
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        return obs, reward, terminated, truncated or self.steps >= self.limit, info


def test_parallel_changes_the_speed_never_the_results():
    torch.manual_seed(0)
    model = WorldModel(2, 2, TranslationFlow(1), world_size=28, window_size=12, decoder_layers=0)
    make = lambda **render: VariableLength(gym.make("MNISTWorldTrack-v0", **SMALL_TRACK, **render))  # noqa: E731
    results = []
    for parallel in (1, 4):
        planner = CEMPlanner(model, DIRECTIONS, target_ink, horizon=2, candidates=4, iterations=1, elites=2, seed=0)
        results.append(evaluate_planner(planner, "MNISTWorldTrack-v0", episodes=4, parallel=parallel, seed=50_000,
                                        make_env=make))
    expected = [5 + seed % 7 for seed in range(50_000, 50_004)]
    assert results[0]["lengths"] == results[1]["lengths"] == expected, results[1]["lengths"]
    assert len(set(expected)) > 1 and results[1]["decisions"] == sum(expected)
    assert np.allclose(results[0]["returns"], results[1]["returns"])


def test_a_plain_resume_keeps_the_stored_budget_and_the_hint_works_when_copied(tmp_path):
    out = str(tmp_path / "runs")
    result = runner.invoke(app, ["train", *TINY, "--epochs", "1", "--out", out, "--name", "short"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["train", "--resume", "--out", out, "--name", "short", "--quiet"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "runs" / "short" / "config.json").read_text())["epochs"] == 1
    result = runner.invoke(app, ["train", "--resume", "--out", out, "--name", "short", "--epochs", "2", "--quiet"])
    assert result.exit_code == 0 and json.loads((tmp_path / "runs" / "short" / "config.json").read_text())["epochs"] == 2
    from fernn.agents.cli.train_supervised import resume_command

    hint = resume_command(out, "short").split()
    assert hint[:3] == ["fernn-rl", "train", "--resume"]
    assert runner.invoke(app, [*hint[1:], "--quiet"]).exit_code == 0


def test_sizes_from_flags_and_files_are_refused_with_the_figure(tmp_path):
    from fernn.envs import collect_episodes

    data = collect_episodes("mnist-world", 3, max_steps=6, seed=0,
                            env_kwargs=dict(world_size=40, window_size=20, num_digits=2, step_size=3))
    data.save(tmp_path / "world.npz")
    result = runner.invoke(app, ["train", "--data", str(tmp_path / "world.npz"), "--batch-size", "100000",
                                 "--hidden", "64", "--out", str(tmp_path / "runs")])
    one_line_error(result, "GiB", "lower")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    result = runner.invoke(app, ["train", "--data", str(tmp_path / "world.npz"), "--world-size", "20", "--out",
                                 str(tmp_path / "runs")])  # the 20x20 windows leave nothing out of view
    one_line_error(result, "world_size must be larger than the frames")
    result = runner.invoke(app, ["train", "--env", "mnist-world-track", "--algo", "recurrent-ppo", "--policy", "fernn",
                                 "--vmax", "10", "--hidden", "64", "--out", str(tmp_path / "runs")])
    one_line_error(result, "GiB", "lower --vmax")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


class Endless(gym.Env):
    """An env with image observations that never ends and sets no time limit."""

    observation_space = gym.spaces.Box(0, 255, (4, 4, 1), np.uint8)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros((4, 4, 1), np.uint8), {}

    def step(self, action):
        return np.zeros((4, 4, 1), np.uint8), 0.0, False, False, {}


def test_an_endless_env_is_cut_and_collection_says_so(monkeypatch):
    from fernn.envs import collect_episodes, trajectories

    monkeypatch.setattr(trajectories, "DEFAULT_MAX_STEPS", 50)
    data = collect_episodes(Endless(), 2, seed=0)
    assert list(data.lengths) == [50, 50] and data.meta["cut_at"] == 50
    from fernn.budget import MemoryBudgetError

    with pytest.raises(MemoryBudgetError, match="episodes"):
        collect_episodes(Endless(), 10 ** 9, seed=0)


def test_symbolic_links_are_never_followed_for_writes_or_reads(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "runs"
    out.mkdir()
    (out / "link").symlink_to(outside)
    result = runner.invoke(app, ["train", *TINY, "--epochs", "1", "--out", str(out), "--name", "link/x"])
    one_line_error(result, "symbolic link")
    assert not any(outside.iterdir())
    result = runner.invoke(app, ["train", *TINY, "--epochs", "1", "--out", str(out), "--name", "real"])
    assert result.exit_code == 0, result.output
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"password": "hunter2"}))
    results = out / "real" / "results.json"
    results.unlink()
    results.symlink_to(secret)
    result = runner.invoke(app, ["eval", str(out / "real"), "--what", "test"])
    one_line_error(result, "symbolic link")
    assert "hunter2" not in (secret.read_text() and results.resolve().read_text() and "") and \
        json.loads(secret.read_text()) == {"password": "hunter2"}


def test_the_run_lock_belongs_to_the_resolved_directory(tmp_path):
    from fernn.agents.runs import RunDir, RunLockedError

    (tmp_path / "runs").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "runs")
    first, second = RunDir(tmp_path / "runs" / "r"), RunDir(tmp_path / "alias" / "r")
    assert first.lock_path == second.lock_path
    code = (f"from fernn.agents.runs import RunDir\nimport time\nwith RunDir({str(first.path)!r}).lock():\n"
            "    print('locked', flush=True)\n    time.sleep(30)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError):
            with second.lock():
                pass
    finally:
        holder.kill()
        holder.wait()


def test_damaged_or_hostile_run_files_are_one_line(tmp_path):
    out = tmp_path / "runs"
    result = runner.invoke(app, ["train", *TINY, "--epochs", "1", "--out", str(out), "--name", "r"])
    assert result.exit_code == 0, result.output
    run = out / "r"
    config = json.loads((run / "config.json").read_text())
    (run / "results.json").write_text('{"test": {"mse": 0.1')  # truncated
    one_line_error(runner.invoke(app, ["eval", str(run), "--what", "test"]), "results.json", "not valid JSON")
    (run / "results.json").unlink()
    for broken, words in (({**config, "hidden": "many"}, ("hidden",)), ({**config, "colour": 3}, ("colour",)),
                          ({**config, "data": 5}, ("data",))):
        (run / "config.json").write_text(json.dumps(broken))
        one_line_error(runner.invoke(app, ["eval", str(run), "--what", "test"]), *words)
        one_line_error(runner.invoke(app, ["train", "--resume", "--out", str(out), "--name", "r"]), *words)
    (run / "config.json").write_text(json.dumps(config))
    best = run / "checkpoints" / "best.pt"
    for payload, words in (({"state": 1}, ("no model weights",)), ({"model": [1, 2]}, ("no model weights",)),
                           ({"model": {"weight": torch.zeros(2)}}, ("does not hold the weights",))):
        torch.save(payload, best)
        one_line_error(runner.invoke(app, ["eval", str(run), "--what", "test"]), "best.pt", *words)
    one_line_error(runner.invoke(app, ["plan", "--env", "mnist-world-track", "--world-model", str(run)]),
                   "not a world model")


def test_nan_rewards_are_refused_and_results_are_strict_json(tmp_path):
    from fernn.agents.planning import fit_reward_head
    from fernn.agents.runs import write_json
    from fernn.envs import TrajectoryDataset, collect_episodes

    data = collect_episodes("mnist-world-track", 2, max_steps=4, seed=0, env_kwargs=SMALL_TRACK)
    episode = data.episode(1)
    episode["rewards"][2] = np.nan
    TrajectoryDataset([data.episode(0), episode], data.meta).save(tmp_path / "nan.npz")
    with pytest.raises(ValueError, match="NaN or infinite"):
        fit_reward_head(tmp_path / "nan.npz")
    write_json(tmp_path / "r.json", {"a": float("nan"), "b": [1.0, float("inf")], "c": np.array([np.nan])})
    assert json.loads((tmp_path / "r.json").read_text(), parse_constant=lambda c: pytest.fail(c)) == \
        {"a": None, "b": [1.0, None], "c": [None]}


def test_a_killed_write_leaves_no_temporary_behind_the_next_write(tmp_path):
    from fernn import io

    stale = tmp_path / ".results.abc123.tmp.json"
    stale.write_text("half")
    os.utime(stale, (time.time() - 2 * io.STALE_SECONDS,) * 2)
    fresh = tmp_path / ".results.def456.tmp.json"
    fresh.write_text("a write in progress elsewhere")
    io.atomic_write(tmp_path / "results.json", lambda tmp: tmp.write_text("{}"))
    assert not stale.exists() and fresh.exists() and (tmp_path / "results.json").read_text() == "{}"


def test_a_plan_folder_of_other_files_is_refused_and_old_results_go_first(tmp_path):
    from fernn.agents.planning_eval import plan_folder

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(ValueError, match="never written into"):
        plan_folder(mine, tmp_path, "MNISTWorldTrack-v0")
    (tmp_path / "link").symlink_to(mine)
    with pytest.raises(ValueError, match="symbolic link"):
        plan_folder(tmp_path / "link", tmp_path, "MNISTWorldTrack-v0")
    ours = tmp_path / "plan-mnistworldtrack"
    ours.mkdir()
    (ours / "results.json").write_text(json.dumps({"kind": "plan", "settings": {}}))
    assert plan_folder(None, tmp_path, "MNISTWorldTrack-v0") == ours


def test_nproc_takes_both_spellings(monkeypatch):
    from fernn.agents.cli import train_supervised

    launched = {}
    monkeypatch.setattr(train_supervised.subprocess, "call", lambda command: launched.setdefault("c", command) and 0)
    for spelling in (["--nproc=2"], ["--nproc", "2"]):
        monkeypatch.setattr(sys, "argv", ["fernn-rl", "train", *spelling, "--epochs", "1"])
        result = runner.invoke(app, ["train", *spelling, "--epochs", "1"])
        assert result.exit_code == 0, result.output
        command = launched.pop("c")
        assert "--nproc_per_node=2" in command and not any(a.startswith("--nproc") and a != "--nproc_per_node=2"
                                                           for a in command) and "--epochs" in command


def test_error_lines_hold_no_terminal_colour_codes(tmp_path):
    from fernn.agents.cli.console import fail

    import typer

    with pytest.raises(typer.Exit):
        fail("\x1b[33mWARN: something\x1b[0m\nsecond line")
    result = runner.invoke(app, ["train", "--env", "CartPole-v1", "--algo", "ppo", "--policy", "frame-stack-cnn",
                                 "--timesteps", "8", "--out", str(tmp_path)])
    assert "\x1b[" not in result.output and result.exit_code == 2, result.output
