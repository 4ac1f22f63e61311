"""Runs that read other runs: a command writes only into a folder of its own kind that it created (a plan never
replaces a demo's or a training run's results, a dream never overwrites the world model it learns in), and a run
records the identity of the runs it depends on (a dream refuses a world model that changed since). Every check is
made before any fitting or training."""

import json
import os
import signal

import pytest
from typer.testing import CliRunner

from fernn.agents.cli import app

runner = CliRunner()
SMALL = {"world_size": 28, "window_size": 12, "num_digits": 2, "velocities": 1, "step_size": 1}
TRAIN = ["--model", "fernn", "--vmax", "1", "--world-size", "28", "--hidden", "2", "--context", "3", "--predict", "2",
         "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2", "--val-batches", "1", "--eval-sequences", "2",
         "--device", "cpu", "--quiet"]


def one_line_error(result, *words):
    output = " ".join(result.output.split())
    assert result.exit_code == 2 and output.count("error:") == 1 and "Traceback" not in result.output, result.output
    assert all(word in output for word in words), output
    return output


def collect(path, env="mnist-world-track", kwargs=SMALL, *extra):
    result = runner.invoke(app, ["collect", "--env", env, "--env-kwargs", json.dumps(kwargs), "--episodes", "4",
                                 "--max-steps", "14", "--out", str(path), "--quiet", *extra])
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny tracking world model (``wm``) and the trajectory file it learned from."""
    root = tmp_path_factory.mktemp("world")
    data = collect(root / "track.npz")
    result = runner.invoke(app, ["train", "--data", str(data), *TRAIN, "--out", str(root), "--name", "wm"])
    assert result.exit_code == 0, result.output
    return root


def dream_args(world_model, out, *extra):
    return ["dream", "--world-model", str(world_model), "--env", "mnist-world-track", "--env-kwargs", json.dumps(SMALL),
            "--horizon", "2", "--batch-size", "2", "--eval-every", "2", "--eval-episodes", "1", "--device", "cpu",
            "--out", str(out), "--quiet", *extra]


def test_plan_never_replaces_the_results_of_another_kind_of_folder(world, tmp_path):
    demo = tmp_path / "demo"
    demo.mkdir()
    demo_results = json.dumps({"models": {"fernn": {"mse": 0.01}}, "settings": {"epochs": 1}})
    (demo / "results.json").write_text(demo_results)
    plan = ["plan", "--env", "mnist-world-track", "--world-model", str(world / "wm"), "--env-kwargs", json.dumps(SMALL),
            "--horizon", "2", "--candidates", "4", "--elites", "2", "--episodes", "1", "--no-gif", "--quiet"]
    one_line_error(runner.invoke(app, [*plan, "--out", str(demo)]), "not a planning run's", "never written into")
    assert (demo / "results.json").read_text() == demo_results
    one_line_error(runner.invoke(app, [*plan, "--out", str(world / "wm")]), "is a run directory")
    assert json.loads((world / "wm" / "results.json").read_text()).get("kind") is None
    result = runner.invoke(app, [*plan, "--out", str(tmp_path / "plan")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "plan" / "results.json").read_text())["kind"] == "plan"
    assert runner.invoke(app, [*plan, "--out", str(tmp_path / "plan")]).exit_code == 0  # its own folder: replaced


def test_a_dream_never_writes_into_the_world_model_it_learns_in(world, tmp_path):
    files = sorted(p.name for p in (world / "wm").iterdir())
    for out, name in ((world, "wm"), (world.parent, world.name)):
        result = runner.invoke(app, [*dream_args(world / "wm", out, "--steps", "2"), "--name", name, "--overwrite"])
        one_line_error(result, "--world-model", "never writes into")
    assert sorted(p.name for p in (world / "wm").iterdir()) == files
    result = runner.invoke(app, ["train", "--data", str(world / "track.npz"), *TRAIN, "--out", str(world.parent),
                                 "--name", world.name, "--overwrite"])
    one_line_error(result, "--data", "never writes into")
    assert (world / "track.npz").is_file()


def test_a_dream_records_its_world_model_and_refuses_a_changed_one(world, tmp_path, monkeypatch):
    import shutil

    model = tmp_path / "wm"
    shutil.copytree(world / "wm", model)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, [*dream_args("wm", "runs", "--steps", "2"), "--name", "dream"])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "runs" / "dream" / "config.json").read_text())
    assert config["world_model"] == str(model) and len(config["world_model_digest"]) == 64
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the world model is found by its absolute path from anywhere
    assert runner.invoke(app, ["eval", str(tmp_path / "runs" / "dream"), "--episodes", "1"]).exit_code == 0
    result = runner.invoke(app, ["train", "--data", str(world / "track.npz"), *TRAIN, "--seed", "7", "--out",
                                 str(tmp_path), "--name", "wm", "--overwrite"])
    assert result.exit_code == 0, result.output
    for command in (["eval", str(tmp_path / "runs" / "dream"), "--episodes", "1"],
                    ["rollout", str(tmp_path / "runs" / "dream")],
                    [*dream_args(model, tmp_path / "runs", "--steps", "4"), "--name", "dream", "--resume"]):
        one_line_error(runner.invoke(app, command), "changed since this dream was trained", "--overwrite")


def test_dream_refusals_come_before_any_fitting(world, tmp_path):
    gray = collect(tmp_path / "gray.npz", "mnist-world", {"world_size": 28, "window_size": 12, "num_digits": 2})
    result = runner.invoke(app, ["train", "--data", str(gray), *TRAIN, "--out", str(tmp_path), "--name", "gray"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, [*dream_args(tmp_path / "gray", tmp_path, "--steps", "2"), "--env", "mnist-world",
                                 "--env-kwargs", json.dumps({"world_size": 28, "window_size": 12})])
    one_line_error(result, "one channel", "--score reward-head")
    for command in (dream_args(world / "wm", tmp_path, "--steps", "2", "--score", "reward-head", "--reward-data",
                               str(gray)),
                    ["plan", "--env", "mnist-world-track", "--world-model", str(world / "wm"), "--env-kwargs",
                     json.dumps(SMALL), "--score", "reward-head", "--reward-data", str(gray), "--out",
                     str(tmp_path / "p"), "--quiet"]):
        one_line_error(runner.invoke(app, command), "1 channel(s)", "2", "--reward-data")
    result = runner.invoke(app, [*dream_args(world / "wm", tmp_path, "--steps", "2"), "--horizon", "100",
                                 "--batch-size", "4096"])
    one_line_error(result, "GiB", "lower --batch-size or --horizon")
    result = runner.invoke(app, [*dream_args(world / "wm", tmp_path, "--steps", "2"), "--context", "40"])
    one_line_error(result, "--context 40", "has 15", "lower --context (at most 15)")
    assert not any(p.name.startswith("dream-") for p in tmp_path.iterdir())  # no run left behind


def test_ctrl_c_in_a_dream_saves_a_resume_point_and_resuming_equals_an_unbroken_run(world, tmp_path):
    from fernn.agents.dream import DreamConfig, train_dream

    settings = dict(world_model=str(world / "wm"), env_kwargs=SMALL, horizon=2, batch_size=2, steps=4, eval_every=4,
                    eval_episodes=1, log_every=1, device="cpu", out=str(tmp_path))
    unbroken = train_dream(DreamConfig(name="unbroken", **settings))

    def interrupt_once(row):
        if row["split"] == "train" and row["update"] == 1:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: the loop stops after the update in progress

    stopped = train_dream(DreamConfig(name="broken", **settings), reporter=interrupt_once)
    assert stopped["interrupted"] and stopped["updates"] == 1 and (tmp_path / "broken/checkpoints/last.pt").is_file()
    resumed = train_dream(DreamConfig(name="broken", **settings), resume=True)
    assert resumed["updates"] == 4
    columns = lambda name: [row.split(",")[:-1] for row in (tmp_path / name / "metrics.csv").read_text().splitlines()]
    assert columns("broken") == columns("unbroken")  # every figure but the wall-clock seconds
    returns = lambda results: {name: setting["returns"] for name, setting in results["final"].items()}
    assert returns(resumed) == returns(unbroken)


def test_a_dream_in_an_env_of_moves_the_world_model_never_saw_is_one_line(world, tmp_path):
    """The world model learned from one-pixel window moves; an env whose actions move two pixels cannot be imagined."""
    result = runner.invoke(app, [*dream_args(world / "wm", tmp_path, "--steps", "2"), "--env-kwargs",
                                 json.dumps({**SMALL, "step_size": 2})])
    one_line_error(result, "never saw", "(2, 0)", "dream in the env")
    assert not any(p.name.startswith("dream-") for p in tmp_path.iterdir())
