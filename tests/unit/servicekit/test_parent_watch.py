"""A process armed with terminate_with_parent gets SIGTERM when its parent is killed (what `make run` relies on)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CHILD = """
import pathlib, signal, sys, time
from servicekit.parent_watch import terminate_with_parent
marker = pathlib.Path(sys.argv[1])
def on_terminate(*_):
    marker.write_text("terminated")
    sys.exit(0)
signal.signal(signal.SIGTERM, on_terminate)
pathlib.Path(sys.argv[1] + ".armed").write_text(str(terminate_with_parent()))
time.sleep(60)
"""
PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]])
print(child.pid, flush=True)
time.sleep(60)
"""


def _wait_for(path: Path, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_the_child_is_told_to_stop_when_its_parent_is_killed(tmp_path: Path) -> None:
    marker = tmp_path / "child"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD, str(marker)], stdout=subprocess.PIPE,
                              env=env, text=True)
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    try:
        assert _wait_for(Path(f"{marker}.armed"), 20) and Path(f"{marker}.armed").read_text() == "True"
        assert not marker.exists()  # alive and untouched while its parent lives
        parent.send_signal(signal.SIGKILL)  # no chance for the parent to pass anything on
        parent.wait(10)
        assert _wait_for(marker, 10) and marker.read_text() == "terminated"
    finally:
        parent.kill()
        try:
            os.kill(child_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
