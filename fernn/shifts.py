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
