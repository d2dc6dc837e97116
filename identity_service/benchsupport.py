"""What the IntrospectToken benchmark needs: the real service started in this process, and fresh tokens."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from identity_service.bootstrap import handlers_of, start_identity
from identity_service.config import IdentitySettings
from identity_service.domain.clients import AUTH_CLIENT_SECRET, Registration
from identity_service.domain.scopes import ADMIN_SCOPE, AUDIENCE_PAYMENTS
from identity_service.service_layer.handlers import ClientTokenRequest
from servicekit.auth import KIND_CLIENT, Principal
from servicekit.config import PlatformSettings

BENCH_CLIENT_ID = "bench-provincial-system"


def start_for_bench(database_url: str) -> tuple[int, Callable[[], str], Callable[[], None]]:
    """Start identity (gRPC on a free port, migrations applied) on ``database_url``; returns the gRPC port,
    a function minting a fresh access token through the real client-credentials path, and ``stop``."""
    settings = IdentitySettings(database_url=database_url, metrics_port=-1, seed_dev_clients=False)
    running = start_identity(settings, PlatformSettings())
    handlers = handlers_of(running)
    admin = Principal(subject="bench-admin", kind=KIND_CLIENT, scopes=frozenset({ADMIN_SCOPE}))
    registered = handlers.register_client(admin, Registration(
        BENCH_CLIENT_ID, "benchmark client", "HCM", ("payments.create", "payments.read"), AUTH_CLIENT_SECRET, None),
        idempotency_key="")
    request = ClientTokenRequest(client_id=BENCH_CLIENT_ID, audience=AUDIENCE_PAYMENTS,
                                 client_secret=registered.secret)

    first = handlers.issue_client_token(request)   # the real path once (argon2id costs ~30 ms on purpose)

    def mint_token() -> str:
        # Then the same token with a new jti, signed by the same key ring: thousands of distinct tokens in seconds.
        return handlers._mint(subject=BENCH_CLIENT_ID, kind=KIND_CLIENT, audience=AUDIENCE_PAYMENTS,
                              scopes=first.scopes, agency="HCM", client_id=BENCH_CLIENT_ID).access_token

    assert running.grpc is not None
    return running.grpc.port, mint_token, running.stop


def bench_server(database_url: str, tokens: int = 50) -> dict[str, Any]:
    """The same, shaped for ``bench.servers.server_process`` (the server in its own process): ``info`` carries
    the port and ``tokens`` pre-minted access tokens, since a function cannot cross the process boundary."""
    port, mint, stop = start_for_bench(database_url)
    return {"info": {"grpc_port": port, "tokens": [mint() for _ in range(tokens)]}, "stop": stop}
