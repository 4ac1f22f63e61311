"""What a trajectory file may hold, checked before anything is decompressed or allocated.

A trajectory file is a ``.npz`` (a zip of ``.npy`` members): ``format``, ``version``, ``lengths``, ``meta`` and, per
episode ``i``, ``obs_<i>``, ``actions_<i>``, ``rewards_<i>``, ``terminated_<i>``, ``truncated_<i>`` and optionally
``moves_<i>`` and ``truth_<key>_<i>``. :func:`inspect_file` reads the zip's directory and every member's ``.npy``
header (a few hundred bytes each; nothing else is decompressed) and refuses, with one line naming the file, the
field and what is accepted:

* a member whose header declares more bytes than the member holds, or more than :data:`MAX_MEMBER_BYTES` (a
  25 KB file may not claim 97 GB; a zip bomb may not decompress to gigabytes);
* ``version`` or ``lengths`` of the wrong shape or type, lengths that disagree with the episodes' arrays, or
  episodes missing;
* observations that are not ``uint8`` images ``(L + 1, H, W, C)`` of one size (float or int16 frames would reach
  the model at the wrong scale), moves that are not integer pairs, rewards that are not numbers, flags that are not
  booleans;
* anything that needs pickle (``allow_pickle=False`` everywhere).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fernn.errors import FERNNError

FORMAT = "fernn-trajectories"
VERSION = 1
#: the most a single member of a trajectory file may decompress to (one episode's observations: 500 steps of
#: 128 x 128 x 3 are 25 MB)
MAX_MEMBER_BYTES = 1 << 30
EPISODE_FIELDS = {  # key -> (dtype kinds accepted, what is accepted)
    "obs": ("u", "uint8 images (L + 1, H, W, C)"),
    "actions": ("biuf", "numbers (L + 1, ...)"),
    "rewards": ("biuf", "numbers (L + 1,)"),
    "terminated": ("b", "booleans (L + 1,)"),
    "truncated": ("b", "booleans (L + 1,)"),
    "moves": ("iu", "integer moves (L + 1, 2)"),
}
REQUIRED = ("obs", "actions", "rewards", "terminated", "truncated")


class TrajectoryFileError(FERNNError, ValueError):
    """A trajectory file that cannot be read: truncated, corrupt, from another version, not one at all, or holding
    what a trajectory file may not (the message names the file, the field and what is accepted)."""


@dataclass
class Inventory:
    """What :func:`inspect_file` found: the lengths, the meta data, the per-episode keys and their headers."""

    lengths: np.ndarray
    meta: dict[str, Any]
    keys: list[str]
    headers: dict[str, tuple[tuple[int, ...], np.dtype]] = field(default_factory=dict)


def _header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """The declared shape and dtype of a ``.npy`` member, checked against the member's size and the bound."""
    name = info.filename[:-4]
    try:
        with archive.open(info) as stream:
            version = np.lib.format.read_magic(stream)
            readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in readers:
                raise ValueError(f".npy format {version}; accepted: 1.0 and 2.0, as numpy.savez writes them")
            shape, fortran, dtype = readers[version](stream)
            header_bytes = stream.tell()
    except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile, NotImplementedError) as error:
        raise TrajectoryFileError(f"{path}: field {name!r} is not a readable .npy array ({str(error).splitlines()[0]}); "
                                  "the file is truncated or corrupt: collect it again") from error
    if dtype.hasobject:
        raise TrajectoryFileError(f"{path}: field {name!r} holds Python objects ({dtype}), which are never loaded; "
                                  "accepted: numeric and boolean arrays")
    declared = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize if shape else dtype.itemsize
    if declared > MAX_MEMBER_BYTES:
        raise TrajectoryFileError(f"{path}: field {name!r} declares {shape} {dtype} = {declared / 2 ** 30:,.1f} GiB; "
                                  f"accepted: at most {MAX_MEMBER_BYTES / 2 ** 30:.0f} GiB per array (an episode's "
                                  "observations), so the file is refused before anything is decompressed")
    if info.file_size != header_bytes + declared:
        raise TrajectoryFileError(f"{path}: field {name!r} declares {shape} {dtype} ({declared:,} bytes) but holds "
                                  f"{info.file_size - header_bytes:,}; the file is truncated or forged: collect it again")
    return tuple(int(s) for s in shape), dtype


def _small(archive: zipfile.ZipFile, name: str, path: Path, shape: tuple[int, ...], kinds: str) -> np.ndarray:
    """A small member (format, version, lengths, meta) read after its header was checked."""
    with archive.open(f"{name}.npy") as stream:
        value = np.lib.format.read_array(stream, allow_pickle=False)
    if value.shape != shape or value.dtype.kind not in kinds:
        raise TrajectoryFileError(f"{path}: field {name!r} is {value.dtype} {value.shape}; accepted: "
                                  f"{'a string' if kinds == 'U' else 'an integer'}"
                                  f"{'' if shape == () else ' array (N,)'}")
    return value


def inspect_file(path: str | Path) -> Inventory:
    """Check a trajectory file's directory and headers (see the module docstring) and return its inventory."""
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError as error:
        raise TrajectoryFileError(f"{path} does not exist") from error
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise TrajectoryFileError(f"{path} is not a trajectory file (not a readable .npz: {error}); write one with "
                                  "fernn-rl collect") from error
    with archive:
        members = {info.filename: info for info in archive.infolist()}
        names = {name[:-4] for name in members if name.endswith(".npy")}
        for required in ("format", "version", "lengths", "meta"):
            if required not in names:
                raise TrajectoryFileError(f"{path} is not a trajectory file of fernn-rl (no {required!r} field); "
                                          "write one with fernn-rl collect")
        headers = {name: _header(archive, members[f"{name}.npy"], path) for name in sorted(names)}
        if headers["format"][0] != () or str(_small(archive, "format", path, (), "U")) != FORMAT:
            raise TrajectoryFileError(f"{path} is not a trajectory file of fernn-rl (field 'format')")
        version = _small(archive, "version", path, (), "iu")
        if int(version) != VERSION:
            raise TrajectoryFileError(f"{path} is a trajectory file of format version {int(version)}; this version of "
                                      f"fernn-rl reads version {VERSION}: collect it again")
        if len(headers["lengths"][0]) != 1:
            raise TrajectoryFileError(f"{path}: field 'lengths' has shape {headers['lengths'][0]}; accepted: one "
                                      "integer per episode, shape (N,)")
        lengths = _small(archive, "lengths", path, headers["lengths"][0], "iu").astype(np.int64)
        try:
            meta = json.loads(str(_small(archive, "meta", path, (), "U")))
        except json.JSONDecodeError as error:
            raise TrajectoryFileError(f"{path}: field 'meta' is not JSON ({error})") from error
        if not isinstance(meta, dict):
            raise TrajectoryFileError(f"{path}: field 'meta' must be a JSON object, got {type(meta).__name__}")
    keys = sorted({name.rsplit("_", 1)[0] for name in names if name[-6:].isdigit()})
    _check_episodes(path, lengths, keys, headers)
    return Inventory(lengths, meta, keys, headers)


def _check_episodes(path: Path, lengths: np.ndarray, keys: list[str],
                    headers: dict[str, tuple[tuple[int, ...], np.dtype]]) -> None:
    if len(lengths) == 0 or (lengths < 0).any():
        raise TrajectoryFileError(f"{path}: field 'lengths' must hold one length >= 0 per episode, at least one; got "
                                  f"{lengths[:5].tolist()}{'...' if len(lengths) > 5 else ''}")
    missing = [key for key in REQUIRED if key not in keys]
    if missing:
        raise TrajectoryFileError(f"{path}: no episode field(s) {', '.join(missing)}; accepted: a file written by "
                                  "fernn-rl collect (obs, actions, rewards, terminated, truncated per episode)")
    image = None
    for index, length in enumerate(lengths.tolist()):
        for key in keys:
            name = f"{key}_{index:06d}"
            if name not in headers:
                raise TrajectoryFileError(f"{path}: episode {index} has no field {key!r} (lengths names "
                                          f"{len(lengths)} episodes); the file is truncated or forged: collect it again")
            shape, dtype = headers[name]
            kinds, accepted = EPISODE_FIELDS.get(key, ("biuf", "numbers (L + 1, ...)"))
            if dtype.kind not in kinds or not shape or shape[0] != length + 1:
                raise TrajectoryFileError(f"{path}: field {name!r} is {dtype} {shape}, but lengths[{index}] = {length}; "
                                          f"accepted: {accepted} with L = {length}")
            if key == "obs":
                if len(shape) != 4 or dtype != np.uint8:
                    raise TrajectoryFileError(f"{path}: field {name!r} is {dtype} {shape}; accepted: uint8 images "
                                              "(L + 1, H, W, C) in 0..255 (float or wider frames would reach the "
                                              "model at the wrong scale)")
                if image is not None and shape[1:] != image:
                    raise TrajectoryFileError(f"{path}: field {name!r} holds {shape[1:]} images, episode 0 {image}; "
                                              "accepted: one image size per file")
                image = shape[1:]
            if key == "moves" and (len(shape) != 2 or shape[1] != 2):
                raise TrajectoryFileError(f"{path}: field {name!r} is {dtype} {shape}; accepted: {accepted}")
    extra = {name for name in headers if name[-6:].isdigit() and int(name[-6:]) >= len(lengths)}
    if extra:
        raise TrajectoryFileError(f"{path}: fields {sorted(extra)[:3]} belong to episodes beyond the {len(lengths)} "
                                  "that 'lengths' names; the file is forged: collect it again")
