"""`make run`: start the whole platform and its sandboxes on embedded defaults, wait for SERVING, stop on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from servicekit.parent_watch import terminate_with_parent

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".data" / "run"
sys.path.insert(0, str(ROOT / "scripts"))

import devservers  # noqa: E402 - the server script lives beside the Makefile, not in a package

S3 = devservers.PROFILES["run"]
START_TIMEOUT_SECONDS = 60


@dataclass
class Managed:
    """One child process of the platform."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    grpc_port: int | None = None
    http_port: int | None = None
    process: subprocess.Popen[bytes] | None = None
    restarted: bool = False


def platform_env() -> dict[str, str]:
    """The environment every service shares: identity's addresses and the local S3 server."""
    return {
        "DVC_JWT_ISSUER": "http://127.0.0.1:8081",
        "DVC_JWKS_URL": "http://127.0.0.1:8081/jwks.json",
        "DVC_REVOCATIONS_URL": "http://127.0.0.1:8081/revocations.json",
        "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / '.gen'}",
        "PYTHONUNBUFFERED": "1",
    }


def service(name: str, grpc_port: int, http_port: int, metrics_port: int, database_url: str = "",
            **extra: str) -> Managed:
    prefix = name.upper()
    env = {f"{prefix}_GRPC_PORT": str(grpc_port), f"{prefix}_HTTP_PORT": str(http_port),
           f"{prefix}_METRICS_PORT": str(metrics_port),
           f"{prefix}_DATABASE_URL": database_url or f"sqlite:///{DATA / (name + '.sqlite3')}", **extra}
    return Managed(name, [sys.executable, "-m", f"{name}_service", "serve"], env, grpc_port, http_port)


def processes(database_urls: Mapping[str, str] | None = None, s3_endpoint: str = "",
              service_env: Mapping[str, Mapping[str, str]] | None = None) -> list[Managed]:
    """Everything `make run` starts, sandboxes first so the services find their counterparts.

    `make run` calls it bare (SQLite files under .data/run, the run profile's S3). The load test passes
    ``database_urls`` by service name ("identity", "wallet", "payment"), its own ``s3_endpoint`` and extra
    ``service_env`` by service name, so both start the very same platform."""
    urls = database_urls or {}
    extra = service_env or {}
    return [
        Managed("vneid-sandbox", [sys.executable, "-m", "identity_service.sandbox", "--provider", "vneid",
                                  "--port", "8091"], http_port=8091),
        Managed("agency-idp-sandbox", [sys.executable, "-m", "identity_service.sandbox", "--provider", "agency",
                                       "--port", "8092"], http_port=8092),
        Managed("provincial-system", [sys.executable, "-m", "payment_service.sandbox.provincial_system",
                                      "--port", "8090"], http_port=8090),
        Managed("bank-sandboxes", [sys.executable, "-m", "payment_service.sandbox",
                                   "--notify-url-base", "http://127.0.0.1:8082/callbacks"], http_port=8101),
        service("identity", 7051, 8081, 9461, urls.get("identity", ""), **extra.get("identity", {})),
        service("wallet", 7053, 8083, 9463, urls.get("wallet", ""),
                WALLET_S3_ENDPOINT=s3_endpoint or f"127.0.0.1:{S3['s3']}",
                WALLET_S3_ACCESS_KEY=devservers.S3_ACCESS_KEY, WALLET_S3_SECRET_KEY=devservers.S3_SECRET_KEY,
                **extra.get("wallet", {})),
        service("payment", 7052, 8082, 9462, urls.get("payment", ""), PAYMENT_WALLET_ADDR="127.0.0.1:7053",
                PAYMENT_IDENTITY_ADDR="127.0.0.1:7051", PAYMENT_PUBLIC_BASE_URL="http://127.0.0.1:8082",
                **extra.get("payment", {})),
    ]


def _healthy(port: int) -> bool:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.RpcError:
            return False
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_all(managed: list[Managed], logs: Path = DATA) -> None:
    logs.mkdir(parents=True, exist_ok=True)
    for item in managed:
        _launch(item, logs)


def _launch(item: Managed, logs: Path) -> None:
    log = open(logs / f"{item.name}.log", "ab")
    item.process = subprocess.Popen(item.argv, cwd=ROOT, env={**os.environ, **platform_env(), **item.env},
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _held_port(log_tail: list[str]) -> bool:
    return any("port in use" in line or "Address already in use" in line for line in log_tail)


def wait_until_serving(managed: list[Managed], started: float, logs: Path = DATA) -> None:
    pending = {item.name: item for item in managed}
    while pending:
        for name, item in list(pending.items()):
            assert item.process is not None
            if item.process.poll() is not None:
                tail = (logs / f"{name}.log").read_text(errors="replace").strip().splitlines()[-3:]
                if _held_port(tail) and not item.restarted:
                    # A port just released (a platform stopped a moment ago, a socket in TIME_WAIT) can refuse
                    # the first bind; one more start settles it. (The ports are below Linux's ephemeral range,
                    # 32768-60999, so no outgoing connection can be sitting on one for long.)
                    item.restarted = True
                    time.sleep(0.5)
                    _launch(item, logs)
                    continue
                raise SystemExit(f"{name} exited during start-up:\n  " + "\n  ".join(tail))
            ready = _healthy(item.grpc_port) if item.grpc_port else _listening(item.http_port or 0)
            if ready:
                del pending[name]
        if time.monotonic() - started > START_TIMEOUT_SECONDS:
            raise SystemExit(f"not SERVING after {START_TIMEOUT_SECONDS}s: {', '.join(pending)} "
                             f"(logs in {logs}/)")
        time.sleep(0.3)


def stop_all(managed: list[Managed], s3_data: Path | None = ROOT / ".data" / "run") -> None:
    """Stop the processes (SIGTERM, then SIGKILL after 15 s) and the S3 server of ``s3_data`` if one is given
    (the load test passes None: its S3 belongs to `scripts/devservers.py --profile load`)."""
    for item in reversed(managed):
        if item.process and item.process.poll() is None:
            item.process.send_signal(signal.SIGTERM)
    for item in reversed(managed):
        if item.process:
            try:
                item.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                item.process.kill()
    if s3_data is not None:
        devservers.stop_s3(s3_data)


def banner(managed: list[Managed], seconds: float) -> str:
    # Imported here: the runtime package must not depend on a service except in this launcher.
    from identity_service.bootstrap import describe_dev_credentials

    lines = [f"DVC platform is SERVING (started in {seconds:.1f}s). Logs: {DATA.relative_to(ROOT)}/*.log", ""]
    for item in managed:
        parts = []
        if item.grpc_port:
            parts.append(f"gRPC 127.0.0.1:{item.grpc_port}")
        if item.http_port:
            parts.append(f"HTTP http://127.0.0.1:{item.http_port}")
        lines.append(f"  {item.name:<20} {'   '.join(parts)}")
    lines += [
        f"  {'s3 (SeaweedFS)':<20} http://127.0.0.1:{S3['s3']}",
        "",
        "Try:",
        "  .venv/bin/python scripts/demo.py            # one fee payment: token, CreatePayment, VietQR scan, SUCCEEDED",
        "  .venv/bin/python -m servicekit.cli services 127.0.0.1:7052",
        "  open http://127.0.0.1:8083/ (citizen wallet, sandbox VNeID login) and http://127.0.0.1:8082/docs/",
        "",
        describe_dev_credentials(),
        "",
        "Ctrl-C stops everything.",
    ]
    return "\n".join(lines)


def main() -> None:
    started = time.monotonic()
    devservers.start_s3(ROOT / ".data" / "run", S3)
    managed = processes()

    def on_terminate(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_terminate)
    # Explicitly: a shell that starts us in the background hands SIGINT over as ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # A SIGTERM sent to make alone (a supervisor, `timeout make run`) kills make but not us: stop with it.
    terminate_with_parent()
    try:
        start_all(managed)
        wait_until_serving(managed, started)
        print(banner(managed, time.monotonic() - started), flush=True)
        while all(item.process is None or item.process.poll() is None for item in managed):
            time.sleep(0.5)
        print("a platform process exited; stopping the platform", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        print("stopping…", flush=True)
        stop_all(managed)
        print("stopped.", flush=True)


if __name__ == "__main__":
    main()
