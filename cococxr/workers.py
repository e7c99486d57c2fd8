"""Worker processes that die with their parent, and a SIGTERM that cleans up like Ctrl-C.

A worker of a killed parent would otherwise live on, blocked on its task queue, and a
SIGTERM would end the process without running the ``finally`` blocks that delete
temporary files (:mod:`cococxr.atomic`).
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1
_GRACE_SECONDS = 2.0


class Terminated(KeyboardInterrupt):
    """Raised by the SIGTERM handler: unwinds like Ctrl-C, so temporary files are removed."""


def _raise_terminated(signum, frame):
    raise Terminated(f"signal {signum}")


def _exit_on_term(signum, frame):
    raise SystemExit(128 + signum)  # unwinds (temporary files removed); multiprocessing exits quietly


def terminate_like_interrupt():
    """Make SIGTERM raise :class:`Terminated`; returns the previous handler (None off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


def die_with_parent(parent_pid: int) -> None:
    """Initializer of a worker process: leave when the parent does.

    The worker ignores Ctrl-C (the parent stops it), turns SIGTERM into :class:`Terminated`
    so its temporary files are removed (see below), asks Linux to send it SIGTERM when the parent dies
    (``prctl(PR_SET_PDEATHSIG)``), and, on any system, a watchdog thread ends it when its
    parent is gone and the signal did not (another parent id, checked twice a second).
    SIGTERM raises ``SystemExit`` in a worker, which multiprocessing ends without a traceback.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_on_term)
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):  # no libc prctl: the watchdog below still works
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True, name="parent-watchdog").start()


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)  # unwind and clean up first
    time.sleep(_GRACE_SECONDS)
    os._exit(1)


__all__ = ["Terminated", "die_with_parent", "terminate_like_interrupt"]
