"""Readiness follows the dependency checks; liveness does not."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from servicekit.grpc_server import start_server
from servicekit.health import LIVENESS_SERVICE, ReadinessWatch


def test_grpc_readiness_follows_the_checks_while_liveness_stays_serving() -> None:
    server = start_server([])
    database_up = [True]

    def database() -> None:
        if not database_up[0]:
            raise ConnectionError("database unreachable")

    watch = ReadinessWatch({"database": database}, server.set_serving, interval_seconds=3600)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    health = health_pb2_grpc.HealthStub(channel)

    def status(name: str) -> int:
        return health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5).status

    try:
        SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
        assert watch.check_now() and status("") == SERVING
        database_up[0] = False
        assert not watch.check_now()
        # Out of the load balancer, but not restarted: the outage is the database's, not the process's.
        assert (status(""), status(LIVENESS_SERVICE)) == (NOT_SERVING, SERVING)
        database_up[0] = True
        assert watch.check_now() and status("") == SERVING
    finally:
        channel.close()
        server.drain(0.1)


def test_a_change_of_readiness_is_reported_once() -> None:
    changes: list[bool] = []
    failing = [False]

    def probe() -> None:
        if failing[0]:
            raise OSError("down")

    watch = ReadinessWatch({"storage": probe}, changes.append, interval_seconds=3600)
    for state in (False, True, True, False, False):
        failing[0] = state
        watch.check_now()
    assert changes == [False, True]
