"""Lazy import of escnn with one clear error when it is missing."""

from __future__ import annotations

import warnings

from fernn._extras import MissingExtraError

INSTALL_HINT = ("rotation flows need escnn and its requirements (the [rotation] extra): pip install '.[rotation]' in a "
                "clone of fernn-rl (or 'fernn-rl[rotation]' from an index that has it) && pip install --no-deps "
                "escnn==1.0.11  (escnn without its py3nj dependency, which needs a Fortran compiler and serves only "
                "SO(3); or run `make setup`)")


def require_escnn():
    """Return ``(escnn.nn, escnn.gspaces)`` or raise ``ImportError`` saying how to install escnn."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*py3nj.*")
            from escnn import gspaces
            from escnn import nn as escnn_nn
    except ImportError as error:
        raise MissingExtraError(f"{INSTALL_HINT}; the import failed with: {error}") from error
    return escnn_nn, gspaces
