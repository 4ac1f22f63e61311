import pytest
import torch

from fernn import TranslationFlow


@pytest.mark.parametrize("vmax, count", [(0, 1), (1, 9), (2, 25)])
def test_grid_sizes(vmax, count):
    flow = TranslationFlow(vmax)
    assert flow.num_velocities == len(flow) == count
    assert flow.velocities.dtype == torch.long and flow.velocities.shape == (count, 2)
    assert flow.velocities.abs().max() == vmax


def test_grid_order_is_vx_major_and_explicit_lists_keep_their_order():
    assert TranslationFlow(1).velocities[:3].tolist() == [[-1, -1], [-1, 0], [-1, 1]]
    assert TranslationFlow([(1, 0), (0, 0)]).velocities.tolist() == [[1, 0], [0, 0]]
    assert TranslationFlow(velocities=[(0, 2)]).velocities.tolist() == [[0, 2]]


def test_act_on_frames_is_torch_roll_with_vy_on_height():
    flow = TranslationFlow(2)
    x = torch.rand(2, 4, 1, 7, 9)
    moved = flow.act_on_frames(x, (2, -1), torch.arange(4))
    for t in range(4):
        assert torch.equal(moved[:, t], torch.roll(x[:, t], shifts=(-1 * t, 2 * t), dims=(-2, -1)))


def test_relabel_maps_v_to_v_minus_nu():
    flow = TranslationFlow(1)
    source, valid = flow.relabel((1, 0))
    vel = flow.velocities
    for v in range(9):
        if valid[v]:
            assert (vel[source[v]] == vel[v] - torch.tensor([1, 0])).all()
        else:
            assert vel[v, 0] == -1
    assert int(valid.sum()) == 6


@pytest.mark.parametrize("bad, error, words", [
    (-1, ValueError, "vmax must be an integer >= 0"),
    (1.5, TypeError, "vmax must be an integer"),
    (True, TypeError, "vmax must be an integer"),
    ([], ValueError, "non-empty"),
    ([(1, 0), (1, 0)], ValueError, "must not repeat"),
    ([(1, 0, 2)], ValueError, "velocities[0] must be a pair"),
    ([(1.5, 0)], TypeError, "velocities[0][0]"),
])
def test_bad_flow_arguments_name_the_argument(bad, error, words):
    with pytest.raises(error, match=words.replace("[", r"\[").replace("]", r"\]")):
        TranslationFlow(bad)


def test_vmax_and_velocities_together_is_an_error():
    with pytest.raises(TypeError, match="either vmax"):
        TranslationFlow(1, velocities=[(0, 0)])
    with pytest.raises(TypeError, match="either vmax"):
        TranslationFlow()
