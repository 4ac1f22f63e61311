"""Predictor, classifiers and their baselines."""

import pytest
import torch

from fernn import CNN3DClassifier, NextFramePredictor, SequenceClassifier, TranslationFlow, check_equivariance
from fernn.agents.bench.reference import RollLoopPredictor


def test_predictor_shapes_and_any_rollout_length():
    model = NextFramePredictor(1, 6, TranslationFlow(1))
    context = torch.rand(2, 5, 1, 12, 12)
    assert model(context, 3).shape == (2, 3, 1, 12, 12)
    assert model(context, 17).shape == (2, 17, 1, 12, 12)


@pytest.mark.parametrize("size, vmax", [(5, 2), (3, 1)])
def test_pooled_prediction_is_exact_when_the_grid_covers_the_torus(size, vmax):
    """On a size x size torus with |v| <= (size - 1) / 2 every v - nu has a partner, so the max over
    velocities, and hence the predicted frame, moves exactly with the input."""
    flow = TranslationFlow(vmax)
    model = NextFramePredictor(1, 6, flow).eval()
    context = torch.rand(2, 5, 1, size, size)
    for nu in [(1, 0), (1, -1)]:
        report = check_equivariance(lambda c: model(c, 4), flow, nu, context, time_offset=5)
        assert report.max_rel <= 1e-5, (nu, report)
    grnn = NextFramePredictor(1, 6, TranslationFlow(0)).eval()
    assert check_equivariance(lambda c: grnn(c, 4), flow, (1, 0), context, time_offset=5).max_rel > 1e-2


def test_predictor_error_on_a_large_frame_is_the_grid_edge_effect():
    """On 28x28 the pooled output is not exact for an untrained model (edge channels win the max);
    the hidden states of the same model still are."""
    flow = TranslationFlow(2)
    model = NextFramePredictor(1, 8, flow).eval()
    context = torch.rand(2, 5, 1, 28, 28)
    assert check_equivariance(model.rnn, flow, (1, 0), context).max_rel <= 1e-5
    pooled = check_equivariance(lambda c: model(c, 3), flow, (1, 0), context, time_offset=5)
    assert pooled.max_rel > 1e-5


def test_roll_loop_reference_computes_the_same_function():
    model = NextFramePredictor(1, 6, TranslationFlow(2))
    context = torch.rand(2, 4, 1, 9, 9)
    torch.testing.assert_close(RollLoopPredictor(model)(context, 5), model(context, 5), rtol=1e-5, atol=1e-5)


def test_teacher_forcing_uses_targets_and_validates_them():
    model = NextFramePredictor(1, 4, TranslationFlow(1))
    context, targets = torch.rand(2, 3, 1, 8, 8), torch.rand(2, 4, 1, 8, 8)
    forced = model(context, 4, targets=targets, teacher_forcing=1.0)
    free = model(context, 4)
    torch.testing.assert_close(forced[:, 0], free[:, 0])
    assert not torch.allclose(forced[:, 1:], free[:, 1:])
    with pytest.raises(ValueError, match="needs targets"):
        model(context, 4, teacher_forcing=0.5)
    with pytest.raises(ValueError, match=r"targets must have shape \(2, 4, 1, 8, 8\)"):
        model(context, 4, targets=targets[:, :2], teacher_forcing=0.5)
    with pytest.raises(ValueError, match="teacher_forcing must be a probability"):
        model(context, 4, targets=targets, teacher_forcing=1.5)
    with pytest.raises(ValueError, match="pred_len must be an integer >= 1"):
        model(context, 0)


def test_predictor_gradients_reach_every_parameter():
    model = NextFramePredictor(1, 4, TranslationFlow(1), recurrence="learned")
    model(torch.rand(2, 3, 1, 8, 8), 3).square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_classifier_logits_are_invariant_to_flows_in_the_grid_interior():
    flow = TranslationFlow(1)
    clips = torch.rand(3, 6, 1, 16, 16)
    model = SequenceClassifier(1, 8, flow).eval()
    assert model(clips).shape == (3, 6)
    report = check_equivariance(model, flow, (0, 0), clips)
    assert report.max_abs == 0.0
    plus = SequenceClassifier(1, 8, flow, recurrence="learned").eval()
    assert plus(clips).shape == (3, 6)


def test_cnn3d_classifier_and_its_errors():
    model = CNN3DClassifier(1, 6)
    assert model(torch.rand(2, 16, 1, 32, 32)).shape == (2, 6)
    with pytest.raises(ValueError, match="has 3 channels"):
        model(torch.rand(2, 16, 3, 32, 32))
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        CNN3DClassifier(1, 1)


def test_model_argument_errors():
    with pytest.raises(ValueError, match="pool must be one of"):
        NextFramePredictor(1, 4, TranslationFlow(1), pool="median")
    with pytest.raises(ValueError, match="decoder_layers must be an integer >= 0"):
        NextFramePredictor(1, 4, TranslationFlow(1), decoder_layers=-1)
    with pytest.raises(ValueError, match="clips has 2 channels"):
        SequenceClassifier(1, 4, TranslationFlow(0))(torch.rand(1, 3, 2, 8, 8))


def test_checker_rejects_bad_outputs_and_inputs():
    flow = TranslationFlow(1)
    with pytest.raises(ValueError, match="module output must be"):
        check_equivariance(lambda x: x[:, 0, 0], flow, (1, 0), torch.rand(1, 2, 1, 4, 4))
    with pytest.raises(ValueError, match=r"\(B, T, C, H, W\)"):
        check_equivariance(lambda x: x, flow, (1, 0), torch.rand(1, 4, 4))
    with pytest.raises(ValueError, match="pair of integers"):
        check_equivariance(lambda x: x, flow, 1, torch.rand(1, 2, 1, 4, 4))


@pytest.mark.parametrize("pool", ["max", "mean"])
def test_window_pool_equals_slicing_then_pooling_with_the_same_gradient(pool):
    from fernn.models import pool_velocities, pool_velocities_window

    gen = torch.Generator().manual_seed(0)
    maps = torch.randint(0, 3, (2, 4, 7, 8, 3), generator=gen).double()  # small integers: many ties for max
    maps.requires_grad_(True)
    grad = torch.randn(2, 4, 4, 3, generator=gen, dtype=torch.float64)
    expected = pool_velocities(maps[:, :, 2:6, 1:5], pool)
    (expected_grad,) = torch.autograd.grad(expected, maps, grad)
    pooled = pool_velocities_window(maps, 2, 1, 4, pool)
    (window_grad,) = torch.autograd.grad(pooled, maps, grad)
    assert torch.equal(pooled, expected) and torch.equal(window_grad, expected_grad)
