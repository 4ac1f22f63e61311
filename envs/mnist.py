"""MNIST digits for the scenes: the embedded 5,000-digit subset or the full official set.

* ``source="embedded"``: 5,000 real MNIST digits shipped in the package (``envs/data/mnist_5k.npz``,
  provenance and licence in ``envs/data/README.md``), split 4,000 train / 1,000 test (fixed and
  stratified, *not* the official split).
* ``source="full"``: the official IDX files (``train-images-idx3-ubyte.gz`` ... ) in
  ``<data_dir>/mnist``, downloaded with SHA-256 verification when ``download=True``; the official
  60,000 / 10,000 split.
* ``source="auto"`` (default): the full set when its files are present, else the embedded subset; the
  choice is logged once per process.
"""

from __future__ import annotations

import functools
import gzip
import logging
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from fernn.envs.storage import DataMissingError, download, resolve_data_dir

SPLITS = ("train", "test")
SOURCES = ("auto", "embedded", "full")
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MNIST_FILES = {  # the official files: SHA-256 and the MD5 that torchvision publishes
    "train-images-idx3-ubyte.gz": {"sha256": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                                   "md5": "f68b3c2dcbeaaa9fbdd348bbdeb94873"},
    "train-labels-idx1-ubyte.gz": {"sha256": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                                   "md5": "d53e105ee54ea40749a09fcbcd1e9432"},
    "t10k-images-idx3-ubyte.gz": {"sha256": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                                  "md5": "9fb629c4189551a2d022fa330f9573f3"},
    "t10k-labels-idx1-ubyte.gz": {"sha256": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                                  "md5": "ec29112dd5afa0611ce80d1b7f02629c"},
}
_SPLIT_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
log = logging.getLogger(__name__)
_announced: set[str] = set()


@dataclass(frozen=True)
class DigitSet:
    """Digits of one split.

    Attributes:
        images: ``(N, 28, 28)`` uint8, 0..255.
        labels: ``(N,)`` uint8, 0..9.
        source: ``"embedded"`` or ``"full"``.
        split: ``"train"`` or ``"test"``.
    """

    images: np.ndarray
    labels: np.ndarray
    source: str
    split: str

    def __len__(self) -> int:
        return len(self.labels)


def mnist_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Where the full MNIST files live: ``<data_dir>/mnist``."""
    return resolve_data_dir(data_dir) / "mnist"


def load_mnist(split: str = "train", *, source: str = "auto", data_dir: str | os.PathLike | None = None,
               download: bool = False) -> DigitSet:
    """Load the digits of ``split`` from ``source`` (see the module docstring).

    Raises:
        DataMissingError: ``source="full"`` without the files (and without ``download=True``), naming the
            directory, the files and the URL.
        ValueError: an unknown split or source, or corrupt IDX files.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    folder = mnist_dir(data_dir)
    have_full = all((folder / name).is_file() for name in MNIST_FILES)
    if source == "full" or (source == "auto" and (have_full or download)):
        if download and not have_full:
            download_mnist(data_dir)
        digits = _load_full(split, folder)
    else:
        digits = _load_embedded(split)
    if source == "auto" and digits.source not in _announced:
        _announced.add(digits.source)
        where = f"the full official set in {folder}" if digits.source == "full" else \
            "the embedded 5,000-digit subset (pass source='full' with download=True for the official set)"
        log.info("MNIST: using %s", where)
    return digits


def download_mnist(data_dir: str | os.PathLike | None = None, *, timeout: float = 30.0) -> Path:
    """Download the four official IDX files to ``<data_dir>/mnist`` (SHA-256 and MD5 checked); return that folder."""
    folder = mnist_dir(data_dir)
    for name, digests in MNIST_FILES.items():
        if not (folder / name).is_file():
            download(MNIST_URL + name, folder / name, digests=digests, timeout=timeout)
    return folder


@functools.lru_cache(maxsize=None)
def _load_embedded(split: str) -> DigitSet:
    with resources.files("fernn.envs").joinpath("data/mnist_5k.npz").open("rb") as fh:
        data = np.load(fh, allow_pickle=False)
        images, labels = data[f"{split}_images"], data[f"{split}_labels"]
    images.setflags(write=False)  # shared by every caller (cached)
    labels.setflags(write=False)
    return DigitSet(images, labels, "embedded", split)


def _load_full(split: str, folder: Path) -> DigitSet:
    missing = [name for name in MNIST_FILES if not (folder / name).is_file()]
    if missing:
        raise DataMissingError(
            f"full MNIST not found in {folder}: missing {', '.join(missing)}. Get the official files from "
            f"{MNIST_URL} (pass download=True, or --download on the command line), set FERNN_DATA or data_dir "
            "to the folder holding a 'mnist' directory with them, or use source='embedded'")
    image_file, label_file = _SPLIT_FILES[split]
    images = _read_idx(folder / image_file, magic=2051)
    labels = _read_idx(folder / label_file, magic=2049)
    if images.shape[0] != labels.shape[0] or images.shape[1:] != (28, 28):
        raise ValueError(f"corrupt MNIST files in {folder}: {images.shape[0]} images of shape {images.shape[1:]} "
                         f"but {labels.shape[0]} labels; delete them and download again")
    return DigitSet(images, labels, "full", split)


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Read a gzipped IDX file of unsigned bytes (MNIST's format)."""
    try:
        with gzip.open(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as error:
        raise ValueError(f"corrupt MNIST file {path} ({error}); delete it and download again") from error
    header = int.from_bytes(data[:4], "big")
    if header != magic:
        raise ValueError(f"corrupt MNIST file {path}: IDX magic number {header}, expected {magic}; "
                         "delete it and download again")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"corrupt MNIST file {path}: {body.size} bytes for shape {shape}; delete it and download again")
    return body.reshape(shape)
