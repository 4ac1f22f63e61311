"""KTH actions: the official archives, decoded once to grayscale and cached, split by person.

Layout of ``<data_dir>/kth`` (the official files, as downloaded from :data:`KTH_URL`)::

    00sequences.txt              # "person01_boxing_d1  frames  1-95, 96-185, ..." (1-based, inclusive)
    walking.zip ... handclapping.zip   # person{PP}_{action}_d{S}_uncomp.avi inside
    cache_64/index.json          # written last: videos, frame counts, segments
    cache_64/<video>.npy         # (frames, 64, 64) uint8 per video

Decoding uses PyAV (ffmpeg). The cache is written atomically video by video and the index last; a
missing, truncated or mismatched ``.npy`` is detected on load and that video is decoded again.
Persons 1-16 are ``train``, 17-20 ``val``, 21-25 ``test`` (the FERNN paper's split).
"""

from __future__ import annotations

import json
import logging
import os
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fernn.envs.storage import DataMissingError, download, resolve_data_dir
from fernn.io import atomic_write

KTH_URL = "http://www.csc.kth.se/cvap/actions/"
ACTIONS = ("walking", "jogging", "running", "boxing", "handwaving", "handclapping")
SEQUENCES_FILE = "00sequences.txt"
#: SHA-1 digests of the official archives, as the vipy project records them (the only published digests);
#: a download that differs is deleted. The segment list has none: it is parsed as text, size-bounded.
KTH_DIGESTS = {
    "walking.zip": {"sha1": "a3e81537271a0ab4576591774baa38c2d97b7e3a"},
    "jogging.zip": {"sha1": "21943bdbcef9dad106db0d74661e49eaeaa15a25"},
    "running.zip": {"sha1": "da83bb313edfd4455fffdda6263696fa10d43c6f"},
    "boxing.zip": {"sha1": "adb36ed9c29c846d44d2ba15f348bd115c951bbd"},
    "handwaving.zip": {"sha1": "0792f7cd69f7f895a205c08ac212ddaa7177e370"},
    "handclapping.zip": {"sha1": "d3b81261aa822ef63d0d1523f945bfaff27814d2"},
}
#: archive members: an action folder at most, then ``personPP_action_dS_uncomp.avi``; each at most this big
_MEMBER = re.compile(r"^(?:[a-z]+/)?person\d{2}_[a-z]+_d\d_uncomp\.avi$")
MAX_MEMBER_BYTES = 64 << 20
MAX_SEQUENCES_BYTES = 1 << 20
PERSON_SPLITS = {"train": range(1, 17), "val": range(17, 21), "test": range(21, 26)}
CACHE_VERSION = 1
_VIDEO = re.compile(r"^person(?P<person>\d+)_(?P<action>[a-z]+)_d(?P<scenario>\d+)$")
log = logging.getLogger(__name__)


def kth_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Where the KTH files live: ``<data_dir>/kth``."""
    return resolve_data_dir(data_dir) / "kth"


def expected_files() -> list[str]:
    """The official files the loader needs."""
    return [SEQUENCES_FILE] + [f"{action}.zip" for action in ACTIONS]


def download_kth(data_dir: str | os.PathLike | None = None, *, timeout: float = 60.0,
                 progress: Callable[[str, int, int | None], None] | None = None) -> Path:
    """Download the segment list and the six archives (about 1 GB) to ``<data_dir>/kth``."""
    folder = kth_dir(data_dir)
    for name in expected_files():
        if not (folder / name).is_file():
            report = None if progress is None else (lambda done, total, name=name: progress(name, done, total))
            download(KTH_URL + name, folder / name, digests=KTH_DIGESTS.get(name), timeout=timeout, progress=report)
    return folder


@dataclass(frozen=True)
class Segment:
    """One annotated segment: ``frames[start:stop]`` of video ``video`` (0-based, stop exclusive)."""

    video: str
    person: int
    label: int
    start: int
    stop: int


@dataclass
class KTHVideos:
    """Decoded KTH videos of one split.

    Attributes:
        frames: ``(total_frames, S, S)`` uint8, every video of the split concatenated.
        offsets: ``{video: (first row in frames, frame count)}``.
        segments: the annotated segments of the split's videos.
        frame_size: ``S``.
    """

    frames: np.ndarray
    offsets: dict[str, tuple[int, int]]
    segments: list[Segment]
    frame_size: int


def load_kth(split: str = "train", *, data_dir: str | os.PathLike | None = None, download: bool = False,
             frame_size: int = 64, progress: Callable[[str, int, int], None] | None = None) -> KTHVideos:
    """Load (decoding and caching on first use) the videos of ``split`` at ``frame_size``.

    Args:
        split: ``"train"`` (persons 1-16), ``"val"`` (17-20) or ``"test"`` (21-25).
        data_dir: folder holding ``kth/`` (default ``$FERNN_DATA`` or ``~/.cache/fernn``).
        download: fetch the official files first when missing.
        frame_size: side of the cached frames: 64, or a divisor of 64 (area-averaged from the 64 cache).
        progress: called as ``(video, index, total)`` while decoding.

    Raises:
        DataMissingError: the files are not there (message: directory, files, URL, ``--download``).
    """
    if split not in PERSON_SPLITS:
        raise ValueError(f"split must be one of {tuple(PERSON_SPLITS)}, got {split!r}")
    if isinstance(frame_size, bool) or not isinstance(frame_size, int) or frame_size < 1 or 64 % frame_size:
        raise ValueError(f"frame_size must be 64 or a divisor of it (32, 16, ...), got {frame_size!r}")
    folder = kth_dir(data_dir)
    if download:
        download_kth(data_dir)
    missing = [name for name in expected_files() if not (folder / name).is_file()]
    if missing:
        raise DataMissingError(
            f"KTH actions not found in {folder}: missing {', '.join(missing)}. Download them from {KTH_URL} "
            "(pass download=True, or --download on the command line; about 1 GB), or point data_dir / FERNN_DATA "
            "at the folder holding a 'kth' directory with them")
    index = _cached_index(folder, progress)
    persons = set(PERSON_SPLITS[split])
    videos = [v for v in index["videos"] if v["person"] in persons]
    if not videos:
        raise DataMissingError(f"no KTH videos of the {split!r} split (persons {min(persons)}-{max(persons)}) in "
                               f"{folder}; the archives look incomplete: download them again from {KTH_URL}")
    cache = folder / "cache_64"
    chunks, offsets, segments, row = [], {}, [], 0
    factor = 64 // frame_size
    for video in videos:
        frames = np.load(cache / f"{video['name']}.npy", allow_pickle=False)
        if factor > 1:
            frames = frames.reshape(len(frames), frame_size, factor, frame_size, factor).mean((2, 4))
            frames = np.rint(frames).astype(np.uint8)
        chunks.append(frames)
        offsets[video["name"]] = (row, len(frames))
        row += len(frames)
        for start, stop in video["segments"]:
            segments.append(Segment(video["name"], video["person"], ACTIONS.index(video["action"]), start, stop))
    return KTHVideos(np.concatenate(chunks), offsets, segments, frame_size)


def parse_sequences(text: str) -> dict[str, list[tuple[int, int]]]:
    """Parse ``00sequences.txt``: ``{video: [(start, stop), ...]}``, 0-based, stop exclusive."""
    segments: dict[str, list[tuple[int, int]]] = {}
    for line in text.splitlines():
        parts = line.split("frames")
        name = parts[0].strip()
        if len(parts) != 2 or not _VIDEO.match(name):
            continue
        ranges = []
        for item in parts[1].split(","):
            bounds = item.strip().split("-")
            if len(bounds) == 2 and all(b.strip().isdigit() for b in bounds):
                first, last = int(bounds[0]), int(bounds[1])
                if last >= first >= 1:
                    ranges.append((first - 1, last))
        segments[name] = ranges
    return segments


def decode_video(data: bytes | Path, frame_size: int = 64) -> np.ndarray:
    """Decode a video (path or bytes) to ``(frames, S, S)`` uint8 grayscale, area-resized."""
    import io

    from fernn._extras import require

    av = require("av", "video", "decoding KTH videos")

    source = io.BytesIO(data) if isinstance(data, bytes) else str(data)
    frames = []
    with av.open(source) as container:
        for frame in container.decode(video=0):
            small = frame.reformat(width=frame_size, height=frame_size, format="gray8", interpolation="AREA")
            frames.append(small.to_ndarray())
    if not frames:
        raise ValueError("the video has no decodable frames")
    return np.stack(frames).astype(np.uint8)


def _cached_index(folder: Path, progress: Callable[[str, int, int], None] | None) -> dict:
    """The cache index, building or repairing the per-video ``.npy`` files first where needed."""
    cache = folder / "cache_64"
    index_path = cache / "index.json"
    sequences_path = folder / SEQUENCES_FILE
    if sequences_path.stat().st_size > MAX_SEQUENCES_BYTES:
        raise DataMissingError(f"{sequences_path} is {sequences_path.stat().st_size} bytes, far more than KTH's segment "
                               f"list (about 30 KB); download it again from {KTH_URL}")
    sequences = parse_sequences(sequences_path.read_text(errors="replace"))
    index = None
    if index_path.is_file():
        try:
            index = json.loads(index_path.read_text())
            if index.get("version") != CACHE_VERSION:
                index = None
        except (json.JSONDecodeError, OSError):
            index = None
    if index is not None and all(_cache_ok(cache, v) for v in index["videos"]):
        return index
    log.info("KTH: decoding the archives in %s into %s (once)", folder, cache)
    videos, known = [], {v["name"]: v for v in (index or {}).get("videos", [])}
    members = [(archive, name) for archive in (folder / f"{a}.zip" for a in ACTIONS)
               for name in _archive_videos(archive)]
    for i, (archive, member) in enumerate(members):
        name = Path(member).name.removesuffix(".avi").removesuffix("_uncomp")
        match = _VIDEO.match(name)
        if match is None or name not in sequences:
            continue
        if progress is not None:
            progress(name, i, len(members))
        entry = known.get(name)
        if entry is None or not _cache_ok(cache, entry):
            with zipfile.ZipFile(archive) as zf:
                frames = decode_video(zf.read(member))
            atomic_write(cache / f"{name}.npy", lambda tmp, frames=frames: np.save(tmp, frames))
            entry = {"name": name, "person": int(match["person"]), "action": match["action"],
                     "scenario": int(match["scenario"]), "frames": len(frames)}
        entry["segments"] = [(s, min(e, entry["frames"])) for s, e in sequences[name] if s < entry["frames"]]
        videos.append(entry)
    index = {"version": CACHE_VERSION, "videos": videos}
    atomic_write(index_path, lambda tmp: tmp.write_text(json.dumps(index)))
    return index


def _archive_videos(archive: Path) -> list[str]:
    """The video members of a KTH archive, validated before anything is decoded: expected names only (no absolute
    path, no ``..``), at most :data:`MAX_MEMBER_BYTES` each."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [info for info in zf.infolist() if not info.is_dir()]
    except zipfile.BadZipFile as error:
        raise DataMissingError(f"{archive} is not a valid zip archive ({error}); delete it and download it again "
                               f"from {KTH_URL}") from error
    for info in members:
        if not _MEMBER.match(info.filename):
            raise DataMissingError(f"{archive} holds an unexpected member {info.filename!r} (expected "
                                   f"personPP_action_dS_uncomp.avi); it is not an official KTH archive: delete it and "
                                   f"download it again from {KTH_URL}")
        if info.file_size > MAX_MEMBER_BYTES:
            raise DataMissingError(f"{archive} member {info.filename!r} unpacks to {info.file_size} bytes, more than "
                                   f"any KTH video ({MAX_MEMBER_BYTES} at most); delete the archive and download it again")
    return sorted(info.filename for info in members)


def _cache_ok(cache: Path, video: dict) -> bool:
    path = cache / f"{video['name']}.npy"
    try:
        frames = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return False
    return frames.shape == (video["frames"], 64, 64) and frames.dtype == np.uint8
