"""Identity hot path: IntrospectToken against the bare echo of the same stack, for tokens seen for the first time
(signature verified) and for tokens already verified (the memo), reported apart."""

from __future__ import annotations

import grpc
from dvc.identity.v1 import identity_pb2, identity_pb2_grpc

from bench.measure import throughput
from bench.report import Report
from bench.servers import server_process
from servicekit.testing import fresh_postgres_url

# More distinct tokens than one measurement makes calls, so each call of the first figure verifies a signature.
TOKENS = 40_000
REPEATED = 50


def run(report: Report) -> None:
    with server_process("identity_service.benchsupport:bench_server", database_url=fresh_postgres_url("bench_id"),
                        tokens=TOKENS) as info:
        channel = grpc.insecure_channel(f"127.0.0.1:{info['grpc_port']}")
        stub = identity_pb2_grpc.IdentityServiceStub(channel)
        tokens = info["tokens"]

        def introspect(token: str) -> None:
            answer = stub.IntrospectToken(identity_pb2.IntrospectTokenRequest(token=token), timeout=5)
            if not answer.active:
                raise RuntimeError("a valid token was reported inactive")

        def first_sight(i: int) -> None:
            if i >= len(tokens):
                raise RuntimeError("ran out of fresh tokens: raise TOKENS")
            introspect(tokens[i])

        fresh = throughput(first_sight, seconds=report.seconds)
        report.compare("IntrospectToken, new token (signature and revocation checked)", fresh.per_second, "calls/s",
                       baseline="raw: bare gRPC echo (same server stack)", ratio_target=0.5,
                       p50_ms=round(fresh.p50_ms, 2), p99_ms=round(fresh.p99_ms, 2), errors=fresh.errors)
        repeated = throughput(lambda i: introspect(tokens[i % REPEATED]), seconds=report.seconds)
        report.compare("IntrospectToken, token seen before (memo; revocation checked)", repeated.per_second,
                       "calls/s", baseline="raw: bare gRPC echo (same server stack)",
                       p50_ms=round(repeated.p50_ms, 2), p99_ms=round(repeated.p99_ms, 2), errors=repeated.errors)
        channel.close()
