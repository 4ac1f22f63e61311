"""The recurrent-core contract: every flow's core implements it, FERNN.step is the one time step, and the
models take every flow they can (the combinations below are the ones that exist)."""

import pytest
import torch

from fernn import (FERNN, GRNNPlus, NextFramePredictor, RotationFlow, SequenceClassifier, TranslationFlow,
                   WorldModel)
from fernn.core import Feedback, RecurrentCore


def flows():
    return {"translation": TranslationFlow(1), "rotation": RotationFlow([-90, 0, 90], group_order=4)}


@pytest.mark.parametrize("name", ["translation", "rotation"])
def test_every_core_implements_the_contract(name):
    rnn = FERNN(1, 2, flows()[name])
    assert isinstance(rnn.core, RecurrentCore)
    assert rnn.core.supports_offsets == (name == "translation")


@pytest.mark.parametrize("name", ["translation", "rotation"])
def test_stepping_equals_forward(name):
    rnn = FERNN(1, 3, flows()[name])
    x = torch.rand(2, 5, 1, 9, 9)
    whole = rnn(x)
    state = None
    for t in range(x.shape[1]):
        state = rnn.step(x[:, t], state)
        torch.testing.assert_close(state, whole[:, t], rtol=1e-5, atol=1e-6)


def test_step_resets_on_episode_start_and_takes_offsets():
    rnn = FERNN(1, 2, TranslationFlow(1))
    x = torch.rand(3, 2, 1, 8, 8)
    state = rnn.step(x[:, 0])
    restarted = rnn.step(x[:, 1], state, episode_start=torch.tensor([True, False, True]))
    fresh = rnn.step(x[:, 1])
    continued = rnn.step(x[:, 1], state)
    torch.testing.assert_close(restarted[[0, 2]], fresh[[0, 2]])
    torch.testing.assert_close(restarted[1], continued[1])
    # an offset (sx, sy) on top of every velocity channel's own shift = the state rolled first
    offsets = torch.tensor([[1, 0], [0, -2], [3, 1]])
    moved = rnn.step(x[:, 1], state, offsets=offsets)
    rolled = torch.stack([torch.roll(state[b], (int(offsets[b, 1]), int(offsets[b, 0])), (-2, -1)) for b in range(3)])
    torch.testing.assert_close(moved, rnn.step(x[:, 1], rolled))


def test_rotation_core_refuses_offsets_naming_the_flow():
    rnn = FERNN(1, 2, RotationFlow([0, 90], group_order=4))
    with pytest.raises(ValueError, match=r"RotationFlow.*self-motion needs a fernn.TranslationFlow"):
        rnn.step(torch.rand(1, 1, 8, 8), offsets=torch.zeros(1, 2, dtype=torch.long))


def test_step_rejects_bad_input():
    rnn = FERNN(1, 2, TranslationFlow(1))
    with pytest.raises(ValueError, match="x_t must have shape"):
        rnn.step(torch.rand(1, 1, 1, 8, 8))
    with pytest.raises(TypeError, match="float64 but the module's parameters are torch.float32"):
        rnn.step(torch.rand(1, 1, 8, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match="state must have shape"):
        rnn.step(torch.rand(1, 1, 8, 8), torch.zeros(1, 9, 2, 7, 7))
    with pytest.raises(ValueError, match="episode_start must be a \\(2,\\) bool tensor"):
        rnn.step(torch.rand(2, 1, 8, 8), episode_start=torch.tensor([True]))
    with pytest.raises(TypeError, match="offsets must be an integer"):
        rnn.step(torch.rand(1, 1, 8, 8), offsets=torch.zeros(1, 2))


def test_feedback_clips_detaches_and_forces():
    prediction = torch.tensor([[-1.0, 0.5, 2.0]], requires_grad=True)
    fed = Feedback()(prediction, 0)
    assert fed.tolist() == [[0.0, 0.5, 1.0]] and not fed.requires_grad
    targets = torch.full((1, 2, 3), 7.0)
    assert Feedback(targets, 1.0)(prediction, 1).tolist() == [[7.0, 7.0, 7.0]]
    with pytest.raises(ValueError, match="probability"):
        Feedback(targets, 1.5)


# The model x flow combinations that exist. Rotation flows live on zero-padded frames: no self-motion (it
# translates a torus), so the world model (a torus that actions translate) takes translation flows only,
# and G-RNN+ (learned shifts) is defined for translation grids only.
COMBINATIONS = {
    ("FERNN", "translation"): True, ("FERNN", "rotation"): True,
    ("GRNNPlus", "translation"): True, ("GRNNPlus", "rotation"): False,
    ("NextFramePredictor", "translation"): True, ("NextFramePredictor", "rotation"): True,
    ("SequenceClassifier", "translation"): True, ("SequenceClassifier", "rotation"): True,
    ("WorldModel", "translation"): True, ("WorldModel", "rotation"): False,
}


def _build_and_run(model: str, flow):
    x = torch.rand(2, 3, 1, 8, 8)
    if model == "FERNN":
        return FERNN(1, 2, flow)(x)
    if model == "GRNNPlus":
        return GRNNPlus(1, 2, flow)(x)
    if model == "NextFramePredictor":
        return NextFramePredictor(1, 2, flow, decoder_layers=1)(x, 2)
    if model == "SequenceClassifier":
        return SequenceClassifier(1, 2, flow, 3)(x)
    return WorldModel(1, 2, flow, world_size=10, window_size=8)(x, torch.zeros(2, 3, 2, dtype=torch.long))


@pytest.mark.parametrize("model,flow_name", sorted(COMBINATIONS))
def test_models_take_every_flow_they_can(model, flow_name):
    flow = flows()[flow_name]
    if COMBINATIONS[(model, flow_name)]:
        assert torch.isfinite(_build_and_run(model, flow)).all()
    else:
        with pytest.raises((TypeError, ValueError), match="translation|Translation"):
            _build_and_run(model, flow)
