"""The group of first-person self-motions on an egocentric map: exact group laws in float32, batched = per sample,
the gradient of the gather, rotated worlds, and the errors."""

import pytest
import torch

from fernn.egocentric import (CARDINAL_VELOCITIES, FORWARD, STAY, TURN_LEFT, TURN_RIGHT, EgocentricFlow, SelfMotion,
                              turn_velocities)

SIZE = 9


def maps(batch=3, flow=None, channels=4, seed=0):
    flow = flow or EgocentricFlow()
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, flow.num_velocities, SIZE, SIZE, channels, generator=generator)


def steps(motion, m, moves, flow=None):
    for action in moves:
        m = motion.move(m, torch.full((m.shape[0],), action))
    return m


@pytest.mark.parametrize("flow", [EgocentricFlow(), EgocentricFlow(0), EgocentricFlow(1)])
def test_four_left_turns_equal_four_stays_and_left_then_right_two(flow):
    motion, m = SelfMotion(flow, SIZE), maps(flow=flow)
    assert torch.equal(steps(motion, m, [TURN_LEFT] * 4), steps(motion, m, [STAY] * 4))
    assert torch.equal(steps(motion, m, [TURN_LEFT, TURN_RIGHT]), steps(motion, m, [STAY, STAY]))
    assert torch.equal(steps(motion, m, [TURN_RIGHT, TURN_LEFT]), steps(motion, m, [STAY, STAY]))
    if flow.num_velocities == 1:  # without velocity channels the motions alone: four left turns are the identity
        assert torch.equal(steps(motion, m, [TURN_LEFT] * 4), m) and torch.equal(steps(motion, m, [STAY]), m)


def test_turn_then_forward_is_a_step_along_the_rotated_axis():
    motion, m = SelfMotion(EgocentricFlow(0), SIZE), maps(flow=EgocentricFlow(0))
    # turning left then walking = first stepping to the left (content moves -y, i.e. up the rows), then turning
    left_step = torch.roll(m, -1, 2)
    assert torch.equal(steps(motion, m, [TURN_LEFT, FORWARD]), left_step.rot90(1, (2, 3)))
    assert torch.equal(steps(motion, m, [FORWARD]), torch.roll(m, -1, 3))  # content comes one cell closer (-x)
    assert torch.equal(steps(motion, m, [TURN_RIGHT, FORWARD]), torch.roll(m, 1, 2).rot90(-1, (2, 3)))


def test_velocity_channels_flow_and_are_relabelled_by_turns():
    flow = EgocentricFlow()
    motion, m = SelfMotion(flow, SIZE), maps(flow=flow)
    still = motion.move(m, torch.full((3,), STAY))
    for v, (vx, vy) in enumerate(CARDINAL_VELOCITIES):
        assert torch.equal(still[:, v], torch.roll(m[:, v], (vy, vx), (1, 2)))
    turned = motion.move(m, torch.full((3,), TURN_LEFT))
    ahead, right = CARDINAL_VELOCITIES.index((1, 0)), CARDINAL_VELOCITIES.index((0, -1))
    # what moved ahead now moves to the agent's right, rotated with the map
    assert torch.equal(turned[:, right], still[:, ahead].rot90(1, (1, 2)))
    assert turn_velocities(torch.tensor([[1, 0]]), 1).tolist() == [[0, -1]]


def test_a_world_rotated_by_a_quarter_turn_gives_the_rotated_map_and_permuted_channels():
    flow = EgocentricFlow(1)
    motion, m = SelfMotion(flow, SIZE), maps(flow=flow)

    def rotate(x):  # the world turned a quarter left about the agent: rotated maps, relabelled channels
        return x[:, flow.turn_permutation(1)].rot90(1, (2, 3))

    for action in (STAY, TURN_LEFT, TURN_RIGHT):
        actions = torch.full((3,), action)
        assert torch.equal(motion.move(rotate(m), actions), rotate(motion.move(m, actions)))


def test_every_sample_moves_its_own_way_in_one_batched_call():
    flow = EgocentricFlow()
    motion = SelfMotion(flow, SIZE)
    m = maps(batch=8, flow=flow)
    actions = torch.tensor([0, 1, 2, 3, 3, 2, 1, 0])
    batched = motion.move(m, actions)
    for b in range(8):
        assert torch.equal(batched[b], motion.move(m[b:b + 1], actions[b:b + 1])[0])
    padded = motion.move(m, actions, pad=1)
    assert padded.shape == (8, 5, SIZE + 2, SIZE + 2, 4)
    assert torch.equal(padded[:, :, 1:-1, 1:-1], batched) and torch.equal(padded[:, :, 0, 1:-1], batched[:, :, -1])


def test_the_gradient_is_the_inverse_gather():
    flow = EgocentricFlow()
    motion = SelfMotion(flow, 5)
    m = torch.randn(2, 5, 5, 5, 3, dtype=torch.float64, requires_grad=True)
    actions = torch.tensor([0, 2])
    assert torch.autograd.gradcheck(lambda x: motion.move(x, actions, pad=1), (m,))


def test_the_ablation_without_self_motion_moves_only_the_velocity_channels():
    flow = EgocentricFlow()
    still = SelfMotion(flow, SIZE, move_map=False)
    m = maps(flow=flow)
    for action in range(4):
        assert torch.equal(still.move(m, torch.full((3,), action)), still.move(m, torch.full((3,), STAY)))


def test_bad_velocity_sets_and_actions_are_named():
    with pytest.raises(ValueError, match="not closed under quarter turns"):
        EgocentricFlow(velocities=[(0, 0), (1, 0)])
    motion = SelfMotion(EgocentricFlow(), SIZE)
    with pytest.raises(ValueError, match="cannot represent"):
        motion.move(maps(), torch.tensor([0, 4, 1]))
    with pytest.raises(TypeError, match="integer"):
        motion.move(maps(), torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="one motion per map"):
        motion.move(maps(), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="odd"):
        SelfMotion(EgocentricFlow(), 8)
    with pytest.raises(ValueError, match="shape"):
        motion.move(torch.zeros(3, 5, 7, 7, 4), torch.tensor([0, 1, 2]))
