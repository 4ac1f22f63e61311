"""The loop of learning in imagination: start states from real episodes, the reward of imagined views, the
updates with their logs, evaluations and resume points, and loading a learned policy back."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fernn.imagination import WorldModelProtocol
from fernn.agents.dream.config import TRACKING_SETTINGS, DreamConfig
from fernn.agents.dream.losses import imagination_update
from fernn.agents.dream.networks import ImaginationActorCritic, ImaginedPolicy
from fernn.agents.interrupts import StopOnFirstInterrupt
from fernn.agents.planning import target_ink
from fernn.agents.runs import EVAL_SEED, RunDir, check_inputs_outside, open_run, run_path, write_csv, write_json
from fernn.budget import check_fits

class StartStates:
    """World-model states after ``context`` real views of the training episodes: where imagination starts (the
    recorded moves in the model's terms, ``world_model.motions.from_recorded``)."""

    def __init__(self, world_model: WorldModelProtocol, data_path: str, context: int, seed: int,
                 device: torch.device) -> None:
        from fernn.envs import TrajectoryDataset

        self.world_model, self.device = world_model, device
        self.data = TrajectoryDataset.load(data_path, window=1, seed=seed, device=device)
        longest = int(self.data.lengths.max()) + 1
        if context > longest:
            raise ValueError(f"imagination starts after --context {context} real views of the world model's "
                             f"training episodes, but the longest episode of {data_path} has {longest}: lower "
                             f"--context (at most {longest})")
        self.data.windows(context)
        if not self.data.has_moves:
            raise ValueError(f"{data_path} records no moves: imagination starts from states the world model built "
                             "from real views and their moves")

    @torch.no_grad()
    def sample(self, count: int) -> torch.Tensor:
        """``count`` start states ``(count, ...)``."""
        batch = self.data.sample_batch(count)
        _, states = self.world_model.observe(batch["frames"], self.world_model.motions.from_recorded(batch["moves"]))
        return states[:, -1]


def reward_function(config: DreamConfig, world_config: dict[str, Any], view_shape: tuple[int, int, int],
                    device: torch.device) -> tuple[Callable[[torch.Tensor], torch.Tensor], dict[str, float] | None]:
    """The reward of imagined windows ``(N, C, h, w)`` (``view_shape`` = ``(C, h, w)``) -> ``(N,)``, and the reward
    head's fit (or None)."""
    if config.score == "target-ink":
        return (lambda windows: target_ink(windows[:, None])), None
    from fernn.agents.planning import fit_reward_head

    source = config.reward_data or world_config.get("data")
    if source is None:
        raise ValueError("score reward-head needs recorded rewards: pass reward_data (a trajectory file)")
    head, fit = fit_reward_head(Path(source), seed=config.seed, device=device, view_shape=view_shape)
    return (lambda windows: head(windows.clamp(0, 1))), fit


def train_dream(config: DreamConfig, *, resume: bool = False, overwrite: bool = False,
                reporter: Callable[[dict[str, Any]], None] | None = None,
                explicit: tuple[str, ...] = ()) -> dict[str, Any]:
    """Learn a policy in the world model's imagination and evaluate it in the real env (see the module docstring);
    return ``results.json``'s content.

    Raises:
        ValueError: a run that is not a world model, an env whose views or actions differ from the model's,
            settings out of range.
    """
    from fernn.devices import resolve_device
    from fernn.envs import make_env
    from fernn.agents.planning_eval import env_action_moves, load_world_model

    device = resolve_device(config.device)
    run = RunDir(run_path(config.out, config.name))
    check_inputs_outside(run.path, {"--world-model": config.world_model, "--reward-data": config.reward_data})
    with run.lock():
        def setup(values: dict[str, Any]):
            stored = DreamConfig.from_dict(values)
            world_model, world_config = load_world_model(stored.world_model, checkpoint=stored.checkpoint,
                                                         device=device)
            digest = check_world_model_identity(stored)
            if stored.score == "target-ink" and world_model.view_shape[0] < 2:
                raise ValueError(f"--score target-ink scores the target channel (channel 1) of MNISTWorldTrack-v0's "
                                 f"windows; {stored.world_model} sees one channel: use --score reward-head")
            from fernn.envs.first_person_world import first_person_geometry

            probe = make_env(stored.env, stored.env_kwargs)
            moves = env_action_moves(probe, world_model)
            first_person = first_person_geometry(probe) is not None
            probe.close()
            if stored.score == "target-ink" and first_person:
                raise ValueError(f"--score target-ink scores the target channel of MNISTWorldTrack-v0's windows; "
                                 f"{stored.env} is a first-person world: use --score reward-head")
            if world_config.get("data") is None:
                raise ValueError(f"{stored.world_model} was not trained on a trajectory file; imagination starts from "
                                 "the episodes the world model was trained on (train it with --data FILE.npz)")
            state_bytes = world_model.initial_state(1, device="cpu").numel() * 4
            check_fits(4.0 * state_bytes * stored.batch_size * (stored.horizon + 1), f"imagining {stored.batch_size} "
                       f"trajectories of {stored.horizon} steps (the world model's state of "
                       f"{state_bytes / 2 ** 20:.1f} MiB per step, kept for the actor-critic's update)",
                       "lower --batch-size or --horizon", device)
            torch.manual_seed(stored.seed)
            agent = ImaginationActorCritic(world_model, moves).to(device)
            starts = StartStates(world_model, world_config["data"], stored.context, stored.seed, device)
            check_action_set(world_model, moves, starts.data, stored.env, world_config["data"])
            reward, fit = reward_function(stored, world_config, world_model.view_shape, device)
            stored = dataclasses.replace(stored, world_model_digest=digest)
            return stored, world_model, moves, agent, starts, reward, fit

        config_dict, (config, world_model, moves, agent, starts, reward, fit) = open_run(
            run, config.to_dict(), "dream", resume=resume, overwrite=overwrite, setup=setup, explicit=explicit,
            extend="steps", stored=lambda prepared: prepared[0].to_dict())
        return _train(run, config, world_model, moves, agent, starts, reward, fit, device, resume, reporter)


def check_action_set(world_model: WorldModelProtocol, moves: np.ndarray, data, env: str, source: str) -> None:
    """Refuse an env whose actions move the observer in ways the world model never saw: each of the env's motions
    ``(A, *M)`` (in the model's terms) must be among the moves recorded in its training episodes ``data``."""
    recorded = np.concatenate([np.asarray(data.field("moves", index))[1:].reshape(-1, 2)
                               for index in range(len(data.lengths))])
    motions = world_model.motions.from_recorded(torch.as_tensor(recorded)).numpy()
    table = np.asarray(moves).reshape(len(moves), -1)
    seen = np.unique(motions.reshape(len(motions), -1), axis=0)  # (M, prod(shape))
    known = (table[:, None] == seen[None]).all(-1).any(-1)
    unseen = [tuple(int(v) for v in move) if len(move) > 1 else int(move[0]) for move in table[~known]]
    if unseen:
        raise ValueError(f"{env}'s actions carry out {world_model.motions.name} {', '.join(map(str, unseen))}, "
                         f"which the world model never saw in its training episodes ({source}: {len(seen)} "
                         "distinct); it cannot imagine them: dream in the env (and --env-kwargs) its data was "
                         "collected from")


def check_world_model_identity(config: DreamConfig) -> str:
    """The SHA-256 of the world model's checkpoint, checked against the one ``config`` recorded (if any).

    Raises:
        fernn.agents.runs.RunFileError: the checkpoint changed since the dream was trained (the world-model run was
            retrained, resumed or overwritten): the policy would act with another model than the one it learned in.
    """
    from fernn.agents.runs import RunFileError
    from fernn.envs.storage import file_digest

    path = Path(config.world_model) / "checkpoints" / f"{config.checkpoint}.pt"
    digest = file_digest(path, "sha256")
    if config.world_model_digest and digest != config.world_model_digest:
        raise RunFileError(f"{path} changed since this dream was trained (its SHA-256 was "
                           f"{config.world_model_digest[:12]}..., is {digest[:12]}...): the world-model run was "
                           "retrained or overwritten, and the policy is never paired with another model; train the "
                           "dream again (--overwrite) on the world model as it is now")
    return digest


def _train(run: RunDir, config: DreamConfig, world_model: WorldModelProtocol, moves: np.ndarray,
           agent: ImaginationActorCritic, starts: StartStates, reward, fit, device: torch.device, resume: bool,
           reporter) -> dict[str, Any]:
    optimizer = torch.optim.Adam(agent.parameters(), lr=config.lr)
    table = torch.as_tensor(moves, device=device)
    state = {"update": 0, "scale": 1.0, "seconds": 0.0}
    metrics, evaluations = [], []
    generator = torch.Generator(device=device).manual_seed(config.seed)  # sampling stays on the device
    if resume and (run.checkpoints / "last.pt").is_file():
        saved = run.load_checkpoint("last.pt", device)
        agent.load_state_dict(saved["agent"])
        optimizer.load_state_dict(saved["optimizer"])
        state.update(saved["state"])
        generator.set_state(saved["generator"].cpu())  # RNG states are CPU byte tensors, whatever the device
        starts.data.generator.set_state(saved["data_generator"].cpu())
        metrics = [row for row in run.read_metrics() if int(row["update"]) <= state["update"]]
        evaluations = [row for row in _read_eval(run) if row["update"] <= state["update"]]
    started = time.perf_counter() - state["seconds"]
    window = dict(state.pop("window", None) or _empty_window())

    def save_resume_point() -> None:
        state["seconds"] = time.perf_counter() - started
        run.save_checkpoint("last.pt", {"agent": agent.state_dict(), "optimizer": optimizer.state_dict(),
                                        "state": {**state, "window": dict(window)}, "generator": generator.get_state(),
                                        "data_generator": starts.data.generator.get_state(),
                                        "moves": torch.as_tensor(moves)})

    stop = StopOnFirstInterrupt()
    try:
        while state["update"] < config.steps and not stop.requested:
            imagination_update(config, world_model, agent, optimizer, starts, reward, table, generator, state, window,
                               device)
            if state["update"] % config.log_every == 0 or state["update"] == config.steps:
                count = window.pop("count")
                row = {"update": state["update"], **{f"imagined_{k}" if k == "return" else f"{k}_loss"
                                                     if k != "entropy" else k: v / count for k, v in window.items()},
                       "return_scale": max(1.0, state["scale"]), "seconds": time.perf_counter() - started}
                metrics.append(row)
                run.write_metrics(metrics, list(row))
                window = _empty_window()
                if reporter is not None:
                    reporter({"split": "train", **row, "total": config.steps})
            if state["update"] % config.eval_every == 0 or state["update"] == config.steps:
                state["seconds"] = time.perf_counter() - started
                result = evaluate_policy(world_model, moves, agent, config, config.eval_episodes)
                evaluations.append({"update": state["update"], "mean_return": result["mean_return"],
                                    "std_return": result["std_return"], "seconds": state["seconds"]})
                write_csv(run.path / "eval.csv", evaluations, list(evaluations[-1]))
                save_resume_point()
                if reporter is not None:
                    reporter({"split": "eval", "update": state["update"], "total": config.steps, **evaluations[-1]})
    except KeyboardInterrupt:  # a second Ctrl-C: the update in progress is dropped, the last finished one kept
        stop.requested = True
    finally:
        stop.restore()
    if stop.requested and state["update"] < config.steps:
        save_resume_point()
        return {"interrupted": True, "updates": state["update"], "checkpoint": str(run.checkpoints / "last.pt")}
    run.save_checkpoint("final.pt", {"agent": agent.state_dict(), "moves": torch.as_tensor(moves)})
    results = {"config": config.to_dict(), "updates": state["update"], "training_seconds": state["seconds"],
               "reward_head_fit": fit, "parameters": sum(p.numel() for p in agent.parameters()),
               "evaluations": evaluations, "final": evaluate_settings(world_model, moves, agent, config)}
    write_json(run.path / "results.json", results)
    return results


def _empty_window() -> dict[str, float]:
    """The running sums of one log interval (imagined return, losses, entropy) and its number of updates."""
    return {"return": 0.0, "actor": 0.0, "critic": 0.0, "entropy": 0.0, "count": 0}


def _read_eval(run: RunDir) -> list[dict[str, float]]:
    import csv

    path = run.path / "eval.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(handle)]


def evaluate_policy(world_model: WorldModelProtocol, moves: np.ndarray, agent: ImaginationActorCritic, config: DreamConfig,
                    episodes: int, env_kwargs: dict[str, Any] | None = None, gif: Path | None = None) -> dict[str, Any]:
    """The learned policy over ``episodes`` seeded real episodes (the RL evaluations' seeds, 50000 + i):
    returns and decisions per second (:func:`fernn.agents.planning_eval.evaluate_planner`)."""
    from fernn.agents.planning_eval import evaluate_planner

    policy = ImaginedPolicy(world_model, moves, agent)
    return evaluate_planner(policy, config.env, env_kwargs={**config.env_kwargs, **(env_kwargs or {})},
                            episodes=episodes, parallel=min(episodes, 10), seed=EVAL_SEED, gif=gif)


def settings_of(config: DreamConfig) -> dict[str, dict[str, Any]]:
    """The real-env settings a policy is evaluated on: for the tracking envs the occlusion grid's seen, unseen and
    unseen-with-gaps cells; for any other env its own settings."""
    from fernn.envs.tracking_studies import study_kwargs

    if not config.env.split(":")[-1].startswith("MNISTWorldTrack"):
        return {"env": {}}
    return {name: study_kwargs(name) for name in TRACKING_SETTINGS}


def evaluate_settings(world_model: WorldModelProtocol, moves: np.ndarray, agent: ImaginationActorCritic, config: DreamConfig,
                      episodes: int = 20) -> dict[str, Any]:
    """The final evaluation: every setting of :func:`settings_of`, ``episodes`` seeded episodes each."""
    return {name: evaluate_policy(world_model, moves, agent, config, episodes, kwargs)
            for name, kwargs in settings_of(config).items()}


def load_dream(run_dir: str | Path, device: str = "cpu") -> tuple[ImaginedPolicy, DreamConfig]:
    """The learned policy of a dream run (weights only) acting with its world model, and its config."""
    from fernn.agents.planning_eval import load_world_model
    from fernn.agents.runs import RunFileError

    run = RunDir(run_dir)
    config = DreamConfig.from_dict(run.read_config(), str(run.config_path))
    world_model, _ = load_world_model(config.world_model, checkpoint=config.checkpoint, device=device)
    check_world_model_identity(config)
    name = "final.pt" if (run.checkpoints / "final.pt").is_file() else "last.pt"
    saved = run.load_checkpoint(name, device)
    if not isinstance(saved.get("agent"), dict) or "moves" not in saved:
        raise RunFileError(f"{run.checkpoints / name} holds no learned policy (agent weights and moves)")
    moves = np.asarray(saved["moves"])
    agent = ImaginationActorCritic(world_model, moves).to(device)
    try:
        agent.load_state_dict(saved["agent"])
    except (RuntimeError, TypeError) as error:
        raise RunFileError(f"{run.checkpoints / name} does not hold the policy its config describes: "
                           f"{str(error).splitlines()[0]}") from error
    return ImaginedPolicy(world_model, moves, agent), config
