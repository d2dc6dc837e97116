"""The pages' identity client reads token expiries as the instants identity sent, whatever the server's zone."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from dvc.identity.v1 import identity_pb2 as pb
from google.protobuf.timestamp_pb2 import Timestamp

from servicekit.web.login import GrpcIdentity

EXPIRES_AT = 1_800_000_000  # 2027-01-15 08:00:00 UTC


def refresh_token(request: pb.RefreshTokenRequest, context: grpc.ServicerContext) -> pb.RefreshTokenResponse:
    return pb.RefreshTokenResponse(tokens=pb.TokenSet(access_token="access", refresh_token="next-refresh",
                                                      expires_at=Timestamp(seconds=EXPIRES_AT)))


@pytest.fixture
def identity() -> Iterator[GrpcIdentity]:
    """An identity service that only answers RefreshToken."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("dvc.identity.v1.IdentityService", {
        "RefreshToken": grpc.unary_unary_rpc_method_handler(
            refresh_token, request_deserializer=pb.RefreshTokenRequest.FromString,
            response_serializer=pb.RefreshTokenResponse.SerializeToString)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    client = GrpcIdentity(f"127.0.0.1:{port}")
    yield client
    client.close()
    server.stop(None)


@pytest.fixture
def local_zone_ahead_of_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "ICT-7")  # POSIX form of UTC+7 (Vietnam), needs no tz database
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_token_expiry_is_the_instant_identity_sent_outside_utc(local_zone_ahead_of_utc: None,
                                                                 identity: GrpcIdentity) -> None:
    assert time.localtime(EXPIRES_AT).tm_gmtoff == 7 * 3600  # the zone really is in force
    tokens = identity.refresh("refresh", "dvc-wallet")
    assert tokens.access_expires_at == EXPIRES_AT
