"""First-person data from outside the happy path: grayscale and four-channel views train, evaluate and draw; a file
too long for its own format is refused at collection; forged ground truth and meta are one line before training;
an evaluation the episodes cannot hold is refused before training; a rendered frame that shows the hidden state is
never recorded as an observation."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from fernn.agents.cli import app

runner = CliRunner()
SCENE = {"obs_size": 16, "room_size": 6, "num_blocks": [2, 3]}
TINY = ["--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2", "--hidden", "2", "--context", "3", "--predict",
        "3", "--eval-sequences", "2", "--val-batches", "1", "--device", "cpu", "-q"]


def one_line_error(result, *words):
    output = " ".join(result.output.split())
    assert result.exit_code == 2 and output.count("error:") == 1 and "Traceback" not in result.output, result.output
    assert all(word in output for word in words), output
    return output


@pytest.fixture(scope="module")
def blocks(tmp_path_factory):
    """A tiny block-world file: 4 episodes of 12 steps, 16 px views, ground truth recorded."""
    path = tmp_path_factory.mktemp("blocks") / "blocks.npz"
    result = runner.invoke(app, ["collect", "--env", "dynamic-block-world", "--env-kwargs", json.dumps(SCENE),
                                 "--policy", "biased-walk", "--episodes", "4", "--max-steps", "12", "--out", str(path),
                                 "-q"])
    assert result.exit_code == 0, result.output
    return path


def rewritten(source, target, change):
    """A copy of the trajectory file ``source`` with ``change(arrays)`` applied (a user's converted or forged file)."""
    arrays = dict(np.load(source))
    change(arrays)
    np.savez_compressed(target, **arrays)
    return target


def with_views(change):
    def apply(arrays):
        for key in [k for k in arrays if k.startswith("obs_")]:
            arrays[key] = change(arrays[key])
    return apply


@pytest.mark.parametrize("model", ["fernn-3d", "rssm"])
def test_grayscale_and_four_channel_views_train_evaluate_and_draw(blocks, tmp_path, model):
    gray = rewritten(blocks, tmp_path / "gray.npz", with_views(lambda v: v.mean(-1, keepdims=True).astype(np.uint8)))
    four = rewritten(blocks, tmp_path / "four.npz", with_views(lambda v: np.concatenate([v, v[..., :1]], -1)))
    for data in (gray, four):
        run = tmp_path / data.stem
        result = runner.invoke(app, ["train", "--data", str(data), "--model", model, *TINY, "--out", str(tmp_path),
                                     "--name", data.stem])
        assert result.exit_code == 0, result.output
        assert "test" in json.loads((run / "results.json").read_text()) and (run / "rollout.gif").stat().st_size > 0
        assert runner.invoke(app, ["eval", str(run), "-q"]).exit_code == 0
        assert runner.invoke(app, ["rollout", str(run)]).exit_code == 0
    result = runner.invoke(app, ["eval", str(run), "--what", "velocity"])  # an evaluation 3-D runs do not have
    one_line_error(result, "velocity does not apply", "test, length, rollout")


def test_collect_refuses_episodes_its_file_cannot_hold(tmp_path):
    result = runner.invoke(app, ["collect", "--env", "dynamic-block-world", "--env-kwargs", '{"obs_size": 1024}',
                                 "--episodes", "1", "--out", str(tmp_path / "big.npz"), "-q"])
    one_line_error(result, "500 steps", "1 GiB per array", "--max-steps", "340")
    assert not (tmp_path / "big.npz").exists()


def test_pixels_never_record_a_rendered_frame_that_shows_the_hidden_state(tmp_path):
    for env in ("dynamic-block-world", "mnist-world"):
        result = runner.invoke(app, ["collect", "--env", env, "--pixels", "--pixel-size", "16", "--episodes", "1",
                                     "--max-steps", "3", "--out", str(tmp_path / "p.npz"), "-q"])
        one_line_error(result, "show what its observations hide", "leave out --pixels")
    assert not (tmp_path / "p.npz").exists()


def _set(key, index, value):
    def change(arrays):
        arrays[key][index] = value
    return change


def _drop(prefix):
    def change(arrays):
        for key in [k for k in arrays if k.startswith(prefix)]:
            del arrays[key]
    return change


def _as_float_nan(arrays):
    arrays["truth_block_pos_000000"] = arrays["truth_block_pos_000000"].astype(float)
    arrays["truth_block_pos_000000"][0, 0, 0] = np.nan


def _meta(env_kwargs):
    """A block-world file of the format before meta['first_person']: the room read from the env's kwargs."""
    def change(arrays):
        meta = json.loads(str(arrays["meta"]))
        meta.pop("first_person")
        arrays["meta"] = np.array(json.dumps({**meta, "env_kwargs": env_kwargs}))
    return change


def _declared(**values):
    def change(arrays):
        meta = json.loads(str(arrays["meta"]))
        first_person = values.get("whole", {**meta["first_person"], **values})
        arrays["meta"] = np.array(json.dumps({**meta, "first_person": first_person}))
    return change


@pytest.mark.parametrize("change, words", [
    (_set("truth_block_color_000001", (0, 0), 99), ("episode 1", "truth_block_color", "[-1, 5]")),
    (_set("truth_agent_dir_000000", 0, 7), ("truth_agent_dir", "[0, 3]")),
    (_set("truth_block_pos_000002", (0, 0, 0), 10 ** 9), ("truth_block_pos", "6-cell room")),
    (_as_float_nan, ("truth_block_pos", "float64", "integers")),
    (_drop("truth_block_pos"), ("lacks truth_block_pos",)),
    (_meta([1, 2]), ("env_kwargs", "JSON object", "list")),
    (_meta({"room_size": "abc"}), ("room_size must be an integer", "'abc'")),
    (_meta({"room_size": 10 ** 6}), ("room_size", "[4, 64]")),
    (_meta({"fov": 500}), ("fov", "(0, 180)")),
    (_declared(whole=[6, 60]), ("first_person", "JSON object")),
    (_declared(room_size="abc"), ("first_person", "room_size must be an integer")),
    (_declared(fov=500), ("first_person", "fov")),
    (_declared(turn_degrees=45), ("turns 90 degrees",)),
])
def test_forged_ground_truth_or_meta_is_one_line_before_training(blocks, tmp_path, change, words):
    forged = rewritten(blocks, tmp_path / "forged.npz", change)
    result = runner.invoke(app, ["train", "--data", str(forged), "--model", "fernn-3d", *TINY, "--eval-horizons", "3",
                                 "--out", str(tmp_path), "--name", "forged"])
    one_line_error(result, "forged.npz", *words)
    assert not (tmp_path / "forged").exists()


def test_an_evaluation_the_episodes_cannot_hold_is_refused_before_training(blocks, tmp_path):
    base = ["train", "--data", str(blocks), "--model", "fernn-3d", *TINY, "--out", str(tmp_path)]
    one_line_error(runner.invoke(app, [*base, "--eval-context", "10", "--eval-horizons", "3,6", "--name", "a"]),
                   "16 views", "longest held-out episode", "has 13", "--eval-context")
    one_line_error(runner.invoke(app, ["train", "--preset", "flowm-3d", "--data", str(blocks), "--out", str(tmp_path),
                                       "--name", "b"]), "set by --preset flowm-3d", "--max-steps")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    result = runner.invoke(app, [*base, "--name", "c"])  # the default long horizon is cut to what the episodes hold
    assert result.exit_code == 0, result.output
    assert list(json.loads((tmp_path / "c" / "results.json").read_text())["length_generalization"]) == ["13"]


def test_a_file_of_one_episode_is_refused_for_training(blocks, tmp_path):
    def first_only(arrays):
        for key in [k for k in arrays if k[-6:].isdigit() and not k.endswith("000000")]:
            del arrays[key]
        arrays["lengths"] = arrays["lengths"][:1]

    single = rewritten(blocks, tmp_path / "single.npz", first_only)
    result = runner.invoke(app, ["train", "--data", str(single), "--model", "fernn-3d", *TINY, "--out", str(tmp_path),
                                 "--name", "single"])
    one_line_error(result, "has 1 episode", "at least 3", "--episodes")


def test_plan_refuses_an_env_of_another_room_or_field_of_view(blocks, tmp_path):
    result = runner.invoke(app, ["train", "--data", str(blocks), "--model", "fernn-3d", *TINY, "--eval-horizons", "3",
                                 "--out", str(tmp_path), "--name", "wm"])
    assert result.exit_code == 0, result.output
    plan = ["plan", "--env", "dynamic-block-world-find-red", "--world-model", str(tmp_path / "wm"), "--episodes", "1",
            "--out", str(tmp_path / "plan"), "-q"]
    for scene, words in (({**SCENE, "room_size": 8}, ("room_size 8", "the world model's: 6")),
                         ({**SCENE, "fov": 90}, ("fov 90.0", "the world model's: 60.0")),
                         ({**SCENE, "obs_size": 32}, ("(16, 16, 3)", "(32, 32, 3)"))):
        one_line_error(runner.invoke(app, [*plan, "--env-kwargs", json.dumps(scene)]), *words)
    assert not (tmp_path / "plan").exists()
