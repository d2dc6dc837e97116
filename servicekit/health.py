"""Liveness and readiness: one set of dependency checks behind the HTTP probes and the gRPC health service."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import text
from sqlalchemy.engine import Engine

log = logging.getLogger("dvc.health")

Probe = Callable[[], None]
# The gRPC health entry liveness probes ask for: SERVING while the process runs, whatever its dependencies do,
# so an outage of the database takes pods out of the load balancer without restarting them all.
LIVENESS_SERVICE = "liveness"


def database_probe(engine: Engine) -> Probe:
    """Raises when the database does not answer a trivial query."""

    def probe() -> None:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    return probe


def failing(checks: Mapping[str, Probe]) -> dict[str, str]:
    """The checks that fail now, each with the type of its error (never its message: probes are public)."""
    problems = {}
    for name, probe in checks.items():
        try:
            probe()
        except Exception as exc:  # noqa: BLE001 - any failure means not ready; the type says which
            problems[name] = type(exc).__name__
    return problems


def install_http_probes(app: Flask, checks: Mapping[str, Probe]) -> None:
    """``/healthz``: the process serves. ``/readyz``: every dependency check passes, else 503 naming those that
    fail."""

    @app.get("/healthz")
    def healthz() -> ResponseReturnValue:
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz() -> ResponseReturnValue:
        problems = failing(checks)
        if problems:
            return jsonify(status="unavailable", failing=problems), 503
        return jsonify(status="ready", checks=sorted(checks))


class ReadinessWatch:
    """Runs the checks every ``interval_seconds`` and reports each change of readiness to ``on_change`` (the
    gRPC health status), so gRPC pods leave the load balancer while a dependency is down, as HTTP ones do."""

    def __init__(self, checks: Mapping[str, Probe], on_change: Callable[[bool], None],
                 interval_seconds: float = 5.0) -> None:
        self._checks = dict(checks)
        self._on_change = on_change
        self._interval = interval_seconds
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.ready = True

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="readiness", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def check_now(self) -> bool:
        problems = failing(self._checks)
        ready = not problems
        if ready != self.ready:
            log.warning("readiness changed", extra={"ready": ready, "failing": problems})
            self.ready = ready
            self._on_change(ready)
        return ready

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            self.check_now()
