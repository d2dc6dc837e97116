"""Settings every service has, and the platform-wide ones; services subclass ServiceSettings."""

from __future__ import annotations

from dataclasses import dataclass

from servicekit.settings import setting


@dataclass(frozen=True)
class ServiceSettings:
    """Per-service settings, read with the service's prefix (IDENTITY_, PAYMENT_, WALLET_)."""

    database_url: str = setting("sqlite:///.data/run/{service}.sqlite3",
                                "SQLAlchemy URL of the service's own database; SQLite by default, "
                                "postgresql+psycopg://user:pass@host:5432/db in production", secret=True)
    grpc_port: int = setting(0, "gRPC listen port (0 picks a free port)")
    http_port: int = setting(0, "HTTP edge listen port (0 picks a free port)")
    metrics_port: int = setting(0, "Prometheus metrics port (0 picks a free port, -1 disables)")
    bind_host: str = setting("127.0.0.1", "address the servers bind to (0.0.0.0 in containers)")
    log_level: str = setting("INFO", "log level of the JSON logs")
    grpc_workers: int = setting(12, "gRPC server worker threads; few, because under the interpreter lock more "
                                    "threads only contend (32 -> 12 took CreatePayment from ~360 to ~460/s); "
                                    "raise it for many concurrent long streams (WatchPayments, large uploads)")
    drain_seconds: float = setting(10.0, "grace period for in-flight RPCs on SIGTERM")
    auto_migrate: bool = setting(True, "apply the service's Alembic migrations at start-up "
                                       "(false in Kubernetes, where a Job runs them)")


@dataclass(frozen=True)
class PlatformSettings:
    """Settings shared by all services, read with the DVC_ prefix."""

    jwt_issuer: str = setting("http://127.0.0.1:8081", "issuer (iss) of platform access tokens")
    jwks_url: str = setting("http://127.0.0.1:8081/jwks.json", "where services fetch identity's signing keys")
    revocations_url: str = setting("http://127.0.0.1:8081/revocations.json",
                                   "identity's list of revoked token ids that are not yet expired")
    jwks_refresh_seconds: float = setting(300.0, "how often the cached JWKS and revocation list are refreshed")
    jwks_min_refetch_seconds: float = setting(10.0, "least time between refetches caused by an unknown kid")
    jwt_leeway_seconds: int = setting(30, "clock skew tolerated on exp/nbf/iat (at most 60)")
