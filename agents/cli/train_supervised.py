"""``fernn-rl train`` for supervised tasks (``--env TASK``) and collected episodes (``--data FILE``): flags to a
:class:`~fernn.agents.supervised.TrainConfig`, then :func:`fernn.agents.supervised.train` with a progress display."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import typer
from rich.table import Table

from fernn.agents.cli.console import console, fail, parse_float_list, parse_int_list, parse_pairs

#: flag name -> TrainConfig field (where they differ)
FIELDS = {"compile_model": "compile"}
PASSED = ("model", "vmax", "data_vmax", "eval_vmax", "hidden", "epochs", "steps_per_epoch", "batch_size", "lr",
          "teacher_forcing", "teacher_forcing_end", "context", "predict", "source", "data_dir", "device", "amp",
          "compile_model", "seed", "out", "name", "decoder_layers", "num_digits", "eval_sequences", "val_batches",
          "log_every", "checkpoint_every", "world_size", "window_size", "clip_len", "frame_size", "group_order",
          "eval_context", "relaxed", "relax_alpha", "boundary", "image_size")


def settings_of(values: dict[str, Any]) -> dict[str, Any]:
    """The TrainConfig settings the flags give (a preset's first, the typed flags over them)."""
    from fernn.agents.supervised.presets import PRESETS
    from fernn.envs import ENV_IDS

    settings: dict[str, Any] = {}
    preset = values["preset"]
    if preset is not None:
        if preset not in PRESETS:
            fail(f"unknown preset {preset!r}; accepted: {', '.join(PRESETS)}")
        if PRESETS[preset].collect and values["data"] is None:
            fail(f"preset {preset} trains on a trajectory file: add --data FILE.npz (collected with: "
                 f"{PRESETS[preset].collect})")
        if not PRESETS[preset].collect and values["data"] is not None:
            fail(f"preset {preset} trains on its own task ({PRESETS[preset].settings['env']}), not on --data")
        settings.update(PRESETS[preset].settings, preset=preset)
    settings.update({FIELDS.get(name, name): values[name] for name in PASSED if values[name] is not None})
    if values["env"] is not None:
        settings["env"] = {v: k for k, v in ENV_IDS.items()}.get(values["env"], values["env"])
    if values["data"] is not None:
        if not values["data"].is_file():
            fail(f"--data {values['data']} does not exist; write one with fernn-rl collect")
        settings["data"] = str(values["data"])
    if values["download"]:
        settings["download"] = True
    if values["grad_clip"] is not None:
        settings["grad_clip"] = values["grad_clip"] or None
    if values["eval_horizons"] is not None:
        settings["eval_horizons"] = list(parse_int_list("--eval-horizons", values["eval_horizons"]))
    if values["velocities"] is not None:
        settings["velocities"] = parse_pairs("--velocities", values["velocities"])
    for name in ("angular_velocities", "data_angular_velocities"):
        if values[name] is not None:
            settings[name] = list(parse_float_list(f"--{name.replace('_', '-')}", values[name]))
    return settings


def run(values: dict[str, Any], typed: set[str], kind: str) -> None:
    """Train a supervised or ``--data`` run from the flags (see :mod:`fernn.agents.cli.train`)."""
    from fernn.agents.supervised.config import TrainConfig

    if values["nproc"] > 1:
        launch_torchrun(values["nproc"])
    settings = settings_of(values)
    config = TrainConfig.from_dict(settings, "the flags")
    explicit = {FIELDS.get(name, name) for name in typed} & set(settings)
    if values["preset"] is not None:  # a preset's settings are asked for as if typed
        explicit |= set(settings) - {"preset"}
    run_training(config, resume=values["resume"], overwrite=values["overwrite"], quiet=values["quiet"],
                 explicit=explicit)


def run_training(config, *, resume: bool, overwrite: bool, quiet: bool, explicit: set[str]) -> None:
    from fernn.agents.progress import progress_display
    from fernn.agents.supervised.trainer import train as run_training

    with progress_display(console, quiet=quiet) as reporter_for:
        result = run_training(config, resume=resume, overwrite=overwrite, reporter=reporter_for(config.name),
                              explicit=explicit)
    if result.interrupted:
        console.print(f"interrupted at step {result.step}: checkpoint saved in {result.run_dir.checkpoints}; continue "
                      f"with: {resume_command(config.out, config.name)}", highlight=False)
        raise typer.Exit(130)
    print_results(result.results, str(result.run_dir.path))


def resume_command(out: str, name: str) -> str:
    """The command that continues a run, as it can be copied (the run's kind and settings are stored)."""
    import shlex

    return f"fernn-rl train --resume --out {shlex.quote(str(out))} --name {shlex.quote(name)}"


def print_results(results: dict, where: str) -> None:
    table = Table(title=f"Results ({where})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    test = results.get("test", {})
    if "mse_memory" in test:  # a first-person world model: memory first (blocks seen, then out of view)
        shares = test.get("block_pixel_shares") or {}
        share = {key: "-" if value is None else f"{100 * value:.0f}%" for key, value in shares.items()}
        table.add_row("memory MSE (blocks seen, then out of view)",
                      "none predicted" if test["mse_memory"] is None else f"{test['mse_memory']:.5f}")
        table.add_row("predicted block pixels: in view / memory / never seen",
                      " / ".join(share.get(key, "-") for key in ("in_view", "memory", "never_seen")))
        painted = test.get("painted_over") or {}
        if painted:
            table.add_row("the room without blocks, MSE: in view / memory / never seen",
                          " / ".join("-" if painted.get(key) is None else f"{painted[key]:.4f}"
                                     for key in ("in_view", "memory", "never_seen")))
    for section in ("test", "velocity_generalization"):
        for key, value in results.get(section, {}).items():
            if isinstance(value, float):
                table.add_row(f"{section}.{key}", f"{value:.5f}")
    for length, values in results.get("length_generalization", {}).items():
        table.add_row(f"length {length} frames: mse", f"{values['mse']:.5f}")
    if "equivariance" in results:
        table.add_row("equivariance error (relative)", f"{results['equivariance']['relative_error']:.2e}")
    if table.row_count:
        console.print(table)
    console.print(f"files in {where}: results.json, " + ", ".join(results.get("files", [])))


def launch_torchrun(nproc: int) -> None:
    """Run this command again under ``torchrun`` with ``nproc`` processes (``--nproc N`` and ``--nproc=N``)."""
    args = []
    skip = False
    for arg in sys.argv[2:]:
        if skip:
            skip = False
            continue
        if arg == "--nproc":
            skip = True
            continue
        if arg.startswith("--nproc="):
            continue
        args.append(arg)
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "-m",
               "fernn.agents.cli", "train", *args]
    console.print("launching: " + " ".join(command))
    raise typer.Exit(subprocess.call(command))
