"""Ask Linux to send this process SIGTERM when its parent dies, so a killed `make run` leaves nothing behind."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def terminate_with_parent() -> bool:
    """Arrange SIGTERM on the parent's death; True when armed. A parent already gone (we were re-parented before
    arming) sends it now. Elsewhere than Linux nothing happens: Ctrl-C still reaches the whole process group."""
    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        return False
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)
    return True
