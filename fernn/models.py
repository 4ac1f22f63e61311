"""The papers' models on top of :class:`fernn.FERNN`: next-frame predictor, sequence classifier, 3D-CNN.

Baselines share the constructors: G-RNN is a model built with ``TranslationFlow(0)`` (one velocity
channel), G-RNN+ the same model with ``recurrence="learned"``.
"""

from __future__ import annotations

import torch
from torch import nn

from fernn._validation import check_channels, check_choice, check_float_tensor, check_int
from fernn.cell import FERNN
from fernn.core import Feedback
from fernn.flows import Flow, RotationFlow

POOLS = ("max", "mean")


def _circular_conv(in_channels: int, out_channels: int, kernel_size: int, padding_mode: str = "circular") -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, padding_mode=padding_mode,
                     bias=False)


def pool_velocities(h: torch.Tensor, pool: str = "max") -> torch.Tensor:
    """Pool ``(B, V, ...)`` over the velocity axis: ``"max"`` or ``"mean"`` -> ``(B, ...)``.

    ``amax``, not ``max(1).values``: the same values, and on the CPU ``max`` with indices over a
    non-innermost axis is ~10x slower forward, which costs more than ``amax``'s heavier backward saves.
    """
    return h.amax(1) if pool == "max" else h.mean(1)


class _WindowPool(torch.autograd.Function):
    """:func:`pool_velocities_window`'s forward and its backward, which writes the window's gradient into one
    zero-filled gradient of ``maps`` (slicing the window out under autograd zero-fills one per sliced dim)."""

    @staticmethod
    def forward(ctx, maps, top, left, size, pool):  # noqa: D102 - autograd API
        height, width = size
        window = maps[:, :, top:top + height, left:left + width]
        pooled = window.amax(1) if pool == "max" else window.mean(1)
        ctx.save_for_backward(maps, pooled)  # maps: the caller's tensor (a view), not a copy
        ctx.window, ctx.pool = (top, left, size), pool
        return pooled

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):  # noqa: D102 - autograd API
        maps, pooled = ctx.saved_tensors
        top, left, (height, width) = ctx.window
        window = maps[:, :, top:top + height, left:left + width]
        grad_maps = torch.zeros_like(maps, memory_format=torch.contiguous_format)
        target = grad_maps[:, :, top:top + height, left:left + width]
        if ctx.pool == "max":  # as amax: the gradient split evenly between tied maxima
            ties = window == pooled[:, None]
            torch.mul(grad[:, None] / ties.sum(1, keepdim=True), ties, out=target)
        else:
            target.copy_((grad / maps.shape[1])[:, None].expand_as(target))
        return grad_maps, None, None, None, None


def pool_velocities_window(maps: torch.Tensor, top: int, left: int, size: int | tuple[int, int],
                           pool: str = "max") -> torch.Tensor:
    """:func:`pool_velocities` of the ``size`` (``h`` or ``(h, w)``) window at ``(top, left)`` of ``maps (B, V, H, W, C)``:
    ``(B, h, w, C)``, the values of slicing then pooling. Keeps no copy of the window for backward,
    and its backward zero-fills one gradient of ``maps`` instead of one per sliced dim."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    return _WindowPool.apply(maps, top, left, size, pool)


def frame_decoder(width: int, out_channels: int, kernel_size: int, layers: int,
                  padding_mode: str = "circular") -> nn.Sequential:
    """``layers`` conv + ReLU blocks of ``width`` channels, then a conv to ``out_channels`` (no bias, as in
    the papers), in channels-last memory: ``(N, width, H, W) -> (N, out_channels, H, W)``. Circular
    padding for translation flows (they live on a torus), zeros for rotation flows (zero-padded frames)."""
    check_int("decoder_layers", layers, minimum=0)
    blocks: list[nn.Module] = []
    for _ in range(layers):
        blocks += [_circular_conv(width, width, kernel_size, padding_mode), nn.ReLU()]
    blocks.append(_circular_conv(width, out_channels, kernel_size, padding_mode))
    return nn.Sequential(*blocks).to(memory_format=torch.channels_last)


class NextFramePredictor(nn.Module):
    """Next-frame prediction as in the FERNN paper's Flowing-MNIST experiments.

    ``x_0 .. x_{T-1}`` (context) -> FERNN -> at each step the flowed state ``S_v h_t[v]`` is pooled
    over velocities and decoded into the prediction of ``x_{t+1}``, which is fed back to generate any
    number of future frames. The FERNN's input convolution is the encoder (as in the reference); the
    decoder is ``decoder_layers`` 3x3 conv + ReLU layers and an output conv (circular padding for
    translation flows, zeros for rotation flows, whose frames are zero-padded).

    Decoding the *flowed* state (the state one step ahead, before the next input arrives) makes the
    prediction of frame ``t+1`` move exactly like frame ``t+1`` (``S_{nu (t+1)}``), up to the finite
    grid's edge: with ``nu`` in the grid, channels ``v`` whose ``v - nu`` falls outside the grid have
    no partner, so the max over velocities is exact only where the maximising channel stays inside.

    Args:
        in_channels: frame channels.
        hidden_channels: hidden channels per velocity channel (the paper: 128).
        flow: the velocities; ``TranslationFlow(0)`` gives G-RNN.
        kernel_size: recurrent and decoder kernel size.
        decoder_layers: hidden conv layers of the decoder (the paper: 4).
        pool: ``"max"`` (the paper) or ``"mean"`` over velocity channels.
        recurrence: ``"exact"`` or ``"learned"`` (G-RNN+), see :class:`fernn.FERNN`.
        relaxed: filter banks of an approximately equivariant recurrence (0: exact sharing), see :class:`fernn.FERNN`.
    """

    def __init__(self, in_channels: int, hidden_channels: int, flow: Flow, *, kernel_size: int = 3,
                 decoder_layers: int = 4, pool: str = "max", recurrence: str = "exact", relaxed: int = 0) -> None:
        super().__init__()
        self.rnn = FERNN(in_channels, hidden_channels, flow, kernel_size, recurrence=recurrence, relaxed=relaxed)
        self.pool = check_choice("pool", pool, POOLS)
        padding = "zeros" if isinstance(flow, RotationFlow) else "circular"
        self.decoder = frame_decoder(self.rnn.state_channels, in_channels, kernel_size, decoder_layers, padding)

    @property
    def flow(self) -> Flow:
        return self.rnn.flow

    def forward(self, context: torch.Tensor, pred_len: int, *, targets: torch.Tensor | None = None,
                teacher_forcing: float = 0.0, detach_feedback: bool = True,
                feedback_range: tuple[float, float] | None = (0.0, 1.0)) -> torch.Tensor:
        """Predict ``pred_len`` frames after the context.

        Args:
            context: ``(B, T, C, H, W)`` frames ``x_0 .. x_{T-1}``.
            pred_len: number of frames to predict, ``x_T .. x_{T + pred_len - 1}``.
            targets: ``(B, pred_len, C, H, W)`` true future frames, needed when ``teacher_forcing > 0``.
            teacher_forcing: probability, drawn per step from torch's RNG, of feeding the true frame
                instead of the model's own prediction.
            detach_feedback: stop gradients through fed-back predictions (the reference does).
            feedback_range: clip fed-back predictions to the frames' range (``None``: don't). Pointwise, so it
                commutes with every flow; without it, out-of-range predictions fed back can blow a
                free-running rollout up far beyond the trained horizon (the returned predictions are not
                clipped).

        Returns:
            ``(B, pred_len, C, H, W)`` predictions.
        """
        context = self.rnn.check_input(context)
        pred_len = check_int("pred_len", pred_len, minimum=1)
        feedback = Feedback(targets, teacher_forcing, detach=detach_feedback, clip=feedback_range)
        feedback.check_targets((context.shape[0], pred_len, *context.shape[2:]))
        core, batch, weights = self.rnn.core, context.shape[0], self.rnn.core.weights()
        states, _ = self.rnn.scan(self.rnn.drives(context, weights), None, weights, keep_states=False)

        def decode(moved: torch.Tensor, t: int) -> torch.Tensor:
            pooled = pool_velocities(core.advected(moved, batch), self.pool)
            return self.decoder(pooled.permute(0, 3, 1, 2))

        def encode(prediction: torch.Tensor, k: int) -> torch.Tensor:
            return core.drive(feedback(prediction, k), weights)

        _, predictions = self.rnn.scan((), states[-1], weights, steps=pred_len, decode=decode, feedback=encode,
                                       keep_states=False)
        return torch.stack(predictions, 1)


class SequenceClassifier(nn.Module):
    """Sequence classification as in the FERNN paper's KTH experiments.

    Encoder (circular conv 5x5 -> 32, 3x3 -> 64, 3x3 -> hidden, each with BatchNorm and ReLU, applied
    to all frames at once) -> FERNN (tanh) -> max over velocities at the last step -> spatial average
    -> linear head. With circular padding everywhere the logits are invariant to flows in the grid
    (up to the grid's edge, see :class:`NextFramePredictor`).

    Args:
        in_channels: frame channels.
        hidden_channels: FERNN hidden channels.
        flow: the velocities; ``TranslationFlow(0)`` gives G-RNN.
        num_classes: output classes (KTH: 6).
        recurrence: ``"exact"`` or ``"learned"`` (G-RNN+).
        activation: FERNN activation (the reference: ``"tanh"``).
        relaxed: filter banks of an approximately equivariant recurrence (0: exact sharing), see :class:`fernn.FERNN`.

    Shapes: ``(B, T, C, H, W)`` -> logits ``(B, num_classes)``.
    """

    def __init__(self, in_channels: int, hidden_channels: int, flow: Flow, num_classes: int = 6, *,
                 recurrence: str = "exact", activation: str = "tanh", relaxed: int = 0) -> None:
        super().__init__()
        check_int("in_channels", in_channels, minimum=1)
        check_int("hidden_channels", hidden_channels, minimum=1)
        self.num_classes = check_int("num_classes", num_classes, minimum=2)
        self.in_channels = in_channels
        stages = [(in_channels, 32, 5), (32, 64, 3), (64, hidden_channels, 3)]
        layers: list[nn.Module] = []
        for cin, cout, k in stages:
            layers += [_circular_conv(cin, cout, k), nn.BatchNorm2d(cout), nn.ReLU()]
        self.encoder = nn.Sequential(*layers)
        self.rnn = FERNN(hidden_channels, hidden_channels, flow, 3, input_kernel_size=1, activation=activation,
                         recurrence=recurrence, relaxed=relaxed)
        self.head = nn.Linear(self.rnn.state_channels, num_classes)

    @property
    def flow(self) -> Flow:
        return self.rnn.flow

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """``clips (B, T, C, H, W)`` -> logits ``(B, num_classes)``."""
        check_float_tensor("clips", clips, ndim=5, layout="(B, T, C, H, W)")
        check_channels("clips", clips, 2, self.in_channels, "(B, T, C, H, W)")
        features = self.encoder(clips.flatten(0, 1))
        features = features.view(*clips.shape[:2], *features.shape[1:])
        last = self.rnn.final_state(features)
        return self.head(pool_velocities(last).mean((-2, -1)))


class CNN3DClassifier(nn.Module):
    """The 3D-CNN baseline of the KTH experiments: three stages of 3x3x3 conv + BatchNorm + ReLU
    (``base``, ``2 base``, ``4 base`` channels; time stride ``time_stride`` first, spatial stride 2 at
    stages 2 and 3), global average pooling and a linear head.

    Shapes: ``(B, T, C, H, W)`` -> logits ``(B, num_classes)``.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 6, *, base: int = 32, time_stride: int = 2) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels, minimum=1)
        check_int("num_classes", num_classes, minimum=2)
        check_int("base", base, minimum=1)
        check_int("time_stride", time_stride, minimum=1)

        def block(cin: int, cout: int, stride_t: int = 1, stride_xy: int = 1) -> nn.Sequential:
            return nn.Sequential(nn.Conv3d(cin, cout, 3, stride=(stride_t, stride_xy, stride_xy), padding=1, bias=False),
                                 nn.BatchNorm3d(cout), nn.ReLU())

        self.features = nn.Sequential(
            block(in_channels, base, stride_t=time_stride),
            block(base, 2 * base, stride_xy=2), block(2 * base, 2 * base),
            block(2 * base, 4 * base, stride_xy=2), block(4 * base, 4 * base),
            nn.AdaptiveAvgPool3d(1), nn.Flatten())
        self.head = nn.Linear(4 * base, num_classes)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """``clips (B, T, C, H, W)`` -> logits ``(B, num_classes)``."""
        check_float_tensor("clips", clips, ndim=5, layout="(B, T, C, H, W)")
        check_channels("clips", clips, 2, self.in_channels, "(B, T, C, H, W)")
        return self.head(self.features(clips.transpose(1, 2)))
