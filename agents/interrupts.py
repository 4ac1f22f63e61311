"""Ctrl-C as a request to stop at the next safe point: the long loops (supervised training, learning in
imagination) save a checkpoint and return, and the CLI prints the command that resumes the run."""

from __future__ import annotations

import signal
import threading


class StopOnFirstInterrupt:
    """Ctrl-C (SIGINT) during training asks the loop to stop after the current step, instead of raising
    ``KeyboardInterrupt`` wherever the main thread happens to be (inside a checkpoint write, or TensorBoard's
    writer holding its lock, from which ``close()`` would then never return). A second Ctrl-C raises as usual."""

    def __init__(self) -> None:
        self.requested = False
        self.installed = threading.current_thread() is threading.main_thread()
        if self.installed:
            self.previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._request)

    def _request(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def restore(self) -> None:
        if self.installed:
            signal.signal(signal.SIGINT, self.previous if self.previous is not None else signal.default_int_handler)
            self.installed = False
