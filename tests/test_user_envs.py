"""Environments nobody here wrote, as a new user brings them (docs/your_env.md): Atari through ale-py (RGB and
grayscale frames) and MiniGrid (Dict, egocentric observations), end to end at a tiny budget. Skipped when the
package is absent."""

import json
import textwrap

import pytest
from typer.testing import CliRunner

from fernn.agents.cli import app

runner = CliRunner()
TINY_TRAIN = ["--epochs", "1", "--steps-per-epoch", "2", "--eval-sequences", "2", "--val-batches", "1", "--device",
              "cpu", "-q"]
TINY_RL = ["--algo", "recurrent-ppo", "--policy", "fernn", "--timesteps", "64", "--n-envs", "2", "--n-steps", "32",
           "--batch-size", "64", "--hidden", "2", "--vmax", "1", "--eval-every", "64", "--eval-episodes", "1",
           "--device", "cpu", "-q"]


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output, result.output
    return result


def test_atari_breakout_collect_train_eval_rollout_with_the_defaults(tmp_path):
    pytest.importorskip("ale_py")
    data = tmp_path / "breakout.npz"
    result = invoke("collect", "--env", "ALE/Breakout-v5", "--episodes", "3", "--max-steps", "20", "--out", str(data),
                    "-q")
    assert result.exit_code == 0 and data.is_file(), result.output
    result = invoke("train", "--data", str(data), *TINY_TRAIN, "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    run = tmp_path / "breakout-fernn"  # named after its data file
    config = json.loads((run / "config.json").read_text())
    assert config["hidden"] * (2 * config["vmax"] + 1) ** 2 <= 32 * 25  # sized to 210x160 frames, not MNIST's
    assert json.loads((run / "results.json").read_text())["test"]["mse"] >= 0
    assert invoke("eval", str(run), "-q").exit_code == 0
    result = invoke("rollout", str(run))
    assert result.exit_code == 0 and any(run.glob("rollout_*.gif")), result.output


def test_atari_grayscale_frames_get_a_channel_axis_from_a_flag(tmp_path):
    pytest.importorskip("ale_py")
    data, gray = tmp_path / "gray.npz", json.dumps({"obs_type": "grayscale"})
    result = invoke("collect", "--env", "ALE/Pong-v5", "--env-kwargs", gray, "--episodes", "1", "--max-steps", "5",
                    "--out", str(data), "-q")
    assert result.exit_code == 2 and "--add-channel" in result.output
    result = invoke("collect", "--env", "ALE/Pong-v5", "--env-kwargs", gray, "--add-channel", "--episodes", "1",
                    "--max-steps", "5", "--out", str(data), "-q")
    assert result.exit_code == 0 and "(210, 160, 1)" in result.output, result.output


def test_minigrid_dict_observations_one_line_or_an_image_key(tmp_path):
    pytest.importorskip("minigrid")
    env = "minigrid:MiniGrid-Dynamic-Obstacles-8x8-v0"
    result = invoke("train", "--env", env, *TINY_RL, "--out", str(tmp_path))
    assert result.exit_code == 2 and "Dict observations" in result.output and "--obs-key" in result.output
    with pytest.warns(UserWarning, match="symbolic codes"):  # MiniGrid's "image" holds object codes, not pixels
        result = invoke("train", "--env", env, "--obs-key", "image", *TINY_RL, "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "minigrid-dynamic-obstacles-8x8-fernn-s0" / "config.json").read_text())[
        "obs_key"] == "image"


def test_an_env_module_of_the_current_directory_gives_minigrid_pixels(tmp_path, monkeypatch):
    """The egocentric view as pixels: a wrapper in the user's own module, imported from the current directory."""
    pytest.importorskip("minigrid")
    (tmp_path / "my_grid.py").write_text(textwrap.dedent('''
        import gymnasium as gym
        from minigrid.wrappers import ImgObsWrapper, RGBImgPartialObsWrapper

        def make(**kwargs):
            return ImgObsWrapper(RGBImgPartialObsWrapper(gym.make("MiniGrid-Dynamic-Obstacles-8x8-v0", **kwargs),
                                                         tile_size=4))

        gym.register("MyGridPixels-v0", entry_point=make, max_episode_steps=64)
    '''))
    monkeypatch.chdir(tmp_path)
    result = invoke("train", "--env", "my_grid:MyGridPixels-v0", *TINY_RL, "--out", str(tmp_path / "runs"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "mygridpixels-fernn-s0" / "model.zip").is_file()
