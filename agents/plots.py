"""Figures of the evaluations (matplotlib, Agg) and rollout GIFs (Pillow), written atomically.

Figures are optional: without the ``[plots]`` extra (matplotlib, Pillow) every figure function returns
``None`` instead of a path, once with a warning naming the extra, and the numbers are still written.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fernn._extras import install_line, installed, require
from fernn.io import atomic_write


def available() -> bool:
    """Whether matplotlib and Pillow (the ``[plots]`` extra) are installed."""
    return installed("matplotlib") and installed("PIL")


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend, or :class:`fernn._extras.MissingExtraError` naming ``[plots]``."""
    matplotlib = require("matplotlib", "plots", "figures")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


_WARNED: list[bool] = []  # one warning per process, however many figures are skipped


def optional(draw: Callable[..., Path]) -> Callable[..., Path | None]:
    """Make a figure function return ``None`` (warning once) when the ``[plots]`` extra is missing."""

    @functools.wraps(draw)
    def wrapper(*args: Any, **kwargs: Any) -> Path | None:
        if not available():
            if not _WARNED:
                _WARNED.append(True)
                warnings.warn(f"figures skipped (matplotlib/Pillow missing): {install_line('plots')}", stacklevel=2)
            return None
        return draw(*args, **kwargs)

    return wrapper


def save_figure(figure, path: Path) -> Path:
    """Save a matplotlib figure atomically and close it."""
    atomic_write(path, lambda tmp: figure.savefig(tmp, dpi=110, bbox_inches="tight"))
    pyplot().close(figure)
    return path


@optional
def curves(path: Path, series: dict[str, Sequence[float]], *, xlabel: str, ylabel: str, title: str,
           x: Sequence[float] | None = None, marks: dict[str, float] | None = None) -> Path:
    """Line plot of named series (``marks``: vertical dashed lines, e.g. the training length)."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6, 3.6))
    for name, values in series.items():
        axis.plot(x if x is not None else np.arange(1, len(values) + 1), values, label=name)
    for name, position in (marks or {}).items():
        axis.axvline(position, color="grey", linestyle="--", linewidth=1)
        axis.text(position, axis.get_ylim()[1], f" {name}", va="top", fontsize=8, color="grey")
    axis.set(xlabel=xlabel, ylabel=ylabel, title=title)
    axis.grid(alpha=0.3)
    if len(series) > 1:
        axis.legend(fontsize=8)
    return save_figure(figure, path)


@optional
def velocity_heatmap(path: Path, values: np.ndarray, vmax: int, seen: np.ndarray, *, title: str,
                     label: str, fmt: str = ".3f") -> Path:
    """``values (2 vmax + 1, 2 vmax + 1)`` indexed ``[vy + vmax, vx + vmax]``; unseen cells outlined."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(4.6, 4))
    extent = (-vmax - 0.5, vmax + 0.5, vmax + 0.5, -vmax - 0.5)
    image = axis.imshow(values, cmap="viridis", extent=extent)
    for iy in range(values.shape[0]):
        for ix in range(values.shape[1]):
            vx, vy = ix - vmax, iy - vmax
            axis.text(vx, vy, format(values[iy, ix], fmt), ha="center", va="center", fontsize=7, color="white")
            if not seen[iy, ix]:
                axis.add_patch(plt.Rectangle((vx - 0.5, vy - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.5))
    axis.set(xlabel="vx (px/frame)", ylabel="vy (px/frame)", title=title)
    figure.colorbar(image, ax=axis, label=label)
    return save_figure(figure, path)


@optional
def combination_weights(path: Path, weights: np.ndarray, velocities: np.ndarray, *, title: str) -> Path:
    """A relaxed FERNN's combination weights ``w (V, L)`` on the velocity grid, one panel per filter bank, each
    cell the weight's departure from that bank's mean over velocities (0 everywhere: exact weight sharing)."""
    plt = pyplot()
    banks = weights.shape[1]
    radius = int(np.abs(velocities).max())
    side = 2 * radius + 1
    departure = weights - weights.mean(0, keepdims=True)
    limit = max(float(np.abs(departure).max()), 1e-12)
    figure, axes = plt.subplots(1, banks, figsize=(3.4 * banks + 0.8, 3.2), squeeze=False)
    extent = (-radius - 0.5, radius + 0.5, radius + 0.5, -radius - 0.5)
    for bank, axis in enumerate(axes[0]):
        grid = np.full((side, side), np.nan)
        grid[velocities[:, 1] + radius, velocities[:, 0] + radius] = departure[:, bank]
        image = axis.imshow(grid, cmap="coolwarm", vmin=-limit, vmax=limit, extent=extent)
        for (vx, vy), value in zip(velocities, weights[:, bank]):
            axis.text(vx, vy, f"{value:.2f}", ha="center", va="center", fontsize=7)
        axis.set(xlabel="vx (px/frame)", ylabel="vy (px/frame)" if bank == 0 else None, title=f"bank {bank + 1}")
    figure.colorbar(image, ax=list(axes[0]), label="w_l(v) - mean_v w_l")
    figure.suptitle(title, fontsize=9)
    return save_figure(figure, path)


@optional
def confusion(path: Path, matrix: np.ndarray, names: Sequence[str], *, title: str) -> Path:
    """The confusion matrix ``(K, K)`` of a classifier, true classes in rows."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(5, 4.4))
    image = axis.imshow(matrix, cmap="Blues")
    axis.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    axis.set_yticks(range(len(names)), names, fontsize=8)
    for i in range(len(names)):
        for j in range(len(names)):
            axis.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=7)
    axis.set(xlabel="predicted", ylabel="true", title=title)
    figure.colorbar(image, ax=axis)
    return save_figure(figure, path)


@optional
def strip(path: Path, rows: dict[str, np.ndarray], *, title: str) -> Path:
    """Frames ``(T, H, W)`` in [0, 1] per named row (e.g. ground truth, prediction), side by side."""
    plt = pyplot()
    count = max(len(frames) for frames in rows.values())
    figure, axes = plt.subplots(len(rows), count, figsize=(count * 0.8, len(rows) * 0.9), squeeze=False)
    for r, (name, frames) in enumerate(rows.items()):
        for t in range(count):
            axis = axes[r, t]
            axis.axis("off")
            if t < len(frames):
                axis.imshow(frames[t], cmap="gray", vmin=0, vmax=1)
        axes[r, 0].set_title(name, fontsize=7, loc="left")
    figure.suptitle(title, fontsize=9)
    return save_figure(figure, path)


#: pixels of a GIF's header (the panels' names) and footer (observed or predicted) lines
CAPTION = 12


def rgb_tile(image: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` RGB of an ``(H, W)`` or ``(H, W, C)`` image: one channel (grayscale) is grey, three are RGB, two
    show the first as grey (a window and its target mask), four or more their first three (RGB and extra planes)."""
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 3:
        return image
    if image.shape[-1] < 3:
        return np.repeat(image[..., :1], 3, -1)
    return image[..., :3]


@optional
def gif(path: Path, rows: dict[str, np.ndarray], *, scale: int = 4, fps: int = 6, observed: int | None = None) -> Path:
    """An animated GIF of the named rows of frames side by side (ground truth | prediction), each panel headed by
    its row's name: frames ``(T, H, W)`` or ``(T, H, W, C)`` in [0, 1], shown by :func:`rgb_tile`; shorter rows hold
    their last frame, lower ones are padded. ``observed``: the first frames are the observed context, the rest
    predicted; a caption under each frame says which (and the step)."""
    from PIL import Image, ImageDraw

    count = max(len(frames) for frames in rows.values())
    height = max(frames.shape[1] for frames in rows.values())
    images = []
    for t in range(count):
        tiles = []
        for frames in rows.values():
            tile = rgb_tile(np.clip(frames[min(t, len(frames) - 1)], 0, 1))
            tiles.append(np.pad(tile, ((0, height - tile.shape[0]), (0, 0), (0, 0)), constant_values=1))
        gap = np.ones((height, 2, 3))
        canvas = np.concatenate([part for tile in tiles for part in (tile, gap)][:-1], axis=1)
        image = Image.fromarray((canvas * 255).astype(np.uint8)).resize(
            (canvas.shape[1] * scale, canvas.shape[0] * scale), Image.NEAREST)
        framed = Image.new("RGB", (image.width, image.height + 2 * CAPTION), "white")
        framed.paste(image, (0, CAPTION))
        draw = ImageDraw.Draw(framed)
        left = 0
        for name, tile in zip(rows, tiles):
            draw.text((left + 2, 1), name, fill="black")
            left += (tile.shape[1] + 2) * scale
        if observed is not None:
            caption = f"observed {t + 1}" if t < observed else f"predicted +{t + 1 - observed}"
            draw.text((2, image.height + CAPTION + 1), caption, fill="darkgreen" if t < observed else "darkred")
        images.append(framed)
    atomic_write(path, lambda tmp: images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                                                  duration=int(1000 / fps), loop=0))
    return path
