"""The FERNN contract: shapes, flow equivariance, state continuation, baselines, bad input."""

import pytest
import torch
import torch.nn.functional as F

from fernn import FERNN, GRNNPlus, TranslationFlow, check_equivariance

NUS = [(1, 0), (0, -1), (1, 1), (-1, 1), (2, 0), (0, 2), (2, -2), (-2, -2)]


def test_output_shape_and_velocity_order():
    model = FERNN(3, 5, TranslationFlow(1))
    h = model(torch.rand(2, 4, 3, 8, 10))
    assert h.shape == (2, 4, 9, 5, 8, 10)


@pytest.mark.parametrize("nu", NUS)
def test_flow_equivariance_float32(nu):
    flow = TranslationFlow(2)
    model = FERNN(2, 6, flow)
    x = torch.rand(2, 6, 2, 11, 13)
    report = check_equivariance(model, flow, nu, x)
    assert report.compared_channels == int(flow.relabel(nu)[1].sum()) > 0
    assert report.max_rel <= 1e-5, report


@pytest.mark.parametrize("nu", [(1, 0), (1, 1), (2, -2)])
def test_flow_equivariance_float64_near_machine_precision(nu):
    flow = TranslationFlow(2)
    model = FERNN(1, 4, flow, activation="tanh").double()
    report = check_equivariance(model, flow, nu, torch.rand(1, 5, 1, 9, 9, dtype=torch.float64))
    assert report.max_rel <= 1e-12


def test_hidden_transform_law_by_hand():
    """h'_t[v] = roll(h_t[v - nu], nu * t), written out without the checker."""
    flow = TranslationFlow(1)
    model = FERNN(1, 3, flow)
    x = torch.rand(1, 4, 1, 8, 8)
    moved = torch.stack([torch.roll(x[:, t], shifts=(-t, t), dims=(-2, -1)) for t in range(4)], 1)
    h, h_moved = model(x), model(moved)
    vel = flow.velocities.tolist()
    for t in range(4):
        for v, (vx, vy) in enumerate(vel):
            if [vx - 1, vy + 1] in vel:
                src = vel.index([vx - 1, vy + 1])
                expected = torch.roll(h[:, t, src], shifts=(-t, t), dims=(-2, -1))
                torch.testing.assert_close(h_moved[:, t, v], expected, rtol=0, atol=1e-6)


def test_matches_a_per_velocity_roll_loop():
    flow = TranslationFlow(1)
    model = FERNN(1, 4, flow)
    x = torch.rand(2, 5, 1, 7, 7)
    core = model.core
    h = torch.zeros(2, 9, 4, 7, 7)
    outs = []
    for t in range(5):
        shifted = torch.stack([torch.roll(h[:, i], shifts=(vy, vx), dims=(-2, -1))
                               for i, (vx, vy) in enumerate(flow.velocities.tolist())], 1)
        rec = F.conv2d(F.pad(shifted.flatten(0, 1), [1] * 4, mode="circular"), core.conv_rec.weight)
        h = torch.relu(core.conv_in(x[:, t])[:, None] + rec.view(2, 9, 4, 7, 7))
        outs.append(h)
    torch.testing.assert_close(model(x), torch.stack(outs, 1), rtol=1e-5, atol=1e-6)


def test_chunked_state_continuation_equals_whole_sequence():
    model = FERNN(1, 4, TranslationFlow(1))
    x = torch.rand(2, 7, 1, 8, 8)
    whole, last = model(x, return_state=True)
    first, state = model(x[:, :3], return_state=True)
    second = model(x[:, 3:], state=state)
    torch.testing.assert_close(torch.cat([first, second], 1), whole, rtol=0, atol=0)
    torch.testing.assert_close(last, whole[:, -1], rtol=0, atol=0)


@pytest.mark.parametrize("make", [lambda: FERNN(1, 4, TranslationFlow(1)), lambda: GRNNPlus(1, 4, TranslationFlow(1)),
                                  lambda: FERNN(1, 4, TranslationFlow(1), activation="tanh")])
def test_zero_state_shortcut_is_bit_identical_to_an_explicit_zero_state(make):
    """From no state the first step skips the transport and conv_rec(0): the same outputs to the bit."""
    model = make()
    x = torch.randn(2, 4, 1, 8, 8)
    zeros = model.initial_state(2, 8, 8)
    torch.testing.assert_close(model(x), model(x, state=zeros), rtol=0, atol=0)
    x.requires_grad_(True)
    model(x).square().sum().backward()
    grad_skip = x.grad.clone()
    x.grad = None
    model(x, state=zeros).square().sum().backward()
    torch.testing.assert_close(grad_skip, x.grad, rtol=1e-5, atol=1e-6)  # float summation order only


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_fused_add_drive_activate_matches_the_unfused_recurrence(activation, memory_format):
    from fernn.fused import ACTIVATIONS, add_drive_activate

    gen = torch.Generator().manual_seed(0)
    conv_out = torch.randn(2 * 3, 4, 5, 6, generator=gen, dtype=torch.float64).contiguous(memory_format=memory_format)
    drive = torch.randn(2, 5, 6, 4, generator=gen, dtype=torch.float64)
    expected = ACTIVATIONS[activation](conv_out.permute(0, 2, 3, 1).unflatten(0, (2, 3)) + drive[:, None])
    fused = add_drive_activate(conv_out.clone(), drive, activation)
    assert fused.shape == (2, 3, 5, 6, 4) and torch.equal(fused, expected)
    assert fused.is_contiguous() == (memory_format == torch.channels_last)
    inputs = (conv_out.requires_grad_(True), drive.requires_grad_(True))
    assert torch.autograd.gradcheck(lambda c, d: add_drive_activate(c * 1.0, d, activation), inputs)


def test_grnn_plus_fails_the_equivariance_contract():
    flow = TranslationFlow(2)
    model = GRNNPlus(1, 6, flow)
    report = check_equivariance(model, flow, (1, 0), torch.rand(2, 6, 1, 11, 11))
    assert report.max_rel > 1e-2
    assert FERNN(1, 6, flow).num_velocities == model.num_velocities


def test_gradients_reach_every_parameter():
    for model in (FERNN(2, 4, TranslationFlow(1), bias=True), GRNNPlus(2, 4, TranslationFlow(1))):
        model(torch.rand(2, 4, 2, 6, 6)).square().mean().backward()
        for name, p in model.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_seeded_determinism():
    def run():
        torch.manual_seed(123)
        model = FERNN(1, 4, TranslationFlow(1))
        return model(torch.rand(2, 3, 1, 6, 6))
    assert torch.equal(run(), run())


def test_grnn_is_the_one_channel_case():
    h = FERNN(1, 4, TranslationFlow(0))(torch.rand(2, 3, 1, 6, 6))
    assert h.shape == (2, 3, 1, 4, 6, 6)


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(in_channels=0), ValueError, "in_channels must be an integer >= 1"),
    (dict(hidden_channels=2.0), TypeError, "hidden_channels must be an integer"),
    (dict(kernel_size=4), ValueError, "kernel_size must be odd"),
    (dict(activation="gelu"), ValueError, "activation must be one of"),
    (dict(recurrence="fake"), ValueError, "recurrence must be one of"),
    (dict(flow="translation"), TypeError, "flow must be a fernn Flow"),
])
def test_bad_constructor_arguments(kwargs, error, words):
    args = dict(in_channels=1, hidden_channels=4, flow=TranslationFlow(1)) | kwargs
    with pytest.raises(error, match=words):
        FERNN(**args)


@pytest.mark.parametrize("x, error, words", [
    (torch.rand(2, 1, 8, 8), ValueError, r"shape \(B, T, C_in, H, W\)"),
    (torch.rand(2, 3, 2, 8, 8), ValueError, "has 2 channels"),
    (torch.zeros(2, 3, 1, 8, 8, dtype=torch.long), TypeError, "floating-point"),
    (torch.rand(2, 0, 1, 8, 8), ValueError, "must not be empty"),
    ([[1.0]], TypeError, "must be a torch.Tensor"),
])
def test_bad_inputs(x, error, words):
    with pytest.raises(error, match=words):
        FERNN(1, 4, TranslationFlow(1))(x)


def test_mismatched_state():
    model = FERNN(1, 4, TranslationFlow(1))
    with pytest.raises(ValueError, match=r"state must have shape \(B, V, C, H, W\)"):
        model(torch.rand(2, 3, 1, 8, 8), state=torch.zeros(2, 1, 4, 8, 8))
    with pytest.raises(TypeError, match="dtype"):
        model(torch.rand(2, 3, 1, 8, 8), state=torch.zeros(2, 9, 4, 8, 8, dtype=torch.float64))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu_and_stays_equivariant():
    flow = TranslationFlow(2)
    model = FERNN(1, 4, flow)
    x = torch.rand(2, 5, 1, 12, 12)
    expected = model(x)
    got = model.cuda()(x.cuda())
    torch.testing.assert_close(got.cpu(), expected, rtol=1e-4, atol=1e-5)
    assert check_equivariance(model, flow, (1, -1), x.cuda()).max_rel <= 1e-5
