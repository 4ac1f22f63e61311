"""Reinforcement learning runs: ``fernn-rl train --env mnist-world-track --algo recurrent-ppo --policy fernn``.

Policies:

=====================  ===========================  ==================================================
``--policy``           algorithm                    encoder
=====================  ===========================  ==================================================
``fernn``              :class:`FERNNRecurrentPPO`   the FERNN core (recurrent; lean rollout buffer)
``cnn-lstm``           ``RecurrentPPO``             :class:`SmallCNN` + LSTM (sb3-contrib's policy)
``frame-stack-cnn``    ``PPO``                      :class:`SmallCNN` over a ``VecFrameStack`` of 4
``frame-stack-fernn``  ``PPO``                      :class:`FERNNFrameStackExtractor` over the stack
=====================  ===========================  ==================================================

A run directory holds ``config.json``, ``model.zip`` (final), ``checkpoints/last.zip`` (resume),
TensorBoard logs, ``eval.csv`` / ``eval.json`` (mean and std of the return over seeded episodes at every
evaluation), ``learning_curve.png`` (with the random and oracle returns as reference lines) and
``results.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fernn.agents.rl.config import RLConfig
from fernn.agents.rl.envs import check_motion_flags, make_vec_env
from fernn.agents.rl.evaluation import EvalCheckpointCallback, cached_bounds, policy_equivariance, restore_rngs
from fernn.agents.rl.figures import learning_curve, read_evaluations
from fernn.agents.rl.models import load_model, make_model, saved_timesteps
from fernn.agents.runs import RunDir, open_run, run_path, write_json
from fernn.allocator import keep_allocations_warm
from fernn.io import atomic_write


def train_rl(config: RLConfig, *, resume: bool = False, overwrite: bool = False,
             reporter: Callable[[dict], None] | None = None, bounds_episodes: int = 20,
             explicit: Iterable[str] = ()) -> dict[str, Any]:
    """Train ``config`` in ``<out>/<name>`` (see the module docstring); return ``results.json``'s content.

    The run directory is created only once the envs and the model are built (:func:`fernn.agents.runs.open_run`);
    the run's lock is held while it trains. With ``resume``, settings named in ``explicit`` that differ from the
    stored run are refused (``timesteps`` may be raised to train longer).

    Resuming restores what the last resume point saved, after the PPO update of a rollout: the model, the
    optimizer, the step and update counts, and the torch / numpy / Python RNG states; evaluation rows up to that
    step are kept as they are. Not restored: the training envs' episodes in progress (they restart with fresh
    episodes seeded by ``seed + steps done``, and the recurrent state with them) and SB3's episode-statistics
    buffer; so a resumed run matches the uninterrupted one up to the resume point and continues as a run of
    the same model on other episodes.
    """
    run = RunDir(run_path(config.out, config.name))
    with run.lock():
        def setup(values: dict[str, Any]) -> tuple[RLConfig, Any, Any]:
            stored = RLConfig(**values)
            check_motion_flags(stored)
            keep_allocations_warm()
            tensorboard = str(run.path / "tensorboard")
            checkpoint = run.checkpoints / "last.zip"
            if resume and checkpoint.is_file():
                done = saved_timesteps(checkpoint)
                envs = make_vec_env(stored, seed=stored.seed + done)  # fresh episodes, not the first ones again
                model = load_model(stored, checkpoint, envs, tensorboard)
                restore_rngs(run, model.num_timesteps)
            else:
                envs = make_vec_env(stored)
                model = make_model(stored, envs, tensorboard)
            return stored, envs, model

        _, (config, envs, model) = open_run(run, config.to_dict(), "rl", resume=resume, overwrite=overwrite,
                                            setup=setup, explicit=explicit, extend="timesteps")
        rows = [r for r in read_evaluations(run.path / "eval.csv") if r["timesteps"] <= model.num_timesteps] \
            if resume else []
        callback = EvalCheckpointCallback(config, run, rows, reporter)
        remaining = config.timesteps - model.num_timesteps
        if remaining > 0:
            model.learn(remaining, callback=callback, reset_num_timesteps=not resume, tb_log_name="rl")
        if not rows or rows[-1]["timesteps"] < model.num_timesteps:
            callback.evaluate()
        atomic_write(run.path / "model.zip", lambda tmp: model.save(tmp))
        envs.close()
        from fernn.envs import default_data_dir

        bounds = cached_bounds(config, bounds_episodes, default_data_dir() / "bounds")
        results = {"config": config.to_dict(), "final": rows[-1], "evaluations": rows, "bounds": bounds,
                   "parameters": sum(p.numel() for p in model.policy.parameters())}
        equivariance = policy_equivariance(model, config)
        if equivariance is not None:
            results["equivariance"] = equivariance
        learning_curve(run.path / "learning_curve.png", {config.policy: rows}, bounds, title=config.name)
        write_json(run.path / "results.json", results)
    return results
