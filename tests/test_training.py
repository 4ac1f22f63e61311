"""The supervised trainer: outputs of a run, exact resume, kill / Ctrl-C, DDP on CPU (gloo), every task,
evaluations and the CLI's one-line errors."""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from fernn.agents.cli import app
from fernn.agents.supervised.config import TASK_MODELS, TrainConfig
from fernn.agents.supervised.presets import PRESETS
from fernn.agents.runs import RunDir, RunExistsError
from fernn.agents.supervised.trainer import train

runner = CliRunner()
TINY = dict(env="flowing-mnist", model="fernn", vmax=1, data_vmax=1, eval_vmax=1, hidden=2, decoder_layers=1,
            context=2, predict=2, epochs=2, steps_per_epoch=4, batch_size=4, val_batches=1, eval_sequences=4,
            log_every=1, checkpoint_every=2, source="embedded", device="cpu", seed=3)
TINY_FLAGS = ["--env", "flowing-mnist", "--vmax", "1", "--data-vmax", "1", "--eval-vmax", "1", "--hidden", "2",
              "--decoder-layers", "1", "--context", "2", "--predict", "2", "--epochs", "2", "--steps-per-epoch", "4",
              "--batch-size", "4", "--val-batches", "1", "--eval-sequences", "4", "--log-every", "1",
              "--source", "embedded", "--device", "cpu", "--seed", "3", "--quiet"]
#: TINY for KTH: without the digit scenes' --source and the predictor's --decoder-layers, which KTH refuses
KTH_FLAGS = [flag for i, flag in enumerate(TINY_FLAGS)
             if flag not in ("--source", "--decoder-layers") and TINY_FLAGS[i - 1] not in ("--source", "--decoder-layers")]
KTH_TINY = {"source": "auto", "decoder_layers": 4}  # their defaults


def tiny(tmp_path, **changes) -> TrainConfig:
    return TrainConfig(out=str(tmp_path), **{**TINY, **changes})


def rows(run_dir) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def train_rows(run_dir) -> list[tuple[int, float]]:
    return [(int(r["step"]), float(r["loss"])) for r in rows(run_dir) if r["split"] == "train"]


def parameters(run_dir) -> torch.Tensor:
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)["model"]
    return torch.cat([v.reshape(-1).float() for v in state.values()])


def test_a_run_writes_every_output(tmp_path):
    result = train(tiny(tmp_path, name="full"))
    run = tmp_path / "full"
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == "fernn" and config["hidden"] == 2
    assert [step for step, _ in train_rows(run)] == list(range(1, 9))
    assert {r["split"] for r in rows(run)} == {"train", "val"}
    assert (run / "checkpoints" / "last.pt").is_file() and (run / "checkpoints" / "best.pt").is_file()
    assert any((run / "tensorboard").iterdir())
    results = json.loads((run / "results.json").read_text())
    assert set(results) >= {"test", "length_generalization", "velocity_generalization", "files", "config"}
    assert set(results["length_generalization"]) == {"8", "16"}
    assert len(results["velocity_generalization"]["velocities"]) == 9
    for name in results["files"]:
        assert (run / name).is_file()
    assert result.step == 8 and not result.interrupted
    assert not list(run.rglob("*.tmp*")), "atomic writes leave no temporary files"


def test_resume_continues_exactly(tmp_path):
    train(tiny(tmp_path, name="straight"), evaluate_at_end=False)
    first = train(tiny(tmp_path, name="resumed"), stop_after=3, evaluate_at_end=False)
    assert first.interrupted and first.step == 3
    train(tiny(tmp_path, name="resumed"), resume=True, evaluate_at_end=False)
    assert train_rows(tmp_path / "resumed") == train_rows(tmp_path / "straight")
    assert torch.equal(parameters(tmp_path / "resumed"), parameters(tmp_path / "straight"))
    seconds = [float(row["seconds"]) for row in RunDir(tmp_path / "resumed").read_metrics()]
    assert seconds == sorted(seconds), seconds  # training time counts on across the resume, never from zero again


def test_existing_run_needs_resume_or_overwrite(tmp_path):
    train(tiny(tmp_path, name="once", epochs=1), evaluate_at_end=False)
    with pytest.raises(RunExistsError, match="--resume.*--overwrite"):
        train(tiny(tmp_path, name="once", epochs=1))
    train(tiny(tmp_path, name="once", epochs=1), overwrite=True, evaluate_at_end=False)
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        train(tiny(tmp_path, name="never"), resume=True)


def _cli_process(tmp_path, name, *extra):
    command = [sys.executable, "-m", "fernn.agents.cli", "train", *TINY_FLAGS, "--out", str(tmp_path), "--name", name, *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_rows(run_dir, count, process, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (run_dir / "metrics.csv").is_file() and len(train_rows(run_dir)) >= count:
            return
        assert process.poll() is None, process.stdout.read()
        time.sleep(0.05)
    raise TimeoutError("the run did not log in time")


def test_a_killed_run_resumes_with_nothing_lost_or_duplicated(tmp_path):
    steps = ["--epochs", "3", "--steps-per-epoch", "10", "--checkpoint-every", "4"]
    process = _cli_process(tmp_path, "killed", *steps)
    _wait_for_rows(tmp_path / "killed", 9, process)
    process.kill()
    process.wait()
    logged_before = train_rows(tmp_path / "killed")
    resumed = _cli_process(tmp_path, "killed", *steps, "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stdout.read()
    logged = train_rows(tmp_path / "killed")
    assert [step for step, _ in logged] == list(range(1, 31))
    checkpoint_step = max(s for s in range(0, 31, 4) if s <= len(logged_before))
    assert logged[:checkpoint_step] == logged_before[:checkpoint_step]
    reference = train(tiny(tmp_path, name="reference", epochs=3, steps_per_epoch=10, checkpoint_every=4),
                      evaluate_at_end=False)
    assert reference.step == 30
    assert [loss for _, loss in logged] == pytest.approx([loss for _, loss in train_rows(tmp_path / "reference")])


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    process = _cli_process(tmp_path, "interrupted", "--epochs", "2000")
    _wait_for_rows(tmp_path / "interrupted", 3, process)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output
    assert "interrupted at step" in output and "--resume" in output and "Traceback" not in output
    saved = torch.load(tmp_path / "interrupted" / "checkpoints" / "last.pt", weights_only=False)
    assert saved["state"]["step"] == max(step for step, _ in train_rows(tmp_path / "interrupted"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ddp_two_cpu_processes_match_one_process(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
               f"--master_port={_free_port()}", "-m", "fernn.agents.cli", "train", *TINY_FLAGS, "--out", str(tmp_path),
               "--name", "ddp", "--epochs", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    ddp = json.loads((tmp_path / "ddp" / "results.json").read_text())["ddp"]
    assert ddp["world_size"] == 2 and ddp["max_parameter_difference_across_ranks"] == 0.0
    train(tiny(tmp_path, name="single", epochs=1), evaluate_at_end=False)
    torch.testing.assert_close(parameters(tmp_path / "ddp"), parameters(tmp_path / "single"), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("env, model", [(env, model) for env, models in TASK_MODELS.items() for model in models
                                        if env not in ("kth-camera", "trajectories")])  # both: own tests
def test_every_mnist_task_and_model_trains_and_evaluates(tmp_path, env, model):
    changes = dict(env=env, model=model, name=f"{env}-{model}", epochs=1, steps_per_epoch=2)
    if env == "rotating-mnist":  # rotation flows: the translation settings of TINY stay unset
        changes.update(angular_velocities=[-90, 0, 90], group_order=4, data_angular_velocities=[0, 90],
                       eval_angular_velocities=[-90, 0, 90], vmax=None, data_vmax=2, eval_vmax=2)
    if env == "mnist-world":  # evaluated on held-out episodes, not a velocity grid
        changes.update(world_size=32, window_size=28, num_digits=2, decoder_layers=1, eval_vmax=2)
    result = train(tiny(tmp_path, **changes))
    assert result.step == 2 and "test" in result.results
    assert torch.isfinite(torch.tensor(result.results["test"]["mse"]))


@pytest.mark.parametrize("model", TASK_MODELS["kth-camera"])
def test_kth_classification_trains_on_the_miniature_dataset(tmp_path, kth_root, model):
    config = tiny(tmp_path, env="kth-camera", model=model, name=f"kth-{model}", epochs=1, steps_per_epoch=2,
                  data_dir=str(kth_root), clip_len=4, frame_size=16, **KTH_TINY)
    result = train(config)
    test = result.results["test"]
    assert 0 <= test["accuracy"] <= 1 and len(test["confusion_matrix"]) == 6
    assert len(result.results["velocity_generalization"]["accuracy"]) == 9


def test_world_model_fov_split_is_reported(tmp_path):
    result = train(tiny(tmp_path, env="mnist-world", model="fernn", name="world", epochs=1, steps_per_epoch=2,
                        world_size=40, window_size=28, num_digits=2, eval_vmax=2))
    test = result.results["test"]
    assert len(test["mse_in_view_per_step"]) == 2 and test["mse_out_of_view"] >= 0


def test_eval_and_rollout_commands(tmp_path):
    train(tiny(tmp_path, name="done", epochs=1), evaluate_at_end=False)
    run = str(tmp_path / "done")
    result = runner.invoke(app, ["eval", run, "--what", "test,velocity", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert set(json.loads((tmp_path / "done" / "results.json").read_text())) >= {"test", "velocity_generalization"}
    result = runner.invoke(app, ["rollout", run, "--device", "cpu"])
    assert result.exit_code == 0 and (tmp_path / "done" / "rollout_0.gif").is_file()


def test_cli_train_smoke_and_one_line_errors(tmp_path):
    result = runner.invoke(app, ["train", *TINY_FLAGS, "--out", str(tmp_path), "--name", "cli", "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cli" / "results.json").is_file()
    for args, message in [
        (["--env", "pong"], "env must be one of"),
        (["--model", "transformer"], "model 'transformer' is not available for flowing-mnist"),
        (["--velocities", "1,a"], "--velocities must be"),
        (["--preset", "table9"], "unknown preset 'table9'"),
        (["--name", "cli"], "already holds a run"),
        (["--env", "kth-camera", "--data-dir", str(tmp_path / "nothing"), "--name", "kth"], "KTH actions not found"),
        (["--device", "tpu"], "device must be"),
        (["--env", "kth-camera", "--angular-velocities", "0,20"], "--angular-velocities does not apply to kth-camera"),
    ]:
        flags = KTH_FLAGS if "kth-camera" in args else TINY_FLAGS
        result = runner.invoke(app, ["train", *flags, "--out", str(tmp_path), "--epochs", "1", *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output, (args, result.output)
    result = runner.invoke(app, ["eval", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "not a run directory" in result.output


def test_presets_are_valid_configs_and_documented():
    for name, preset in PRESETS.items():
        data = {"data": "blocks128.npz"} if preset.collect else {}  # a --data preset names its collect command
        config = TrainConfig(**preset.settings, **data, preset=name)
        assert (config.env == "trajectories") == (preset.collect is not None), name
        if preset.collect and preset.collect.startswith("python "):  # an example script that writes the file
            script = preset.collect.split()[1]
            assert (Path(__file__).resolve().parents[1] / script).is_file(), (name, script)
        elif preset.collect:
            out = preset.collect.split("--out ")[-1].split()[0]
            assert preset.collect.startswith("fernn-rl collect ") and out.endswith(".npz"), (name, preset.collect)
    help_text = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"}).output
    assert "table1-translation-fernn-v2" in help_text and "Table 2" in help_text


def test_a_failed_download_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr("fernn.envs.kth.KTH_URL", "http://127.0.0.1:9/")  # nothing listens: refused at once
    result = runner.invoke(app, ["train", *KTH_FLAGS, "--env", "kth-camera", "--data-dir", str(tmp_path),
                                 "--download", "--out", str(tmp_path), "--name", "dl"])
    assert result.exit_code == 2 and "could not download http://127.0.0.1:9/00sequences.txt" in result.output
    assert "Traceback" not in result.output
