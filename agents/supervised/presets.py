"""The papers' runs by name (``fernn-rl train --preset NAME``), each with the table or figure it
reproduces and the hyperparameters of the paper / reference code (docs/reproduction.md).

A preset sets the fields below; flags given on the command line override them (the README's CPU-scale
tables pass smaller ``--epochs --steps-per-epoch --batch-size --hidden --lr``). Presets are sized
for a GPU: ``epochs x steps_per_epoch x batch_size`` is the paper's number of training sequences.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PAPER_EPOCH_SEQUENCES = 60_000  # an MNIST epoch of the reference datasets


@dataclass(frozen=True)
class Preset:
    reproduces: str
    settings: dict[str, Any]
    #: the command that writes the trajectory file a ``--data`` preset trains on (``fernn-rl collect ...`` or an
    #: example script; None: a built-in task)
    collect: str | None = None


def _translation(model: str, vmax: int, data_vmax: int, what: str) -> Preset:
    return Preset(what, {"env": "flowing-mnist", "model": model, "vmax": vmax, "data_vmax": data_vmax, "hidden": 128,
                         "decoder_layers": 4, "context": 10, "predict": 10, "num_digits": 2, "epochs": 50,
                         "batch_size": 128, "steps_per_epoch": PAPER_EPOCH_SEQUENCES // 128, "lr": 1e-4,
                         "grad_clip": 1.0, "teacher_forcing": 0.0, "seed": 123, "eval_vmax": 2})


def _rotation(model: str, omegas: list[float], data_omegas: list[float], what: str) -> Preset:
    return Preset(what, {"env": "rotating-mnist", "model": model, "angular_velocities": omegas,
                         "data_angular_velocities": data_omegas, "hidden": 32, "group_order": 8, "decoder_layers": 4,
                         "context": 10, "predict": 10, "num_digits": 2, "epochs": 50, "batch_size": 32,
                         "steps_per_epoch": PAPER_EPOCH_SEQUENCES // 32, "lr": 1e-4, "grad_clip": None,
                         "eval_angular_velocities": [-50, -40, -30, -20, -10, 0, 10, 20, 30, 40, 50]})


def _kth(model: str, vmax: int, lr: float, data_vmax: int, what: str) -> Preset:
    return Preset(what, {"env": "kth-camera", "model": model, "vmax": vmax, "data_vmax": data_vmax, "hidden": 32,
                         "frame_size": 32, "clip_len": 16, "epochs": 500, "batch_size": 32, "steps_per_epoch": 60,
                         "lr": lr, "grad_clip": None, "eval_vmax": 2})


def _flowm(model: str, vmax: int, what: str) -> Preset:
    return Preset(what, {"env": "mnist-world", "model": model, "vmax": vmax, "data_vmax": 1, "hidden": 64,
                         "decoder_layers": 1, "world_size": 50, "window_size": 32, "num_digits": 5, "context": 50,
                         "predict": 20, "epochs": 50, "batch_size": 32, "steps_per_epoch": PAPER_EPOCH_SEQUENCES // 32,
                         "lr": 1e-4, "grad_clip": None})


#: FloWM's block-world data (the paper: 10,000 episodes; 1,000 of 128 x 128 views are 25 GB in memory)
BLOCKS_128 = ("fernn-rl collect --env dynamic-block-world --env-kwargs '{\"obs_size\": 128}' --policy biased-walk "
              "--episodes 1000 --max-steps 500 --out blocks128.npz")


#: the CPU protocol's data: a room of 8 cells at 32 px, episodes long enough for 32 observed + 96 predicted views
BLOCKS_8 = ("fernn-rl collect --env dynamic-block-world --env-kwargs '{\"obs_size\": 32, \"room_size\": 8}' "
            "--policy biased-walk --episodes 200 --max-steps 140 --out blocks8.npz")


def _flowm_3d_cpu(model: str, what: str) -> Preset:
    """FloWM's 3-D protocol at a scale a CPU trains, chosen so that memory is measurable: after 32 observed views of
    a room of 8 cells, most of the 32 predicted views' block pixels belong to blocks seen earlier and out of view
    (docs/world_model_3d.md measures the shares); evaluated at 32 + 32 and 32 + 96. 4,000 steps: the budget at which
    the stage-0 check (experiments/flowm3d_stage0.py) finds FloWM-3D drawing the blocks it sees."""
    return Preset(what, {"model": model, "context": 32, "predict": 32, "eval_context": 32, "eval_horizons": [32, 96],
                         "hidden": 16, "batch_size": 8, "epochs": 50, "steps_per_epoch": 80, "lr": 2e-3,
                         "teacher_forcing": 0.125}, collect=BLOCKS_8)


def _flowm_3d(model: str, what: str) -> Preset:
    return Preset(what, {"model": model, "context": 50, "predict": 90, "eval_context": 70, "eval_horizons": [70, 210],
                         "hidden": 64, "batch_size": 8, "epochs": 50, "steps_per_epoch": 1000, "lr": 1e-4,
                         "grad_clip": 1.0, "teacher_forcing": 0.125}, collect=BLOCKS_128)


#: the approximate-equivariance comparisons (docs/approximate_equivariance.md): the demo's recipe, validated once
#: at the end (the evaluated checkpoint is the last), the same for every model of a task
APPROX_RECIPE = {"decoder_layers": 2, "context": 5, "predict": 5, "epochs": 1, "lr": 2e-3, "teacher_forcing": 1.0,
                 "teacher_forcing_end": 0.0, "eval_sequences": 32, "val_batches": 2, "device": "cpu", "log_every": 20,
                 "checkpoint_every": 100}
APPROX_TASKS = {
    "pong": {"hidden": 12, "batch_size": 8, "steps_per_epoch": 300, "vmax": 2},
    "bounce": {"env": "flowing-mnist", "source": "embedded", "boundary": "bounce", "image_size": 36, "data_vmax": 1,
               "eval_vmax": 1, "hidden": 16, "batch_size": 16, "steps_per_epoch": 600},
    "exact": {"env": "flowing-mnist", "source": "embedded", "data_vmax": 1, "eval_vmax": 2, "hidden": 16,
              "batch_size": 16, "steps_per_epoch": 600},
}
APPROX_MODELS = {
    "grnn": {"model": "grnn"},
    "fernn-v2": {"model": "fernn", "vmax": 2},
    "relaxed-a1e-4": {"model": "fernn", "vmax": 2, "relaxed": 2, "relax_alpha": 1e-4},
    "relaxed-a1e-2": {"model": "fernn", "vmax": 2, "relaxed": 2, "relax_alpha": 1e-2},
    "relaxed-a1": {"model": "fernn", "vmax": 2, "relaxed": 2, "relax_alpha": 1.0},
}
APPROX_WHAT = {"pong": "Pong frames (examples/atari_pong.py's data)",
               "bounce": "Flowing MNIST with digits bouncing off the borders (36 px, |v| <= 1)",
               "exact": "Flowing MNIST on a torus, trained on |v| <= 1, tested on |v| <= 2"}
PONG_DATA = "python examples/atari_pong.py --out runs/pong  (writes runs/pong/pong.npz)"


def _approx(task: str, model: str) -> Preset:
    return Preset(f"Approximate equivariance, {APPROX_WHAT[task]}: {model}",
                  {**APPROX_RECIPE, **APPROX_TASKS[task], **APPROX_MODELS[model]},
                  collect=PONG_DATA if task == "pong" else None)


V4R = [-40.0, -30.0, -20.0, -10.0, 0.0, 10.0, 20.0, 30.0, 40.0]
PRESETS: dict[str, Preset] = {
    "table1-translation-grnn": _translation("grnn", 0, 2, "FERNN paper Table 1, Translating MNIST, G-RNN (data |v| <= 2)"),
    "table1-translation-fernn-v1": _translation("fernn", 1, 2, "FERNN paper Table 1, Translating MNIST, FERNN-V1"),
    "table1-translation-fernn-v2": _translation("fernn", 2, 2, "FERNN paper Table 1, Translating MNIST, FERNN-V2"),
    "table1-translation-grnn-plus": _translation("grnn-plus", 2, 2, "G-RNN+ (learned shifts, V = 25) on Table 1's data"),
    "fig4-translation-grnn": _translation("grnn", 0, 1, "FERNN paper Figure 4 (translation velocity generalisation), "
                                          "G-RNN trained on |v| <= 1, tested on |v| <= 2"),
    "fig4-translation-fernn-v2": _translation("fernn", 2, 1, "FERNN paper Figure 4, FERNN-V2 trained on |v| <= 1"),
    "table1-rotation-grnn": _rotation("grnn", [0.0], V4R, "FERNN paper Table 1, Rotating MNIST, G-RNN"),
    "table1-rotation-fernn-v2r": _rotation("fernn", [-20.0, -10.0, 0.0, 10.0, 20.0], V4R,
                                           "FERNN paper Table 1, Rotating MNIST, FERNN-V2^R"),
    "table1-rotation-fernn-v4r": _rotation("fernn", V4R, V4R, "FERNN paper Table 1, Rotating MNIST, FERNN-V4^R"),
    "fig4-rotation-grnn": _rotation("grnn", [0.0], [-10.0, 0.0, 10.0], "FERNN paper Figure 4 (rotation velocity "
                                    "generalisation), G-RNN trained on w in {-10, 0, 10}, tested on -50..50"),
    "fig4-rotation-fernn-v4r": _rotation("fernn", V4R, [-10.0, 0.0, 10.0], "FERNN paper Figure 4, FERNN-V4^R"),
    "table2-kth-3dcnn": _kth("cnn3d", 0, 1e-3, 2, "FERNN paper Table 2, KTH with camera motion (range 2), 3D-CNN"),
    "table2-kth-grnn": _kth("grnn", 0, 3e-4, 2, "FERNN paper Table 2, KTH, G-RNN"),
    "table2-kth-grnn-plus": _kth("grnn-plus", 2, 1e-4, 2, "FERNN paper Table 2, KTH, G-RNN+ (velocity range 2)"),
    "table2-kth-fernn-v1": _kth("fernn", 1, 3e-4, 2, "FERNN paper Table 2, KTH, FERNN-V1"),
    "table2-kth-fernn-v2": _kth("fernn", 2, 3e-4, 2, "FERNN paper Table 2, KTH, FERNN-V2"),
    "fig5-kth-grnn-range0": _kth("grnn", 0, 3e-4, 0, "FERNN paper Figure 5 (top row), KTH trained without camera "
                                 "motion, G-RNN"),
    "fig5-kth-fernn-v2-range0": _kth("fernn", 2, 3e-4, 0, "FERNN paper Figure 5 (top row), FERNN-V2"),
    "fig5-kth-grnn-range1": _kth("grnn", 0, 3e-4, 1, "FERNN paper Figure 5 (bottom row), trained on camera range 1, G-RNN"),
    "fig5-kth-fernn-v2-range1": _kth("fernn", 2, 3e-4, 1, "FERNN paper Figure 5 (bottom row), FERNN-V2"),
    "flowm-v2": _flowm("fernn", 2, "FloWM paper, MNIST World (dynamic), FloWM-V2 (velocity range 2, self-motion)"),
    "flowm-v0": _flowm("grnn", 0, "FloWM ablation: no velocity channels (range 0)"),
    "flowm-v2-no-self-motion": _flowm("fernn-no-self-motion", 2, "FloWM ablation: no self-motion equivariance"),
    "flowm-action-concat": _flowm("action-concat", 0, "FloWM baseline: actions concatenated as input channels"),
    "flowm-3d": _flowm_3d("fernn-3d", "FloWM paper, 3-D Dynamic Block World, FloWM (50 + 90 views; evaluated at 70 "
                          "and 210 after 70)"),
    "flowm-3d-no-velocities": _flowm_3d("fernn-3d-no-velocities", "FloWM 3-D ablation: no velocity channels"),
    "flowm-3d-no-self-motion": _flowm_3d("fernn-3d-no-self-motion", "FloWM 3-D ablation: no self-motion equivariance"),
    "flowm-3d-rssm": _flowm_3d("rssm", "FloWM 3-D baseline: a DreamerV3-style RSSM"),
    "flowm-3d-cpu": _flowm_3d_cpu("fernn-3d", "FloWM 3-D at CPU scale where memory is measurable: FloWM (room 8, "
                                  "32 px, 32 + 32 views; evaluated at 32 and 96 after 32)"),
    "flowm-3d-cpu-no-velocities": _flowm_3d_cpu("fernn-3d-no-velocities", "FloWM 3-D at CPU scale: no velocity "
                                                "channels"),
    "flowm-3d-cpu-no-self-motion": _flowm_3d_cpu("fernn-3d-no-self-motion", "FloWM 3-D at CPU scale: no self-motion "
                                                 "equivariance"),
    "flowm-3d-cpu-rssm": _flowm_3d_cpu("rssm", "FloWM 3-D at CPU scale: a DreamerV3-style RSSM"),
    **{f"approx-{task}-{model}": _approx(task, model) for task in APPROX_TASKS for model in APPROX_MODELS},
}


def describe(name: str) -> str:
    """One line per preset for ``--help``: what it reproduces and its key hyperparameters."""
    preset = PRESETS[name]
    keys = ("model", "vmax", "data_vmax", "relaxed", "relax_alpha", "hidden", "epochs", "batch_size", "lr")
    shown = ", ".join(f"{k}={preset.settings[k]}" for k in keys if k in preset.settings)
    return f"{name}: {preset.reproduces} ({shown})"
