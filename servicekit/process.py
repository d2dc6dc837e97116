"""A service process: `serve` (everything), `serve-grpc`, `serve-http`, `worker` and `migrate` commands."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.engine import Engine

from servicekit import auth
from servicekit.config import PlatformSettings, ServiceSettings
from servicekit.db import check_database, run_migrations
from servicekit.grpc_server import RunningServer, ServiceRegistration, start_server, wait_for_termination
from servicekit.health import Probe, ReadinessWatch, database_probe, install_http_probes
from servicekit.http_edge import RunningHttp, start_http
from servicekit.interceptors import standard_interceptors
from servicekit.logs import configure_logging
from servicekit.metrics import start_metrics
from servicekit.settings import SettingsError, StartupError, env_name, load_settings

log = logging.getLogger("dvc.process")


class BackgroundWorker(Protocol):
    """A loop the service runs beside its servers (outbox dispatch, expiry sweeps); stops on request."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class Components:
    """What a service's bootstrap hands to the process: servicers, HTTP app, workers, public RPCs."""

    registrations: list[ServiceRegistration]
    http_app: Any = None
    workers: list[BackgroundWorker] = field(default_factory=list)
    public_methods: frozenset[str] = frozenset()
    on_stop: list[Callable[[], None]] = field(default_factory=list)
    # Set-ups for the HTTP app that run only in a process that serves HTTP (the citizen's pages need their
    # session keys there and nowhere else); each returns what closes it, or None.
    http_mounts: list[Callable[[], Callable[[], None] | None]] = field(default_factory=list)
    # Dependencies beyond the database (which every service has) that readiness waits for, e.g. object storage.
    readiness_checks: dict[str, Probe] = field(default_factory=dict)


@dataclass
class ServiceSpec:
    """How to run one service: its name, settings, migrations and how to build its components."""

    name: str
    prefix: str
    audience: str
    settings_cls: type[ServiceSettings]
    migrations_dir: Path
    build: Callable[[Any, PlatformSettings, Engine, auth.TokenVerifier | None], Components]
    check_dependencies: Callable[[Any], None] = lambda settings: None

    def setting(self, field_name: str) -> str:
        return env_name(self.prefix, field_name)

    @property
    def version_table(self) -> str:
        return f"alembic_version_{self.name}"


@dataclass
class RunningService:
    """A service started in this process (by `serve` or by tests)."""

    grpc: RunningServer | None
    http: RunningHttp | None
    metrics: RunningHttp | None
    components: Components
    engine: Engine
    readiness: ReadinessWatch | None = None

    def stop(self, grace_seconds: float = 2.0) -> None:
        if self.readiness:
            self.readiness.stop()  # first, or it could say SERVING again after the drain said NOT_SERVING
        if self.grpc:
            self.grpc.drain(grace_seconds)
        for worker in self.components.workers:
            worker.stop()
        if self.http:
            self.http.stop()
        if self.metrics:
            self.metrics.stop()
        for callback in self.components.on_stop:
            callback()
        self.engine.dispose()


def load(spec: ServiceSpec, environ: dict[str, str] | None = None) -> tuple[Any, PlatformSettings]:
    settings = load_settings(spec.settings_cls, spec.prefix, environ)
    if "{service}" in settings.database_url:
        settings = dataclasses.replace(settings, database_url=settings.database_url.format(service=spec.name))
    return settings, load_settings(PlatformSettings, "DVC", environ)


def start(spec: ServiceSpec, settings: Any, platform: PlatformSettings, *, grpc_server: bool = True,
          http: bool = True, workers: bool = True, verifier: auth.TokenVerifier | None = None) -> RunningService:
    """Check dependencies, migrate if asked, and start the chosen parts; raises StartupError on bad config."""
    engine = check_database(settings.database_url, spec.setting("database_url"))
    if settings.auto_migrate:
        run_migrations(engine, spec.migrations_dir, spec.version_table)
    spec.check_dependencies(settings)
    if verifier is None:
        verifier = auth.verifier_from_settings(platform, spec.audience)
    components = spec.build(settings, platform, engine, verifier)
    checks = {"database": database_probe(engine), **components.readiness_checks}
    running_grpc = None
    if grpc_server:
        running_grpc = start_server(components.registrations, host=settings.bind_host, port=settings.grpc_port,
                                    interceptors=standard_interceptors(verifier, components.public_methods),
                                    max_workers=settings.grpc_workers, port_setting=spec.setting("grpc_port"))
    readiness = None
    if running_grpc is not None:
        readiness = ReadinessWatch(checks, running_grpc.set_serving)
        readiness.start()
    running_http = None
    if http and components.http_app is not None:
        install_http_probes(components.http_app, checks)
        for mount in components.http_mounts:
            close = mount()
            if close is not None:
                components.on_stop.append(close)
        running_http = start_http(components.http_app, host=settings.bind_host, port=settings.http_port,
                                  port_setting=spec.setting("http_port"), name=f"{spec.name}-http")
    metrics = start_metrics(settings.bind_host, settings.metrics_port, spec.setting("metrics_port"))
    if workers:
        for worker in components.workers:
            worker.start()
    return RunningService(running_grpc, running_http, metrics, components, engine, readiness)


def main(spec: ServiceSpec, argv: Sequence[str] | None = None) -> None:
    """Command-line entry of ``python -m <service>``."""
    parser = argparse.ArgumentParser(prog=f"python -m {spec.name}_service")
    parser.add_argument("command", nargs="?", default="serve",
                        choices=["serve", "serve-grpc", "serve-http", "worker", "migrate"])
    command = parser.parse_args(argv).command
    try:
        settings, platform = load(spec)
        configure_logging(settings.log_level)
        if command == "migrate":
            engine = check_database(settings.database_url, spec.setting("database_url"))
            run_migrations(engine, spec.migrations_dir, spec.version_table)
            print(f"{spec.name}: schema is at head")
            return
        running = start(spec, settings, platform, grpc_server=command in ("serve", "serve-grpc"),
                        http=command in ("serve", "serve-http"), workers=command in ("serve", "worker"))
    except (StartupError, SettingsError) as error:
        message = str(error) if isinstance(error, StartupError) else f"start-up failed: bad setting {error}"
        print(f"{spec.name}: {message}", file=sys.stderr)
        sys.exit(2)
    log.info("started", extra={"service": spec.name,
                               "grpc_port": running.grpc.port if running.grpc else None,
                               "http_port": running.http.port if running.http else None,
                               "metrics_port": running.metrics.port if running.metrics else None})
    wait_for_termination([lambda: running.stop(settings.drain_seconds)])
