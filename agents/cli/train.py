"""``fernn-rl train``, ``eval``, ``rollout`` and ``demo``: supervised and RL runs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from fernn.agents.cli.console import console, fail, parse_float_list, parse_json_object, parse_pairs, resolve_env


def presets_epilog() -> str:
    from fernn.agents.supervised.presets import PRESETS, describe

    return "Presets (--preset NAME; what each reproduces, and its hyperparameters):\n\n" + \
        "\n\n".join(describe(name) for name in PRESETS)


def train(
    ctx: typer.Context,
    env: Optional[str] = typer.Option(None, "--env", help="Task: flowing-mnist (default) | rotating-mnist | "
                                                           "kth-camera | mnist-world."),
    model: Optional[str] = typer.Option(None, "--model", help="fernn | grnn | grnn-plus | cnn3d | action-concat | "
                                                               "fernn-no-self-motion (which apply depends on --env)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="A paper run by name (listed below); flags override "
                                                                "its settings."),
    vmax: Optional[int] = typer.Option(None, "--vmax", min=0, help="Model velocity grid radius (FERNN-V1: 1, V2: 2)."),
    velocities: Optional[str] = typer.Option(None, "--velocities", help="Explicit model velocities 'vx,vy;vx,vy'."),
    angular_velocities: Optional[str] = typer.Option(None, "--angular-velocities",
                                                     help="Model angular velocities in deg/frame, e.g. -40,-20,0,20,40."),
    data_vmax: Optional[int] = typer.Option(None, "--data-vmax", min=0,
                                            help="Training data velocity grid radius (digits, or KTH camera)."),
    data_angular_velocities: Optional[str] = typer.Option(None, "--data-angular-velocities",
                                                          help="Training data angular velocities (rotation)."),
    eval_vmax: Optional[int] = typer.Option(None, "--eval-vmax", min=0, help="Velocity-generalisation grid radius."),
    hidden: Optional[int] = typer.Option(None, "--hidden", min=1, help="Hidden channels per velocity channel."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Epochs."),
    steps_per_epoch: Optional[int] = typer.Option(None, "--steps-per-epoch", min=1, help="Optimiser steps per epoch."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", min=1, help="Global batch size."),
    lr: Optional[float] = typer.Option(None, "--lr", min=0.0, help="Adam learning rate."),
    grad_clip: Optional[float] = typer.Option(None, "--grad-clip", min=0.0, help="Gradient-norm clip (0: off)."),
    teacher_forcing: Optional[float] = typer.Option(None, "--teacher-forcing", min=0.0, max=1.0,
                                                    help="Teacher forcing probability at the start."),
    teacher_forcing_end: Optional[float] = typer.Option(None, "--teacher-forcing-end", min=0.0, max=1.0,
                                                        help="Teacher forcing at the end (linear curriculum)."),
    context: Optional[int] = typer.Option(None, "--context", min=1, help="Observed frames before prediction."),
    predict: Optional[int] = typer.Option(None, "--predict", min=1, help="Predicted frames."),
    source: Optional[str] = typer.Option(None, "--source", help="MNIST: auto | embedded | full."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Data directory (default $FERNN_DATA or "
                                                                     "~/.cache/fernn)."),
    download: bool = typer.Option(False, "--download", help="Download missing data (MNIST, KTH)."),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N."),
    amp: Optional[bool] = typer.Option(None, "--amp/--no-amp", help="bf16 autocast on CUDA (default on)."),
    compile_model: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="torch.compile the model."),
    decoder_layers: Optional[int] = typer.Option(None, "--decoder-layers", min=0, help="Decoder hidden conv layers."),
    num_digits: Optional[int] = typer.Option(None, "--num-digits", min=1, help="Digits per scene."),
    world_size: Optional[int] = typer.Option(None, "--world-size", min=1, help="MNIST World torus side (50)."),
    window_size: Optional[int] = typer.Option(None, "--window-size", min=1, help="MNIST World window side (32)."),
    clip_len: Optional[int] = typer.Option(None, "--clip-len", min=1, help="KTH frames per clip (16)."),
    frame_size: Optional[int] = typer.Option(None, "--frame-size", min=1, help="KTH frame side (32); with --pixels "
                                                                              "(RL), the side of the resized frames."),
    group_order: Optional[int] = typer.Option(None, "--group-order", min=1, help="N of C_N for rotation flows (8)."),
    eval_sequences: Optional[int] = typer.Option(None, "--eval-sequences", min=1,
                                                 help="Sequences per evaluation cell."),
    val_batches: Optional[int] = typer.Option(None, "--val-batches", min=1, help="Validation batches per epoch."),
    log_every: Optional[int] = typer.Option(None, "--log-every", min=1, help="Steps per metrics row."),
    checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every", min=1, help="Steps per checkpoint."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of everything in the run."),
    out: Optional[str] = typer.Option(None, "--out", help="Parent directory of runs (default: runs)."),
    name: Optional[str] = typer.Option(None, "--name", help="Run name (default: <env>-<model>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in <out>/<name> from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Delete an existing run directory first."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    nproc: int = typer.Option(1, "--nproc", min=1, help="Launch this many DDP processes with torchrun."),
    algo: Optional[str] = typer.Option(None, "--algo", help="RL instead of supervised training: recurrent-ppo | ppo "
                                                            "(with --env mnist-world-track or any Gymnasium id)."),
    policy: str = typer.Option("fernn", "--policy", help="RL policy: fernn | cnn-lstm | frame-stack-cnn | "
                                                         "frame-stack-fernn."),
    timesteps: int = typer.Option(100_000, "--timesteps", min=1, help="RL: environment steps."),
    n_envs: int = typer.Option(8, "--n-envs", min=1, help="RL: parallel envs."),
    vec_env: str = typer.Option("dummy", "--vec-env", help="RL: dummy | subproc."),
    n_steps: int = typer.Option(128, "--n-steps", min=1, help="RL: rollout length per env."),
    eval_every: int = typer.Option(10_000, "--eval-every", min=1, help="RL: evaluate every this many steps."),
    eval_episodes: int = typer.Option(10, "--eval-episodes", min=1, help="RL: seeded episodes per evaluation."),
    self_motion: bool = typer.Option(False, "--self-motion", help="RL, --policy fernn: shift the memory by the "
                                                                  "agent's own move (env info['action'])."),
    readout: str = typer.Option("max", "--readout", help="RL, --policy fernn: max | mean (pool the memory over "
                                                         "velocities) | velocities (the readout keeps that axis)."),
    actor: str = typer.Option("pooled", "--actor", help="RL, --policy fernn: pooled | equivariant (a move's logit "
                                                        "from that move's velocity channel)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Train on a trajectory file (fernn-rl collect): the world "
                                                             "model when it records moves, else the predictor."),
    env_kwargs: Optional[str] = typer.Option(None, "--env-kwargs", help="RL: gym.make kwargs of --env as JSON."),
    pixels: bool = typer.Option(False, "--pixels", help="RL: observe the env's rendered frames (state-based envs)."),
    grayscale: bool = typer.Option(False, "--grayscale", help="RL: grayscale pixel observations (with --pixels)."),
    reward_scale: float = typer.Option(0.01, "--reward-scale", help="RL: training rewards are multiplied by this "
                                                                   "(evaluations report unscaled returns)."),
) -> None:
    """Train a model on a supervised task and evaluate it; everything lands in <out>/<name>.

    Examples: fernn-rl train --env kth-camera --download; fernn-rl train --preset table1-translation-fernn-v2;
    fernn-rl train --env flowing-mnist --model grnn --epochs 2 --steps-per-epoch 20.
    """
    from fernn.agents.supervised.config import TrainConfig
    from fernn.agents.supervised.presets import PRESETS
    from fernn.envs import ENV_IDS

    if nproc > 1:
        _launch_torchrun(nproc)
        return
    if algo is not None:
        if data is not None:
            fail("--data trains a world model or predictor on collected episodes; it does not go with --algo")
        pixel_settings = {"pixels": True, "frame_size": frame_size, "grayscale": grayscale} if pixels else {}
        if not pixels and grayscale:
            fail("--grayscale applies to rendered frames: add --pixels")
        _train_rl(env or "mnist-world-track", algo, policy, timesteps=timesteps, n_envs=n_envs, vec_env=vec_env,
                  n_steps=n_steps, eval_every=eval_every, eval_episodes=eval_episodes, self_motion=self_motion,
                  readout=readout, actor=actor, reward_scale=reward_scale, seed=seed, lr=lr,
                  env_kwargs=parse_json_object("--env-kwargs", env_kwargs), **pixel_settings,
                  hidden=hidden, vmax=vmax, batch_size=batch_size, device=device, out=out, name=name, resume=resume,
                  overwrite=overwrite, quiet=quiet, explicit_rl=_given_on_command_line(ctx, RL_FLAGS))
        return
    settings = {}
    if preset is not None:
        if preset not in PRESETS:
            fail(f"unknown preset {preset!r}; accepted: {', '.join(PRESETS)}")
        settings.update(PRESETS[preset].settings, preset=preset)
    flags = {"model": model, "vmax": vmax, "data_vmax": data_vmax, "eval_vmax": eval_vmax, "hidden": hidden,
             "epochs": epochs, "steps_per_epoch": steps_per_epoch, "batch_size": batch_size, "lr": lr,
             "teacher_forcing": teacher_forcing, "teacher_forcing_end": teacher_forcing_end, "context": context,
             "predict": predict, "source": source, "data_dir": data_dir, "device": device, "amp": amp,
             "compile": compile_model, "seed": seed, "out": out, "name": name, "decoder_layers": decoder_layers,
             "num_digits": num_digits, "eval_sequences": eval_sequences, "val_batches": val_batches,
             "log_every": log_every, "checkpoint_every": checkpoint_every, "world_size": world_size,
             "window_size": window_size, "clip_len": clip_len, "frame_size": frame_size, "group_order": group_order}
    if env is not None:
        flags["env"] = {v: k for k, v in ENV_IDS.items()}.get(env, env)
    if data is not None:
        if not data.is_file():
            fail(f"--data {data} does not exist; write one with fernn-rl collect")
        flags["data"] = str(data)
    settings.update({k: v for k, v in flags.items() if v is not None})
    if download:
        settings["download"] = True
    if grad_clip is not None:
        settings["grad_clip"] = grad_clip or None
    if velocities is not None:
        settings["velocities"] = parse_pairs("--velocities", velocities)
    if angular_velocities is not None:
        settings["angular_velocities"] = list(parse_float_list("--angular-velocities", angular_velocities))
    if data_angular_velocities is not None:
        settings["data_angular_velocities"] = list(parse_float_list("--data-angular-velocities",
                                                                    data_angular_velocities))
    try:
        config = TrainConfig.from_dict(settings)
    except (TypeError, ValueError) as error:
        fail(str(error))
    explicit = set(settings) - {"preset"} - ({"env"} if env is None else set())
    _run_training(config, resume=resume, overwrite=overwrite, quiet=quiet, explicit=explicit)


#: RL flags with defaults (not None): compared with a stored run on --resume only when given on the command line
RL_FLAGS = ("policy", "timesteps", "n_envs", "vec_env", "n_steps", "eval_every", "eval_episodes", "self_motion",
            "readout", "actor", "reward_scale", "env_kwargs", "pixels", "grayscale")


def _given_on_command_line(context: typer.Context, names: tuple[str, ...]) -> set[str]:
    """The parameters among ``names`` that the user typed (not defaults)."""
    sources = {name: context.get_parameter_source(name) for name in names}
    return {name for name, source in sources.items() if source is not None and source.name == "COMMANDLINE"}


def _train_rl(env: str, algo: str, policy: str, *, resume: bool, overwrite: bool, quiet: bool, seed, lr, hidden,
              vmax, batch_size, device, out, name, explicit_rl: set[str], **settings) -> None:
    from fernn.agents.rl import RLConfig, train_rl
    from fernn.agents.runs import RunExistsError, RunFileError, RunLockedError

    optional = {"seed": seed, "lr": lr, "fernn_hidden": hidden, "vmax": vmax, "batch_size": batch_size,
                "device": device, "out": out, "name": name}
    given = {k: v for k, v in optional.items() if v is not None}
    try:
        config = RLConfig(env=resolve_env(env), algo=algo, policy=policy, **settings, **given)
    except (ValueError, TypeError, gym_error()) as error:
        fail(str(error))
    explicit = {"env", "algo", *given, *explicit_rl}
    report = None if quiet else (lambda row: console.print(
        f"[{config.name}] steps {row['timesteps']:.0f}: return {row['mean_return']:.2f} ± {row['std_return']:.2f} "
        f"({row['seconds']:.0f} s)", highlight=False))
    try:
        results = train_rl(config, resume=resume, overwrite=overwrite, reporter=report, explicit=explicit)
    except (RunExistsError, RunLockedError, RunFileError, FileNotFoundError, ValueError) as error:
        fail(str(error))
    final = results["final"]
    bounds = ", ".join(f"{k} {v['mean']:.2f}" for k, v in results["bounds"].items())
    console.print(f"final return {final['mean_return']:.2f} ± {final['std_return']:.2f} after "
                  f"{final['timesteps']:.0f} steps ({bounds}); files in {config.out}/{config.name}")


def gym_error() -> type:
    import gymnasium as gym

    return gym.error.Error


def _run_training(config, *, resume: bool, overwrite: bool, quiet: bool, explicit: set[str]) -> None:
    from fernn.agents.progress import progress_display
    from fernn.agents.runs import RunExistsError, RunFileError, RunLockedError
    from fernn.agents.supervised.trainer import train as run_training
    from fernn.envs import DataMissingError

    try:
        with progress_display(console, quiet=quiet) as reporter_for:
            result = run_training(config, resume=resume, overwrite=overwrite, reporter=reporter_for(config.name),
                                  explicit=explicit)
    except (RunExistsError, RunLockedError, RunFileError, DataMissingError, OSError, ValueError) as error:
        fail(str(error))
    if result.interrupted:
        console.print(f"interrupted at step {result.step}: checkpoint saved in {result.run_dir.checkpoints}; "
                      f"continue with --resume --name {config.name}")
        raise typer.Exit(130)
    _print_results(result.results, str(result.run_dir.path))


def _print_results(results: dict, where: str) -> None:
    table = Table(title=f"Results ({where})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for section in ("test", "velocity_generalization"):
        for key, value in results.get(section, {}).items():
            if isinstance(value, float):
                table.add_row(f"{section}.{key}", f"{value:.5f}")
    for length, values in results.get("length_generalization", {}).items():
        table.add_row(f"length {length} frames: mse", f"{values['mse']:.5f}")
    console.print(table)
    console.print(f"files in {where}: results.json, " + ", ".join(results.get("files", [])))


def _launch_torchrun(nproc: int) -> None:
    import subprocess
    import sys

    args = list(sys.argv[2:])
    index = args.index("--nproc")
    del args[index:index + 2]
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "-m",
               "fernn.agents.cli", "train", *args]
    console.print("launching: " + " ".join(command))
    raise typer.Exit(subprocess.call(command))


def evaluate_command(
    run_dir: str = typer.Argument(..., help="A run directory (runs/<name>), supervised or RL."),
    what: str = typer.Option("test,length,velocity,rollout", "--what",
                             help="Supervised runs: comma-separated test, length, velocity, rollout."),
    checkpoint: str = typer.Option("best", "--checkpoint", help="Supervised: best | last. RL: final (model.zip; "
                                                                "also what 'best' means for RL runs) | last."),
    episodes: int = typer.Option(20, "--episodes", min=1, help="RL runs: seeded evaluation episodes."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N."),
) -> None:
    """Rerun the evaluations of a trained run on its checkpoint and merge them into results.json (RL runs:
    the saved policy over seeded episodes)."""
    import json

    from fernn.agents.runs import RunDir, RunFileError, write_json

    run = RunDir(run_dir)
    try:
        kind = run.kind()
        target = _checked_device(device)
        if kind == "rl":
            results = {"reevaluation": _evaluate_rl(run, checkpoint, episodes, str(target))}
        else:
            results = _evaluate_supervised(run, checkpoint, what, target)
    except (FileNotFoundError, ValueError, RunFileError, OSError) as error:
        fail(str(error))
    path = run.path / "results.json"
    merged = json.loads(path.read_text()) if path.is_file() else {}
    merged.update(results)
    write_json(path, merged)
    if kind == "rl":
        result = results["reevaluation"]
        console.print(f"{run_dir}: return {result['mean_return']:.2f} ± {result['std_return']:.2f} over "
                      f"{result['episodes']} seeded episodes ({result['checkpoint']} policy); merged into {path}")
    else:
        _print_results(results, run_dir)


def _checked_device(name: str):
    from fernn.agents.supervised.trainer import resolve_device

    if not (name in ("auto", "cpu", "cuda") or name.startswith("cuda:")):
        raise ValueError(f"--device must be auto, cpu, cuda or cuda:N; got {name!r}")
    return resolve_device(name)


def _evaluate_rl(run, checkpoint: str, episodes: int, device: str) -> dict:
    from fernn.agents.rl import evaluate_run

    if checkpoint not in ("best", "final", "last"):
        raise ValueError(f"--checkpoint for an RL run must be final or last; got {checkpoint!r}")
    return evaluate_run(run.path, episodes=episodes, checkpoint="last" if checkpoint == "last" else "final",
                        device=device)


def _evaluate_supervised(run, checkpoint: str, what: str, target) -> dict:
    from fernn.agents.supervised import TrainConfig, evaluate, make_task
    from fernn.agents.supervised.tasks import TEST_SEED

    if checkpoint not in ("best", "last"):
        raise ValueError(f"--checkpoint must be best or last; got {checkpoint!r}")
    config = TrainConfig.from_dict(run.read_config())
    task = make_task(config, target)
    model = task.build_model().to(target)
    model.load_state_dict(run.load_checkpoint(f"{checkpoint}.pt", target)["model"])
    return evaluate(task, model, run, seed=TEST_SEED, what=tuple(w.strip() for w in what.split(",") if w))


SAFE_TO_OPEN = """

    Safe on runs from others: checkpoints load as data only, and an RL run's model.zip is read for its
    weights alone (SB3's own PPO.load would unpickle objects stored in the archive and can run code from
    an untrusted file; see docs/reliability.md)."""
evaluate_command.__doc__ += SAFE_TO_OPEN


def rollout(
    run_dir: str = typer.Argument(..., help="A run directory (runs/<name>), supervised or RL."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N."),
) -> None:
    """Write rollout strips (PNG) and GIFs of a trained run: ground truth against prediction, or for an RL
    run a GIF of an episode (for MNIST World: the whole world with the window drawn on it)."""
    from pathlib import Path

    from fernn.agents.runs import RunDir, RunFileError

    run = RunDir(run_dir)
    try:
        kind = run.kind()
        if kind == "rl":
            from fernn.agents.rl import episode_gif

            if not (run.path / "model.zip").is_file():
                raise FileNotFoundError(f"{run_dir} has no model.zip yet; finish (or --resume) the run first")
            path = episode_gif(Path(run_dir), Path(run_dir) / "episode.gif")
            console.print(f"wrote {path}")
            return
    except (FileNotFoundError, ValueError, RunFileError, OSError) as error:
        fail(str(error))
    evaluate_command(run_dir, what="rollout", checkpoint="best", episodes=1, device=device)


rollout.__doc__ += SAFE_TO_OPEN


def demo(
    out: str = typer.Option("runs", "--out", help="Parent directory; the demo writes <out>/demo/."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
) -> None:
    """The main job: G-RNN vs FERNN-V2 on Flowing MNIST (embedded digits), trained on |v| <= 1 and tested on
    |v| <= 2 and on longer rollouts; prints a table and writes <out>/demo/ (results.json, heat maps, strips)."""
    from fernn.agents.supervised.demo import DEMO_MODELS, run_demo
    from fernn.agents.progress import progress_display

    with progress_display(console, quiet=quiet) as reporter_for:
        summary = run_demo(out, reporter_for=reporter_for)
    table = Table(title="Flowing MNIST: trained on |v| <= 1, tested on |v| <= 2 (embedded digits, CPU)")
    for column in ("model", "rollout MSE seen", "rollout MSE unseen", "one-step MSE seen", "one-step MSE unseen",
                   "rollout MSE 2x length", "train s"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for model in DEMO_MODELS:
        m = summary["models"][model]
        longest = list(m["length_generalization_mse"].values())[0]
        table.add_row(m["label"], f"{m['rollout_mse_seen']:.4f}", f"{m['rollout_mse_unseen']:.4f}",
                      f"{m['one_step_mse_seen']:.4f}", f"{m['one_step_mse_unseen']:.4f}", f"{longest:.4f}",
                      f"{m['train_seconds']:.0f}")
    console.print(table)
    console.print(f"FERNN / G-RNN on unseen velocities: rollout {summary['unseen_rollout_mse_ratio_fernn_over_grnn']:.2f}x, "
                  f"one-step {summary['unseen_one_step_mse_ratio_fernn_over_grnn']:.2f}x (target <= 0.5x)")
    console.print(f"wrote {out}/demo/: results.json, " + ", ".join(summary["files"]))
