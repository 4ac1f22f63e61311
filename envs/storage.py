"""Data directories and resumable checksummed downloads, shared by the data sources.

Downloads follow torchvision's convention: they happen only when asked (``download=True``, the CLI's
``--download``). A download goes to ``<name>.part`` (resumed with an HTTP ``Range`` request when a
previous attempt left one), is checked against its pinned digests (SHA-256, plus MD5 or SHA-1 where those
are the published ones) and is renamed into place only when every digest matches: an interrupted or
tampered download never leaves a file that looks whole.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from fernn.errors import FERNNError

CHUNK = 1 << 20


class DataMissingError(FERNNError, FileNotFoundError):
    """A data set is not on disk (and was not, or could not be, downloaded). The message says where it
    was looked for, which files are expected and how to get them."""


def default_data_dir() -> Path:
    """``$FERNN_DATA`` if set, else ``$XDG_CACHE_HOME/fernn`` (``~/.cache/fernn``)."""
    if os.environ.get("FERNN_DATA"):
        return Path(os.environ["FERNN_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "fernn"


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """The directory a data source uses: ``data_dir`` when given, else :func:`default_data_dir`."""
    if data_dir is not None and not isinstance(data_dir, (str, os.PathLike)):
        raise TypeError(f"data_dir must be a path (str or os.PathLike) or None, got {type(data_dir).__name__}")
    return default_data_dir() if data_dir is None else Path(data_dir).expanduser()


DIGEST_NAMES = {"sha256": "SHA-256", "sha1": "SHA-1", "md5": "MD5"}


def file_digest(path: Path, algorithm: str) -> str:
    """The hex digest of a file (``algorithm``: ``sha256``, ``sha1`` or ``md5``), read in 1 MiB blocks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_digests(path: Path, digests: dict[str, str], what: str) -> None:
    """Raise ``OSError`` unless ``path`` has every digest of ``digests`` (``{"sha256": hex, ...}``)."""
    for algorithm, expected in digests.items():
        if algorithm not in DIGEST_NAMES:
            raise ValueError(f"unknown digest {algorithm!r}; accepted: {', '.join(DIGEST_NAMES)}")
        got = file_digest(path, algorithm)
        if got != expected.lower():
            raise OSError(f"checksum mismatch for {what}: expected {DIGEST_NAMES[algorithm]} {expected}, got {got}")


def download(url: str, destination: Path, *, digests: dict[str, str] | None = None, timeout: float = 30.0,
             progress: Callable[[int, int | None], None] | None = None) -> Path:
    """Download ``url`` to ``destination`` (resumable, checksummed, atomic).

    Args:
        url: http(s) URL.
        destination: final path; ``destination.part`` holds the partial download.
        digests: pinned hex digests, ``{"sha256": ..., "md5": ...}``; a mismatch deletes the download and
            raises ``OSError`` saying so.
        timeout: seconds to wait for the server on connect and on each read.
        progress: called with ``(bytes so far, total or None)`` after each chunk.

    Returns:
        ``destination``. Network failures raise ``OSError`` naming the URL and the cause.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    offset = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            resumed = offset > 0 and response.status == 206
            if not resumed:
                offset = 0
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length is not None else None
            with open(partial, "ab" if resumed else "wb") as fh:
                done = offset
                for block in iter(lambda: response.read(CHUNK), b""):
                    fh.write(block)
                    done += len(block)
                    if progress is not None:
                        progress(done, total)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        raise OSError(f"could not download {url}: {getattr(error, 'reason', error)} (a partial download is kept "
                      f"in {partial} and resumed next time)") from error
    try:
        verify_digests(partial, digests or {}, url)
    except OSError as error:
        partial.unlink()
        raise OSError(f"{error}; the download was deleted, try again (a persistent mismatch means the file at "
                      "that address is not the official one)") from error
    os.replace(partial, destination)
    return destination
