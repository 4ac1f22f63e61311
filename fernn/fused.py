"""The recurrence's last stage, ``act(conv_rec(...) + drive)``, fused in place on the convolution's output.

Autograd would record an in-place add and activation on the convolution's (permuted) output as
``CopySlices`` nodes, whose backward clones the whole base tensor and copies the slice back (three copies of
the state per op); an out-of-place sum allocates a second state-sized buffer per step. This function writes
the sum and the activation into the convolution's output buffer and differentiates through the activation's
output alone: ``grad_pre = act'(out) * grad`` flows to the convolution and ``grad_pre`` summed over the
velocity channels to the drive.
"""

from __future__ import annotations

import torch

ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh}
_IN_PLACE = {"relu": torch.relu_, "tanh": torch.tanh_}


class _AddDriveActivate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, conv_out, drive, activation, num_v=None):  # noqa: D102 - autograd API
        state = velocity_view(conv_out, drive.shape[0], num_v)
        _IN_PLACE[activation](state.add_(drive[:, None]))
        ctx.mark_dirty(conv_out)
        ctx.save_for_backward(conv_out)
        ctx.activation, ctx.batch, ctx.num_v = activation, drive.shape[0], num_v
        return conv_out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):  # noqa: D102 - autograd API
        (out,) = ctx.saved_tensors
        if ctx.activation == "relu":
            grad_pre = torch.ops.aten.threshold_backward(grad, out, 0)
        else:  # tanh' = 1 - tanh^2
            grad_pre = grad * (1 - out * out)
        grad_drive = velocity_view(grad_pre, ctx.batch, ctx.num_v).sum(1) if ctx.needs_input_grad[1] else None
        return grad_pre, grad_drive, None, None


def velocity_view(maps: torch.Tensor, batch: int, num_v: int | None = None) -> torch.Tensor:
    """``(B * V, C, H, W)`` maps (velocity-minor) as ``(B, V, H, W, C)``: a view, whatever the memory format. With
    ``num_v``: ``(B, V * C, H, W)`` maps (the grouped layout of a relaxed core) as ``(B, V, H, W, C)``."""
    if num_v is not None:
        return maps.unflatten(1, (num_v, -1)).permute(0, 1, 3, 4, 2)
    return maps.permute(0, 2, 3, 1).unflatten(0, (batch, -1))


def add_drive_activate(conv_out: torch.Tensor, drive: torch.Tensor, activation: str) -> torch.Tensor:
    """``act(conv_out + drive)`` for every velocity channel, in place on ``conv_out``.

    Args:
        conv_out: ``(B * V, C, H, W)`` output of the recurrent convolution (velocity-minor); it is
            overwritten, so it must be a fresh tensor that nothing else reads.
        drive: ``(B, H, W, C)`` input term, shared by the V velocity channels.
        activation: ``"relu"`` or ``"tanh"``.

    Returns:
        The new state ``(B, V, H, W, C)``: a view of ``conv_out`` (contiguous when ``conv_out`` is
        channels-last, as the CPU and cuDNN convolutions return for channels-last inputs).
    """
    return velocity_view(_AddDriveActivate.apply(conv_out, drive, activation), drive.shape[0])


def add_drive_activate_grouped(conv_out: torch.Tensor, drive: torch.Tensor, activation: str,
                               num_v: int) -> torch.Tensor:
    """:func:`add_drive_activate` for the grouped convolution of a relaxed core: ``conv_out (B, V * C, H, W)``
    (channels-last: memory ``(B, H, W, V, C)``), overwritten; returns the new state ``(B, V, H, W, C)`` as a view of
    it (memory still ``(B, H, W, V, C)``, which the relaxed core's transport reads without a copy)."""
    return velocity_view(_AddDriveActivate.apply(conv_out, drive, activation, num_v), drive.shape[0], num_v)
