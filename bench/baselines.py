"""The raw limits every figure is compared to: gRPC echo, pyjwt decode, S3 put_object, PostgreSQL insert."""

from __future__ import annotations

import io
import os
import threading
import uuid

import grpc
import jwt
from dvc.diagnostics.v1 import echo_pb2, echo_pb2_grpc
from minio import Minio
from sqlalchemy import text

from bench.measure import per_call_seconds, throughput
from bench.report import Report
from bench.servers import server_process
from servicekit import auth
from servicekit.db import make_engine
from servicekit.interceptors import AuthInterceptor
from servicekit.s3 import drop_bucket, ensure_bucket, make_client
from servicekit.testing import LocalTokenIssuer, fresh_postgres_url

AUDIENCE = "dvc-payments"
DOCUMENT_BYTES = 100 * 1024


class _Metadata:
    """The slice of a ServicerContext the auth interceptor reads."""

    def __init__(self, token: str) -> None:
        self._metadata = (("authorization", f"Bearer {token}"),)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata


def s3_client() -> Minio:
    return make_client(os.environ["DVC_TEST_S3_ENDPOINT"], os.environ["DVC_TEST_S3_ACCESS_KEY"],
                       os.environ["DVC_TEST_S3_SECRET_KEY"])


def _without_memo(issuer: LocalTokenIssuer) -> auth.TokenVerifier:
    keys = auth.JwksCache(issuer.jwks, min_refetch_seconds=0.0)
    revocations = auth.RevocationList(lambda: {"revoked_jtis": []}, refresh_seconds=0.0)
    return auth.TokenVerifier(keys, issuer=issuer.issuer, audience=AUDIENCE, revocations=revocations, memo_size=0)


def run(report: Report) -> None:
    with server_process("bench.servers:start_echo_stack") as info:
        channel = grpc.insecure_channel(f"127.0.0.1:{info['grpc_port']}")
        stub = echo_pb2_grpc.EchoServiceStub(channel)
        request = echo_pb2.EchoRequest(message="x" * 64)
        echo = throughput(lambda _i: stub.Echo(request, timeout=5), seconds=report.seconds)
        report.raw_limit("raw: bare gRPC echo (same server stack)", echo.per_second, "calls/s",
                         p50_ms=round(echo.p50_ms, 2), p99_ms=round(echo.p99_ms, 2))
        channel.close()

    issuer = LocalTokenIssuer()
    token = issuer.mint("001099012345", audience=AUDIENCE, scopes=("payments.create",), agency="HCM")
    public_key = issuer.private_key.public_key()
    raw = per_call_seconds(lambda: jwt.decode(token, public_key, algorithms=["ES256"], audience=AUDIENCE,
                                              issuer=issuer.issuer))
    report.raw_limit("raw: pyjwt decode (ES256)", raw * 1e6, "µs/call")
    context = _Metadata(token)
    method = "/dvc.payments.v1.PaymentService/CreatePayment"
    # The full check (what a token seen for the first time costs) is the figure the target is about; the memo
    # that skips the signature for a repeated token is reported beside it.
    full = AuthInterceptor(_without_memo(issuer))
    inside = per_call_seconds(lambda: full._authenticate(method, context))
    report.compare("token verification in the service interceptor", inside * 1e6, "µs/call",
                   baseline="raw: pyjwt decode (ES256)", higher_is_better=False, ratio_target=1.5)
    remembered = AuthInterceptor(issuer.verifier(AUDIENCE))
    repeated = per_call_seconds(lambda: remembered._authenticate(method, context))
    report.compare("token verification, repeated token (memo)", repeated * 1e6, "µs/call",
                   baseline="raw: pyjwt decode (ES256)", higher_is_better=False)

    client = s3_client()
    bucket = f"bench{uuid.uuid4().hex[:10]}"
    ensure_bucket(client, bucket, endpoint_setting="DVC_TEST_S3_ENDPOINT", credentials_setting="DVC_TEST_S3_SECRET_KEY")
    payload = os.urandom(DOCUMENT_BYTES)
    put = throughput(lambda i: client.put_object(bucket, f"raw/{i}", io.BytesIO(payload), len(payload)),
                     threads=8, seconds=report.seconds)
    report.raw_limit("raw: minio put_object 100 KB", put.per_second, "puts/s", p99_ms=round(put.p99_ms, 2))
    drop_bucket(client, bucket)  # thousands of 100 KB objects a run would otherwise fill the dev S3 server

    engine = make_engine(fresh_postgres_url("bench_raw"), pool_size=16)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE raw_insert (id bigserial PRIMARY KEY, body text NOT NULL)"))
    local = threading.local()

    def insert(_i: int) -> None:
        connection = getattr(local, "connection", None)
        if connection is None:
            connection = local.connection = engine.raw_connection()
        cursor = connection.cursor()
        cursor.execute("INSERT INTO raw_insert (body) VALUES (%s)", ("x" * 200,))
        connection.commit()
        cursor.close()

    inserts = throughput(insert, threads=8, seconds=report.seconds)
    report.raw_limit("raw: PostgreSQL insert transaction", inserts.per_second, "tx/s", p99_ms=round(inserts.p99_ms, 2))
    engine.dispose()
