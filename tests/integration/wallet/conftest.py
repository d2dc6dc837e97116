"""One real wallet per test session: PostgreSQL, its own SeaweedFS bucket, the gRPC server on port 0."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc
import pytest
from dvc.wallet.v1 import wallet_pb2_grpc
from wallet_it_support import WalletApi

from servicekit.config import PlatformSettings
from servicekit.db import make_engine
from servicekit.process import start
from servicekit.s3 import drop_bucket, make_client
from servicekit.testing import LocalTokenIssuer, fresh_postgres_url
from wallet_service.bootstrap import SPEC, WalletSettings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def wallet_settings(postgres_admin_url: str, s3_settings: dict[str, str]) -> WalletSettings:
    return WalletSettings(database_url=fresh_postgres_url("wallet_it"), s3_endpoint=s3_settings["endpoint"],
                          s3_access_key=s3_settings["access_key"], s3_secret_key=s3_settings["secret_key"],
                          s3_bucket=f"wallet-it-{uuid.uuid4().hex[:12]}", metrics_port=-1, log_level="WARNING")


@pytest.fixture(scope="session")
def api(wallet_settings: WalletSettings) -> Iterator[WalletApi]:
    tokens = LocalTokenIssuer()
    running = start(SPEC, wallet_settings, PlatformSettings(), verifier=tokens.verifier("dvc-wallet"))
    assert running.grpc is not None and running.http is not None
    channel = grpc.insecure_channel(f"127.0.0.1:{running.grpc.port}")
    s3 = make_client(wallet_settings.s3_endpoint, wallet_settings.s3_access_key, wallet_settings.s3_secret_key)
    engine = make_engine(wallet_settings.database_url, pool_size=2)
    try:
        yield WalletApi(stub=wallet_pb2_grpc.WalletServiceStub(channel), tokens=tokens, s3=s3,
                        bucket=wallet_settings.s3_bucket, engine=engine, http_url=running.http.url)
    finally:
        channel.close()
        running.stop(1.0)
        engine.dispose()
        drop_bucket(s3, wallet_settings.s3_bucket)
