"""The Prometheus metrics endpoint every service exposes on its metrics port."""

from __future__ import annotations

from prometheus_client import make_wsgi_app

from servicekit.http_edge import RunningHttp, start_http


def start_metrics(host: str, port: int, port_setting: str) -> RunningHttp | None:
    """Serve /metrics on ``port``; -1 turns metrics off."""
    if port < 0:
        return None
    return start_http(make_wsgi_app(), host=host, port=port, port_setting=port_setting, name="metrics")
