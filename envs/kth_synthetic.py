"""A synthetic stand-in for KTH in the official layout, for offline pipelines, tests and the README's
clearly labelled synthetic KTH table.

``make_synthetic_kth(root)`` writes ``root/kth/{action}.zip`` (each holding
``person{PP}_{action}_d{S}_uncomp.avi``, MPEG-4 AVI like the originals) and ``root/kth/00sequences.txt``.
Each video shows a grey "person" (a body block with a head) on a static textured background (with
a little sensor noise); the six classes
differ in how it moves, as in KTH:

=============  ================================================================
walking        the body crosses the frame at 1 px/frame (random direction)
jogging        2 px/frame
running        3 px/frame
boxing         static body, one arm punching out and back horizontally
handwaving     static body, both arms swinging up and down
handclapping   static body, two hands meeting in front of the chest
=============  ================================================================

Persons differ in size, brightness and position; scenarios in background level. Speeds are what
separates walking from jogging and running, so camera motion confuses them unless a model is
equivariant to it.
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

import numpy as np

from fernn.envs.kth import ACTIONS, SEQUENCES_FILE
from fernn.io import atomic_write

HEIGHT, WIDTH = 60, 80


def _video(action: str, frames: int, rng: np.random.Generator, person: int, scenario: int) -> np.ndarray:
    """``(frames, 60, 80)`` uint8 of one synthetic clip."""
    scale = 0.8 + 0.1 * (person % 5)
    tone = 150 + 10 * (person % 8)
    body_h, body_w = int(24 * scale), int(8 * scale)
    background = rng.normal(20 + 15 * scenario, 8, (1, HEIGHT, WIDTH))
    video = np.clip(background + rng.normal(0, 2, (frames, HEIGHT, WIDTH)), 0, 255)
    t = np.arange(frames)
    top = 18 + person % 6
    speed = {"walking": 1, "jogging": 2, "running": 3}.get(action, 0)
    direction = rng.choice([-1, 1])
    left = (rng.integers(WIDTH) + direction * speed * t) % WIDTH if speed else np.full(frames, 30 + person % 12)
    rows = np.arange(HEIGHT)[None, :, None]
    cols = np.arange(WIDTH)[None, None, :]

    def block(row0, col0, height, width) -> np.ndarray:
        """A (frames, H, W) mask of a block at per-frame positions (wrapping horizontally)."""
        row0, col0 = np.asarray(row0)[:, None, None], np.asarray(col0)[:, None, None]
        height, width = (np.asarray(v).reshape(-1, 1, 1) if np.ndim(v) else v for v in (height, width))
        return (rows >= row0) & (rows < row0 + height) & (((cols - col0) % WIDTH) < width)

    mask = block(np.full(frames, top), left, body_h, body_w) | \
        block(np.full(frames, top - 6), left + body_w // 4, 6, max(body_w // 2, 2))
    if speed:  # legs alternate
        stride = (t * speed // 3) % 2
        mask |= block(np.full(frames, top + body_h), left + stride * body_w // 2, 6, max(body_w // 2, 2))
    elif action == "boxing":
        reach = (6 * np.abs(np.sin(t * np.pi / 6))).astype(int)
        mask |= block(np.full(frames, top + 4), left + body_w, 3, 2 + reach)
    elif action == "handwaving":
        lift = (8 * np.abs(np.sin(t * np.pi / 8))).astype(int)
        mask |= block(top - lift, left - 3, 8, 3) | block(top - lift, left + body_w, 8, 3)
    else:  # handclapping
        gap = (5 * np.abs(np.cos(t * np.pi / 6))).astype(int)
        mask |= block(np.full(frames, top + 6), left + body_w + 1 + gap, 3, 2) | \
            block(np.full(frames, top + 6), left + body_w + 5 - gap, 3, 2)
    video[mask] = tone
    return video.astype(np.uint8)


def make_synthetic_kth(root: str | Path, *, persons: tuple[int, ...] = tuple(range(1, 26)), scenarios: int = 1,
                       frames: int = 64, seed: int = 0) -> Path:
    """Write the synthetic KTH under ``root/kth`` (see the module docstring); return ``root``.

    Args:
        root: the data directory (``load_kth(data_dir=root)`` reads it).
        persons: person numbers (1-16 train, 17-20 val, 21-25 test).
        scenarios: scenarios ``d1 .. dS`` per person and action.
        frames: frames per video, split into two annotated segments.
        seed: seed of the backgrounds and start positions.
    """
    from fernn._extras import require

    av = require("av", "video", "writing synthetic KTH videos")
    root = Path(root)
    folder = root / "kth"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines = ["Synthetic KTH stand-in written by fernn.envs.kth_synthetic (not the real data set)", ""]
    with tempfile.TemporaryDirectory() as scratch:
        for action in ACTIONS:
            videos = []
            for person in persons:
                for scenario in range(1, scenarios + 1):
                    name = f"person{person:02d}_{action}_d{scenario}"
                    path = Path(scratch) / f"{name}_uncomp.avi"
                    _write_avi(av, path, _video(action, frames, rng, person, scenario))
                    videos.append(path)
                    lines.append(f"{name}\t\tframes\t1-{frames // 2}, {frames // 2 + 1}-{frames}")
            atomic_write(folder / f"{action}.zip", lambda tmp, videos=videos: _write_zip(tmp, videos))
    atomic_write(folder / SEQUENCES_FILE, lambda tmp: tmp.write_text("\n".join(lines) + "\n"))
    return root


def _write_zip(path: Path, members: list[Path]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for member in members:
            archive.write(member, member.name)


def _write_avi(av, path: Path, video: np.ndarray) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.height, stream.width = video.shape[1:]
        stream.pix_fmt = "yuv420p"
        stream.options = {"qscale": "2"}
        for frame in video:
            image = av.VideoFrame.from_ndarray(np.repeat(frame[..., None], 3, -1), format="rgb24")
            for packet in stream.encode(image):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
