"""The first-person block world: its geometry (turns, walls, perspective, rotation symmetry), its dynamics
(blocks stay in the room and bounce), the scripted data policy, the find-red task, and bad input."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import fernn.envs  # noqa: F401  (registers the ids)
from fernn.envs import BLOCK_COLORS, DIRECTIONS
from fernn.envs.block_policies import BiasedWalk
from fernn.envs.block_scenes import BlockState, move_agent, move_blocks
from fernn.envs.block_world import BlockWorldBatch, find_red_reward
from fernn.envs.first_person import FirstPersonRenderer


def scene(agent, heading, blocks, colors=None, velocities=None) -> BlockState:
    """One hand-made scene: the agent at cell ``agent`` facing ``heading``, blocks at ``blocks``."""
    count = len(blocks)
    return BlockState(torch.tensor([agent]), torch.tensor([heading]), torch.tensor([blocks]).reshape(1, count, 2),
                      torch.tensor([velocities or [[0, 0]] * count]).reshape(1, count, 2),
                      torch.tensor([colors or list(range(count))]), torch.ones(1, count, dtype=torch.bool))


def static_env(seed=0, **kwargs):
    env = gym.make("DynamicBlockWorldStatic-v0", **kwargs)
    obs, info = env.reset(seed=seed)
    return env, obs, info


def test_the_public_palette_and_headings():
    assert BLOCK_COLORS == ("red", "green", "blue", "purple", "yellow", "grey")
    assert DIRECTIONS == ((1, 0), (0, 1), (-1, 0), (0, -1))
    env = gym.make("DynamicBlockWorld-v0")
    assert env.observation_space.shape == (64, 64, 3) and env.observation_space.dtype == np.uint8
    assert env.action_space.n == 4 and env.spec.max_episode_steps == 500
    assert gym.make("DynamicBlockWorld-v0", obs_size=128).observation_space.shape == (128, 128, 3)
    assert gym.spec("DynamicBlockWorldFindRed-v0").max_episode_steps == 100


def test_four_left_turns_and_left_then_right_give_back_the_same_view():
    env, first, info = static_env()
    for _ in range(4):
        obs, *_ = env.step(0)
    assert np.array_equal(obs, first)
    turned, *_ = env.step(0)
    assert not np.array_equal(turned, first)
    back, _, _, _, info_back = env.step(1)
    assert np.array_equal(back, first) and info_back["agent_dir"] == info["agent_dir"]


def test_walking_into_a_wall_changes_neither_the_pose_nor_the_view():
    env, obs, info = static_env()
    for _ in range(20):  # walk until the wall stops the agent
        obs, _, _, _, info = env.step(2)
    wall, _, _, _, after = env.step(2)
    assert np.array_equal(wall, obs) and np.array_equal(after["agent_pos"], info["agent_pos"])
    assert after["agent_dir"] == info["agent_dir"] and tuple(after["self_motion"]) == (0, 0)
    walked = gym.make("DynamicBlockWorldStatic-v0")
    walked.reset(seed=0)
    assert tuple(walked.step(0)[4]["self_motion"]) == (1, 0) and tuple(walked.step(1)[4]["self_motion"]) == (-1, 0)


def red(view: torch.Tensor) -> torch.Tensor:
    """``(H, W)``: which pixels of the first view are red (red channel well above the others)."""
    pixels = view[0].int()
    return (pixels[..., 0] > pixels[..., 1] + 60) & (pixels[..., 0] > pixels[..., 2] + 60)


def red_rows_in_centre(view: torch.Tensor) -> int:
    """Rows of the two centre columns that are red."""
    return int(red(view)[:, 31:33].all(1).sum())


def test_a_block_straight_ahead_shows_its_colour_in_the_centre_and_shrinks_with_distance():
    renderer = FirstPersonRenderer(16, 64, 60.0, "cpu")
    heights = [red_rows_in_centre(renderer.render(scene([2, 8], 0, [[2 + d, 8]], colors=[0]))) for d in (1, 3, 6, 10)]
    assert heights[0] > 0 and all(a > b > 0 for a, b in zip(heights, heights[1:])), heights
    # to the left of the agent (north when facing east) it is out of view; behind it too
    assert red_rows_in_centre(renderer.render(scene([2, 8], 0, [[2, 12]], colors=[0]))) == 0
    assert not red(renderer.render(scene([8, 8], 0, [[5, 8]], colors=[0]))).any()


def test_a_scene_rotated_by_a_quarter_turn_with_the_agent_gives_the_same_view():
    renderer = FirstPersonRenderer(16, 64, 60.0, "cpu")
    generator = np.random.default_rng(0)
    rotate = lambda cell: [15 - cell[1], cell[0]]  # noqa: E731  a left quarter turn about the room's centre
    for _ in range(10):
        blocks = generator.integers(0, 16, (8, 2)).tolist()
        agent, heading = generator.integers(0, 16, 2).tolist(), int(generator.integers(4))
        colors = generator.integers(0, 6, 8).tolist()
        view = renderer.render(scene(agent, heading, blocks, colors))
        turned = renderer.render(scene(rotate(agent), (heading + 1) % 4, [rotate(b) for b in blocks], colors))
        assert torch.equal(view, turned)
        assert not torch.equal(view, renderer.render(scene(agent, (heading + 1) % 4, blocks, colors)))


def test_blocks_stay_in_the_room_and_bounce_off_walls():
    vector = gym.make_vec("DynamicBlockWorld-v0", num_envs=16, vectorization_mode="vector_entry_point")
    vector.reset(seed=0)
    vector.action_space.seed(0)
    for _ in range(625):  # 10,000 env steps
        _, _, _, _, info = vector.step(vector.action_space.sample())
        placed = info["block_color"] >= 0
        inside = ((info["block_pos"] >= 0) & (info["block_pos"] < 16)).all(-1)
        assert inside[placed].all() and ((info["agent_pos"] >= 0) & (info["agent_pos"] < 16)).all()
        speeds = np.abs(info["block_vel"]).sum(-1)
        assert (speeds[placed] == 1).all()
    state = scene([0, 0], 0, [[15, 4], [3, 0], [7, 7]], velocities=[[1, 0], [0, -1], [0, 1]])
    move_blocks(state, 16, torch.ones(1, dtype=torch.bool))
    assert state.block_pos[0].tolist() == [[14, 4], [3, 1], [7, 8]]
    assert state.block_vel[0].tolist() == [[-1, 0], [0, 1], [0, 1]]


def test_episodes_hold_the_palette_rule_and_blocks_start_off_the_agent():
    env = gym.make("DynamicBlockWorld-v0")
    for seed in range(30):
        _, info = env.reset(seed=seed)
        count = int(info["num_blocks"])
        colors, positions = info["block_color"][:count], info["block_pos"][:count]
        assert 6 <= count <= 10 and set(range(5)) <= set(colors.tolist())
        assert info["block_color"].shape == (10,) and (info["block_color"][count:] == -1).all()  # padded slots
        assert not (positions == info["agent_pos"]).all(-1).any()
        assert len({tuple(p) for p in positions.tolist()}) == len(colors)
    red = gym.make("DynamicBlockWorldFindRed-v0")
    assert all((red.reset(seed=s)[1]["block_color"] == 0).sum() == 1 for s in range(20))


def test_the_agent_turns_left_counter_clockwise_and_walks_along_its_heading():
    state = scene([5, 5], 0, [[0, 0]])
    everywhere = torch.ones(1, dtype=torch.bool)
    for heading in (1, 2, 3, 0):
        move_agent(state, torch.tensor([0]), 16, everywhere)
        assert int(state.agent_dir) == heading
    move_agent(state, torch.tensor([1]), 16, everywhere)  # right: now facing south
    motion = move_agent(state, torch.tensor([2]), 16, everywhere)
    assert state.agent_pos[0].tolist() == [5, 4] and int(motion) == 2


def test_the_biased_walk_moves_forward_mostly_follows_walls_and_looks_at_the_centre():
    vector = gym.make_vec("DynamicBlockWorld-v0", num_envs=8, vectorization_mode="vector_entry_point")
    policy = vector.unwrapped.scripted_policy("biased-walk", seed=0)
    assert isinstance(policy, BiasedWalk)
    _, info = vector.reset(seed=0)
    info = vector.unwrapped.batch.info()
    counts, near_wall, starts = np.zeros(4), 0, np.ones(8, bool)
    for _ in range(400):
        actions = policy(info, starts)
        counts += np.bincount(actions, minlength=4)
        _, _, _, _, info = vector.step(actions)
        starts[:] = False
        near_wall += int((np.minimum(info["agent_pos"], 15 - info["agent_pos"]).min(-1) == 0).sum())
    assert counts[2] / counts.sum() > 0.5 and counts[3] > 0 and counts[:2].sum() > 0
    assert near_wall / (400 * 8) > 0.4  # a wall-biased walk
    again = vector.unwrapped.scripted_policy("biased-walk", seed=0)
    first = vector.unwrapped.batch.info()
    assert np.array_equal(again(first, np.ones(8, bool)), BiasedWalk(16, 8, seed=0)(first, np.ones(8, bool)))
    with pytest.raises(ValueError, match="biased-walk"):
        vector.unwrapped.scripted_policy("spin")


def test_collect_episodes_with_the_biased_walk_records_the_self_motion():
    from fernn.envs import collect_episodes

    data = collect_episodes("dynamic-block-world", 2, max_steps=30, policy="biased-walk", seed=0)
    episode = data.episode(0)
    assert data.has_moves and episode["obs"].shape == (31, 64, 64, 3) and episode["moves"].shape == (31, 2)
    assert data.meta["moves"] == "self_motion" and data.meta["policy"] == "biased-walk"
    assert set(map(tuple, episode["moves"].tolist())) <= {(1, 0), (-1, 0), (0, 1), (0, 0)}


def test_find_red_reward_is_best_two_cells_from_the_red_block_and_the_oracle_beats_random():
    distances = torch.tensor([0.0, 1.0, 2.0, 3.0, 6.0])
    reward = find_red_reward(distances)
    assert int(reward.argmax()) == 2 and float(reward[2]) == 1.0 and (reward[:2] < 1).all()
    returns = {}
    for name in ("oracle", "random"):
        env = gym.make("DynamicBlockWorldFindRed-v0")
        env.action_space.seed(0)
        total = 0.0
        for seed in range(3):
            env.reset(seed=seed)
            for _ in range(40):
                action = env.unwrapped.oracle_action() if name == "oracle" else env.action_space.sample()
                total += env.step(action)[1]
        returns[name] = total
    assert returns["oracle"] > 2 * returns["random"], returns


def test_rgb_array_shows_the_view_beside_the_top_down_map_and_keys_are_mapped():
    env = gym.make("DynamicBlockWorld-v0", render_mode="rgb_array")
    env.reset(seed=0)
    picture = env.render()
    assert picture.dtype == np.uint8 and picture.shape[1] > 2 * picture.shape[0] - 20
    assert env.unwrapped.action_moves().tolist() == [[1, 0], [-1, 0], [0, 1], [0, 0]]
    keys = env.unwrapped.get_keys_to_action()
    assert sorted(keys.values()) == [0, 1, 2, 3] and keys[()] == 3


@pytest.mark.parametrize("kwargs, match", [
    ({"room_size": 3}, "room_size"),
    ({"room_size": 4, "num_blocks": 16}, "num_blocks"),
    ({"num_blocks": (8, 6)}, "num_blocks"),
    ({"num_blocks": 0}, "num_blocks"),
    ({"num_blocks": (1, 2, 3)}, "num_blocks"),
    ({"obs_size": 4}, "obs_size"),
    ({"obs_size": 100_000}, "obs_size"),
    ({"fov": 180}, "fov"),
    ({"fov": 0}, "fov"),
    ({"device": "gpu"}, "device"),
    ({"task": "find-blue"}, "task"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        gym.make("DynamicBlockWorld-v0", **kwargs)


def test_frames_that_would_not_fit_in_memory_are_refused():
    from fernn.budget import MemoryBudgetError

    with pytest.raises(MemoryBudgetError, match="obs_size or num_envs"):
        gym.make_vec("DynamicBlockWorld-v0", num_envs=100_000, obs_size=1024, vectorization_mode="vector_entry_point")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            BlockWorldBatch(1, device="cuda")


def test_a_numpy_field_of_view_is_a_number_like_any_other():
    import gymnasium as gym
    import numpy as np

    import fernn.envs  # noqa: F401

    seen = [gym.make("DynamicBlockWorld-v0", fov=fov).reset(seed=0)[0] for fov in (60, np.float32(60), np.int64(60))]
    assert all(np.array_equal(seen[0], other) for other in seen[1:])
