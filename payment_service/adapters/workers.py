"""Background workers: the outbox dispatcher woken right after commits, and periodic jobs (expiry, sweep)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("dvc.payments.workers")


class WakeUp:
    """In-process notifier: committers call ``notify``; the dispatcher and stream watchers wake immediately
    instead of waiting for their next poll (other replicas' commits are still found by polling)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._generation = 0

    def notify(self) -> None:
        with self._condition:
            self._generation += 1
            self._condition.notify_all()

    def generation(self) -> int:
        with self._condition:
            return self._generation

    def wait(self, seen: int, timeout: float) -> int:
        """Wait until something newer than generation ``seen`` happened or ``timeout`` passed."""
        with self._condition:
            self._condition.wait_for(lambda: self._generation != seen, timeout=timeout)
            return self._generation


class LoopWorker:
    """Runs ``step`` in a thread: again at once while it reports work done, else after a wake-up or ``interval``."""

    def __init__(self, name: str, step: Callable[[], int], interval_seconds: float,
                 wake: WakeUp | None = None) -> None:
        self.name = name
        self._step = step
        self._interval = interval_seconds
        self._wake = wake
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._wake is not None:
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=15)
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            # Read the generation before the round, so a commit during the round triggers another one.
            seen = self._wake.generation() if self._wake else 0
            try:
                done = self._step()
            except Exception:
                log.exception("worker round failed", extra={"worker": self.name})
                done = 0
            if done or self._stopping.is_set():
                continue
            if self._wake is not None:
                self._wake.wait(seen, self._interval)
            else:
                self._stopping.wait(self._interval)
