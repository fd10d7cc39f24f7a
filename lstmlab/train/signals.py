"""SIGTERM/SIGINT as a flag the training loop checks after every step (it then saves a checkpoint and
raises :class:`lstmlab.train.hooks.Preempted`); the previous handlers are restored on exit.

With several processes SIGTERM is left to JAX's preemption service (see
:func:`lstmlab.train.distributed.stop_signal`), and SIGINT is passed on to it as a SIGTERM.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import jax


class StopSignals:
    """Context manager; ``signal`` is the number of the signal received, or None."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        several = jax.process_count() > 1
        for sig in (signal.SIGINT,) if several else (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._forward if several else self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame) -> None:
        self.signal = signum

    def _forward(self, signum, frame) -> None:
        self.signal = signum
        os.kill(os.getpid(), signal.SIGTERM)

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
