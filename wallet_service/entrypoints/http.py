"""The wallet's HTTP edge: liveness and readiness probes (citizen pages come later)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue

Probe = Callable[[], None]


def create_app(readiness_checks: Mapping[str, Probe] | None = None) -> Flask:
    """``/healthz`` says the process serves; ``/readyz`` runs each named dependency check (database, object
    storage) and answers 503 naming the ones that fail."""
    app = Flask("wallet_service")
    checks = dict(readiness_checks or {})

    @app.get("/healthz")
    def healthz() -> ResponseReturnValue:
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz() -> ResponseReturnValue:
        failing = {}
        for name, probe in checks.items():
            try:
                probe()
            except Exception as exc:  # noqa: BLE001 - any failure means not ready; the type says which
                failing[name] = type(exc).__name__
        if failing:
            return jsonify(status="unavailable", failing=failing), 503
        return jsonify(status="ready", checks=sorted(checks))

    return app
