"""The wallet's HTTP edge: the Flask app the citizen's pages mount on (servicekit adds the probes)."""

from __future__ import annotations

from flask import Flask


def create_app() -> Flask:
    return Flask("wallet_service")
