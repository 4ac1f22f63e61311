"""A new user's first hour on the 3-D paths: progress on every long step (plain lines off a terminal), an
evaluation sized to a short run, ``--threads``, labelled rollout GIFs that tell observed views from predicted ones,
and the smaller refusals (a reward head on constant rewards)."""

import json

import torch
from PIL import Image
from typer.testing import CliRunner

from fernn.agents.cli import app

runner = CliRunner()
SCENE = json.dumps({"obs_size": 16, "room_size": 6, "num_blocks": [2, 3]})


def test_a_tiny_3d_run_shows_progress_and_evaluates_at_its_own_size(tmp_path):
    data = tmp_path / "blocks.npz"
    result = runner.invoke(app, ["collect", "--env", "dynamic-block-world", "--env-kwargs", SCENE, "--policy",
                                 "biased-walk", "--episodes", "4", "--max-steps", "12", "--out", str(data)])
    assert result.exit_code == 0 and "collecting DynamicBlockWorld-v0: 4/4 episodes" in result.output, result.output
    result = runner.invoke(app, ["train", "--data", str(data), "--model", "fernn-3d", "--epochs", "1",
                                 "--steps-per-epoch", "2", "--batch-size", "2", "--hidden", "2", "--context", "3",
                                 "--predict", "3", "--device", "cpu", "--out", str(tmp_path), "--name", "wm"])
    assert result.exit_code == 0, result.output
    assert "evaluating: 8/8 sequences" in result.output and "first step" in result.output
    config = json.loads((tmp_path / "wm" / "config.json").read_text())
    assert config["eval_sequences"] == 8  # an eighth of what it trained on, at least 8 (not the 64 of a full run)
    assert not {"vmax", "velocities", "world_size", "decoder_layers", "eval_vmax"} & set(config)  # only what is used
    gif = Image.open(tmp_path / "wm" / "rollout.gif")
    results = json.loads((tmp_path / "wm" / "results.json").read_text())
    context, longest = results["test"]["context"], max(map(int, results["length_generalization"]))
    assert gif.n_frames == longest and context == 3  # the observed views, then every predicted one
    result = runner.invoke(app, ["eval", str(tmp_path / "wm"), "--what", "test"])
    assert result.exit_code == 0 and "evaluating" in result.output, result.output


def test_threads_goes_before_any_command():
    before = torch.get_num_threads()
    try:
        result = runner.invoke(app, ["--threads", "1", "envs"])
        assert result.exit_code == 0 and torch.get_num_threads() == 1, result.output
    finally:
        torch.set_num_threads(before)
    assert runner.invoke(app, ["--threads", "0", "envs"]).exit_code == 2


def test_the_catalog_gives_each_block_world_its_own_reward():
    from fernn.agents.catalog import catalog

    rewards = {entry.env_id: entry.reward for entry in catalog()}
    assert rewards["DynamicBlockWorldFindRed-v0"].startswith("exp(-(d - 2)^2 / 2)")
    assert rewards["DynamicBlockWorld-v0"].startswith("0 every step") and "None" not in rewards["DynamicBlockWorld-v0"]


def test_a_reward_head_on_constant_rewards_is_refused(tmp_path):
    import pytest

    from fernn.agents.planning import fit_reward_head

    data = tmp_path / "blocks.npz"
    assert runner.invoke(app, ["collect", "--env", "dynamic-block-world", "--env-kwargs", SCENE, "--episodes", "2",
                               "--max-steps", "6", "--out", str(data), "-q"]).exit_code == 0
    with pytest.raises(ValueError, match="every recorded reward is 0"):
        fit_reward_head(data)


def test_debug_shows_the_traceback_and_a_bug_is_never_a_one_line_user_error(monkeypatch):
    from fernn.agents.cli import console

    bad = ["train", "--env", "pong", "--epochs", "1"]
    result = runner.invoke(app, bad)
    assert result.exit_code == 2 and "env must be one of" in result.output
    result = runner.invoke(app, ["--debug", *bad])
    assert result.exit_code != 2 and isinstance(result.exception, ValueError)  # the exception itself, traceback and all
    monkeypatch.setenv("FERNN_DEBUG", "1")
    assert isinstance(runner.invoke(app, bad).exception, ValueError)
    monkeypatch.delenv("FERNN_DEBUG")
    assert runner.invoke(app, bad).exit_code == 2  # --debug holds for its own invocation only

    def buggy():
        return len(5)  # a TypeError the interpreter raises: a bug

    def checked():
        raise TypeError("hidden must be an integer, got 'x' (str)")  # a check's message for the user

    assert console.is_a_bug(_raised(buggy)) and not console.is_a_bug(_raised(checked))


def _raised(function):
    try:
        function()
    except TypeError as error:
        return error
    raise AssertionError("no error")
