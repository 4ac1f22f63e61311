"""The ``fernn-rl`` command line (typer + rich): one module per command group.

======================  ======================================================
module                  commands
======================  ======================================================
``train``               ``train``: its flags by run kind, and the dispatch
``train_supervised``    ``train --env TASK`` and ``train --data FILE``
``train_rl``            ``train --algo ALGO``
``runs``                ``eval``, ``rollout``, ``demo``
``envs``                ``envs``, ``play``, ``bounds``
``data``                ``collect``
``plan``                ``plan``
``dream``               ``dream``
``bench``               ``bench step | rotation | world-model | scenes | rl | plan | block-world``
======================  ======================================================

The CLI parses and validates flags, then calls the Python API: nothing a user needs is CLI-only. Errors are turned
into one ``error:`` line in one place (:func:`fernn.agents.cli.console.guarded`).
"""

from __future__ import annotations

from typing import Optional

import typer

from fernn.agents.cli import data as data_commands
from fernn.agents.cli import dream as dream_commands
from fernn.agents.cli import envs as envs_commands
from fernn.agents.cli import plan as plan_commands
from fernn.agents.cli import runs as run_commands
from fernn.agents.cli import train as train_commands
from fernn.agents.cli.bench import bench_app
from fernn.agents.cli.console import guarded

app = typer.Typer(help="Flow-equivariant recurrent networks for world models and RL.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)


@app.callback()
def main(threads: Optional[int] = typer.Option(None, "--threads", min=1, max=1024,
                                               help="CPU threads of torch's operations \\[default: all cores]; 1 to "
                                                    "run several commands side by side. Goes before the command: "
                                                    "fernn-rl --threads 1 train ..."),
         debug: bool = typer.Option(False, "--debug", metavar="", help="Show the full traceback of any error "
                                                                       "(also FERNN_DEBUG=1).")) -> None:
    """Flow-equivariant recurrent networks for world models and RL."""
    from fernn.agents.cli import console

    console.DEBUG = debug
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


app.add_typer(bench_app, name="bench")
app.command()(guarded(envs_commands.envs))
app.command()(guarded(envs_commands.play))
app.command(epilog=train_commands.presets_epilog())(guarded(train_commands.train))
app.command("eval")(guarded(run_commands.evaluate_command))
app.command()(guarded(run_commands.rollout))
app.command()(guarded(envs_commands.bounds))
app.command()(guarded(run_commands.demo))
app.command()(guarded(data_commands.collect))
app.command()(guarded(plan_commands.plan))
app.command()(guarded(dream_commands.dream))

train = train_commands.train

__all__ = ["app", "train"]
