"""Planning with the world model: model-predictive control by the cross-entropy method (random shooting is its
one-iteration case) over a discrete (:class:`CEMPlanner`) or box (:class:`BoxCEMPlanner`) action space, imagining
every candidate of every env in one batched call.

Each real step: observe the new window (the map carried from the previous step moves by the action taken and
takes the observation in: one step of :class:`fernn.WorldModel`), then imagine ``candidates`` action sequences
of ``horizon`` steps from that map with :meth:`fernn.WorldModel.imagine`, score the imagined windows, refit the
action distribution to the ``elites`` best, and after ``iterations`` rounds execute the first action of the best
sequence seen. The map is carried across real steps, never recomputed from the start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from fernn import RSSM, WorldModel, WorldModel3D
from fernn._validation import check_int
from fernn.egocentric import STAY

#: the world models a planner imagines with: their ``view_shape``, ``motion_kind``, ``initial_state``, ``forward``
#: (with ``return_maps``) and ``imagine`` are all it uses
WORLD_MODELS = (WorldModel, WorldModel3D, RSSM)
#: the still motion of each kind of motion (the move before the first observation)
STILL = {"translation": (0, 0), "first-person": STAY}


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
    """What a planner carries across real steps: the maps ``(B, V, hidden, H, W)``, the last moves ``(B, 2)``, the
    model's prediction ``(B, C, h, w)`` of the window last observed, made before it arrived (``None`` before the
    first observation), and one random generator per env (``None``: the planner's own, shared): with a generator
    per episode, seeded by the episode, a planner's decisions do not depend on which episodes are planned side by
    side."""

    maps: torch.Tensor
    moves: torch.Tensor
    predictions: torch.Tensor | None = None
    generators: list[torch.Generator] | None = None


class CEMPlanner:
    """Model-predictive control with the cross-entropy method over a discrete action space.

    Args:
        world_model: a trained :class:`fernn.WorldModel` whose windows are the env's observations, or a first-person
            one (:class:`fernn.WorldModel3D`, :class:`fernn.RSSM`) whose views are.
        moves: the motion of each of the ``A`` actions in the model's terms: ``(A, 2)`` window moves ``(dx, dy)``,
            or ``(A,)`` first-person motions (0 turn left, 1 turn right, 2 forward, 3 stay).
        score: imagined windows ``(N, horizon, C, h, w)`` -> scores ``(N,)`` (higher is better); default
            :func:`target_ink`.
        horizon, candidates, iterations, elites: the CEM's sizes (``iterations=1``: random shooting).
        seed: seed of the candidate sampling.
        fill_gaps: an all-zero window is a gap in the observations (``MNISTWorldTrackOccluded-v0``'s dark
            window): the map takes in the model's own prediction of it instead, as imagination does, so that
            what left the view keeps moving rather than being overwritten by the dark frame.

    ``predict(observation, state, episode_start)`` has SB3's signature (observations uint8 ``(B, h, w, C)``), so
    the RL evaluation and rollout code can run a planner like a policy.
    """

    def __init__(self, world_model: WorldModel, moves: torch.Tensor | np.ndarray,
                 score: Callable[[torch.Tensor], torch.Tensor] = target_ink, *, horizon: int = 6,
                 candidates: int = 32, iterations: int = 2, elites: int = 4, seed: int = 0,
                 fill_gaps: bool = True) -> None:
        self._setup(world_model, score, horizon, candidates, iterations, elites, seed, fill_gaps)
        self.moves = torch.as_tensor(np.asarray(moves), dtype=torch.long)
        if self.world_model.motion_kind == "first-person":
            if self.moves.dim() != 1 or len(self.moves) < 1 or self.moves.min() < 0 or self.moves.max() > 3:
                raise ValueError(f"moves of a first-person world model must be an (A,) table of motions 0..3, got "
                                 f"{self.moves.tolist()}")
        elif self.moves.dim() != 2 or self.moves.shape[1] != 2 or len(self.moves) < 1:
            raise ValueError(f"moves must be an (A, 2) table of integer (dx, dy) moves, got shape {tuple(self.moves.shape)}")

    def _setup(self, world_model: WorldModel, score: Callable[[torch.Tensor], torch.Tensor], horizon: int,
               candidates: int, iterations: int, elites: int, seed: int, fill_gaps: bool) -> None:
        """The settings every planner checks and keeps."""
        if not isinstance(world_model, WORLD_MODELS):
            raise TypeError(f"world_model must be a fernn.WorldModel, WorldModel3D or RSSM, got {type(world_model).__name__}")
        self.world_model = world_model.eval()
        self.score = score
        self.horizon = check_int("horizon", horizon, minimum=1)
        self.candidates = check_int("candidates", candidates, minimum=1)
        self.iterations = check_int("iterations", iterations, minimum=1)
        self.elites = check_int("elites", elites, minimum=1)
        if self.elites > self.candidates:
            raise ValueError(f"elites must be <= candidates, got elites={elites}, candidates={candidates}")
        self.seed = int(seed)
        self.generator = torch.Generator().manual_seed(seed)
        self.fill_gaps = bool(fill_gaps)

    @property
    def device(self) -> torch.device:
        return next(self.world_model.parameters()).device

    def initial_state(self, batch: int, seeds: list[int] | None = None) -> PlannerState:
        """The empty state of ``batch`` envs; ``seeds``: one candidate-sampling generator per env, seeded from the
        planner's seed and each episode's seed (what :func:`~fernn.agents.planning_eval.evaluate_planner` does)."""
        still = torch.tensor(STILL[self.world_model.motion_kind], device=self.device)
        generators = None if seeds is None else \
            [torch.Generator().manual_seed(self.seed * 1_000_003 + int(seed)) for seed in seeds]
        return PlannerState(self.world_model.initial_state(batch, device=self.device),
                            still.expand(batch, *still.shape).clone(), generators=generators)

    @torch.no_grad()
    def observe(self, observation: np.ndarray | torch.Tensor, state: PlannerState | None,
                episode_start: np.ndarray | None = None) -> PlannerState:
        """Move the maps by the last moves and take the observations ``(B, h, w, C)`` uint8 in: the new state."""
        frames = torch.as_tensor(np.asarray(observation), device=self.device)
        if frames.dim() == 3:
            frames = frames[None]
        frames = frames.permute(0, 3, 1, 2).float().div(255)[:, None]  # (B, 1, C, h, w)
        batch = frames.shape[0]
        state = self.initial_state(batch) if state is None else state
        maps, moves, generators = state.maps, state.moves, state.generators
        if episode_start is not None:
            starts = torch.as_tensor(np.asarray(episode_start), dtype=torch.bool, device=self.device)
            fresh = self.initial_state(batch)
            maps = torch.where(starts.view(-1, *[1] * (maps.dim() - 1)), fresh.maps, maps)
            moves = torch.where(starts.view(-1, *[1] * (moves.dim() - 1)), fresh.moves, moves)
        channels, height, width = self.world_model.view_shape
        if frames.shape[2:] != (channels, height, width):
            what = "windows" if self.world_model.motion_kind == "translation" else "views"
            raise ValueError(f"observations must be uint8 {what} (B, h, w, C) = (B, {height}, {width}, {channels}) for "
                             f"this world model; got {tuple(np.asarray(observation).shape)}")
        predictions, new_maps = self.world_model(frames, moves[:, None], maps, return_maps=True)
        new_maps = new_maps[:, -1]
        dark = frames.flatten(1).amax(1) == 0 if self.fill_gaps else torch.zeros(batch, dtype=torch.bool)
        if dark.any():  # the same step again for the dark windows, with the prediction as the observation
            imagined = predictions[dark].clamp(0, 1)
            _, filled = self.world_model(imagined, moves[dark, None], maps[dark], return_maps=True)
            new_maps[dark] = filled[:, -1]
        return PlannerState(new_maps, moves, predictions[:, 0], generators)

    def _uniform(self, shape: tuple[int, ...], batch: int, generators: list[torch.Generator] | None) -> torch.Tensor:
        """Uniform randoms ``(B, *shape)``: from each env's generator (a short loop over envs, of random draws
        only), or from the planner's own."""
        if generators is None:
            return torch.rand(batch, *shape, generator=self.generator)
        return torch.stack([torch.rand(shape, generator=generator) for generator in generators])

    @torch.no_grad()
    def plan(self, maps: torch.Tensor, generators: list[torch.Generator] | None = None) -> torch.Tensor:
        """The CEM over action sequences from ``maps (B, ...)``: the first action of each env's best sequence, ``(B,)``."""
        batch, count, actions = maps.shape[0], self.candidates, len(self.moves)
        probabilities = torch.full((batch, self.horizon, actions), 1.0 / actions)
        best_score = torch.full((batch,), -float("inf"))
        best_first = torch.zeros(batch, dtype=torch.long)
        for _ in range(self.iterations):
            draws = self._uniform((count, self.horizon), batch, generators)  # (B, K, H): inverse-CDF sampling
            cumulative = probabilities.cumsum(-1)[:, None]  # (B, 1, H, A)
            sequences = (draws[..., None] >= cumulative).sum(-1).clamp_max(actions - 1)  # (B, K, H)
            scores = self.score_candidates(maps, sequences)
            top, index = top_elites(scores, self.elites)
            better = top[:, 0] > best_score
            best_score = torch.where(better, top[:, 0], best_score)
            best_first = torch.where(better, sequences[torch.arange(batch), index[:, 0], 0], best_first)
            elite = sequences.gather(1, index[:, :, None].expand(-1, -1, self.horizon))  # (B, E, H)
            counts = torch.nn.functional.one_hot(elite, actions).float().sum(1)  # (B, H, A)
            probabilities = (counts + 0.1) / (counts + 0.1).sum(-1, keepdim=True)
        return best_first

    def moves_of(self, actions: torch.Tensor) -> torch.Tensor:
        """The integer window moves ``(..., 2)`` of actions (here indices ``(...)`` into the table)."""
        return self.moves[actions]

    def score_candidates(self, maps: torch.Tensor, sequences: torch.Tensor) -> torch.Tensor:
        """Scores ``(B, K)`` of the action sequences ``(B, K, H, ...)`` from ``maps (B, ...)``: every candidate of
        every env imagined in one batched call."""
        batch, count = sequences.shape[:2]
        moves = self.moves_of(sequences.flatten(0, 1)).to(maps.device)
        imagined = self.world_model.imagine(maps.repeat_interleave(count, 0), moves)
        return self.score(imagined).float().cpu().view(batch, count)

    def predict(self, observation: np.ndarray, state: PlannerState | None = None,
                episode_start: np.ndarray | None = None,
                deterministic: bool = True) -> tuple[np.ndarray, PlannerState]:
        """SB3-style: ``(actions (B,), state)`` for observations ``(B, h, w, C)``."""
        state = self.observe(observation, state, episode_start)
        actions = self.plan(state.maps, state.generators)
        return actions.numpy(), PlannerState(state.maps, self.moves_of(actions).to(self.device), state.predictions,
                                             state.generators)


class BoxCEMPlanner(CEMPlanner):
    """Model-predictive control with the cross-entropy method over a ``Box`` action space.

    Candidates are Gaussian action sequences ``(horizon, d)`` clipped to the box; each iteration refits the mean
    and standard deviation to the elites (the first iteration: centred on the box, half its width). ``to_moves``
    maps actions ``(..., d)`` to the integer window moves ``(..., 2)`` the world model imagines (how an action
    moves the observer is the env's knowledge). The map carried across real steps, gaps, scores, the one batched
    imagination and ``predict`` (actions ``(B, d)`` float32) are :class:`CEMPlanner`'s.

    Args:
        low, high: the box's finite bounds, shape ``(d,)`` (e.g. ``env.action_space.low``).
        to_moves: actions ``(..., d)`` float -> integer moves ``(..., 2)``.
        Others: as :class:`CEMPlanner`.
    """

    def __init__(self, world_model: WorldModel, low: np.ndarray | torch.Tensor, high: np.ndarray | torch.Tensor,
                 to_moves: Callable[[torch.Tensor], torch.Tensor], score: Callable[[torch.Tensor], torch.Tensor] =
                 target_ink, *, horizon: int = 6, candidates: int = 32, iterations: int = 2, elites: int = 4,
                 seed: int = 0, fill_gaps: bool = True) -> None:
        self._setup(world_model, score, horizon, candidates, iterations, elites, seed, fill_gaps)
        self.low = torch.as_tensor(np.asarray(low, np.float32)).flatten()
        self.high = torch.as_tensor(np.asarray(high, np.float32)).flatten()
        if self.low.shape != self.high.shape or len(self.low) < 1 or not (
                torch.isfinite(self.low).all() and torch.isfinite(self.high).all() and (self.low < self.high).all()):
            raise ValueError(f"low and high must be finite bounds of the same shape (d,) with low < high; got "
                             f"low={self.low.tolist()}, high={self.high.tolist()}")
        if not callable(to_moves):
            raise TypeError(f"to_moves must map actions (..., d) to integer moves (..., 2); got {to_moves!r}")
        self.to_moves = to_moves

    def moves_of(self, actions: torch.Tensor) -> torch.Tensor:
        moves = torch.as_tensor(self.to_moves(actions))
        if moves.shape != (*actions.shape[:-1], 2) or moves.is_floating_point():
            raise ValueError(f"to_moves must return integer moves of shape {(*actions.shape[:-1], 2)}; got "
                             f"{moves.dtype} {tuple(moves.shape)}")
        return moves.long()

    @torch.no_grad()
    def plan(self, maps: torch.Tensor, generators: list[torch.Generator] | None = None) -> torch.Tensor:
        """The CEM from ``maps (B, ...)``: the first action ``(B, d)`` of each env's best sequence."""
        batch, size = maps.shape[0], len(self.low)
        mean = ((self.low + self.high) / 2).expand(batch, self.horizon, size)
        std = ((self.high - self.low) / 2).expand(batch, self.horizon, size)
        best_score = torch.full((batch,), -float("inf"))
        best_first = mean[:, 0].clone()
        for _ in range(self.iterations):
            noise = torch.special.ndtri(self._uniform((self.candidates, self.horizon, size), batch, generators)
                                        .clamp(1e-7, 1 - 1e-7))
            sequences = torch.maximum(torch.minimum(mean[:, None] + std[:, None] * noise, self.high), self.low)
            scores = self.score_candidates(maps, sequences)
            top, index = top_elites(scores, self.elites)
            better = top[:, 0] > best_score
            best_score = torch.where(better, top[:, 0], best_score)
            best_first = torch.where(better[:, None], sequences[torch.arange(batch), index[:, 0], 0], best_first)
            elite = sequences.gather(1, index[:, :, None, None].expand(-1, -1, self.horizon, size))
            mean, std = elite.mean(1), elite.std(1, unbiased=False)
        return best_first
