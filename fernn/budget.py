"""Memory budgets: estimate what a model or a batch would allocate and refuse, with the figure, what cannot fit.

A request that cannot fit (a velocity grid of a million channels, a batch of 100,000 sequences, a 100,000-px
frame) fails at once with :class:`MemoryBudgetError` saying how much it would need and how much the device has,
instead of running the machine out of memory minutes later.
"""

from __future__ import annotations

import os

import torch
from fernn.errors import FERNNError

GIB = 1 << 30


class MemoryBudgetError(FERNNError, ValueError):
    """A request would need more memory than the device has; the message gives both figures and what to lower."""


def device_memory(device: torch.device | str | None = None) -> int:
    """Bytes of memory of ``device``: a CUDA device's total memory, else the machine's physical memory."""
    device = torch.device("cpu" if device is None else device)
    if device.type == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.get_device_properties(device).total_memory)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # not POSIX: no figure, no check
        return 1 << 62


def check_fits(nbytes: float, what: str, hint: str, device: torch.device | str | None = None) -> None:
    """Raise :class:`MemoryBudgetError` when ``nbytes`` exceed the memory of ``device``.

    Args:
        nbytes: the estimate.
        what: what would allocate it (``"the hidden states of one training step (B x T x V x C x H x W)"``).
        hint: what to lower (``"lower --batch-size, --vmax or --hidden"``).
    """
    available = device_memory(device)
    if nbytes > available:
        raise MemoryBudgetError(f"{what} would need about {nbytes / GIB:,.1f} GiB, more than the "
                                f"{available / GIB:,.1f} GiB of memory of {torch.device(device or 'cpu')}; {hint}")
