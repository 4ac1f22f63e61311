"""One base class for every error this package raises on purpose: :class:`FERNNError`.

Each concrete error also derives from the built-in exception it is a case of (``ValueError``,
``FileExistsError``, ``ImportError``...), so code that catches those keeps working; a caller that wants "any
clear error of fernn-rl, one line" catches :class:`FERNNError` (the command line does, in one place).
"""

from __future__ import annotations


class FERNNError(Exception):
    """A clear, expected error: bad input, missing data or extras, a file that cannot be used. Its message is one
    line naming what was wrong and what is accepted."""
