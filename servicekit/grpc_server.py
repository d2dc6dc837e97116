"""Build and run a gRPC server: standard health service, reflection, interceptors, graceful drain, port 0."""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from servicekit.health import LIVENESS_SERVICE
from servicekit.settings import StartupError

log = logging.getLogger("dvc.server")


@dataclass
class ServiceRegistration:
    """One servicer to serve: its generated ``add_*_to_server`` function and its full service name."""

    add_to_server: Callable[[Any, grpc.Server], None]
    servicer: Any
    full_name: str


@dataclass
class RunningServer:
    """A started server, the port it really bound and its health servicer."""

    server: grpc.Server
    port: int
    health: health.HealthServicer
    service_names: list[str] = field(default_factory=list)

    def set_serving(self, serving: bool) -> None:
        """Readiness: the overall ("") and per-service status. The liveness entry is left alone."""
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        self.health.set("", status)
        for name in self.service_names:
            self.health.set(name, status)

    def drain(self, grace_seconds: float) -> None:
        """Say NOT_SERVING so load balancers stop routing, then let in-flight RPCs finish."""
        self.set_serving(False)
        self.server.stop(grace_seconds).wait(grace_seconds + 1)


def start_server(registrations: Sequence[ServiceRegistration], *, host: str = "127.0.0.1", port: int = 0,
                 interceptors: Sequence[grpc.ServerInterceptor] = (), max_workers: int = 32,
                 port_setting: str = "GRPC_PORT") -> RunningServer:
    """Start serving; ``port=0`` binds a free port (tests). A port in use stops start-up naming the setting."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
        interceptors=list(interceptors),
        options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", 32 * 1024 * 1024),
                 ("grpc.max_send_message_length", 32 * 1024 * 1024)],
    )
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = []
    for registration in registrations:
        registration.add_to_server(registration.servicer, server)
        names.append(registration.full_name)
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    address = f"{host}:{port}"
    if port and not _port_free(host, port):
        raise StartupError(port_setting, f"cannot listen for gRPC on {address} (port in use)")
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if bound == 0:
        raise StartupError(port_setting, f"cannot listen for gRPC on {address} (port in use or not allowed)")
    server.start()
    running = RunningServer(server=server, port=bound, health=health_servicer, service_names=names)
    health_servicer.set(LIVENESS_SERVICE, health_pb2.HealthCheckResponse.SERVING)
    running.set_serving(True)
    return running


def _port_free(host: str, port: int) -> bool:
    # Asked first so a busy port gives the operator our one line, not gRPC core's own error output.
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        # SO_REUSEADDR as gRPC itself uses: a restart must not mistake TIME_WAIT leftovers for a listener.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def wait_for_termination(stop_callbacks: Sequence[Callable[[], None]]) -> None:
    """Block until SIGTERM or SIGINT, then run the stop callbacks in order (drain servers, stop workers)."""
    stopping = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("signal received, draining", extra={"signal": signal.Signals(signum).name})
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stopping.wait()
    for callback in stop_callbacks:
        try:
            callback()
        except Exception:
            log.exception("error while stopping")
