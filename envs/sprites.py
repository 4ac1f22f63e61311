"""The hot path of every MNIST scene: many sprites, each at its own integer position on a torus, for
many frames, in a few array ops, in ``uint8``.

A sprite canvas ``(H, W)`` moved by ``(sx, sy)`` and seen through an ``(h, w)`` window at the canvas
origin is ``out[y, x] = canvas[(y - sy) % H, (x - sx) % W]`` (``torch.roll`` convention of
:mod:`fernn.shifts`). Instead of building one flat gather index per output pixel, rows are picked with
one index per output *row*: each canvas row is tiled twice (``2W`` bytes) and ``unfold`` views every
length-``w`` window of it, so a (row, column-offset) pair addresses a whole shifted output row. For ``B``
scenes, ``K`` sprites and ``T`` frames that is ``B K T h`` indices (not ``B K T h w``). When a sprite is
seen in many frames the shifted rows are materialised once and copied with ``index_select``; otherwise
they are read through the ``unfold`` view.
"""

from __future__ import annotations

import torch


def render_layers(canvases: torch.Tensor, shifts: torch.Tensor, out_size: tuple[int, int] | None = None) -> torch.Tensor:
    """Move each sprite canvas by its shift at every frame and crop the window at the origin.

    Args:
        canvases: ``(B, K, H, W)`` sprite canvases (any dtype, typically uint8).
        shifts: integer ``(B, K, T, 2)`` of ``(sx, sy)`` per sprite and frame.
        out_size: ``(h, w) <= (H, W)``, the window (default: the whole canvas).

    Returns:
        ``(B, K, T, h, w)`` contiguous: layer ``k`` of frame ``t`` is canvas ``k`` moved by ``shifts[:, k, t]``.
    """
    batch, sprites, height, width = canvases.shape
    h, w = out_size or (height, width)
    steps = shifts.shape[2]
    tiled = torch.cat([canvases, canvases], -1).reshape(batch * sprites * height, 2 * width)
    shifts = shifts.to(canvases.device, torch.long)
    start = (-shifts[..., 0]) % width  # (B, K, T): column where the output row starts
    rows = (torch.arange(h, device=canvases.device) - shifts[..., 1, None]) % height  # (B, K, T, h)
    rows = rows + torch.arange(batch * sprites, device=canvases.device).view(batch, sprites, 1, 1) * height
    if height * width <= 1.5 * steps * h:
        # Many frames per sprite: materialise every shifted row once (the table is about the size of the
        # output) and copy whole output rows with index_select.
        table = tiled.unfold(1, w, 1)[:, :width].contiguous().view(-1, w)
        picked = table.index_select(0, (rows * width + start[..., None]).reshape(-1))
        return picked.view(batch, sprites, steps, h, w)
    windows = tiled.unfold(1, w, 1)  # (rows, 2W - w + 1, w): windows[r, s] = tiled[r, s:s + w], a view
    return windows[rows, start[..., None].expand(batch, sprites, steps, h)].contiguous()


def composite(layers: torch.Tensor) -> torch.Tensor:
    """Sum ``(B, K, T, h, w)`` uint8 layers over sprites and clip to 255: ``(B, T, h, w)`` uint8."""
    if layers.shape[1] == 1:
        return layers[:, 0]
    return layers.sum(1, dtype=torch.int16).clamp_(max=255).to(torch.uint8)


def sprite_canvases(sprites: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Place ``(..., s, s)`` sprites at the top-left of zero ``(..., H, W)`` canvases (``s <= H, W``)."""
    size_y, size_x = sprites.shape[-2:]
    if (size_y, size_x) == (height, width):
        return sprites
    return torch.nn.functional.pad(sprites, (0, width - size_x, 0, height - size_y))
