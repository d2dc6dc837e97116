"""Start-up as an operator meets it: one clear line for bad configuration, and `make run` SERVING within 60 s."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from servicekit import cli

ROOT = Path(__file__).resolve().parents[3]
RUN_PORTS = (8090, 8091, 8092, 8101, 7051, 7052, 7053, 8081, 8082, 8083, 17303)


def service_env(**overrides: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("IDENTITY_", "PAYMENT_", "WALLET_"))}
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{ROOT / '.gen'}"
    env.update(overrides)
    return env


def start_failure(module: str, tmp_path: Path, **overrides: str) -> tuple[int, list[str]]:
    """Run ``python -m module serve`` and return its exit code and the plain-text lines of its stderr (the JSON log
    lines of what ran before the failure, e.g. migrations, are for the log collector, not the operator)."""
    done = subprocess.run([sys.executable, "-m", module, "serve"], cwd=tmp_path, env=service_env(**overrides),
                          capture_output=True, text=True, timeout=60)
    return done.returncode, [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("{")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_database_stops_payment_with_one_line_naming_the_setting(tmp_path):
    code, lines = start_failure("payment_service", tmp_path,
                                PAYMENT_DATABASE_URL=f"postgresql+psycopg://dvc@127.0.0.1:{free_port()}/payment")
    assert code == 2
    assert len(lines) == 1 and "PAYMENT_DATABASE_URL" in lines[0] and "cannot connect" in lines[0]


def test_wrong_s3_credentials_stop_the_wallet_with_one_line_naming_the_setting(tmp_path, s3_settings):
    code, lines = start_failure("wallet_service", tmp_path, WALLET_DATABASE_URL=f"sqlite:///{tmp_path}/w.sqlite3",
                                WALLET_S3_ENDPOINT=s3_settings["endpoint"],
                                WALLET_S3_ACCESS_KEY=s3_settings["access_key"], WALLET_S3_SECRET_KEY="wrong-secret")
    assert code == 2
    assert len(lines) == 1 and "WALLET_S3_" in lines[0] and "credentials" in lines[0]


def test_a_port_in_use_stops_identity_with_one_line_naming_the_setting(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        code, lines = start_failure("identity_service", tmp_path,
                                    IDENTITY_DATABASE_URL=f"sqlite:///{tmp_path}/i.sqlite3",
                                    IDENTITY_GRPC_PORT=str(busy))
    assert code == 2
    assert len(lines) == 1 and "IDENTITY_GRPC_PORT" in lines[0]


def test_make_run_serves_all_three_services_within_a_minute_and_stops_on_ctrl_c():
    busy = [port for port in RUN_PORTS if socket.socket().connect_ex(("127.0.0.1", port)) == 0]
    if busy:
        pytest.fail(f"`make run` ports are in use ({busy}): stop the running platform before the suite")
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "servicekit.devrun"], cwd=ROOT, env=service_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        banner = ""
        while "SERVING" not in banner:
            line = process.stdout.readline()
            assert line, f"make run exited before SERVING: {banner[-2000:]}"
            banner += line
            assert time.monotonic() - started < 60, "not SERVING within 60 s"
        services = {name for port in (7051, 7052, 7053) for name in cli.list_services(f"127.0.0.1:{port}")}
        assert {"dvc.identity.v1.IdentityService", "dvc.payments.v1.PaymentService",
                "dvc.wallet.v1.WalletService"} <= services
        assert all(cli.health(f"127.0.0.1:{port}") == "SERVING" for port in (7051, 7052, 7053))
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    assert "stopped." in rest
    assert not [port for port in RUN_PORTS if socket.socket().connect_ex(("127.0.0.1", port)) == 0]
