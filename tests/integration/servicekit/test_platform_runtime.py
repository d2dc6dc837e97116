"""The shared runtime against real servers: PostgreSQL, SeaweedFS S3, and a real gRPC server on port 0."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
import urllib.request
import uuid

import grpc
import pytest
from dvc.diagnostics.v1 import echo_pb2, echo_pb2_grpc
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status
from minio.error import S3Error
from sqlalchemy import text

from servicekit import auth, errors
from servicekit.db import check_database, create_postgres_database, drop_postgres_databases, make_engine
from servicekit.echo import EchoServicer
from servicekit.grpc_server import ServiceRegistration, start_server
from servicekit.interceptors import standard_interceptors
from servicekit.metrics import start_metrics
from servicekit.s3 import drop_bucket, ensure_bucket, make_client
from servicekit.settings import StartupError
from servicekit.testing import LocalTokenIssuer, bearer, fresh_postgres_url

AUDIENCE = "dvc-diagnostics"


def test_integration_database_is_really_postgresql(postgres_admin_url):
    engine = make_engine(fresh_postgres_url("runtime"))
    with engine.connect() as connection:
        version = connection.execute(text("SHOW server_version")).scalar_one()
    assert engine.dialect.name == "postgresql"
    assert int(str(version).split(".")[0]) >= 13
    engine.dispose()


def test_an_object_round_trips_through_the_s3_api(s3_settings, unique_name):
    client = make_client(s3_settings["endpoint"], s3_settings["access_key"], s3_settings["secret_key"])
    ensure_bucket(client, unique_name, endpoint_setting="S3_ENDPOINT", credentials_setting="S3_ACCESS_KEY")
    payload = b"%PDF-1.7 issued result" * 100
    client.put_object(unique_name, "sha256/abc", io.BytesIO(payload), len(payload))
    response = client.get_object(unique_name, "sha256/abc")
    try:
        assert response.read() == payload
    finally:
        response.close()
        response.release_conn()
    stat = client.stat_object(unique_name, "sha256/abc")
    assert stat.size == len(payload)
    # And it is a real server enforcing signatures, not a permissive fake: a wrong secret is refused.
    impostor = make_client(s3_settings["endpoint"], s3_settings["access_key"], "not-the-secret")
    with pytest.raises(S3Error) as refused:
        impostor.stat_object(unique_name, "sha256/abc")
    assert refused.value.code in ("SignatureDoesNotMatch", "AccessDenied", "InvalidAccessKeyId")
    drop_bucket(client, unique_name)


def test_a_scratch_bucket_is_dropped_with_everything_in_it(s3_settings, unique_name):
    client = make_client(s3_settings["endpoint"], s3_settings["access_key"], s3_settings["secret_key"])
    client.make_bucket(unique_name)
    for name in ("top", "sha256/ab/one", "sha256/cd/two"):  # nested keys: the listing must be recursive
        client.put_object(unique_name, name, io.BytesIO(b"x"), 1)
    drop_bucket(client, unique_name)
    assert not client.bucket_exists(unique_name)
    drop_bucket(client, unique_name)  # already gone: a teardown that runs twice is not an error


def test_wrong_s3_credentials_stop_start_up_naming_the_setting(s3_settings, unique_name):
    client = make_client(s3_settings["endpoint"], s3_settings["access_key"], "not-the-secret")
    with pytest.raises(StartupError) as failure:
        ensure_bucket(client, unique_name, endpoint_setting="WALLET_S3_ENDPOINT",
                      credentials_setting="WALLET_S3_SECRET_KEY")
    assert "WALLET_S3_SECRET_KEY" in str(failure.value)
    assert "\n" not in str(failure.value)


def test_unreachable_database_stops_start_up_naming_the_setting():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free_port = sock.getsockname()[1]
    with pytest.raises(StartupError) as failure:
        check_database(f"postgresql+psycopg://postgres@127.0.0.1:{free_port}/nowhere", "PAYMENT_DATABASE_URL")
    message = str(failure.value)
    assert "PAYMENT_DATABASE_URL" in message and "cannot connect" in message
    assert "\n" not in message


def test_a_port_in_use_stops_start_up_naming_the_setting():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        with pytest.raises(StartupError) as failure:
            start_server([], port=busy, port_setting="IDENTITY_GRPC_PORT")
    assert "IDENTITY_GRPC_PORT" in str(failure.value)


class FailingEcho(echo_pb2_grpc.EchoServiceServicer):
    """Echo that reports domain errors on request, to see how the edge maps them."""

    def Echo(self, request, context):
        principal = auth.current_principal()
        if request.message == "bad":
            raise errors.InvalidArgument("fee lines do not add up", [
                errors.FieldViolation("total_amount", "must equal the sum of fee lines (150000)")],
                reason="TOTAL_MISMATCH")
        if request.message == "boom":
            raise RuntimeError("secret internals")
        return echo_pb2.EchoResponse(message=f"{principal.subject}:{request.message}")


@pytest.fixture
def served():
    issuer = LocalTokenIssuer()
    running = start_server(
        [ServiceRegistration(echo_pb2_grpc.add_EchoServiceServicer_to_server, FailingEcho(),
                             "dvc.diagnostics.v1.EchoService")],
        interceptors=standard_interceptors(issuer.verifier(AUDIENCE)))
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    yield running, channel, issuer
    channel.close()
    running.drain(0.5)


def test_health_says_serving_and_reflection_lists_the_services(served):
    running, channel, _ = served
    health = health_pb2_grpc.HealthStub(channel)
    answer = health.Check(health_pb2.HealthCheckRequest(service="dvc.diagnostics.v1.EchoService"), timeout=5)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
    names = {service.name for reply in replies for service in reply.list_services_response.service}
    assert {"dvc.diagnostics.v1.EchoService", "grpc.health.v1.Health"} <= names
    running.set_serving(False)
    answer = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING


def test_calls_without_a_token_are_unauthenticated_with_a_reason(served):
    _, channel, _ = served
    with pytest.raises(grpc.RpcError) as failure:
        echo_pb2_grpc.EchoServiceStub(channel).Echo(echo_pb2.EchoRequest(message="hi"), timeout=5)
    assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED
    status = rpc_status.from_call(failure.value)
    info = error_details_pb2.ErrorInfo()
    status.details[0].Unpack(info)
    assert info.reason == "MISSING_TOKEN"


def test_domain_errors_arrive_with_field_violations_and_the_request_id_comes_back(served):
    _, channel, issuer = served
    stub = echo_pb2_grpc.EchoServiceStub(channel)
    token = issuer.mint("001099012345", audience=AUDIENCE)
    reply, call = stub.Echo.with_call(echo_pb2.EchoRequest(message="hi"), timeout=5,
                                      metadata=(*bearer(token), ("x-request-id", "req-42")))
    assert reply.message == "001099012345:hi"
    assert ("x-request-id", "req-42") in tuple(call.trailing_metadata())
    with pytest.raises(grpc.RpcError) as failure:
        stub.Echo(echo_pb2.EchoRequest(message="bad"), timeout=5, metadata=bearer(token))
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(failure.value)
    violations = error_details_pb2.BadRequest()
    assert any(detail.Unpack(violations) for detail in status.details)
    assert [(v.field, v.description) for v in violations.field_violations] == [
        ("total_amount", "must equal the sum of fee lines (150000)")]


def test_unexpected_errors_become_internal_without_leaking_details(served, caplog):
    _, channel, issuer = served
    token = issuer.mint("001099012345", audience=AUDIENCE)
    with caplog.at_level(logging.ERROR), pytest.raises(grpc.RpcError) as failure:
        echo_pb2_grpc.EchoServiceStub(channel).Echo(echo_pb2.EchoRequest(message="boom"), timeout=5,
                                                    metadata=(*bearer(token), ("x-request-id", "req-boom")))
    assert failure.value.code() == grpc.StatusCode.INTERNAL
    assert "secret internals" not in failure.value.details()
    assert "req-boom" in failure.value.details()


def test_metrics_count_each_rpc_by_status_code(served):
    _, channel, _issuer = served
    metrics = start_metrics("127.0.0.1", 0, "METRICS_PORT")
    assert metrics is not None
    stub = echo_pb2_grpc.EchoServiceStub(channel)
    with pytest.raises(grpc.RpcError):
        stub.Echo(echo_pb2.EchoRequest(message="x"), timeout=5)

    def unauthenticated_count() -> float:
        body = urllib.request.urlopen(f"{metrics.url}/metrics", timeout=5).read().decode()
        for line in body.splitlines():
            if line.startswith("dvc_grpc_server_handled_total{") and 'grpc_code="UNAUTHENTICATED"' in line \
                    and 'grpc_method="Echo"' in line:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = unauthenticated_count()
    with pytest.raises(grpc.RpcError):
        stub.Echo(echo_pb2.EchoRequest(message="x"), timeout=5)
    assert unauthenticated_count() == before + 1
    metrics.stop()


def test_request_logs_are_json_lines_with_the_request_id(served, capsys):
    from servicekit.logs import configure_logging

    configure_logging("INFO")
    _, channel, issuer = served
    token = issuer.mint("001099012345", audience=AUDIENCE)
    echo_pb2_grpc.EchoServiceStub(channel).Echo(echo_pb2.EchoRequest(message="hi"), timeout=5,
                                                metadata=(*bearer(token), ("x-request-id", "req-log")))
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    rpc_lines = [line for line in lines if line.get("msg") == "rpc" and line.get("request_id") == "req-log"]
    assert rpc_lines and rpc_lines[0]["method"] == "/dvc.diagnostics.v1.EchoService/Echo"
    assert rpc_lines[0]["code"] == "OK"
    logging.getLogger().handlers.clear()


def test_bare_echo_servicer_returns_its_input():
    assert EchoServicer().Echo(echo_pb2.EchoRequest(message="xin chao"), None).message == "xin chao"


def test_the_cli_lists_services_and_calls_an_rpc_from_json(served):
    from servicekit import cli

    running, _, issuer = served
    address = f"127.0.0.1:{running.port}"
    assert "dvc.diagnostics.v1.EchoService" in cli.list_services(address)
    assert cli.health(address) == "SERVING"
    token = issuer.mint("001099012345", audience=AUDIENCE)
    replies = cli.call(address, "dvc.diagnostics.v1.EchoService/Echo", {"message": "xin chao"}, token)
    assert replies == [{"message": "001099012345:xin chao"}]


def test_a_lost_database_connection_is_unavailable_not_internal():
    import sqlalchemy.exc

    class DatabaseDown(echo_pb2_grpc.EchoServiceServicer):
        def Echo(self, request, context):
            raise sqlalchemy.exc.OperationalError("SELECT 1", {}, ConnectionError("server closed the connection"))

    running = start_server([ServiceRegistration(echo_pb2_grpc.add_EchoServiceServicer_to_server, DatabaseDown(),
                                                "dvc.diagnostics.v1.EchoService")],
                           interceptors=standard_interceptors(None, frozenset({"Echo"})))
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel, pytest.raises(grpc.RpcError) as failure:
        echo_pb2_grpc.EchoServiceStub(channel).Echo(echo_pb2.EchoRequest(message="x"), timeout=5)
    running.drain(0.5)
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "retry" in failure.value.details()


def test_a_servicer_that_aborts_itself_keeps_its_status():
    class AbortingEcho(echo_pb2_grpc.EchoServiceServicer):
        def Echo(self, request, context):
            context.abort(grpc.StatusCode.NOT_FOUND, "no such payment")

    running = start_server([ServiceRegistration(echo_pb2_grpc.add_EchoServiceServicer_to_server, AbortingEcho(),
                                                "dvc.diagnostics.v1.EchoService")],
                           interceptors=standard_interceptors(None, frozenset({"Echo"})))
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel, pytest.raises(grpc.RpcError) as failure:
        echo_pb2_grpc.EchoServiceStub(channel).Echo(echo_pb2.EchoRequest(message="x"), timeout=5)
    running.drain(0.5)
    assert (failure.value.code(), failure.value.details()) == (grpc.StatusCode.NOT_FOUND, "no such payment")


def test_test_databases_are_dropped_when_the_process_that_made_them_exits(postgres_admin_url):
    made = subprocess.run(
        [sys.executable, "-c", "from servicekit.testing import fresh_postgres_url; "
                               "from sqlalchemy.engine import make_url; "
                               "print(make_url(fresh_postgres_url('exitcheck')).database)"],
        capture_output=True, text=True, timeout=60, check=True, env=dict(os.environ, PYTHONPATH=".:.gen"))
    name = made.stdout.strip()
    assert name.startswith("exitcheck_")
    engine = make_engine(postgres_admin_url)
    try:
        with engine.connect() as connection:
            left = connection.execute(text("SELECT count(*) FROM pg_database WHERE datname = :name"),
                                      {"name": name}).scalar_one()
    finally:
        engine.dispose()
    assert left == 0


def test_a_database_still_in_use_is_dropped_all_the_same(postgres_admin_url):
    name = f"inuse_{uuid.uuid4().hex[:10]}"
    holder = make_engine(create_postgres_database(postgres_admin_url, name))
    still_open = holder.connect()
    still_open.execute(text("SELECT 1"))   # a test's engine may still hold connections at exit
    drop_postgres_databases(postgres_admin_url, [name])
    still_open.invalidate()   # the server ended it
    holder.dispose()
    admin = make_engine(postgres_admin_url)
    try:
        with admin.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM pg_database WHERE datname = :name"),
                                      {"name": name}).scalar_one() == 0
    finally:
        admin.dispose()
