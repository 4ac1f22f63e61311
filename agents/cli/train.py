"""``fernn-rl train``: one command for three kinds of run, each with its own flags and dispatch.

==============  ==================================  ==============================================
kind            chosen by                           module
==============  ==================================  ==============================================
supervised      ``--env TASK`` (default)            :mod:`fernn.agents.cli.train_supervised`
data            ``--data FILE.npz``                 :mod:`fernn.agents.cli.train_supervised` (same trainer)
rl              ``--algo ALGO``                     :mod:`fernn.agents.cli.train_rl`
==============  ==================================  ==============================================

Every flag declares the kinds it applies to (:data:`FLAGS`); ``--help`` shows them grouped by kind, and a flag of
another kind is an error naming the kind it belongs to. ``--resume`` without ``--algo`` / ``--data`` continues the
run in ``<out>/<name>`` as the kind it was recorded as.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import typer

from fernn.agents.cli.console import fail

SUPERVISED, DATA, RL = "supervised", "data", "rl"
KIND_LABELS = {SUPERVISED: "supervised (--env TASK)", DATA: "collected data (--data FILE)", RL: "RL (--algo ALGO)"}
PANELS = {frozenset({SUPERVISED, DATA, RL}): "Every run", frozenset({SUPERVISED, DATA}): "Supervised and --data",
          frozenset({SUPERVISED}): "Supervised (--env TASK)", frozenset({DATA}): "Collected data (--data FILE)",
          frozenset({RL}): "RL (--algo ALGO)", frozenset({SUPERVISED, RL}): "Supervised and RL",
          frozenset({DATA, RL}): "--data and RL"}


@dataclass(frozen=True)
class Flag:
    """One option of ``fernn-rl train``: its parameter, type, default, flag names, help and the run kinds."""

    name: str
    annotation: Any
    default: Any
    flags: tuple[str, ...]
    help: str
    kinds: frozenset[str]
    extra: tuple[tuple[str, Any], ...] = ()

    def parameter(self) -> inspect.Parameter:
        switch = self.annotation in (bool, Optional[bool])
        option = typer.Option(self.default, *self.flags, help=self.help.replace("[", "\\["),
                              rich_help_panel=PANELS[self.kinds], metavar="" if switch else None,
                              show_default=self.default is not None and self.default is not False, **dict(self.extra))
        return inspect.Parameter(self.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=self.annotation)


ALL, SD, SUP, DAT, RLK = (frozenset({SUPERVISED, DATA, RL}), frozenset({SUPERVISED, DATA}), frozenset({SUPERVISED}),
                          frozenset({DATA}), frozenset({RL}))
I, F, S, B = Optional[int], Optional[float], Optional[str], Optional[bool]


def _flag(name: str, annotation: Any, default: Any, help: str, kinds: frozenset[str], *flags: str,
          **extra: Any) -> Flag:
    return Flag(name, annotation, default, flags or (f"--{name.replace('_', '-')}",), help, kinds,
                tuple(extra.items()))


FLAGS: tuple[Flag, ...] = (
    # every run
    _flag("out", S, None, "Parent directory of runs [default: runs].", ALL),
    _flag("name", S, None, "Run name [default: <task>-<model>, <data file>-<model>, <env>-<policy>-s<seed>].", ALL),
    _flag("seed", I, None, "Seed of everything in the run [default: 0].", ALL),
    _flag("device", S, None, "auto | cpu | cuda | cuda:N [default: auto].", ALL),
    _flag("resume", bool, False, "Continue the run in <out>/<name> from its last checkpoint, with its stored "
                                 "settings (a typed --epochs / --timesteps trains longer).", ALL),
    _flag("overwrite", bool, False, "Delete an existing run of this project in <out>/<name> first (a directory "
                                    "that is not one of our runs is never deleted).", ALL),
    _flag("quiet", bool, False, "No progress display.", ALL, "--quiet", "-q"),
    # supervised and --data
    _flag("model", S, None, "fernn | grnn | grnn-plus | cnn3d | action-concat | fernn-no-self-motion | fernn-3d | "
                            "fernn-3d-no-velocities | fernn-3d-no-self-motion | rssm (which apply depends on the task "
                            "or the data) [default: fernn, or fernn-3d for first-person data].", SD),
    _flag("vmax", I, None, "Velocity grid radius (FERNN-V1: 1, V2: 2) [default: 2; --data: sized to the frames; RL: "
                           "2].", ALL),
    _flag("velocities", S, None, "Explicit model velocities 'vx,vy;vx,vy'.", SD),
    _flag("eval_vmax", I, None, "Velocity-generalisation grid radius [default: 2].", SD),
    _flag("hidden", I, None, "Hidden channels per velocity channel [default: 32; --data: sized to the frames; RL: "
                             "16].", ALL),
    _flag("relaxed", I, None, "Approximately equivariant FERNN: L filter banks combined per velocity channel, "
                              "exactly equivariant at initialisation (0: exact weight sharing) [default: 0].", ALL),
    _flag("relax_alpha", F, None, "With --relaxed: weight of the penalty mean |w(v) - w(v')| over neighbouring "
                                  "velocities [default: 1e-4].", ALL),
    _flag("epochs", I, None, "Epochs [default: 10].", SD),
    _flag("steps_per_epoch", I, None, "Optimiser steps per epoch [default: 100].", SD),
    _flag("batch_size", I, None, "Batch size (RL: transitions per minibatch) [default: 16; --data: sized to the frames; "
                                 "RL: 256].", ALL, "--batch-size", "-b"),
    _flag("lr", F, None, "Adam learning rate [default: 1e-3; RL: 2.5e-4].", ALL),
    _flag("grad_clip", F, None, "Gradient-norm clip, 0: off [default: 1].", SD),
    _flag("teacher_forcing", F, None, "Teacher forcing probability at the start [default: 0].", SD),
    _flag("teacher_forcing_end", F, None, "Teacher forcing at the end (a linear curriculum).", SD),
    _flag("context", I, None, "Observed frames before prediction [default: 10; --data: 10 or half an episode; "
                              "first-person data: 16].", SD),
    _flag("predict", I, None, "Predicted frames [default: 10; first-person data: 16].", SD),
    _flag("amp", B, None, "bf16 autocast on CUDA [default: on].", SD, "--amp/--no-amp"),
    _flag("compile_model", B, None, "torch.compile the model [default: off].", SD, "--compile/--no-compile"),
    _flag("decoder_layers", I, None, "Decoder hidden conv layers [default: 4].", SD),
    _flag("world_size", I, None, "World-model map side: MNIST World's torus [default: 50]; --data with window moves: "
                                 "larger than the frames [default: frame side + 16].", SD),
    _flag("eval_sequences", I, None, "Sequences per evaluation (cell) [default: 64; --data: at most an eighth of the "
          "sequences trained on, at least 8].", SD),
    _flag("val_batches", I, None, "Validation batches per epoch [default: 4].", SD),
    _flag("log_every", I, None, "Steps per metrics row [default: 10].", SD),
    _flag("checkpoint_every", I, None, "Steps per checkpoint [default: 50].", SD),
    _flag("nproc", int, 1, "Launch this many DDP processes with torchrun.", SD),
    # supervised only
    _flag("env", S, None, "Supervised: the task, flowing-mnist (default) | rotating-mnist | kth-camera | mnist-world. "
                          "RL: any env (a short name such as mnist-world-track or dynamic-block-world-find-red, a "
                          "registered id such as CartPole-v1 or ALE/Breakout-v5, or module:Id).", frozenset({SUPERVISED, RL})),
    _flag("preset", S, None, "A paper run by name (listed below); flags override its settings.", SD),
    _flag("angular_velocities", S, None, "Model angular velocities in deg/frame, e.g. -40,-20,0,20,40.", SUP),
    _flag("data_vmax", I, None, "Training data velocity grid radius (digits, or KTH camera) [default: 2].", SUP),
    _flag("data_angular_velocities", S, None, "Training data angular velocities (rotation).", SUP),
    _flag("source", S, None, "MNIST: auto | embedded | full [default: auto].", SUP),
    _flag("data_dir", S, None, "Data directory [default: $FERNN_DATA or ~/.cache/fernn].", SUP),
    _flag("download", bool, False, "Download missing data (MNIST, KTH).", SUP),
    _flag("num_digits", I, None, "Digits per scene [default: 2].", SUP),
    _flag("boundary", S, None, "Flowing MNIST: wrap (a torus, the paper) | bounce (digits reflect off the borders; "
                               "needs --image-size > 28) [default: wrap].", SUP),
    _flag("image_size", I, None, "Flowing MNIST frame side [default: 28].", SUP),
    _flag("window_size", I, None, "MNIST World window side [default: 32].", SUP),
    _flag("clip_len", I, None, "KTH frames per clip [default: 16].", SUP),
    _flag("frame_size", I, None, "KTH frame side [default: 32]. (RL: the old name of --pixel-size.)",
          frozenset({SUPERVISED, RL})),
    _flag("group_order", I, None, "N of C_N for rotation flows [default: 8].", SUP),
    # --data only
    _flag("data", Optional[Path], None, "Train on a trajectory file (fernn-rl collect): the world model when it "
                                        "records moves (2-D window moves or first-person self-motion), else the "
                                        "next-frame predictor.", DAT),
    _flag("eval_context", I, None, "First-person data: views observed before free-running prediction in the "
                                   "evaluation [default: --context].", DAT),
    _flag("eval_horizons", S, None, "First-person data: the predicted views the evaluation reports, e.g. 70,210 "
                                    "[default: --predict and 4x --predict].", DAT),
    # RL only
    _flag("algo", S, None, "RL instead of supervised training: recurrent-ppo | ppo.", RLK),
    _flag("policy", S, None, "fernn | cnn-lstm | frame-stack-cnn | frame-stack-fernn [default: fernn].", RLK),
    _flag("timesteps", I, None, "Environment steps [default: 100000].", RLK),
    _flag("n_envs", I, None, "Parallel envs [default: 8].", RLK),
    _flag("vec_env", S, None, "dummy | subproc [default: dummy].", RLK),
    _flag("n_steps", I, None, "Rollout length per env [default: 128].", RLK),
    _flag("n_epochs", I, None, "PPO epochs per rollout [default: 4].", RLK),
    _flag("eval_every", I, None, "Evaluate every this many steps [default: 10000].", RLK),
    _flag("eval_episodes", I, None, "Seeded episodes per evaluation [default: 10].", RLK),
    _flag("self_motion", bool, False, "--policy fernn: shift the memory by the agent's own move (env "
                                      "info['action']).", RLK),
    _flag("readout", S, None, "--policy fernn: max | mean (pool the memory over velocities) | velocities (the "
                              "readout keeps that axis) [default: max].", RLK),
    _flag("actor", S, None, "--policy fernn: pooled | equivariant (a move's logit from that move's velocity channel; "
                            "the env's action_moves() gives the moves) [default: pooled].", RLK),
    _flag("env_kwargs", S, None, "gym.make kwargs of --env as JSON.", RLK),
    _flag("pixels", bool, False, "Observe the env's rendered frames (state-based envs).", RLK),
    _flag("pixel_size", I, None, "With --pixels: resize the frames to this side.", RLK),
    _flag("grayscale", bool, False, "With --pixels: grayscale frames.", RLK),
    _flag("add_channel", bool, False, "Give 2-D (H, W) image observations a channel axis (grayscale Atari, ...).",
          RLK),
    _flag("obs_key", S, None, "Dict observations: the image key the policy sees (the other keys are dropped), "
                              "e.g. image for MiniGrid.", RLK),
    _flag("reward_scale", F, None, "Training rewards are multiplied by this; evaluations report unscaled returns "
                                   "[default: 0.01 for MNIST World tracking, whose 100-step returns reach 60-100; "
                                   "1 for every other env].", RLK),
)
BY_NAME = {flag.name: flag for flag in FLAGS}


def typed_flags(context: typer.Context) -> set[str]:
    """The parameters the user typed on the command line (not defaults)."""
    typed = set()
    for name in BY_NAME:
        source = context.get_parameter_source(name)
        if source is not None and source.name == "COMMANDLINE":
            typed.add(name)
    return typed


def run_kind(values: dict[str, Any], typed: set[str]) -> str:
    """The kind of run the flags ask for; ``--resume`` alone: the kind recorded in the stored run."""
    if values["algo"] is not None:
        return RL
    if values["data"] is not None:
        return DATA
    if values["resume"] and "env" not in typed:
        from fernn.agents.runs import RunDir, run_path

        stored = RunDir(run_path(values["out"] or "runs", values["name"] or ""))
        if values["name"] and stored.exists():
            kind = stored.kind()
            if kind == RL:
                return RL
            return DATA if stored.read_config().get("data") is not None else SUPERVISED
    return SUPERVISED


def check_kinds(kind: str, typed: set[str]) -> None:
    """A typed flag of another kind of run is an error naming the kind it belongs to."""
    for name in sorted(typed):
        flag = BY_NAME[name]
        if kind not in flag.kinds:
            owners = " or ".join(KIND_LABELS[k] for k in sorted(flag.kinds))
            fail(f"{flag.flags[0]} applies to {owners} runs; this is a {KIND_LABELS[kind]} run")


def train(typer_context: typer.Context, **values: Any) -> None:
    """Train a model and evaluate it; everything lands in <out>/<name>. Three kinds of run, each with its own flags
    (below, grouped): supervised tasks (--env TASK), world models and predictors on collected episodes (--data
    FILE.npz), and RL (--algo ALGO).

    Examples: fernn-rl train --env kth-camera --download; fernn-rl train --preset table1-translation-fernn-v2;
    fernn-rl train --data blocks.npz --model fernn-3d; fernn-rl train --env mnist-world-track --algo recurrent-ppo
    --policy fernn --actor equivariant --self-motion.
    """
    from fernn.agents.cli import train_rl, train_supervised

    typed = typed_flags(typer_context)
    kind = run_kind(values, typed)
    check_kinds(kind, typed)
    check_relaxation_flags(values)
    if kind == RL:
        train_rl.run(values, typed)
    else:
        train_supervised.run(values, typed, kind)


def check_relaxation_flags(values: dict[str, Any]) -> None:
    """``--relaxed`` counts filter banks (at least 1; leave it out for exact sharing), and ``--relax-alpha`` weighs
    the penalty of a relaxed model only."""
    if values["relaxed"] is not None and values["relaxed"] < 1:
        fail(f"--relaxed takes the number of filter banks L >= 1 (leave the flag out for exact weight sharing); got "
             f"{values['relaxed']}")
    if values["relax_alpha"] is not None and values["relaxed"] is None and not values["resume"]:
        fail("--relax-alpha weighs the relaxation penalty of a relaxed model: add --relaxed L (e.g. --relaxed 2)")
    if values["relax_alpha"] is not None and values["relax_alpha"] < 0:
        fail(f"--relax-alpha must be >= 0 (the weight of the penalty mean |w(v) - w(v')|); got {values['relax_alpha']}")


train.__signature__ = inspect.Signature(
    [inspect.Parameter("typer_context", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)]
    + [flag.parameter() for flag in FLAGS])


def presets_epilog() -> str:
    from fernn.agents.supervised.presets import PRESETS, describe

    return "Presets (--preset NAME; what each reproduces, and its hyperparameters):\n\n" + \
        "\n\n".join(describe(name) for name in PRESETS)
