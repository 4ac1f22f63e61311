"""Planning with the world model: model-predictive control by the cross-entropy method (random shooting is its
one-iteration case) over a discrete (:class:`CEMPlanner`) or box (:class:`BoxCEMPlanner`) action space, imagining
every candidate of every env in one batched call.

Each real step: observe the new view (the state carried from the previous step moves by the action taken and
takes the observation in: :class:`ModelTracker`), then imagine ``candidates`` action sequences of ``horizon``
steps from that state (:class:`CandidateScores`), score the imagined views, refit the action distribution to the
``elites`` best, and after ``iterations`` rounds execute the first action of the best sequence seen. The state is
carried across real steps, never recomputed from the start.

A planner takes any :class:`fernn.imagination.WorldModelProtocol` (the package's three world models, or a user's):
it uses the protocol's members only. The two planners and the dreamed policy are built from the same parts (the
tracker, the search settings, the candidate scores), not from one another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from fernn._validation import check_int
from fernn.imagination import WorldModelProtocol


def target_ink(predictions: torch.Tensor) -> torch.Tensor:
    """The tracking task's reward applied to imagined windows ``(N, H, C, h, w)``: the target channel's ink
    inside each window (channel 1, clipped to [0, 1]), summed over the horizon -> ``(N,)``."""
    return predictions[:, :, 1].clamp(0, 1).sum((-3, -2, -1))


#: how much redder than green and blue a pixel must be to count as the red block's (:func:`red_ink`)
RED_MARGIN = 0.3


def red_ink(predictions: torch.Tensor) -> torch.Tensor:
    """The find-red task's score of imagined first-person views ``(N, H, 3, h, w)`` (RGB in [0, 1]): the red block's
    share of each view — ``R - max(G, B)`` above :data:`RED_MARGIN`, averaged over the pixels — summed over the
    horizon -> ``(N,)``. Of the block world's colours only the red block passes the margin (walls, floor, ceiling
    and the other blocks are at most 0.11 redder than green or blue), and a nearer block covers more of the view
    and is lit brighter, so the score grows as the agent closes in."""
    views = predictions.clamp(0, 1)
    redness = views[:, :, 0] - views[:, :, 1:3].amax(2)
    return (redness - RED_MARGIN).clamp_min(0).mean((-2, -1)).sum(1)


class RewardHead(torch.nn.Module):
    """A learned reward of a window, ``(N, C, h, w)`` in [0, 1] -> ``(N,)``: the general case of a planner's score,
    for envs whose reward formula is not known (fit on recorded rewards with :func:`fit_reward_head`).

    Two strided convolutions, a global mean and a linear layer: small enough to score every imagined window of
    every candidate at a fraction of the imagination's cost."""

    def __init__(self, in_channels: int, hidden: int = 16) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(in_channels, hidden, 5, stride=2, padding=2), torch.nn.ReLU(),
            torch.nn.Conv2d(hidden, hidden, 3, stride=2, padding=1), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(hidden, 1))

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.net(windows).squeeze(-1)

    def score(self, predictions: torch.Tensor) -> torch.Tensor:
        """A planner's score: the predicted rewards of imagined windows ``(N, H, C, h, w)``, summed -> ``(N,)``."""
        return self(predictions.flatten(0, 1).clamp(0, 1)).view(predictions.shape[:2]).sum(1)


def fit_reward_head(data, *, steps: int = 300, batch_size: int = 256, lr: float = 3e-3, seed: int = 0,
                    device: torch.device | str = "cpu", view_shape: tuple[int, int, int] | None = None
                    ) -> tuple[RewardHead, dict[str, float]]:
    """Fit a :class:`RewardHead` to a trajectory file's ``(o_t, r_t)`` pairs (the reward of the step that led to
    the window; the first window of each episode has none): a ``fernn.envs.TrajectoryDataset`` or its path.
    ``view_shape``: the ``(C, h, w)`` views the head will score (a world model's ``view_shape``); a file of other
    observations is refused before anything is fitted.

    Returns:
        The head (eval mode) and ``{"steps", "held_out_mse", "reward_variance", "r2"}`` on a held-out tenth.
    """
    from fernn.envs import TrajectoryDataset

    steps, batch_size = check_int("steps", steps, minimum=1), check_int("batch_size", batch_size, minimum=1)
    source = data
    data = TrajectoryDataset.load(data, window=2, seed=seed) if not isinstance(data, TrajectoryDataset) else data
    height, width, channels = data.observation_shape
    if view_shape is not None and tuple(view_shape) != (channels, height, width):
        raise ValueError(f"{source} holds {height}x{width} observations of {channels} channel(s); the world model "
                         f"imagines {view_shape[1]}x{view_shape[2]} views of {view_shape[0]}: a reward head scores "
                         "the views it was fitted on, so give --reward-data a file collected with the world model's "
                         "observations (the flags of its training data)")
    seen = set()
    for index in range(len(data.lengths)):
        rewards = np.asarray(data.field("rewards", index), np.float64)
        if not np.isfinite(rewards).all():
            raise ValueError(f"{source}: the rewards of episode {index} hold NaN or infinite values; a reward head is "
                             "fitted on finite rewards only (collect the data again)")
        seen.update(np.unique(rewards[1:]).tolist())  # step 0 holds no reward
    if len(seen) < 2:
        raise ValueError(f"{source}: every recorded reward is {next(iter(seen), 0.0):g}; a reward head fitted on them "
                         "scores every view the same and the planner would act at random: collect from an env that "
                         "pays the reward to plan for (e.g. dynamic-block-world-find-red)")
    train, held_out = data.split(0.1, min_steps=2, seed=seed)
    torch.manual_seed(seed)
    head = RewardHead(data.observation_shape[2]).to(device)
    optimizer = torch.optim.Adam(head.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        batch = train.sample_batch(batch_size, generator)
        loss = torch.nn.functional.mse_loss(head(batch["frames"][:, 1].to(device)), batch["rewards"][:, 1].to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    head.eval()
    with torch.no_grad():
        batch = held_out.sample_batch(4 * batch_size, generator)
        rewards = batch["rewards"][:, 1].to(device)
        error = float(torch.nn.functional.mse_loss(head(batch["frames"][:, 1].to(device)), rewards))
        variance = float(rewards.var())
    return head, {"steps": steps, "held_out_mse": error, "reward_variance": variance,
                  "r2": 1 - error / variance if variance > 0 else float("nan")}


def top_elites(scores: torch.Tensor, elites: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``elites`` best scores of each row of ``(B, K)`` and their candidate indices, best first; tied scores in
    candidate order (a stable sort: ``topk`` leaves ties to the kernel, so two machines could plan differently)."""
    top, index = torch.sort(scores, dim=1, descending=True, stable=True)
    return top[:, :elites], index[:, :elites]


@dataclass
class PlannerState:
    """What a planner or a dreamed policy carries across real steps: the world model's state ``model_state (B, ...)``
    (a 2-D map ``(B, V, hidden, H, W)``, FloWM-3D's egocentric map, the RSSM's vector), the last motions ``moves
    (B, *M)``, the model's prediction ``(B, C, h, w)`` of the view last observed, made before it arrived (``None``
    before the first observation), and one random generator per env (``None``: the planner's own, shared): with a
    generator per episode, seeded by the episode, a planner's decisions do not depend on which episodes are
    planned side by side."""

    model_state: torch.Tensor
    moves: torch.Tensor
    predictions: torch.Tensor | None = None
    generators: list[torch.Generator] | None = None

    @property
    def maps(self) -> torch.Tensor:
        """The world model's state under its 2-D name (a FERNN's map)."""
        return self.model_state


def model_device(world_model: WorldModelProtocol) -> torch.device:
    """Where a world model's parameters live (a model without parameters runs on the CPU)."""
    parameters = getattr(world_model, "parameters", None)
    first = next(iter(parameters()), None) if callable(parameters) else None
    return first.device if first is not None else torch.device("cpu")


class ModelTracker:
    """A world model's state carried across real steps, as planners and the dreamed policy keep it.

    Each real step: the state moves by the last motion and takes the new observation in (one step of the model's
    :meth:`~fernn.imagination.WorldModelProtocol.observe`), never recomputed from the start.

    Args:
        world_model: any :class:`fernn.imagination.WorldModelProtocol` (put in eval mode if it is a module).
        fill_gaps: an all-zero observation is a gap (``MNISTWorldTrackOccluded-v0``'s dark window): the state takes
            in the model's own prediction of it instead, as imagination does, so that what left the view keeps
            moving rather than being overwritten by the dark frame.
    """

    def __init__(self, world_model: WorldModelProtocol, fill_gaps: bool = True) -> None:
        if not isinstance(world_model, WorldModelProtocol):
            missing = [name for name in ("motions", "view_shape", "initial_state", "observe", "imagine",
                                         "imagine_step") if not hasattr(world_model, name)]
            raise TypeError(f"world_model must implement fernn.imagination.WorldModelProtocol; "
                            f"{type(world_model).__name__} lacks {', '.join(missing)}")
        if isinstance(world_model, torch.nn.Module):
            world_model.eval()
        self.world_model = world_model
        self.fill_gaps = bool(fill_gaps)
        self.device = model_device(world_model)

    def initial_state(self, batch: int, generators: list[torch.Generator] | None = None) -> PlannerState:
        """The empty state of ``batch`` envs."""
        still = self.world_model.motions.still().to(self.device)
        return PlannerState(self.world_model.initial_state(batch, device=self.device),
                            still.expand(batch, *still.shape).clone(), generators=generators)

    @torch.no_grad()
    def observe(self, observation: np.ndarray | torch.Tensor, state: PlannerState | None,
                episode_start: np.ndarray | None = None) -> PlannerState:
        """Move the states by the last motions and take the observations ``(B, h, w, C)`` uint8 in: the new state."""
        frames = torch.as_tensor(np.asarray(observation), device=self.device)
        if frames.dim() == 3:
            frames = frames[None]
        frames = frames.permute(0, 3, 1, 2).float().div(255)[:, None]  # (B, 1, C, h, w)
        batch = frames.shape[0]
        state = self.initial_state(batch) if state is None else state
        model_state, moves, generators = state.model_state, state.moves, state.generators
        if episode_start is not None:
            starts = torch.as_tensor(np.asarray(episode_start), dtype=torch.bool, device=self.device)
            fresh = self.initial_state(batch)
            model_state = torch.where(starts.view(-1, *[1] * (model_state.dim() - 1)), fresh.model_state,
                                      model_state)
            moves = torch.where(starts.view(-1, *[1] * (moves.dim() - 1)), fresh.moves, moves)
        channels, height, width = self.world_model.view_shape
        if frames.shape[2:] != (channels, height, width):
            raise ValueError(f"observations must be uint8 views (B, h, w, C) = (B, {height}, {width}, {channels}) "
                             f"for this world model; got {tuple(np.asarray(observation).shape)}")
        predictions, following = self.world_model.observe(frames, moves[:, None], model_state)
        following = following[:, -1]
        dark = frames.flatten(1).amax(1) == 0 if self.fill_gaps else torch.zeros(batch, dtype=torch.bool)
        if dark.any():  # the same step again for the dark windows, with the prediction as the observation
            imagined = predictions[dark].clamp(0, 1)
            _, filled = self.world_model.observe(imagined, moves[dark, None], model_state[dark])
            following[dark] = filled[:, -1]
        return PlannerState(following, moves, predictions[:, 0], generators)

    def acted(self, state: PlannerState, motions: torch.Tensor) -> PlannerState:
        """``state`` with the motions ``(B, *M)`` of the actions just taken, to move by at the next observation."""
        return PlannerState(state.model_state, motions.to(self.device), state.predictions, state.generators)


class CandidateScores:
    """The scores ``(B, K)`` of candidate action sequences ``(B, K, H, ...)`` from states ``(B, ...)``: every
    candidate of every env imagined in one batched call of the world model's ``imagine``, then scored.

    Args:
        world_model: the model that imagines.
        score: imagined views ``(N, H, C, h, w)`` -> ``(N,)``.
        motions_of: actions ``(N, H, ...)`` -> the model's motions ``(N, H, *M)``.
    """

    def __init__(self, world_model: WorldModelProtocol, score: Callable[[torch.Tensor], torch.Tensor],
                 motions_of: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.world_model, self.score, self.motions_of = world_model, score, motions_of

    def __call__(self, states: torch.Tensor, sequences: torch.Tensor) -> torch.Tensor:
        batch, count = sequences.shape[:2]
        motions = self.motions_of(sequences.flatten(0, 1)).to(states.device)
        imagined = self.world_model.imagine(states.repeat_interleave(count, 0), motions)
        return self.score(imagined).float().cpu().view(batch, count)


class SearchSettings:
    """The cross-entropy method's sizes and its candidate sampling, checked once for every planner."""

    def __init__(self, horizon: int, candidates: int, iterations: int, elites: int, seed: int) -> None:
        self.horizon = check_int("horizon", horizon, minimum=1)
        self.candidates = check_int("candidates", candidates, minimum=1)
        self.iterations = check_int("iterations", iterations, minimum=1)
        self.elites = check_int("elites", elites, minimum=1)
        if self.elites > self.candidates:
            raise ValueError(f"elites must be <= candidates, got elites={elites}, candidates={candidates}")
        self.seed = int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)

    def generators(self, seeds: list[int] | None) -> list[torch.Generator] | None:
        """One candidate-sampling generator per env, seeded from the planner's seed and each episode's seed."""
        return None if seeds is None else \
            [torch.Generator().manual_seed(self.seed * 1_000_003 + int(seed)) for seed in seeds]

    def uniform(self, shape: tuple[int, ...], batch: int, generators: list[torch.Generator] | None) -> torch.Tensor:
        """Uniform randoms ``(B, *shape)``: from each env's generator (a short loop over envs, of random draws
        only), or from the planner's own."""
        if generators is None:
            return torch.rand(batch, *shape, generator=self.generator)
        return torch.stack([torch.rand(shape, generator=generator) for generator in generators])


class ModelPolicy:
    """An agent that acts from a world model's carried state: a planner, or a policy learned in imagination.

    Built from parts (:class:`ModelTracker`, and for planners :class:`SearchSettings` and :class:`CandidateScores`);
    a subclass says how it decides (:meth:`plan`) and what its actions do (:meth:`moves_of`).
    ``predict(observation, state, episode_start)`` has SB3's signature (observations uint8 ``(B, h, w, C)``), so
    the RL evaluation and rollout code can run one like a policy; ``horizon``: the imagined steps over which
    :func:`~fernn.agents.planning_eval.evaluate_planner` measures the model's imagination against what arrived.
    """

    tracker: ModelTracker
    horizon: int

    @property
    def world_model(self) -> WorldModelProtocol:
        return self.tracker.world_model

    @property
    def device(self) -> torch.device:
        return self.tracker.device

    @property
    def fill_gaps(self) -> bool:
        """Whether a dark observation is filled with the model's prediction (:class:`ModelTracker`)."""
        return self.tracker.fill_gaps

    @fill_gaps.setter
    def fill_gaps(self, value: bool) -> None:
        self.tracker.fill_gaps = bool(value)

    def generators(self, seeds: list[int] | None) -> list[torch.Generator] | None:
        """One random generator per env, seeded by each episode (``None``: the agent draws no randoms)."""
        return None

    def initial_state(self, batch: int, seeds: list[int] | None = None) -> PlannerState:
        """The empty state of ``batch`` envs; ``seeds``: the episodes' seeds (one generator each, if it samples)."""
        return self.tracker.initial_state(batch, self.generators(seeds))

    def observe(self, observation: np.ndarray | torch.Tensor, state: PlannerState | None,
                episode_start: np.ndarray | None = None) -> PlannerState:
        """:meth:`ModelTracker.observe`."""
        return self.tracker.observe(observation, state, episode_start)

    def plan(self, states: torch.Tensor, generators: list[torch.Generator] | None = None) -> torch.Tensor:
        """The actions ``(B, ...)`` from the world model's states ``(B, ...)``."""
        raise NotImplementedError

    def moves_of(self, actions: torch.Tensor) -> torch.Tensor:
        """The model's motions ``(..., *M)`` of actions."""
        raise NotImplementedError

    def predict(self, observation: np.ndarray, state: PlannerState | None = None,
                episode_start: np.ndarray | None = None,
                deterministic: bool = True) -> tuple[np.ndarray, PlannerState]:
        """SB3-style: ``(actions, state)`` for observations ``(B, h, w, C)``."""
        state = self.tracker.observe(observation, state, episode_start)
        actions = self.plan(state.model_state, state.generators)
        return actions.numpy(), self.tracker.acted(state, self.moves_of(actions))


class _CEMParts:
    """The parts both CEM planners are built from: the search settings and the candidate scores."""

    search: SearchSettings
    candidate_scores: CandidateScores

    horizon = property(lambda self: self.search.horizon, doc="imagined steps per candidate")
    candidates = property(lambda self: self.search.candidates, doc="candidates per iteration")
    iterations = property(lambda self: self.search.iterations, doc="refits of the sampling distribution")
    elites = property(lambda self: self.search.elites, doc="the best candidates each refit follows")
    seed = property(lambda self: self.search.seed, doc="seed of the candidate sampling")

    @property
    def score(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The score of imagined views ``(N, H, C, h, w)`` -> ``(N,)`` (settable)."""
        return self.candidate_scores.score

    @score.setter
    def score(self, score: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.candidate_scores.score = score

    def generators(self, seeds: list[int] | None) -> list[torch.Generator] | None:
        return self.search.generators(seeds)

    def score_candidates(self, states: torch.Tensor, sequences: torch.Tensor) -> torch.Tensor:
        """:class:`CandidateScores` of ``sequences (B, K, H, ...)`` from ``states (B, ...)`` -> ``(B, K)``."""
        return self.candidate_scores(states, sequences)


class CEMPlanner(_CEMParts, ModelPolicy):
    """Model-predictive control with the cross-entropy method over a discrete action space.

    Args:
        world_model: a trained world model whose views are the env's observations: :class:`fernn.WorldModel`,
            :class:`fernn.WorldModel3D`, :class:`fernn.RSSM` or any :class:`fernn.imagination.WorldModelProtocol`.
        moves: the motion of each of the ``A`` actions in the model's terms (``world_model.motions``): ``(A, 2)``
            window moves ``(dx, dy)``, or ``(A,)`` first-person motions (0 turn left, 1 turn right, 2 forward,
            3 stay).
        score: imagined views ``(N, horizon, C, h, w)`` -> scores ``(N,)`` (higher is better); default
            :func:`target_ink`.
        horizon, candidates, iterations, elites: the CEM's sizes (``iterations=1``: random shooting).
        seed: seed of the candidate sampling.
        fill_gaps: a dark observation is a gap, filled with the model's own prediction (:class:`ModelTracker`).
    """

    def __init__(self, world_model: WorldModelProtocol, moves: torch.Tensor | np.ndarray,
                 score: Callable[[torch.Tensor], torch.Tensor] = target_ink, *, horizon: int = 6,
                 candidates: int = 32, iterations: int = 2, elites: int = 4, seed: int = 0,
                 fill_gaps: bool = True) -> None:
        self.tracker = ModelTracker(world_model, fill_gaps)
        self.search = SearchSettings(horizon, candidates, iterations, elites, seed)
        self.moves = world_model.motions.check(moves)
        self.candidate_scores = CandidateScores(world_model, score, self.moves_of)

    def moves_of(self, actions: torch.Tensor) -> torch.Tensor:
        """The model's motions ``(..., *M)`` of actions (here indices ``(...)`` into the table)."""
        return self.moves[actions]

    @torch.no_grad()
    def plan(self, states: torch.Tensor, generators: list[torch.Generator] | None = None) -> torch.Tensor:
        """The CEM over action sequences from ``states (B, ...)``: the first action of each env's best sequence,
        ``(B,)``."""
        search = self.search
        batch, count, actions = states.shape[0], search.candidates, len(self.moves)
        probabilities = torch.full((batch, search.horizon, actions), 1.0 / actions)
        best_score = torch.full((batch,), -float("inf"))
        best_first = torch.zeros(batch, dtype=torch.long)
        for _ in range(search.iterations):
            draws = search.uniform((count, search.horizon), batch, generators)  # (B, K, H): inverse-CDF sampling
            cumulative = probabilities.cumsum(-1)[:, None]  # (B, 1, H, A)
            sequences = (draws[..., None] >= cumulative).sum(-1).clamp_max(actions - 1)  # (B, K, H)
            scores = self.score_candidates(states, sequences)
            top, index = top_elites(scores, search.elites)
            better = top[:, 0] > best_score
            best_score = torch.where(better, top[:, 0], best_score)
            best_first = torch.where(better, sequences[torch.arange(batch), index[:, 0], 0], best_first)
            elite = sequences.gather(1, index[:, :, None].expand(-1, -1, search.horizon))  # (B, E, H)
            counts = torch.nn.functional.one_hot(elite, actions).float().sum(1)  # (B, H, A)
            probabilities = (counts + 0.1) / (counts + 0.1).sum(-1, keepdim=True)
        return best_first


class BoxCEMPlanner(_CEMParts, ModelPolicy):
    """Model-predictive control with the cross-entropy method over a ``Box`` action space.

    Candidates are Gaussian action sequences ``(horizon, d)`` clipped to the box; each iteration refits the mean
    and standard deviation to the elites (the first iteration: centred on the box, half its width). ``to_moves``
    maps actions ``(..., d)`` to the integer motions ``(..., *M)`` the world model imagines (how an action moves
    the observer is the env's knowledge). The carried state, gaps, scores, the one batched imagination and
    ``predict`` (actions ``(B, d)`` float32) are the same parts as :class:`CEMPlanner`'s.

    Args:
        low, high: the box's finite bounds, shape ``(d,)`` (e.g. ``env.action_space.low``).
        to_moves: actions ``(..., d)`` float -> integer motions ``(..., *M)``.
        Others: as :class:`CEMPlanner`.
    """

    def __init__(self, world_model: WorldModelProtocol, low: np.ndarray | torch.Tensor,
                 high: np.ndarray | torch.Tensor, to_moves: Callable[[torch.Tensor], torch.Tensor],
                 score: Callable[[torch.Tensor], torch.Tensor] = target_ink, *, horizon: int = 6,
                 candidates: int = 32, iterations: int = 2, elites: int = 4, seed: int = 0,
                 fill_gaps: bool = True) -> None:
        self.tracker = ModelTracker(world_model, fill_gaps)
        self.search = SearchSettings(horizon, candidates, iterations, elites, seed)
        self.low = torch.as_tensor(np.asarray(low, np.float32)).flatten()
        self.high = torch.as_tensor(np.asarray(high, np.float32)).flatten()
        if self.low.shape != self.high.shape or len(self.low) < 1 or not (
                torch.isfinite(self.low).all() and torch.isfinite(self.high).all() and (self.low < self.high).all()):
            raise ValueError(f"low and high must be finite bounds of the same shape (d,) with low < high; got "
                             f"low={self.low.tolist()}, high={self.high.tolist()}")
        if not callable(to_moves):
            raise TypeError(f"to_moves must map actions (..., d) to integer moves (..., 2); got {to_moves!r}")
        self.to_moves = to_moves
        self.candidate_scores = CandidateScores(world_model, score, self.moves_of)

    def moves_of(self, actions: torch.Tensor) -> torch.Tensor:
        moves = torch.as_tensor(self.to_moves(actions))
        wanted = (*actions.shape[:-1], *self.world_model.motions.shape)
        if moves.shape != wanted or moves.is_floating_point():
            raise ValueError(f"to_moves must return integer moves of shape {wanted}; got {moves.dtype} "
                             f"{tuple(moves.shape)}")
        return moves.long()

    @torch.no_grad()
    def plan(self, states: torch.Tensor, generators: list[torch.Generator] | None = None) -> torch.Tensor:
        """The CEM from ``states (B, ...)``: the first action ``(B, d)`` of each env's best sequence."""
        search = self.search
        batch, size = states.shape[0], len(self.low)
        mean = ((self.low + self.high) / 2).expand(batch, search.horizon, size)
        std = ((self.high - self.low) / 2).expand(batch, search.horizon, size)
        best_score = torch.full((batch,), -float("inf"))
        best_first = mean[:, 0].clone()
        for _ in range(search.iterations):
            noise = torch.special.ndtri(search.uniform((search.candidates, search.horizon, size), batch, generators)
                                        .clamp(1e-7, 1 - 1e-7))
            sequences = torch.maximum(torch.minimum(mean[:, None] + std[:, None] * noise, self.high), self.low)
            scores = self.score_candidates(states, sequences)
            top, index = top_elites(scores, search.elites)
            better = top[:, 0] > best_score
            best_score = torch.where(better, top[:, 0], best_score)
            best_first = torch.where(better[:, None], sequences[torch.arange(batch), index[:, 0], 0], best_first)
            elite = sequences.gather(1, index[:, :, None, None].expand(-1, -1, search.horizon, size))
            mean, std = elite.mean(1), elite.std(1, unbiased=False)
        return best_first
