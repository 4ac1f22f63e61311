"""Lazy import of escnn with one clear error when it is missing."""

from __future__ import annotations

import warnings

INSTALL_HINT = ("escnn is needed for rotation flows but is not installed. Install it without its py3nj "
                "dependency (which needs a Fortran compiler): pip install --no-deps escnn==1.0.11 && "
                "pip install 'fernn-rl[escnn]'  (or run `make setup`)")


def require_escnn():
    """Return ``(escnn.nn, escnn.gspaces)`` or raise ``ImportError`` saying how to install escnn."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*py3nj.*")
            from escnn import gspaces
            from escnn import nn as escnn_nn
    except ImportError as error:
        raise ImportError(INSTALL_HINT) from error
    return escnn_nn, gspaces
