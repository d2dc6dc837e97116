"""Start-up: production refusals, keys encrypted at rest, a wrong key-encryption key, a bad providers file,
SQLite for `make run`, and the benchmark starter."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import jwt
import pytest
import requests
from dvc.identity.v1 import identity_pb2 as pb
from dvc.identity.v1 import identity_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp
from identity_support import (
    ADMIN_CLIENT,
    CITIZEN_L2,
    PROVINCE_CLIENT,
    Sandboxes,
    client_token,
    login,
    refused,
    start_service,
    stop_service,
)
from sqlalchemy import create_engine, text

from identity_service.adapters.crypto import KeyDecryptionError, KeyEncryptor
from identity_service.benchsupport import start_for_bench
from identity_service.bootstrap import dev_credentials, start_identity
from identity_service.config import IdentitySettings
from servicekit.config import PlatformSettings
from servicekit.settings import StartupError
from servicekit.testing import fresh_postgres_url

PRODUCTION_KEK = "production-test-key-encryption-key-0123456789"


def test_production_refuses_the_development_key_encryption_key() -> None:
    settings = IdentitySettings(database_url=fresh_postgres_url("identity"), environment="production",
                                metrics_port=-1)
    with pytest.raises(StartupError) as caught:
        start_identity(settings, PlatformSettings())
    assert "IDENTITY_KEY_ENCRYPTION_KEY" in str(caught.value)


def test_production_seeds_no_demo_clients_and_keys_are_encrypted_at_rest(tmp_path: Path,
                                                                        sandboxes: Sandboxes) -> None:
    service = start_service(tmp_path, sandboxes, environment="production", key_encryption_key=PRODUCTION_KEK)
    try:
        assert refused(lambda: client_token(service, PROVINCE_CLIENT, "dvc-payments"),
                       grpc.StatusCode.UNAUTHENTICATED) == "INVALID_CLIENT"
        assert login(service, CITIZEN_L2).subject == CITIZEN_L2  # people still log in
        engine = create_engine(service.settings.database_url)
        with engine.connect() as connection:
            row = connection.execute(text("SELECT kid, private_key_encrypted FROM signing_keys")).first()
        assert row is not None
        kid, sealed = row
        engine.dispose()
        assert b"PRIVATE KEY" not in bytes(sealed)
        assert b"PRIVATE KEY" in KeyEncryptor(PRODUCTION_KEK).decrypt(bytes(sealed), kid)
        with pytest.raises(KeyDecryptionError):
            KeyEncryptor("another-key-encryption-key-of-enough-length").decrypt(bytes(sealed), kid)
    finally:
        stop_service(service)


def test_a_wrong_key_encryption_key_stops_start_up(tmp_path: Path, sandboxes: Sandboxes) -> None:
    first = start_service(tmp_path, sandboxes, key_encryption_key=PRODUCTION_KEK)
    url = first.settings.database_url
    stop_service(first)
    with pytest.raises(StartupError) as caught:
        start_service(tmp_path, sandboxes, database_url=url, key_encryption_key="x" * 40)
    assert "IDENTITY_KEY_ENCRYPTION_KEY" in str(caught.value)


def test_a_bad_providers_file_stops_start_up_naming_the_setting(tmp_path: Path) -> None:
    bad = tmp_path / "providers.yaml"
    bad.write_text("providers:\n  - id: vneid\n    kind: citizen\n    allowed_algorithms: [none]\n")
    settings = IdentitySettings(database_url=fresh_postgres_url("identity"), providers_file=str(bad),
                                metrics_port=-1)
    with pytest.raises(StartupError) as caught:
        start_identity(settings, PlatformSettings())
    assert "IDENTITY_PROVIDERS_FILE" in str(caught.value) and "allowed_algorithms" in str(caught.value)


def test_the_service_runs_on_sqlite_for_make_run(tmp_path: Path, sandboxes: Sandboxes) -> None:
    service = start_service(tmp_path, sandboxes, database_url=f"sqlite:///{tmp_path / 'identity.sqlite3'}")
    try:
        done = login(service, CITIZEN_L2)
        assert done.subject == CITIZEN_L2
        refreshed = service.stub.RefreshToken(pb.RefreshTokenRequest(refresh_token=done.tokens.refresh_token))
        assert refreshed.tokens.access_token
        secret = next(entry["client_secret"] for entry in dev_credentials() if entry["client_id"] == PROVINCE_CLIENT[0])
        assert client_token(service, (PROVINCE_CLIENT[0], secret), "dvc-payments")
    finally:
        stop_service(service)


def test_the_bench_starter_serves_introspection_of_minted_tokens() -> None:
    port, mint, stop = start_for_bench(fresh_postgres_url("identity_bench"))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = identity_pb2_grpc.IdentityServiceStub(channel)
            tokens = [mint(), mint()]
            assert tokens[0] != tokens[1]
            answers = [stub.IntrospectToken(pb.IntrospectTokenRequest(token=token), timeout=5) for token in tokens]
            assert all(answer.active for answer in answers)
            # The bench's tokens are the client token IssueClientToken gives, apart from their ids.
            claims = [{key: value for key, value in jwt.decode(token, options={"verify_signature": False}).items()
                       if key not in ("jti", "iat", "nbf", "exp")} for token in tokens]
            assert claims[0] == claims[1] and claims[0]["agency"] == "HCM" and claims[0]["scope"]
    finally:
        stop()


def test_two_replicas_share_keys_and_the_deny_list(tmp_path: Path, sandboxes: Sandboxes) -> None:
    first = start_service(tmp_path, sandboxes)
    second = start_service(tmp_path, sandboxes, database_url=first.settings.database_url)
    try:
        token = client_token(first, PROVINCE_CLIENT, "dvc-payments")
        assert second.stub.IntrospectToken(pb.IntrospectTokenRequest(token=token)).active
        first.stub.RevokeToken(pb.RevokeTokenRequest(token=token))
        assert refused(lambda: second.stub.IntrospectToken(pb.IntrospectTokenRequest(token=token)),
                       grpc.StatusCode.UNAUTHENTICATED) == "TOKEN_REVOKED"
        admin = (("authorization", f"Bearer {client_token(first, ADMIN_CLIENT, 'dvc-identity')}"),)
        first.stub.RotateSigningKey(pb.RotateSigningKeyRequest(), metadata=admin)
        fresh = client_token(first, PROVINCE_CLIENT, "dvc-payments")
        assert second.stub.IntrospectToken(pb.IntrospectTokenRequest(token=fresh)).active  # a kid it never saw
    finally:
        stop_service(second)
        stop_service(first)


def test_the_sweeper_drops_what_nobody_can_use_and_the_file_sync_drops_removed_providers(
        tmp_path: Path, sandboxes: Sandboxes) -> None:
    service = start_service(tmp_path, sandboxes)
    try:
        admin = (("authorization", f"Bearer {client_token(service, ADMIN_CLIENT, 'dvc-identity')}"),)
        expired = datetime.now(UTC) - timedelta(hours=2)
        service.stub.RevokeToken(pb.RevokeTokenRequest(jti="long-gone", jti_expires_at=_ts(expired)),
                                 metadata=admin)
        service.stub.RevokeToken(pb.RevokeTokenRequest(jti="still-live"), metadata=admin)
        service.handlers.purge_expired()
        engine = create_engine(service.settings.database_url)
        with engine.connect() as connection:
            kept = set(connection.execute(text("SELECT jti FROM revoked_tokens")).scalars())
        assert "long-gone" not in kept and "still-live" in kept
        service.handlers.sync_providers_file([])  # the file now lists no provider
        with engine.connect() as connection:
            remaining = set(connection.execute(text("SELECT provider_id FROM identity_providers")).scalars())
        engine.dispose()
        assert remaining == set()
    finally:
        stop_service(service)


def _ts(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def test_an_unreachable_or_silent_upstream_is_unavailable_within_the_timeout(tmp_path: Path,
                                                                             sandboxes: Sandboxes) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never answers
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()  # nothing listens there any more
    service = start_service(tmp_path, sandboxes, upstream_timeout_seconds=1.0)
    try:
        admin = (("authorization", f"Bearer {client_token(service, ADMIN_CLIENT, 'dvc-identity')}"),)
        for provider_id, port in (("silent-idp", silent.getsockname()[1]), ("gone-idp", closed_port)):
            base = f"http://127.0.0.1:{port}"
            service.stub.RegisterIdentityProvider(pb.RegisterIdentityProviderRequest(provider=pb.IdentityProvider(
                provider_id=provider_id, kind=pb.PROVIDER_KIND_CITIZEN, issuer=base, client_id="dvc-portal",
                discovery_url=f"{base}/.well-known/openid-configuration", allowed_algorithms=["ES256"],
                claim_mapping=pb.ClaimMapping(national_id="so_dinh_danh", level="muc_do_dinh_danh"))),
                metadata=admin)
            started = time.monotonic()
            assert refused(lambda pid=provider_id: service.stub.StartLogin(
                pb.StartLoginRequest(provider_id=pid, redirect_uri="http://127.0.0.1:9/cb"), timeout=10),
                grpc.StatusCode.UNAVAILABLE) == "UPSTREAM_UNAVAILABLE"
            assert time.monotonic() - started < 3
    finally:
        stop_service(service)
        silent.close()


def _env(**extra: str) -> dict[str, str]:
    root = Path(__file__).resolve().parents[3]
    return {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{root / '.gen'}", **extra}


def test_the_sandbox_command_serves_a_provider() -> None:
    process = subprocess.Popen([sys.executable, "-m", "identity_service.sandbox", "--provider", "agency", "--port",
                                "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_env())
    try:
        assert process.stdout is not None
        url = process.stdout.readline().rsplit(" at ", 1)[1].strip()
        document = requests.get(f"{url}/.well-known/openid-configuration", timeout=5).json()
        assert document["issuer"] == url and document["code_challenge_methods_supported"] == ["S256"]
        accounts = requests.get(f"{url}/accounts.json", timeout=5).json()["accounts"]
        assert {"canbo.hcm", "quantri.dvc"} <= {account["username"] for account in accounts}
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_migrate_command_brings_a_database_to_head(tmp_path: Path) -> None:
    database = tmp_path / "identity.sqlite3"
    done = subprocess.run([sys.executable, "-m", "identity_service", "migrate"], capture_output=True, text=True,
                          timeout=60, env=_env(IDENTITY_DATABASE_URL=f"sqlite:///{database}"))
    assert done.returncode == 0, done.stderr
    assert "schema is at head" in done.stdout
    engine = create_engine(f"sqlite:///{database}")
    with engine.connect() as connection:
        tables = set(connection.execute(text("SELECT name FROM sqlite_master WHERE type='table'")).scalars())
    engine.dispose()
    assert {"signing_keys", "revoked_tokens", "refresh_tokens", "delegations", "audit_events"} <= tables
