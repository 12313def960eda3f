"""Ctrl-C and SIGTERM as requests: the loop finishes its step, saves, and returns.

A second Ctrl-C stops at once (the last checkpoint on disk is still intact: writes are atomic).
"""
from __future__ import annotations

import contextlib
import signal
import threading


class GracefulStop:
    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Until the block ends, SIGTERM raises KeyboardInterrupt as Ctrl-C does, so a stop asked for while a command
    starts up ends it the way a later one does (exit code 130, a message), not with the bare default (143)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt
