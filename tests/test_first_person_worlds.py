"""The first-person world contract: a declaration any env (or a wrapper of it) makes, checked, recorded by collect
and read back by training; and the MiniWorld adapter that declares MiniWorld's envs (the CLI chain collect ->
FloWM-3D and the RSSM -> plan runs in docs/your_env.md's worked example)."""

import gymnasium as gym
import numpy as np
import pytest

import fernn.envs  # noqa: F401
from fernn.envs import FirstPersonGeometry, FirstPersonWorld, collect_episodes, first_person_geometry


class Corridor(gym.Env):
    """A user's env that knows nothing of this package: 8x8 RGB views, three actions."""

    observation_space = gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)
    action_space = gym.spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.np_random.integers(0, 256, (8, 8, 3), dtype=np.uint8), {}

    def step(self, action):
        return self.np_random.integers(0, 256, (8, 8, 3), dtype=np.uint8), 0.0, False, False, {}


@pytest.mark.parametrize("values, message", [
    ({"action_motions": [[2, 0]]}, "action_motions"),
    ({"action_motions": []}, "action_motions"),
    ({"room_size": 2}, "room_size"),
    ({"fov": 0}, "fov"),
    ({"turn_degrees": 45}, "turns 90 degrees"),
    ({"step_cells": 0.5}, "steps one cell"),
])
def test_a_declaration_the_map_cannot_represent_is_refused(values, message):
    with pytest.raises(ValueError, match=message):
        FirstPersonGeometry(**{"action_motions": [[1, 0], [-1, 0], [0, 1]], "room_size": 6, **values})


def test_a_wrapper_declares_a_users_env_and_collect_records_it():
    geometry = FirstPersonGeometry([[1, 0], [-1, 0], [0, 1]], room_size=5, fov=70)
    env = gym.wrappers.TimeLimit(FirstPersonWorld(Corridor(), geometry), 6)  # found through further wrappers
    assert first_person_geometry(env) == geometry and first_person_geometry(Corridor()) is None
    assert env.get_wrapper_attr("motion_kind") == "first-person"
    assert env.get_wrapper_attr("action_moves")().tolist() == [[1, 0], [-1, 0], [0, 1]]
    data = collect_episodes(env, 2, seed=0)
    assert data.meta["moves"] == "self_motion" and data.meta["first_person"]["room_size"] == 5
    moves = data.episode(0)["moves"]
    actions = data.episode(0)["actions"]
    assert (moves[1:] == np.array(geometry.action_motions)[actions[1:]]).all()  # the acted motions
    with pytest.raises(ValueError, match="one \\(turn, forward\\) per action"):
        FirstPersonWorld(Corridor(), FirstPersonGeometry([[1, 0]], room_size=5))


def test_miniworld_turns_a_quarter_steps_one_cell_and_stops_at_walls():
    pytest.importorskip("miniworld")
    from fernn.envs.miniworld import MiniWorldFirstPerson

    try:
        env = gym.make("MiniWorldFirstPerson-v0", world="MiniWorld-OneRoom-v0", obs_size=16)
    except RuntimeError as error:  # no OpenGL here: the adapter says why in one line
        pytest.skip(str(error))
    geometry = first_person_geometry(env)
    assert geometry.room_size == 10 and geometry.fov == 60 and geometry.action_motions == ((1, 0), (-1, 0), (0, 1))
    _, info = env.reset(seed=0)
    world = env.unwrapped
    assert world.agent.dir % (np.pi / 2) == 0 and (np.asarray(world.agent.pos)[[0, 2]] % 1 == 0.5).all()
    motions = [tuple(env.step(action)[4]["self_motion"]) for action in (0, 1, 1, 0)]
    assert motions == [(1, 0), (-1, 0), (-1, 0), (1, 0)]
    walked = [tuple(env.step(2)[4]["self_motion"]) for _ in range(12)]  # across the 10-cell room, into the wall
    assert walked[0] == (0, 1) and walked[-1] == (0, 0) and walked.count((0, 1)) <= 9
    assert world.min_x < world.agent.pos[0] < world.max_x and world.min_z < world.agent.pos[2] < world.max_z
    with pytest.raises(ValueError, match="square views"):
        MiniWorldFirstPerson(gym.make("MiniWorld-OneRoom-v0", obs_width=16, obs_height=12))


def test_the_rssm_trains_on_a_declared_worlds_actions_alone_and_flowm_asks_for_the_motion(tmp_path):
    """A first-person file that records actions but not the motion carried out: the RSSM takes the actions (their
    declared motions, staying at each episode's first step); FloWM-3D, whose map moves by the motion carried out,
    refuses with the remedy."""
    import json

    from typer.testing import CliRunner

    from fernn.agents.cli import app

    geometry = FirstPersonGeometry([[1, 0], [-1, 0], [0, 1]], room_size=4)
    env = gym.wrappers.TimeLimit(FirstPersonWorld(Corridor(), geometry), 10)
    data = collect_episodes(env, 4, seed=0)
    episodes = [{key: value for key, value in data.episode(i).items() if key != "moves"} for i in range(4)]
    path = fernn.envs.TrajectoryDataset(episodes, {**data.meta, "moves": None}).save(tmp_path / "actions.npz")
    runner = CliRunner()
    tiny = ["--data", str(path), "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2", "--hidden", "2",
            "--context", "3", "--predict", "3", "--eval-horizons", "3", "--device", "cpu", "--out", str(tmp_path), "-q"]
    result = runner.invoke(app, ["train", *tiny, "--model", "fernn-3d", "--name", "flowm"])
    assert result.exit_code == 2 and "--model rssm" in result.output and "self_motion" in result.output, result.output
    result = runner.invoke(app, ["train", *tiny, "--model", "rssm", "--name", "rssm"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "rssm" / "results.json").read_text())["test"]["context"] == 3
    part = fernn.envs.TrajectoryDataset.load(path, window=4).moves_from_actions(geometry.action_motions)
    batch = part.sample_batch(8)
    assert batch["moves"].shape == (8, 4, 2)
    first = part.episode(0)
    derived = part._with_acted_moves(first, 0)["moves"]
    assert (derived[0] == 0).all() and (derived[1:] == np.array(geometry.action_motions)[first["actions"][1:]]).all()


def test_a_wrapper_declares_what_planning_reads_through_further_wrappers():
    from fernn.envs.wrappers import declared

    class WithMoves(gym.Wrapper):
        def action_moves(self):
            return np.array([[0, 0], [1, 0], [0, 1]])

    env = gym.wrappers.TimeLimit(WithMoves(Corridor()), 5)
    assert declared(env, "action_moves")().tolist() == [[0, 0], [1, 0], [0, 1]]
    assert declared(Corridor(), "action_moves") is None
    assert declared(gym.make("MNISTWorld-v0"), "action_moves")().shape == (9, 2)  # the env's own, through gym.make
