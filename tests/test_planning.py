"""Planning with the world model: the batched CEM planner equals the one-candidate-at-a-time reference on the
same seeds, carries its map across real steps, runs as a policy on the tracking env, and rejects bad settings."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import fernn.envs  # noqa: F401
from fernn import TranslationFlow, WorldModel
from fernn.agents.bench.reference import NaivePlanner
from fernn.agents.planning import CEMPlanner
from fernn.envs.mnist_world import DIRECTIONS

SMALL_TRACK = dict(world_size=28, window_size=12, num_digits=2, velocities=1, step_size=1)


def planner(cls=CEMPlanner, **kwargs):
    torch.manual_seed(0)
    model = WorldModel(2, 2, TranslationFlow(1), world_size=28, window_size=12, decoder_layers=0)
    return cls(model, DIRECTIONS, horizon=3, candidates=6, iterations=2, elites=2, seed=1, **kwargs)


def test_batched_planner_equals_the_one_at_a_time_reference():
    env = gym.make_vec("MNISTWorldTrack-v0", num_envs=2, vectorization_mode="vector_entry_point", **SMALL_TRACK)
    obs, _ = env.reset(seed=0)
    fast, slow = planner(), planner(NaivePlanner)
    state_fast = state_slow = None
    starts = np.ones(2, bool)
    for _ in range(3):
        a_fast, state_fast = fast.predict(obs, state_fast, starts)
        a_slow, state_slow = slow.predict(obs, state_slow, starts)
        assert np.array_equal(a_fast, a_slow)
        torch.testing.assert_close(state_fast.maps, state_slow.maps)
        obs, _, terminated, truncated, _ = env.step(a_fast)
        starts = terminated | truncated


def test_the_map_is_carried_not_recomputed():
    """Observing step by step with the carried map equals the world model over the whole sequence."""
    plan = planner()
    frames = np.random.default_rng(0).integers(0, 256, (4, 1, 12, 12, 2), dtype=np.uint8)
    moves = torch.tensor([[0, 0], [1, 0], [0, -1], [1, 1]])
    state = None
    for t in range(4):
        state = plan.observe(frames[t], state)
        state.moves = moves[t + 1:t + 2] if t + 1 < 4 else state.moves
    tensor = torch.as_tensor(frames[:, 0]).permute(0, 3, 1, 2).float().div(255)[None]
    _, maps = plan.world_model(tensor, moves[None], return_maps=True)
    torch.testing.assert_close(state.maps, maps[:, -1], rtol=1e-5, atol=1e-6)


def test_bad_settings_are_named():
    model = WorldModel(2, 2, TranslationFlow(1), world_size=24, window_size=12)
    for kwargs, message in (({"horizon": 0}, "horizon"), ({"candidates": 0}, "candidates"),
                            ({"elites": 9, "candidates": 4}, "elites must be <= candidates")):
        with pytest.raises(ValueError, match=message):
            CEMPlanner(model, DIRECTIONS, **kwargs)
    with pytest.raises(ValueError, match=r"moves must be an \(A, 2\) table"):
        CEMPlanner(model, np.zeros((3, 3)))
    with pytest.raises(TypeError, match="fernn.WorldModel"):
        CEMPlanner(object(), DIRECTIONS)
