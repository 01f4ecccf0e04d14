"""Stopping training cleanly on SIGINT (Ctrl-C) and SIGTERM (what systemd, Docker, Slurm and Spaces send).

While the loop runs, the first such signal is only noted: the loop finishes the optimizer step in progress, saves a
checkpoint (atomically, as every checkpoint) and ends with `Interrupted`, whose exit status is 128 + the signal's
number (130, 143). A signal before the first step, or a second one, ends at once without saving: the checkpoints
already on disk are complete, since every one is renamed into place only when whole.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """Training ended by a signal (a KeyboardInterrupt, so that no `except Exception` on the way swallows it).

    Args:
        signum: The signal.
        message: One line for the user: what was saved, and how to go on.
    """

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.status = 128 + signum


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


class StopSignals:
    """Catch SIGINT and SIGTERM in a `with` block (in the main thread; elsewhere Python cannot, and nothing changes),
    restoring the handlers before it at exit. A signal raises `Interrupted` at once, except while `deferring` (the
    training loop: it has a step to finish and save), where the first one is only noted in `signum`."""

    def __init__(self) -> None:
        self.signum = 0
        self.deferring = False
        self.previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self.previous = {signum: signal.signal(signum, self._handle) for signum in STOP_SIGNALS}
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.deferring and not self.signum:
            self.signum = signum
            return
        again = "a second " if self.signum else ""
        raise Interrupted(signum, f"interrupted by {again}{signal_name(signum)}: stopped at once, nothing more was "
                                  "saved (the checkpoints on disk are complete)")
