"""Every flag of a ``--data`` run is honoured or refused, never ignored, for each kind of data: first-person
episodes (FloWM-3D, the RSSM), episodes with window moves (the 2-D world model) and episodes without moves (the
next-frame predictor). The table below classifies every flag ``fernn-rl train`` accepts for ``--data`` runs; a new
flag fails the test until it is classified.

* ``model``: the built model differs (weights' shapes, velocity set or map size) from the run without the flag;
* ``trainer``: a setting of the training loop or the run (the trainer reads it from the config it records);
* ``refused``: one clear error naming the flag, before anything is built.
"""

import json

import pytest
import torch
from typer.testing import CliRunner

from fernn.agents.cli import app
from fernn.agents.cli.train import DATA, FLAGS

runner = CliRunner()
RUN = {"out", "name", "seed", "device", "resume", "overwrite", "quiet", "nproc", "preset", "data", "model"}
TRAINER = {"epochs", "steps_per_epoch", "batch_size", "lr", "grad_clip", "teacher_forcing", "teacher_forcing_end",
           "context", "predict", "amp", "compile_model", "eval_sequences", "val_batches", "log_every",
           "checkpoint_every", "relax_alpha"}
FIELDS = {"compile_model": "compile"}
VALUES = {"vmax": 1, "velocities": [[0, 0], [1, 0]], "eval_vmax": 1, "hidden": 3, "relaxed": 2, "decoder_layers": 2,
          "world_size": 40, "eval_context": 4, "eval_horizons": [3]}
#: flag -> outcome on (first-person, window moves, no moves) data
TABLE = {
    "vmax": ("refused", "model", "model"),
    "velocities": ("refused", "model", "model"),
    "eval_vmax": ("refused", "refused", "refused"),
    "hidden": ("model", "model", "model"),
    "relaxed": ("refused", "model", "model"),
    "decoder_layers": ("refused", "model", "model"),
    "world_size": ("refused", "model", "refused"),
    "eval_context": ("trainer", "refused", "refused"),
    "eval_horizons": ("trainer", "refused", "refused"),
}
KINDS = ("first-person", "window-moves", "no-moves")


def collect(path, env, kwargs, *extra):
    result = runner.invoke(app, ["collect", "--env", env, "--env-kwargs", json.dumps(kwargs), "--episodes", "4",
                                 "--max-steps", "12", "--out", str(path), "-q", *extra])
    assert result.exit_code == 0, result.output
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("flag_table")
    track = {"world_size": 28, "window_size": 12, "num_digits": 2, "velocities": 1, "step_size": 1}
    return {"first-person": collect(root / "blocks.npz", "dynamic-block-world",
                                    {"obs_size": 16, "room_size": 6, "num_blocks": [2, 3]}, "--policy", "biased-walk"),
            "window-moves": collect(root / "track.npz", "mnist-world-track", track),
            "no-moves": without_moves(collect(root / "track.npz", "mnist-world-track", track), root / "plain.npz")}


def without_moves(source, target):
    """The episodes of ``source`` without their recorded moves (what an env that reports none gives)."""
    import numpy as np

    arrays = {key: value for key, value in np.load(source).items() if not key.startswith("moves_")}
    meta = json.loads(str(arrays["meta"]))
    arrays["meta"] = np.array(json.dumps({**meta, "moves": None}))
    np.savez_compressed(target, **arrays)
    return str(target)


def built(data: str, model: str, **settings):
    """The model a run of these settings builds (weights' shapes, velocity sets, map size), or the error."""
    from fernn.agents.supervised.trainer import _setup

    setup = _setup({"data": data, "model": model, "hidden": 2, "context": 3, "predict": 3, "batch_size": 2,
                    "device": "cpu", **settings}, torch.device("cpu"))
    shapes = tuple((key, tuple(value.shape)) for key, value in setup.model.state_dict().items())
    velocities = tuple(tuple(map(tuple, module.flow.velocities.tolist())) for module in setup.model.modules()
                       if hasattr(getattr(module, "flow", None), "velocities"))
    return shapes, velocities, getattr(setup.task, "world_hw", None), setup.config


def test_every_data_flag_is_classified():
    data_flags = {flag.name for flag in FLAGS if DATA in flag.kinds}
    assert data_flags == RUN | TRAINER | set(TABLE), data_flags ^ (RUN | TRAINER | set(TABLE))


@pytest.mark.parametrize("flag", sorted(TABLE))
def test_a_data_flag_changes_the_model_or_is_refused(files, flag):
    for kind, outcome in zip(KINDS, TABLE[flag]):
        model = "fernn-3d" if kind == "first-person" else "fernn"
        field, value = FIELDS.get(flag, flag), VALUES[flag]
        if outcome == "refused":
            with pytest.raises(ValueError, match=f"--{flag.replace('_', '-')}|{field}"):
                built(files[kind], model, **{field: value})
            continue
        baseline, changed = built(files[kind], model), built(files[kind], model, **{field: value})
        assert getattr(changed[3], field) == value, (kind, flag)
        if outcome == "model":
            assert changed[:3] != baseline[:3], f"{flag} on {kind} data builds the same model"


def test_the_rssm_honours_hidden(files):
    small, large = built(files["first-person"], "rssm", hidden=2), built(files["first-person"], "rssm", hidden=8)
    assert small[0] != large[0]


@pytest.mark.parametrize("flag", sorted(TRAINER))
def test_a_trainer_flag_is_recorded_as_given(files, flag):
    values = {"epochs": 3, "steps_per_epoch": 7, "batch_size": 3, "lr": 0.01, "grad_clip": 0.5, "teacher_forcing": 0.5,
              "teacher_forcing_end": 0.1, "context": 4, "predict": 2, "amp": False, "compile_model": True,
              "eval_sequences": 5, "val_batches": 2, "log_every": 3, "checkpoint_every": 9, "relax_alpha": 0.5}
    field = FIELDS.get(flag, flag)
    settings = {field: values[flag], **({"relaxed": 2} if flag == "relax_alpha" else {})}
    assert getattr(built(files["window-moves"], "fernn", **settings)[3], field) == values[flag]


SUPERVISED_VALUES = {"vmax": 1, "world_size": 40, "angular_velocities": [-20.0, 0.0, 20.0], "data_angular_velocities": [0.0, 10.0],
                     "group_order": 4, "window_size": 24, "clip_len": 8, "frame_size": 24, "velocities": [[0, 0]],
                     "data_vmax": 1, "eval_vmax": 1, "num_digits": 3,
                     "source": "full", "decoder_layers": 2}


@pytest.mark.parametrize("env", ["flowing-mnist", "rotating-mnist", "kth-camera", "mnist-world"])
def test_a_supervised_task_refuses_another_tasks_settings(env, kth_root):
    """Each task's :attr:`unused` settings, given, are one error naming the flag (Flowing MNIST's --boundary and
    --image-size are refused for the other tasks by the config itself)."""
    from fernn.agents.supervised.config import TrainConfig
    from fernn.agents.supervised.tasks import TASKS, make_task

    task_class = TASKS[env]
    base = {"env": env, "source": "embedded", "data_dir": str(kth_root), "hidden": 2, "batch_size": 2}
    assert set(task_class.unused) <= set(SUPERVISED_VALUES)
    for field in sorted(task_class.unused):
        with pytest.raises(ValueError, match=f"--{field.replace('_', '-')}"):
            make_task(TrainConfig.from_dict({**base, field: SUPERVISED_VALUES[field]}), torch.device("cpu"))
