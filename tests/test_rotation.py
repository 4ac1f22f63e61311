"""Rotation flows on C_N regular fields (escnn)."""

import pytest
import torch
import torch.nn.functional as F

from fernn import FERNN, NextFramePredictor, RotationFlow, check_equivariance
from fernn.rotation import orientation_shift_matrix, rotate_batched, rotate_fields


def smooth_frames(batch, steps, size, pad):
    """Blurred noise: content that survives resampling, zero-padded so rotations stay in frame."""
    x = torch.rand(batch * steps, 1, size, size)
    kernel = torch.exp(-torch.arange(-4, 5.0) ** 2 / 8)
    kernel = (kernel[:, None] * kernel[None, :]) / kernel.sum() ** 2
    x = F.conv2d(F.pad(x, [4] * 4, mode="reflect"), kernel[None, None])
    return F.pad(x, [pad] * 4).view(batch, steps, 1, size + 2 * pad, size + 2 * pad)


def test_positive_angles_turn_like_rot90():
    x = torch.rand(3, 2, 9, 9)
    turned = rotate_batched(x, torch.tensor([90.0, 180.0, -90.0]))
    assert torch.equal(turned[0], torch.rot90(x[0], 1, (-2, -1)))
    assert torch.equal(turned[1], torch.rot90(x[1], 2, (-2, -1)))
    assert torch.equal(turned[2], torch.rot90(x[2], -1, (-2, -1)))


def test_orientation_shift_is_a_permutation_for_integer_steps_and_band_limited_otherwise():
    m = orientation_shift_matrix(torch.tensor([1.0, 0.5, 0.0]), 8)
    assert torch.equal(m[0], torch.roll(torch.eye(8, dtype=torch.float64), 1, 0))
    j = torch.arange(8, dtype=torch.float64)
    torch.testing.assert_close(m[1] @ torch.cos(2 * torch.pi * j / 8), torch.cos(2 * torch.pi * (j - 0.5) / 8))
    odd = orientation_shift_matrix(torch.tensor([0.5, 1.0]), 7)
    torch.testing.assert_close(odd[0] @ odd[0], odd[1])  # no Nyquist bin: half steps compose
    assert torch.equal(m[2], torch.eye(8, dtype=torch.float64))
    assert torch.equal(orientation_shift_matrix(torch.tensor([0.9]), 8, "truncate")[0], torch.eye(8, dtype=torch.float64))


def test_output_layout_is_escnn_regular_fields():
    flow = RotationFlow([-90, 0, 90], group_order=4)
    h = FERNN(1, 3, flow)(torch.rand(2, 4, 1, 9, 9))
    assert h.shape == (2, 4, 3, 3 * 4, 9, 9)


@pytest.mark.parametrize("nu", [90, -90, 180])
def test_multiples_of_90_degrees_are_exact(nu):
    flow = RotationFlow([-180, -90, 0, 90, 180], group_order=4)
    model = FERNN(1, 3, flow)
    report = check_equivariance(model, flow, nu, torch.rand(2, 5, 1, 11, 11))
    assert report.max_rel <= 1e-4, report
    c8 = RotationFlow([-90, 0, 90], group_order=8)
    assert check_equivariance(FERNN(1, 2, c8), c8, 90, torch.rand(1, 4, 1, 10, 10)).max_rel <= 1e-4


def test_grnn_baseline_is_not_flow_equivariant():
    flow = RotationFlow([-90, 0, 90], group_order=4)
    grnn = FERNN(1, 3, RotationFlow([0], group_order=4))
    x = torch.rand(2, 5, 1, 11, 11)
    moved = flow.act_on_frames(x, 90, torch.arange(5))
    h, h_moved = grnn(x), grnn(moved)
    expected = rotate_fields(h[:, :, 0].transpose(0, 1), 90.0 * torch.arange(5.0), 4).transpose(0, 1)
    assert (h_moved[:, :, 0] - expected).abs().max() > 1e-2 * h.abs().max()


def test_fractional_angles_fourier_shift_beats_truncation_on_smooth_frames():
    x = smooth_frames(2, 4, 16, 4)
    errors = {}
    for mode in ("fourier", "truncate"):
        flow = RotationFlow([-20, -10, 0, 10, 20], group_order=8, orientation_shift=mode)
        torch.manual_seed(0)
        errors[mode] = check_equivariance(FERNN(1, 4, flow), flow, 10, x).max_rel
    assert errors["fourier"] < errors["truncate"]


def test_predictor_and_chunking_work_with_rotation_flows():
    flow = RotationFlow([-90, 0, 90], group_order=4)
    model = NextFramePredictor(1, 2, flow, decoder_layers=1)
    assert model(torch.rand(2, 3, 1, 9, 9), 4).shape == (2, 4, 1, 9, 9)
    rnn = model.rnn
    x = torch.rand(1, 5, 1, 9, 9)
    whole = rnn(x)
    first, state = rnn(x[:, :2], return_state=True)
    torch.testing.assert_close(torch.cat([first, rnn(x[:, 2:], state=state)], 1), whole)
    torch.testing.assert_close(rnn(x, state=rnn.initial_state(1, 9, 9)), whole, rtol=0, atol=0)  # zero-state shortcut


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(angular_velocities=[float("nan")]), ValueError, "finite"),
    (dict(angular_velocities=["a"]), TypeError, "real number"),
    (dict(angular_velocities=[]), ValueError, "non-empty"),
    (dict(angular_velocities=[10, 10]), ValueError, "must not repeat"),
    (dict(angular_velocities=[10], group_order=0), ValueError, "group_order must be an integer >= 1"),
    (dict(angular_velocities=[10], orientation_shift="round"), ValueError, "orientation_shift must be one of"),
])
def test_bad_rotation_flow_arguments(kwargs, error, words):
    with pytest.raises(error, match=words):
        RotationFlow(**kwargs)


def test_learned_recurrence_is_translation_only_and_checker_rejects_a_mismatched_flow():
    with pytest.raises(ValueError, match="translation flows only"):
        FERNN(1, 2, RotationFlow([0, 90], group_order=4), recurrence="learned")
    with pytest.raises(ValueError, match="velocity channels"):
        check_equivariance(FERNN(1, 2, RotationFlow([0], group_order=4)), RotationFlow([-90, 0, 90], group_order=4),
                           90, torch.rand(1, 2, 1, 7, 7))


def test_missing_escnn_is_one_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_escnn(name, *args, **kwargs):
        if name.startswith("escnn"):
            raise ImportError("No module named 'escnn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_escnn)
    with pytest.raises(ImportError, match="pip install --no-deps escnn"):
        FERNN(1, 2, RotationFlow([0, 90], group_order=4))
