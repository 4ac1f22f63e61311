"""Files written whole or not at all: :func:`atomic_write` (temporary file + rename), used for every file the
package writes (checkpoints, configs, metrics, datasets, caches, figures).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def _umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: how old a temporary file of an interrupted write must be before a later write beside it removes it
STALE_SECONDS = 600


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it onto ``path``.

    The temporary file keeps ``path``'s suffix (so ``np.save`` does not append one) and gets the permissions
    a plain ``open`` would give (``mkstemp`` makes it owner-only). A temporary file that a killed write of the same
    path left behind (older than :data:`STALE_SECONDS`) is removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(path: Path) -> None:
    """Remove the temporary files that killed :func:`atomic_write` calls of ``path`` left (the ones older than
    :data:`STALE_SECONDS`: a younger one may belong to a write in progress in another process)."""
    import time

    now = time.time()
    for stale in Path(path).parent.glob(f".{Path(path).stem}.*.tmp{Path(path).suffix}"):
        try:
            if now - stale.lstat().st_mtime > STALE_SECONDS and not stale.is_symlink():
                stale.unlink()
        except OSError:
            pass
