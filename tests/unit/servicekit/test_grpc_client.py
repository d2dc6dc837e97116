"""Channels between services spread their calls over every address the name resolves to."""

from __future__ import annotations

import grpc
from dvc.diagnostics.v1 import echo_pb2, echo_pb2_grpc

from servicekit.echo import EchoServicer
from servicekit.grpc_client import service_channel
from servicekit.grpc_server import ServiceRegistration, start_server


class CountingEcho(EchoServicer):
    def __init__(self) -> None:
        self.calls = 0

    def Echo(self, request: echo_pb2.EchoRequest, context: grpc.ServicerContext) -> echo_pb2.EchoResponse:
        self.calls += 1
        return super().Echo(request, context)


def test_calls_reach_every_replica_behind_the_name() -> None:
    replicas = [CountingEcho(), CountingEcho()]
    servers = [start_server([ServiceRegistration(echo_pb2_grpc.add_EchoServiceServicer_to_server, replica,
                                                 "dvc.diagnostics.v1.EchoService")]) for replica in replicas]
    # Two addresses for one target, as DNS gives for a headless Service with two pods.
    target = "ipv4:" + ",".join(f"127.0.0.1:{server.port}" for server in servers)
    try:
        with service_channel(target) as channel:
            stub = echo_pb2_grpc.EchoServiceStub(channel)
            for _ in range(20):
                stub.Echo(echo_pb2.EchoRequest(message="x"), timeout=5, wait_for_ready=True)
        assert all(replica.calls > 0 for replica in replicas), [replica.calls for replica in replicas]
    finally:
        for server in servers:
            server.drain(0.1)
