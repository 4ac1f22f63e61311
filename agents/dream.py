"""Learning in imagination: an actor-critic trained only on a world model's imagined rollouts (the Dreamer recipe),
then acting in the real env at policy speed: ``fernn-rl dream`` is :func:`train_dream`.

Start states are the world model's maps after ``context`` real windows of the episodes it was trained on (random
episodes: no environment steps beyond them). From each, the actor imagines ``horizon`` steps: it picks a move from
the map, the world model moves the map by it and predicts the window (:meth:`fernn.WorldModel.imagine_step`), the
reward is scored on the predicted window (the planner's ``target_ink``, or a reward head fitted to recorded
rewards). Then, as DreamerV3 does:

* λ-returns ``R_k = r_{k+1} + γ ((1 - λ) v(s_{k+1}) + λ R_{k+1})``, bootstrapped by the critic at the horizon;
* returns normalised by the running (decay 0.99) range between their 5th and 95th percentiles, at least 1;
* REINFORCE for the discrete actions, ``-(R_k - v(s_k)) / scale * log π(a_k | s_k)``, and an entropy bonus;
* the critic regressed on the λ-returns.

The actor reads the map through the equivariant head (:class:`fernn.agents.heads.VelocityActorHead`: a move's
logit from that move's velocity channel), the critic through a head on the velocity-pooled map. In the real env
the policy carries the world model's map from step to step as the planner does (observe, then act), but decides
with one pass of the actor instead of imagining hundreds of candidates.

The run is a run directory of kind ``dream``: ``config.json``, ``metrics.csv`` (per log interval: imagined return,
losses, entropy), ``eval.csv`` (real-env returns during training), ``checkpoints/last.pt`` (resume) and
``checkpoints/final.pt``, ``results.json`` (the real-env evaluations of every setting). ``fernn-rl eval`` and
``rollout`` take it.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fernn import WorldModel
from fernn.agents.interrupts import StopOnFirstInterrupt
from fernn.agents.heads import ReadoutHead, VelocityActorHead
from fernn.agents.planning import CEMPlanner, target_ink
from fernn.agents.runs import (EVAL_SEED, RunDir, check_inputs_outside, open_run, run_path, write_csv,
                               write_json)
from fernn.agents.settings import (RunSettings, check_choice, check_env_kwargs, check_integers, check_number,
                                   check_seed, check_strings)
from fernn.budget import check_fits
from fernn.devices import check_device_name

SCORES = ("target-ink", "reward-head")
#: the real-env settings a tracking policy is evaluated on (cells of :data:`fernn.envs.tracking_studies.STUDY_CELLS`)
TRACKING_SETTINGS = ("seen", "unseen", "unseen-gap4")


@dataclass
class DreamConfig(RunSettings):
    """A policy learned in a world model's imagination (see the module docstring); saved as ``config.json``."""

    world_model: str = ""
    """The world-model run (``fernn-rl train --data FILE`` on episodes with window moves), stored as an absolute
    path."""
    world_model_digest: str = ""
    """SHA-256 of the world model's checkpoint the policy was learned in (set when the run starts): a dream refuses
    a world model that changed since (retrained or overwritten), instead of pairing its policy with another."""
    env: str = "MNISTWorldTrack-v0"
    """The real env the policy acts in (its windows and action_moves() must be the world model's)."""
    env_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    """``gym.make`` keyword arguments of the env."""
    horizon: int = 15
    """Imagined steps per trajectory (DreamerV3: 15)."""
    steps: int = 2000
    """Actor-critic updates."""
    batch_size: int = 16
    """Imagined trajectories per update."""
    context: int = 10
    """Real windows the world model observes before each start state."""
    lr: float = 3e-4
    """Adam learning rate of the actor and the critic."""
    gamma: float = 0.99
    """Discount."""
    lambda_: float = 0.95
    """λ of the λ-returns."""
    entropy: float = 3e-3
    """Weight of the entropy bonus."""
    score: str = "target-ink"
    """target-ink (the tracking reward on imagined windows) | reward-head (fitted to recorded rewards)."""
    reward_data: str | None = None
    """score reward-head: the trajectory file to fit it on (default: the world model's training data)."""
    checkpoint: str = "best"
    """The world model's checkpoint: best | last."""
    eval_every: int = 250
    """Evaluate in the real env every this many updates."""
    eval_episodes: int = 10
    """Seeded episodes per evaluation during training (the final evaluation: 20 per setting)."""
    log_every: int = 25
    """Updates per metrics row."""
    seed: int = 0
    """Seed of the start states, the imagined actions and the networks."""
    device: str = "auto"
    """auto | cpu | cuda | cuda:N."""
    out: str = "runs"
    """Parent directory of runs."""
    name: str = ""
    """Run name (default: dream-<world model run>-s<seed>)."""

    def __post_init__(self) -> None:
        from fernn.envs import ENV_IDS

        if not isinstance(self.world_model, str) or not self.world_model:
            raise ValueError("world_model must name a world-model run directory (fernn-rl train --data FILE.npz)")
        check_strings(self, ("env", "score", "checkpoint", "device", "out", "name", "world_model_digest"))
        self.world_model = os.path.abspath(self.world_model)  # the run it depends on, wherever eval is run from
        self.env = ENV_IDS.get(self.env, self.env)  # a short name is stored as its id
        if not self.name:
            self.name = f"dream-{Path(self.world_model).name}-s{self.seed}"
        for name, high in (("horizon", 100), ("steps", 10 ** 7), ("batch_size", 4096), ("context", 1000),
                           ("eval_every", 10 ** 7), ("eval_episodes", 10 ** 5), ("log_every", 10 ** 7)):
            check_integers(self, (name,), maximum=high)
        check_number(self, "lr", high=1, low_open=True)
        for name, high in (("gamma", 1), ("lambda_", 1), ("entropy", 10)):
            check_number(self, name, high=high)
        check_choice(self, "score", SCORES)
        if self.reward_data is not None and self.score != "reward-head":
            raise ValueError("reward_data is what the reward-head score is fitted on: use score reward-head")
        check_choice(self, "checkpoint", ("best", "last"))
        check_env_kwargs(self.env_kwargs)
        check_device_name(self.device)
        check_seed(self)


class ImaginationActorCritic(nn.Module):
    """The actor (:class:`~fernn.agents.heads.VelocityActorHead` on the world model's map, with a pooled head for
    the moves that are no velocity) and the critic (a head on the velocity-pooled map).

    Shapes: ``maps (N, V, C, H, W)`` -> logits ``(N, A)``, values ``(N,)``.
    """

    def __init__(self, world_model: WorldModel, moves: np.ndarray, width: int = 64) -> None:
        super().__init__()
        channels, (height, world_w) = world_model.rnn.state_channels, world_model.world_hw
        self.velocity = VelocityActorHead(world_model.flow, moves, channels, height, world_w)
        self.pooled = nn.Sequential(ReadoutHead(channels, height, world_w, width), nn.Linear(width, len(moves)))
        self.critic = nn.Sequential(ReadoutHead(channels, height, world_w, width), nn.Linear(width, 1))

    def logits(self, maps: torch.Tensor) -> torch.Tensor:
        velocity = self.velocity(maps)
        if bool(self.velocity.matched.all()):
            return velocity
        return torch.where(self.velocity.matched, velocity, self.pooled(maps.amax(1)))

    def value(self, maps: torch.Tensor) -> torch.Tensor:
        return self.critic(maps.amax(1)).squeeze(-1)


class ImaginedPolicy(CEMPlanner):
    """The learned actor acting in a real env: the world model's map carried and observed as the planner does
    (:meth:`CEMPlanner.observe`), then one pass of the actor (its most likely move) instead of a search."""

    def __init__(self, world_model: WorldModel, moves: np.ndarray, agent: ImaginationActorCritic) -> None:
        super().__init__(world_model, moves, horizon=1, candidates=1, iterations=1, elites=1)
        self.agent = agent.eval()

    @torch.no_grad()
    def plan(self, maps: torch.Tensor, generators: list[torch.Generator] | None = None) -> torch.Tensor:
        return self.agent.logits(maps).argmax(-1).cpu()


def lambda_returns(rewards: torch.Tensor, values: torch.Tensor, gamma: float, lambda_: float) -> torch.Tensor:
    """``(B, H)`` λ-returns of rewards ``(B, H)`` (``rewards[:, k]`` follows the action at ``k``) and values
    ``(B, H + 1)`` (the last bootstraps)."""
    returns, following = [], values[:, -1]
    for k in reversed(range(rewards.shape[1])):
        following = rewards[:, k] + gamma * ((1 - lambda_) * values[:, k + 1] + lambda_ * following)
        returns.append(following)
    return torch.stack(returns[::-1], 1)


class StartStates:
    """World-model maps after ``context`` real windows of the training episodes: where imagination starts."""

    def __init__(self, world_model: WorldModel, data_path: str, context: int, seed: int,
                 device: torch.device) -> None:
        from fernn.envs import TrajectoryDataset

        self.world_model, self.device = world_model, device
        self.data = TrajectoryDataset.load(data_path, window=1, seed=seed, device=device)
        longest = int(self.data.lengths.max()) + 1
        if context > longest:
            raise ValueError(f"imagination starts after --context {context} real views of the world model's training "
                             f"episodes, but the longest episode of {data_path} has {longest}: lower --context (at most "
                             f"{longest})")
        self.data.windows(context)
        if not self.data.has_moves:
            raise ValueError(f"{data_path} records no moves: imagination starts from maps the world model built "
                             "from real windows and their moves")

    @torch.no_grad()
    def sample(self, count: int) -> torch.Tensor:
        batch = self.data.sample_batch(count)
        _, maps = self.world_model(batch["frames"], batch["moves"], return_maps=True)
        return maps[:, -1]


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
        ValueError: a run that is not a 2-D world model, an env whose windows or actions differ from the model's,
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
            if not isinstance(world_model, WorldModel):
                raise ValueError(f"{stored.world_model} is a first-person world model; imagination learning needs a "
                                 "2-D one (fernn.WorldModel: train --data on episodes with window moves)")
            if stored.score == "target-ink" and world_model.view_shape[0] < 2:
                raise ValueError(f"--score target-ink scores the target channel (channel 1) of MNISTWorldTrack-v0's "
                                 f"windows; {stored.world_model} sees one channel: use --score reward-head")
            probe = make_env(stored.env, stored.env_kwargs)
            moves = env_action_moves(probe, world_model)
            probe.close()
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
            reward, fit = reward_function(stored, world_config, world_model.view_shape, device)
            return dataclasses.replace(stored, world_model_digest=digest), world_model, moves, agent, starts, reward, fit

        config_dict, (config, world_model, moves, agent, starts, reward, fit) = open_run(
            run, config.to_dict(), "dream", resume=resume, overwrite=overwrite, setup=setup, explicit=explicit,
            extend="steps", stored=lambda prepared: prepared[0].to_dict())
        return _train(run, config, world_model, moves, agent, starts, reward, fit, device, resume, reporter)


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


def _train(run: RunDir, config: DreamConfig, world_model: WorldModel, moves: np.ndarray,
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
            _update(config, world_model, agent, optimizer, starts, reward, table, generator, state, window, device)
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


def _update(config: DreamConfig, world_model: WorldModel, agent: ImaginationActorCritic,
            optimizer: torch.optim.Optimizer, starts: StartStates, reward, table: torch.Tensor,
            generator: torch.Generator, state: dict[str, Any], window: dict[str, float], device: torch.device) -> None:
    """One actor-critic update on ``batch_size`` imagined trajectories (the module docstring's recipe); adds the
    update's figures to ``window`` and advances ``state`` (update count, return scale)."""
    maps = starts.sample(config.batch_size)
    with torch.no_grad():  # the world model imagines; the actor acts by sampling
        path, actions, rewards = [maps], [], []
        for _ in range(config.horizon):
            logits = agent.logits(path[-1])
            action = torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)
            prediction, following = world_model.imagine_step(path[-1], table[action])
            actions.append(action)
            rewards.append(reward(prediction))
            path.append(following)
    states = torch.stack(path, 1)  # (B, H + 1, V, C, H, W)
    taken, earned = torch.stack(actions, 1), torch.stack(rewards, 1)
    values = agent.value(states.flatten(0, 1)).view(config.batch_size, config.horizon + 1)
    returns = lambda_returns(earned, values.detach(), config.gamma, config.lambda_)
    spread = float(torch.quantile(returns, 0.95) - torch.quantile(returns, 0.05))
    state["scale"] = 0.99 * state["scale"] + 0.01 * spread if state["update"] else spread
    scale = max(1.0, state["scale"])
    logits = agent.logits(states[:, :-1].flatten(0, 1)).view(config.batch_size, config.horizon, -1)
    log_probs = logits.log_softmax(-1)
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    advantage = (returns - values[:, :-1]).detach() / scale
    actor_loss = -(advantage * log_probs.gather(-1, taken[..., None]).squeeze(-1)).mean() - \
        config.entropy * entropy.mean()
    critic_loss = 0.5 * F.mse_loss(values[:, :-1], returns)
    optimizer.zero_grad(set_to_none=True)
    (actor_loss + critic_loss).backward()
    nn.utils.clip_grad_norm_(agent.parameters(), 100.0)
    optimizer.step()
    state["update"] += 1
    for key, value in (("return", earned.sum(1).mean()), ("actor", actor_loss), ("critic", critic_loss),
                       ("entropy", entropy.mean())):
        window[key] += float(value.detach())
    window["count"] += 1


def _read_eval(run: RunDir) -> list[dict[str, float]]:
    import csv

    path = run.path / "eval.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(handle)]


def evaluate_policy(world_model: WorldModel, moves: np.ndarray, agent: ImaginationActorCritic, config: DreamConfig,
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


def evaluate_settings(world_model: WorldModel, moves: np.ndarray, agent: ImaginationActorCritic, config: DreamConfig,
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
