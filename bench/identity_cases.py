"""Identity hot path: IntrospectToken (signature and revocation check) against the bare echo of the same stack."""

from __future__ import annotations

import grpc
from dvc.identity.v1 import identity_pb2, identity_pb2_grpc

from bench.measure import throughput
from bench.report import Report
from bench.servers import server_process
from servicekit.testing import fresh_postgres_url

TOKENS = 50


def run(report: Report) -> None:
    with server_process("identity_service.benchsupport:bench_server", database_url=fresh_postgres_url("bench_id"),
                        tokens=TOKENS) as info:
        channel = grpc.insecure_channel(f"127.0.0.1:{info['grpc_port']}")
        stub = identity_pb2_grpc.IdentityServiceStub(channel)
        tokens = info["tokens"]

        def introspect(i: int) -> None:
            answer = stub.IntrospectToken(identity_pb2.IntrospectTokenRequest(token=tokens[i % len(tokens)]),
                                          timeout=5)
            if not answer.active:
                raise RuntimeError("a valid token was reported inactive")

        measured = throughput(introspect, seconds=report.seconds)
        report.compare("IntrospectToken (revocation check included)", measured.per_second, "calls/s",
                       baseline="raw: bare gRPC echo (same server stack)", ratio_target=0.5,
                       p50_ms=round(measured.p50_ms, 2), p99_ms=round(measured.p99_ms, 2), errors=measured.errors,
                       distinct_tokens=len(tokens))
        channel.close()
