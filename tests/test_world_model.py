"""The self-motion world model (FloWM): batched shifts, the moving map, self-motion equivariance,
ablations and bad input."""

import pytest
import torch

from fernn import RotationFlow, TranslationFlow, WorldModel
from fernn.agents.bench.reference import PerSampleWorldModel
from fernn.shifts import roll_batched


def roll(x: torch.Tensor, shift) -> torch.Tensor:
    """Move ``x (..., H, W)`` by ``(sx, sy)``: the project's convention."""
    return torch.roll(x, shifts=(int(shift[1]), int(shift[0])), dims=(-2, -1))


def make(flow=None, world=12, window=8, hidden=3, **kwargs) -> WorldModel:
    return WorldModel(1, hidden, TranslationFlow(1) if flow is None else flow, world_size=world, window_size=window,
                      **kwargs)


def test_shapes_and_maps():
    model = make()
    obs, actions = torch.rand(2, 5, 1, 8, 8), torch.randint(-3, 4, (2, 5, 2))
    pred, maps = model(obs, actions, return_maps=True)
    assert pred.shape == (2, 5, 1, 8, 8)
    assert maps.shape == (2, 5, 9, 3, 12, 12)
    torch.testing.assert_close(model(obs, actions), pred, rtol=0, atol=0)


def test_batched_shift_equals_per_sample_roll():
    """One gather moves every (item, velocity) map by ``v - a[b]``: the same as rolling each by hand."""
    core = make().rnn.core
    h = torch.rand(3, 9, 12, 12, 4)  # internal layout (B, V, H, W, C)
    actions = torch.tensor([[2, -1], [0, 5], [-7, 3]])
    moved = core.advected(core.transport(h, offsets=-actions), 3)
    for b in range(3):
        for v, vel in enumerate(core.velocities.tolist()):
            expected = roll(h[b, v].permute(2, 0, 1), (vel[0] - actions[b, 0], vel[1] - actions[b, 1]))
            assert torch.equal(moved[b, v].permute(2, 0, 1), expected)
    torch.testing.assert_close(roll_batched(h[:, 0].permute(0, 3, 1, 2), -actions),
                               torch.stack([roll(h[b, 0].permute(2, 0, 1), -actions[b]) for b in range(3)]))


def test_with_zero_observations_the_map_moves_by_minus_the_summed_actions_plus_its_velocity():
    model = make(flow=TranslationFlow(2), world=11)
    with torch.no_grad():  # identity recurrence: the map only moves
        model.rnn.core.conv_rec.weight.zero_()
        model.rnn.core.conv_rec.weight[:, :, 1, 1] = torch.eye(3)
    state = torch.rand(2, 25, 3, 11, 11)
    actions = torch.randint(-4, 5, (2, 6, 2))
    _, maps = model(torch.zeros(2, 6, 1, 8, 8), actions, state, return_maps=True)
    summed = actions.cumsum(1)
    for t in range(6):
        for v, (vx, vy) in enumerate(model.flow.velocities.tolist()):
            for b in range(2):
                shift = (vx * (t + 1) - summed[b, t, 0], vy * (t + 1) - summed[b, t, 1])
                assert torch.equal(maps[b, t, v], roll(state[b, v], shift)), (t, v, b)


def test_self_motion_equivariance_on_a_fully_observed_torus():
    """An agent moving by a_t over a world it sees whole sees o'_t = S_{-p_t} o_t; its map and its
    predictions move by -p_t, exactly. Without self-motion the same test fails."""
    obs = torch.rand(2, 6, 1, 9, 9)
    actions = torch.randint(-3, 4, (2, 6, 2))
    positions = actions.cumsum(1)
    seen = torch.stack([roll_batched(obs[:, t], -positions[:, t]) for t in range(6)], 1)
    still = torch.zeros_like(actions)
    for self_motion, exact in ((True, True), (False, False)):
        model = make(flow=TranslationFlow(1), world=9, window=9, self_motion=self_motion)
        pred, maps = model(obs, still, return_maps=True)
        pred_moving, maps_moving = model(seen, actions, return_maps=True)
        expected_maps = torch.stack([roll_batched(maps[:, t], -positions[:, t]) for t in range(6)], 1)
        expected_pred = torch.stack([roll_batched(pred[:, t], -positions[:, t]) for t in range(6)], 1)
        error = (maps_moving - expected_maps).abs().max() / maps.abs().max()
        if exact:
            assert error <= 1e-6
            assert (pred_moving - expected_pred).abs().max() <= 1e-6 * pred.abs().max()
        else:
            assert error > 1e-2


@pytest.mark.parametrize("nu", [(1, 0), (-1, 1), (2, 2)])
def test_self_motion_is_relabelled_into_velocity_channels_under_partial_observation(nu):
    """Agent and world moving together by nu per step: the same observations, and M'_t[v] = M_t[v - nu]
    for every v with v - nu in the grid, with a window smaller than the world."""
    flow = TranslationFlow(2)
    model = make(flow=flow, world=13, window=7)
    obs = torch.rand(2, 5, 1, 7, 7)
    actions = torch.randint(-2, 3, (2, 5, 2))
    _, maps = model(obs, actions, return_maps=True)
    _, maps_comoving = model(obs, actions + torch.tensor(nu), return_maps=True)
    source, valid = flow.relabel(nu)
    assert valid.sum() > 0
    torch.testing.assert_close(maps_comoving[:, :, valid], maps[:, :, source[valid]], rtol=0, atol=1e-6)


@pytest.mark.parametrize("kwargs", [{}, {"self_motion": False},
                                    {"flow": TranslationFlow(0), "self_motion": False, "action_concat": True}])
def test_empty_map_shortcut_is_bit_identical_to_an_explicit_empty_state(kwargs):
    """From no state the first step skips the transport and conv_rec(0): the same outputs to the bit."""
    model = make(**kwargs)
    obs, actions = torch.rand(2, 4, 1, 8, 8), torch.randint(-3, 4, (2, 4, 2))
    empty = model.initial_state(2)
    pred, maps = model(obs, actions, return_maps=True)
    explicit_pred, explicit_maps = model(obs, actions, empty, return_maps=True)
    assert torch.equal(pred, explicit_pred) and torch.equal(maps, explicit_maps)
    grads = []
    for state in (None, empty):
        model.zero_grad()
        model(obs, actions, state).square().sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-6)  # float summation order only


def test_matches_the_per_sample_reference_loop():
    model = make(flow=TranslationFlow(1), world=10, window=6)
    obs, actions = torch.rand(3, 4, 1, 6, 6), torch.randint(-5, 6, (3, 4, 2))
    torch.testing.assert_close(PerSampleWorldModel(model)(obs, actions), model(obs, actions), rtol=1e-5, atol=1e-6)


def test_rollout_continues_the_teacher_forced_pass():
    model = make()
    obs, actions = torch.rand(2, 4, 1, 8, 8), torch.randint(-3, 4, (2, 4, 2))
    future = torch.randint(-3, 4, (2, 3, 2))
    imagined = model.rollout(obs, actions, future)
    assert imagined.shape == (2, 3, 1, 8, 8)
    forced = model(torch.cat([obs, imagined[:, :2].clamp(0, 1)], 1), torch.cat([actions, future[:, :2]], 1))
    torch.testing.assert_close(imagined[:, 0], forced[:, 4], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(imagined[:, 1], forced[:, 5], rtol=1e-5, atol=1e-6)


def test_ablations_share_the_api():
    obs = torch.rand(2, 4, 1, 8, 8)
    actions, other = torch.randint(-3, 4, (2, 4, 2)), torch.randint(-3, 4, (2, 4, 2))
    no_velocities = make(flow=TranslationFlow(0))
    assert no_velocities(obs, actions, return_maps=True)[1].shape[2] == 1
    no_shift = make(self_motion=False)
    torch.testing.assert_close(no_shift(obs, actions), no_shift(obs, other), rtol=0, atol=0)
    concat = make(flow=TranslationFlow(0), self_motion=False, action_concat=True)
    assert not torch.allclose(concat(obs, actions), concat(obs, other))
    assert make()(obs, actions).shape == concat(obs, actions).shape


def test_gradients_reach_every_parameter():
    model = make(flow=TranslationFlow(0), self_motion=False, action_concat=True)
    obs, actions = torch.rand(2, 4, 1, 8, 8), torch.randint(-3, 4, (2, 4, 2))
    model(obs, actions)[:, 1:].pow(2).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="window_size must be <= world_size"):
        make(world=8, window=9)
    with pytest.raises(TypeError, match="needs a TranslationFlow"):
        WorldModel(1, 2, RotationFlow([0]), world_size=8, window_size=4)
    with pytest.raises(ValueError, match="pass self_motion=False"):
        make(action_concat=True)
    with pytest.raises(TypeError, match="world_size must be an integer"):
        make(world=12.5)
    model = make()
    obs = torch.rand(2, 3, 1, 8, 8)
    with pytest.raises(TypeError, match="integer dtype"):
        model(obs, torch.zeros(2, 3, 2))
    with pytest.raises(ValueError, match=r"shape \(B, T, 2\)"):
        model(obs, torch.zeros(2, 3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="one \\(dx, dy\\) per observation"):
        model(obs, torch.zeros(2, 4, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="larger than the world"):
        model(obs, torch.full((2, 3, 2), 13))
    with pytest.raises(ValueError, match="8x8 \\(window_size\\)"):
        model(torch.rand(2, 3, 1, 9, 9), torch.zeros(2, 3, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="floating-point"):
        model(obs.long(), torch.zeros(2, 3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="state must be"):
        model(obs, torch.zeros(2, 3, 2, dtype=torch.long), torch.zeros(2, 9, 3, 8, 8))


def test_non_square_worlds_and_windows_keep_the_contracts():
    """World (9, 13) seen whole, and world (11, 15) seen through a (6, 9) window: self-motion equivariance, the
    relabelling of a co-moving agent into velocity channels, and the per-sample reference loop."""
    obs = torch.rand(2, 5, 1, 9, 13)
    actions = torch.randint(-3, 4, (2, 5, 2))
    positions = actions.cumsum(1)
    seen = torch.stack([roll_batched(obs[:, t], -positions[:, t]) for t in range(5)], 1)
    model = make(flow=TranslationFlow(1), world=(9, 13), window=(9, 13))
    _, maps = model(obs, torch.zeros_like(actions), return_maps=True)
    _, maps_moving = model(seen, actions, return_maps=True)
    expected = torch.stack([roll_batched(maps[:, t], -positions[:, t]) for t in range(5)], 1)
    assert (maps_moving - expected).abs().max() <= 1e-6 * maps.abs().max()
    flow = TranslationFlow(2)
    model = make(flow=flow, world=(11, 15), window=(6, 9))
    obs, actions = torch.rand(2, 4, 1, 6, 9), torch.randint(-2, 3, (2, 4, 2))
    pred, maps = model(obs, actions, return_maps=True)
    assert pred.shape == (2, 4, 1, 6, 9) and maps.shape == (2, 4, 25, 3, 11, 15)
    _, comoving = model(obs, actions + torch.tensor((1, -1)), return_maps=True)
    source, valid = flow.relabel((1, -1))
    torch.testing.assert_close(comoving[:, :, valid], maps[:, :, source[valid]], rtol=0, atol=1e-6)
    torch.testing.assert_close(PerSampleWorldModel(model)(obs, actions), pred, rtol=1e-5, atol=1e-6)
    assert model.rollout(obs, actions, torch.zeros(2, 3, 2, dtype=torch.long)).shape == (2, 3, 1, 6, 9)
    with pytest.raises(ValueError, match="window_size must be <= world_size along each axis"):
        make(world=(8, 20), window=(9, 4))


def test_imagining_from_a_state_continues_the_observed_sequence():
    """``imagine(maps[:, -1], future)`` is ``rollout(obs, actions, future)``: a planner can carry the map across
    real steps and imagine candidate futures from it, batched."""
    model = make()
    obs, actions = torch.rand(2, 4, 1, 8, 8), torch.randint(-3, 4, (2, 4, 2))
    future = torch.randint(-3, 4, (2, 3, 2))
    _, maps = model(obs, actions, return_maps=True)
    torch.testing.assert_close(model.imagine(maps[:, -1], future), model.rollout(obs, actions, future))
    candidates = model.imagine(maps[:, -1].repeat_interleave(5, 0), future.repeat_interleave(5, 0))
    assert candidates.shape == (10, 3, 1, 8, 8)
    with pytest.raises(ValueError, match="state must be"):
        model.imagine(maps[:, -1, :, :2], future)
