"""One run lifecycle for every kind of run: nothing is created before setup succeeds, resume refuses changed
settings, one process at a time, names stay inside --out, eval/rollout dispatch on the recorded kind."""

import json
import multiprocessing

import pytest
from typer.testing import CliRunner

from fernn.agents.cli import app
from fernn.agents.runs import RunDir, RunLockedError, run_path

runner = CliRunner()
TINY_FLAGS = ["--env", "flowing-mnist", "--vmax", "1", "--data-vmax", "1", "--eval-vmax", "1", "--hidden", "2",
              "--decoder-layers", "1", "--context", "2", "--predict", "2", "--epochs", "1", "--steps-per-epoch", "2",
              "--batch-size", "2", "--val-batches", "1", "--eval-sequences", "2", "--source", "embedded",
              "--device", "cpu", "--quiet"]
RL_FLAGS = ["train", "--env", "mnist-world-track", "--algo", "recurrent-ppo", "--policy", "cnn-lstm", "--n-envs", "2",
            "--n-steps", "8", "--batch-size", "8", "--eval-every", "16", "--eval-episodes", "1", "--timesteps", "16",
            "--device", "cpu", "--quiet"]


def one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.output.count("error:") == 1, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def test_a_failed_start_leaves_nothing_behind_and_the_retry_fails_the_same(tmp_path):
    args = ["train", "--env", "kth-camera", "--data-dir", str(tmp_path / "nodata"), "--out", str(tmp_path / "runs"),
            "--quiet"]
    first, second = runner.invoke(app, args), runner.invoke(app, args)
    one_line_error(first, "KTH")
    assert second.output == first.output
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []


def test_resume_refuses_changed_settings_and_the_overwrite_pair(tmp_path):
    base = ["train", *TINY_FLAGS, "--out", str(tmp_path), "--name", "r"]
    assert runner.invoke(app, base).exit_code == 0
    one_line_error(runner.invoke(app, [*base, "--resume", "--hidden", "4"]), "hidden=2 (asked 4)")
    one_line_error(runner.invoke(app, [*base, "--resume", "--overwrite"]), "contradict")
    resumed = runner.invoke(app, [*base, "--resume", "--epochs", "2"])  # more epochs: train longer
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((tmp_path / "r" / "config.json").read_text())["epochs"] == 2


def test_rl_resume_refuses_a_changed_policy(tmp_path):
    args = [*RL_FLAGS, "--out", str(tmp_path), "--name", "rl"]
    assert runner.invoke(app, args).exit_code == 0
    changed = [a if a != "cnn-lstm" else "fernn" for a in args]
    one_line_error(runner.invoke(app, [*changed, "--resume"]), "policy='cnn-lstm' (asked 'fernn')")


def test_names_stay_inside_out(tmp_path):
    one_line_error(runner.invoke(app, ["train", *TINY_FLAGS, "--out", str(tmp_path), "--name", "../../escape"]),
                   "inside --out")
    with pytest.raises(ValueError, match="inside --out"):
        run_path(tmp_path, "/etc")
    assert not (tmp_path.parent.parent / "escape").exists()


def _hold(path, ready, release):
    with RunDir(path).lock():
        ready.set()
        release.wait(30)


def test_a_live_run_is_locked_against_a_second_process(tmp_path):
    context = multiprocessing.get_context("fork")
    ready, release = context.Event(), context.Event()
    holder = context.Process(target=_hold, args=(tmp_path / "r", ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(RunLockedError, match="in use by process"):
            with RunDir(tmp_path / "r").lock():
                pass
        one_line_error(runner.invoke(app, ["train", *TINY_FLAGS, "--out", str(tmp_path), "--name", "r",
                                           "--overwrite"]), "in use")
    finally:
        release.set()
        holder.join(30)
    with RunDir(tmp_path / "r").lock():  # released when its holder exits
        pass


def test_eval_and_rollout_dispatch_on_the_recorded_kind(tmp_path):
    assert runner.invoke(app, [*RL_FLAGS, "--out", str(tmp_path), "--name", "rl"]).exit_code == 0
    run = RunDir(tmp_path / "rl")
    assert run.kind() == "rl" and json.loads(run.info_path.read_text())["kind"] == "rl"
    result = runner.invoke(app, ["eval", str(run.path), "--episodes", "2"])
    assert result.exit_code == 0, result.output
    assert json.loads((run.path / "results.json").read_text())["reevaluation"]["episodes"] == 2
    one_line_error(runner.invoke(app, ["eval", str(run.path), "--device", "tpu"]), "--device")


def _rl_process(out, name, *extra):
    import subprocess
    import sys

    args = [a for a in RL_FLAGS if a not in ("--quiet",)]
    args[args.index("--timesteps") + 1] = "1024"
    args[args.index("--eval-every") + 1] = "256"
    args[args.index("--eval-episodes") + 1] = "2"
    args[args.index("--n-steps") + 1] = "64"
    args[args.index("--batch-size") + 1] = "64"
    return subprocess.Popen([sys.executable, "-m", "fernn.agents.cli", *args, "--seed", "5", "--out", str(out),
                             "--name", name, "--quiet", *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _saved_updates(archive) -> tuple[int, int]:
    import zipfile

    with zipfile.ZipFile(archive) as zf:
        data = json.loads(zf.read("data"))
    return data["num_timesteps"], data["_n_updates"]


@pytest.mark.slow
def test_a_killed_rl_run_resumes_without_losing_an_update(tmp_path):
    """Killed after its second evaluation (SIGKILL) and resumed, an RL run keeps its evaluation rows, its resume
    point is the model after that rollout's PPO update, and it ends with as many updates as an uninterrupted run."""
    import csv
    import time

    killed = _rl_process(tmp_path, "killed")
    deadline = time.time() + 300
    while time.time() < deadline:
        rows = (tmp_path / "killed" / "eval.csv")
        if rows.is_file() and len(rows.read_text().splitlines()) >= 3 and killed.poll() is None:
            break
        assert killed.poll() is None, killed.stdout.read()
        time.sleep(0.05)
    killed.kill()
    killed.wait()
    before = list(csv.DictReader(open(tmp_path / "killed" / "eval.csv")))
    steps, updates = _saved_updates(tmp_path / "killed" / "checkpoints" / "last.zip")
    assert updates == steps // 128 * 4  # 4 epochs per rollout of 2 x 64: the last rollout's update is in
    resumed = _rl_process(tmp_path, "killed", "--resume")
    assert resumed.wait(timeout=600) == 0, resumed.stdout.read()
    reference = _rl_process(tmp_path, "reference")
    assert reference.wait(timeout=600) == 0, reference.stdout.read()
    after = list(csv.DictReader(open(tmp_path / "killed" / "eval.csv")))
    uninterrupted = list(csv.DictReader(open(tmp_path / "reference" / "eval.csv")))
    strip = lambda rows: [(r["timesteps"], r["mean_return"], r["std_return"]) for r in rows]  # noqa: E731
    kept = [r for r in strip(before) if int(r[0]) <= steps]
    assert strip(after)[:len(kept)] == kept == strip(uninterrupted)[:len(kept)]  # nothing rewritten, same history
    assert [r[0] for r in strip(after)] == [r[0] for r in strip(uninterrupted)]
    assert _saved_updates(tmp_path / "killed" / "model.zip") == _saved_updates(tmp_path / "reference" / "model.zip")


def test_merging_results_keeps_the_files_earlier_evaluations_wrote(tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    for name in ("rollout_0.gif", "test_mse_per_step.png"):
        (run.path / name).write_bytes(b"x")
    (run.path / "results.json").write_text(json.dumps({"files": ["rollout_0.gif", "gone.png", "../../etc/passwd"],
                                                       "test": {"mse": 1.0}}))
    run.merge_results({"test": {"mse": 0.5}, "files": ["test_mse_per_step.png"]})
    merged = json.loads((run.path / "results.json").read_text())
    assert merged["files"] == ["rollout_0.gif", "test_mse_per_step.png"] and merged["test"] == {"mse": 0.5}


def test_eval_of_an_evaluation_a_run_does_not_have_is_one_line(tmp_path):
    import gymnasium as gym

    import fernn.envs  # noqa: F401
    from fernn.envs import collect_episodes

    collect_episodes(gym.make("FlowingMNIST-v0", seq_len=8), 3, max_steps=7, seed=0).save(tmp_path / "frames.npz")
    flags = ["--hidden", "2", "--vmax", "1", "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "1",
             "--eval-sequences", "1", "--val-batches", "1", "--context", "2", "--predict", "2", "--device", "cpu", "-q"]
    result = runner.invoke(app, ["train", "--data", str(tmp_path / "frames.npz"), *flags, "--out", str(tmp_path),
                                 "--name", "run"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["eval", str(tmp_path / "run"), "--what", "velocity"])
    assert result.exit_code == 2 and "does not apply to this run" in " ".join(result.output.split()), result.output
    assert "its evaluations: test, length, rollout, equivariance" in " ".join(result.output.split())
