"""Batched circular shifts: many different integer translations in one ``gather``.

Convention (the whole project uses it): moving an image by ``(sx, sy)`` is
``torch.roll(img, shifts=(sy, sx), dims=(-2, -1))`` -- ``sx`` along the width (last axis),
``sy`` along the height. ``out[i, j] = img[(i - sy) % H, (j - sx) % W]``.
"""

from __future__ import annotations

import torch


def shift_index(shifts: torch.Tensor, height: int, width: int, pad: int = 0) -> torch.Tensor:
    """Flat source indices of circular shifts, optionally fused with circular padding.

    Args:
        shifts: integer tensor ``(N, 2)`` of ``(sx, sy)`` per item.
        height, width: spatial size ``H, W`` of the source image.
        pad: circular padding added on every side of the output.

    Returns:
        LongTensor ``(N, (H + 2 pad) * (W + 2 pad))``: output pixel ``(i, j)`` of item ``n`` reads
        source pixel ``index[n, i * (W + 2 pad) + j]`` of the flattened ``(H * W)`` image.
    """
    shifts = shifts.long()
    rows = torch.arange(-pad, height + pad, device=shifts.device)
    cols = torch.arange(-pad, width + pad, device=shifts.device)
    src_rows = (rows[None, :, None] - shifts[:, 1, None, None]) % height
    src_cols = (cols[None, None, :] - shifts[:, 0, None, None]) % width
    return (src_rows * width + src_cols).flatten(1)


def roll_batched(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Roll every item of a batch by its own integer shift, in one ``gather``.

    Args:
        x: tensor ``(N, *, H, W)``.
        shifts: integer tensor ``(N, 2)`` of ``(sx, sy)``; item ``n`` becomes
            ``torch.roll(x[n], shifts=(sy, sx), dims=(-2, -1))``.

    Returns:
        Tensor of the shape of ``x``.
    """
    if shifts.shape != (x.shape[0], 2):
        raise ValueError(f"shifts must have shape ({x.shape[0]}, 2) for x of shape {tuple(x.shape)}, got {tuple(shifts.shape)}")
    n, height, width = x.shape[0], x.shape[-2], x.shape[-1]
    flat = x.reshape(n, -1, height * width)
    index = shift_index(shifts.to(x.device), height, width)[:, None, :].expand(n, flat.shape[1], height * width)
    return torch.gather(flat, 2, index).view(x.shape)


def shifted_rows(shifts: torch.Tensor, height: int, width: int, pad: int = 0) -> torch.Tensor:
    """Row indices into a ``(N * H * W, C)`` table of ``N`` channels-last maps that move map ``n`` by
    ``shifts[n]`` and pad it circularly: ``(N * (H + 2 pad) * (W + 2 pad),)``."""
    pixels = height * width
    local = shift_index(shifts, height, width, pad)
    return (local + pixels * torch.arange(len(shifts), device=local.device)[:, None]).flatten()


def grouped_shifted_rows(shifts: torch.Tensor, batch: int, height: int, width: int,
                         pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`shifted_rows` for a table in the grouped layout ``(B, H, W, V, C)`` (``V`` maps per item, the velocity
    axis inside each pixel): map ``(b, v)`` moved by ``shifts[b * V + v]`` and padded, the output in the same layout
    ``(B, H + 2 pad, W + 2 pad, V, C)``. Returns the forward rows and the inverse-shift rows of the unpadded maps
    (what :func:`shift_pad_grouped` takes as ``rows``)."""
    num_v = len(shifts) // batch

    def grouped(local: torch.Tensor) -> torch.Tensor:  # (B * V, P) pixel indices -> rows ordered (b, pixel, v)
        items = torch.arange(batch, device=local.device).repeat_interleave(num_v)[:, None]
        velocity = torch.arange(num_v, device=local.device).repeat(batch)[:, None]
        rows = (local + items * height * width) * num_v + velocity
        return rows.view(batch, num_v, -1).transpose(1, 2).flatten()

    return grouped(shift_index(shifts, height, width, pad)), grouped(shift_index(-shifts, height, width))


def fold_circular_pad(grad: torch.Tensor, pad: int) -> torch.Tensor:
    """The adjoint of circular padding on channels-last maps: ``(N, H + 2p, W + 2p, C) -> (N, H, W, C)``,
    each halo pixel added onto the pixel it copied. Needs ``p <= H, W``."""
    height, width = grad.shape[1] - 2 * pad, grad.shape[2] - 2 * pad
    rows = grad[:, pad:pad + height].clone()
    rows[:, :pad] += grad[:, pad + height:]
    rows[:, height - pad:] += grad[:, :pad]
    body = rows[:, :, pad:pad + width].clone()
    body[:, :, :pad] += rows[:, :, pad + width:]
    body[:, :, width - pad:] += rows[:, :, :pad]
    return body


class _ShiftPadRows(torch.autograd.Function):
    """``table.index_select(0, rows)`` whose backward is the fold of the halo and the inverse shift
    (two row copies) instead of a scatter-add. The output is ``maps`` padded images whose pixels hold one row or
    several (the grouped layout of :func:`grouped_shifted_rows`: one row per velocity channel)."""

    @staticmethod
    def forward(ctx, table, rows, inverse, maps, height, width, pad):  # noqa: D102 - autograd API
        ctx.save_for_backward(rows, inverse)
        ctx.dims = (maps, height, width, pad, table.shape[0])
        return table.index_select(0, rows)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):  # noqa: D102 - autograd API
        rows, inverse = ctx.saved_tensors
        maps, height, width, pad, table_rows = ctx.dims
        channels = grad.shape[-1]
        if pad > height or pad > width:  # halo wraps more than once: accumulate generically
            out = grad.new_zeros(table_rows, channels)
            return out.index_add_(0, rows, grad), None, None, None, None, None, None
        padded = grad.view(maps, height + 2 * pad, width + 2 * pad, -1)
        unpadded = fold_circular_pad(padded, pad) if pad else padded
        return unpadded.reshape(-1, channels).index_select(0, inverse), None, None, None, None, None, None


def shift_pad_maps(maps: torch.Tensor, shifts: torch.Tensor | None, pad: int,
                   rows: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Move every channels-last map by its own shift and pad it circularly, as row copies.

    Args:
        maps: ``(N, H, W, C)`` contiguous.
        shifts: integer ``(N, 2)`` of ``(sx, sy)`` (unused when ``rows`` is given).
        pad: circular padding on every side.
        rows: precomputed ``(shifted_rows(shifts, H, W, pad), shifted_rows(-shifts, H, W))`` to reuse.

    Returns:
        ``(N, H + 2 pad, W + 2 pad, C)``.
    """
    count, height, width, channels = maps.shape
    if rows is None:
        rows = (shifted_rows(shifts, height, width, pad), shifted_rows(-shifts, height, width))
    moved = _ShiftPadRows.apply(maps.reshape(-1, channels), rows[0], rows[1], count, height, width, pad)
    return moved.view(count, height + 2 * pad, width + 2 * pad, channels)


def shift_pad_grouped(maps: torch.Tensor, rows: tuple[torch.Tensor, torch.Tensor], pad: int) -> torch.Tensor:
    """:func:`shift_pad_maps` on the grouped layout: ``maps (B, H, W, V, C)`` contiguous, every ``(b, v)`` map moved
    and padded by ``rows`` (:func:`grouped_shifted_rows`) -> ``(B, H + 2 pad, W + 2 pad, V, C)``, as row copies."""
    batch, height, width, num_v, channels = maps.shape
    moved = _ShiftPadRows.apply(maps.reshape(-1, channels), rows[0], rows[1], batch, height, width, pad)
    return moved.view(batch, height + 2 * pad, width + 2 * pad, num_v, channels)
