"""A world model written by a user, plugged into the planner and into learning in imagination through
:class:`fernn.imagination.WorldModelProtocol` alone: no class of the package's, no registration."""

import numpy as np
import pytest
import torch

from fernn.imagination import FIRST_PERSON_MOTIONS, WINDOW_MOVES, WorldModelProtocol
from fernn import RSSM, TranslationFlow, WorldModel, WorldModel3D

SMALL = {"world_size": 28, "window_size": 12, "num_digits": 2, "velocities": 1, "step_size": 1}


def shifted(views: torch.Tensor, moves: torch.Tensor) -> torch.Tensor:
    """Views ``(N, C, h, w)`` seen from a window moved by ``moves (N, 2)`` ``(dx, dy)`` (wrapping around)."""
    count, channels, height, width = views.shape
    rows = (torch.arange(height) + moves[:, 1, None]) % height  # (N, h)
    cols = (torch.arange(width) + moves[:, 0, None]) % width  # (N, w)
    return views[torch.arange(count)[:, None, None, None], torch.arange(channels)[None, :, None, None],
                 rows[:, None, :, None], cols[:, None, None, :]]


class LastWindow:
    """A user's world model of a still world: its state is the last window, and a move shifts it."""

    motions = WINDOW_MOVES

    def __init__(self, channels: int, size: int) -> None:
        self.view_shape = (channels, size, size)

    def initial_state(self, batch_size, *, device=None):
        return torch.zeros(batch_size, *self.view_shape, device=device)

    def observe(self, views, motions, state=None):
        state = self.initial_state(len(views)) if state is None else state
        predictions, states = [], []
        for t in range(views.shape[1]):
            predictions.append(shifted(state, motions[:, t]))
            state = views[:, t]
            states.append(state)
        return torch.stack(predictions, 1), torch.stack(states, 1)

    def imagine_step(self, state, motions):
        view = shifted(state, motions)
        return view, view

    def imagine(self, state, motions):
        views = []
        for k in range(motions.shape[1]):
            view, state = self.imagine_step(state, motions[:, k])
            views.append(view)
        return torch.stack(views, 1)


def test_the_package_world_models_and_a_users_implement_the_protocol():
    models = (WorldModel(2, 2, TranslationFlow(1), world_size=20, window_size=8),
              WorldModel3D(3, 2, room_size=4, view_size=16), RSSM(3, view_size=16, deterministic=8, stoch=2,
                                                                     classes=2), LastWindow(2, 8))
    for model in models:
        assert isinstance(model, WorldModelProtocol), type(model).__name__
    assert models[0].motions is WINDOW_MOVES and models[1].motions is models[2].motions is FIRST_PERSON_MOTIONS
    assert not isinstance(object(), WorldModelProtocol)


@pytest.mark.parametrize("model", [WorldModel3D(3, 2, room_size=4, view_size=16),
                                   RSSM(3, view_size=16, deterministic=8, stoch=2, classes=2)],
                         ids=["flowm-3d", "rssm"])
def test_one_imagined_step_at_a_time_equals_imagining_the_sequence(model):
    torch.manual_seed(0)
    _, states = model.observe(torch.rand(2, 3, 3, 16, 16), torch.randint(0, 4, (2, 3)))
    future = torch.randint(0, 4, (2, 4))
    torch.manual_seed(1)  # the RSSM samples: the same random draws for both
    whole = model.imagine(states[:, -1], future)
    torch.manual_seed(1)
    state, views = states[:, -1], []
    for k in range(4):
        view, state = model.imagine_step(state, future[:, k])
        views.append(view)
    torch.testing.assert_close(torch.stack(views, 1), whole, rtol=1e-5, atol=1e-6)


def test_a_users_world_model_plans_and_dreams(tmp_path):
    from fernn.agents.collect import collect_file
    from fernn.agents.dream import DreamConfig, ImaginationActorCritic, ImaginedPolicy, StartStates
    from fernn.agents.dream.loop import check_action_set
    from fernn.agents.dream.losses import imagination_update
    from fernn.agents.planning import CEMPlanner, target_ink
    from fernn.agents.planning_eval import env_action_moves, evaluate_planner
    from fernn.envs import make_env

    model = LastWindow(2, 12)
    env = make_env("MNISTWorldTrack-v0", SMALL)
    moves = env_action_moves(env, model)  # the env's (A, 2) table, checked against the model's views
    env.close()
    planner = CEMPlanner(model, moves, target_ink, horizon=2, candidates=4, iterations=1, elites=2)
    planned = evaluate_planner(planner, "MNISTWorldTrack-v0", env_kwargs=SMALL, episodes=2, parallel=2)
    assert len(planned["returns"]) == 2 and planned["one_step_mse"] is not None

    data = tmp_path / "track.npz"
    collect_file("MNISTWorldTrack-v0", data, episodes=3, max_steps=10, env_kwargs=SMALL)
    config = DreamConfig(world_model="users-own", env="MNISTWorldTrack-v0", env_kwargs=SMALL, horizon=3,
                         batch_size=4)
    starts = StartStates(model, str(data), config.context, seed=0, device=torch.device("cpu"))
    check_action_set(model, moves, starts.data, config.env, str(data))
    torch.manual_seed(0)
    agent = ImaginationActorCritic(model, moves)
    optimizer = torch.optim.Adam(agent.parameters(), lr=config.lr)
    state, window = {"update": 0, "scale": 1.0}, {"return": 0.0, "actor": 0.0, "critic": 0.0, "entropy": 0.0,
                                                  "count": 0}
    for _ in range(2):
        imagination_update(config, model, agent, optimizer, starts, lambda views: target_ink(views[:, None]),
                           torch.as_tensor(moves), torch.Generator().manual_seed(0), state, window,
                           torch.device("cpu"))
    assert state["update"] == 2 and window["count"] == 2 and np.isfinite(window["actor"])
    dreamed = evaluate_planner(ImaginedPolicy(model, moves, agent), "MNISTWorldTrack-v0", env_kwargs=SMALL,
                               episodes=2, parallel=2)
    assert len(dreamed["returns"]) == 2


def test_an_object_that_is_no_world_model_is_named():
    from fernn.agents.planning import CEMPlanner

    class Half:
        motions = WINDOW_MOVES
        view_shape = (2, 12, 12)

    with pytest.raises(TypeError, match="Half lacks initial_state, observe, imagine, imagine_step"):
        CEMPlanner(Half(), np.zeros((2, 2), np.int64))
