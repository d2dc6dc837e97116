"""`python -m loadtests.run --profile smoke|day [--compress N]`: start the platform locally on PostgreSQL and S3,
run Locust headless for the profile, write its HTML/CSV reports and a one-page summary to
artifacts/loadtest/<profile>/, check the invariants, stop everything, and exit non-zero when an SLO breaks or
an invariant fails."""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from loadtests import server_latency, slo
from loadtests.day import DayPlan, plan_for
from loadtests.invariants import Check, run_checks
from loadtests.ledger import DOCUMENT, PAYMENT, REDEEMED, SHARE, read_ledgers
from servicekit import devrun
from servicekit.db import create_postgres_database

ROOT = devrun.ROOT
DATA = ROOT / ".data" / "load"
SERVERS = devrun.devservers.PROFILES["load"]
ADMIN_URL = f"postgresql+psycopg://{devrun.devservers.PG_USER}@127.0.0.1:{SERVERS['pg']}/postgres"
SERVICES = ("identity", "payment", "wallet")
# Ports the platform takes (the same as `make run`, whose processes the load test starts): refuse to start
# when one is busy instead of load-testing somebody else's server.
PLATFORM_PORTS = (7051, 7052, 7053, 8081, 8082, 8083, 8091, 8092, *range(8101, 8112), 9461, 9462, 9463)
DRAIN_SECONDS = 60.0
LOCUST_GRACE_SECONDS = 180.0  # set-up, stop timeout and drain on top of the shape's duration
KILLED = -9  # run_locust's exit code for a Locust it killed at the time limit
MIN_CITIZENS, MAX_CITIZENS, DOSSIERS_PER_CITIZEN = 20, 2000, 20


def citizens_for(plan: DayPlan) -> int:
    """Distinct citizens: each files about DOSSIERS_PER_CITIZEN dossiers over the replayed day, bounded so the
    invariant check (one wallet listing per citizen and issuer) stays short."""
    return int(min(MAX_CITIZENS, max(MIN_CITIZENS, plan.expected_flows()["dossier"] / DOSSIERS_PER_CITIZEN)))


def busy_ports() -> list[int]:
    busy = []
    for port in PLATFORM_PORTS:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                busy.append(port)
    return busy


def start_platform(out: Path) -> list[devrun.Managed]:
    """PostgreSQL and S3 of the load profile, fresh databases, then sandboxes and services via devrun."""
    DATA.mkdir(parents=True, exist_ok=True)
    devrun.devservers.start_postgres(DATA, SERVERS["pg"])
    devrun.devservers.start_s3(DATA, SERVERS)
    urls = {name: create_postgres_database(ADMIN_URL, f"dvc_load_{name}") for name in SERVICES}
    quiet = {name: {f"{name.upper()}_LOG_LEVEL": "WARNING"} for name in SERVICES}  # no per-RPC access log
    quiet["wallet"]["WALLET_S3_BUCKET"] = "dvc-load-wallet"
    for attempt in (1, 2):
        managed = devrun.processes(database_urls=urls, s3_endpoint=f"127.0.0.1:{SERVERS['s3']}",
                                   service_env=quiet)
        started = time.monotonic()
        devrun.start_all(managed, logs=out / "logs")
        try:
            devrun.wait_until_serving(managed, started, logs=out / "logs")
            return managed
        except SystemExit as failure:
            # A port released a moment ago (a previous platform still closing its sockets) can refuse the first
            # bind: start once more before giving up.
            devrun.stop_all(managed, s3_data=None)
            if attempt == 2:
                stop_platform([])
                raise
            print(f"start-up failed ({failure}); trying once more", file=sys.stderr, flush=True)
    raise AssertionError("unreachable")


def metrics_urls(managed: list[devrun.Managed]) -> list[str]:
    """The Prometheus endpoints of the services devrun started (their *_METRICS_PORT)."""
    ports = [item.env.get(f"{item.name.upper()}_METRICS_PORT") for item in managed]
    return [f"http://127.0.0.1:{port}/metrics" for port in ports if port]


def stop_platform(managed: list[devrun.Managed]) -> None:
    devrun.stop_all(managed, s3_data=None)
    devrun.devservers.stop_s3(DATA)
    devrun.devservers.stop_postgres(DATA)


def run_locust(plan: DayPlan, out: Path) -> tuple[int, float]:
    """Locust headless with the working-day shape; returns its exit code and wall time."""
    command = [sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests" / "locustfile.py"), "--headless",
               "--csv", str(out / "locust"), "--html", str(out / "report.html"), "--compress", str(plan.compress),
               "--volume", str(plan.volume), "--citizens", str(citizens_for(plan)),
               "--ledger-dir", str(out / "ledger"), "--drain-seconds", str(DRAIN_SECONDS), "--stop-timeout", "20",
               "--loglevel", "WARNING", "--exit-code-on-error", "0"]
    started = time.monotonic()
    limit = plan.duration_seconds + DRAIN_SECONDS + LOCUST_GRACE_SECONDS
    with open(out / "locust.log", "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            code = process.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            code = KILLED
    return code, time.monotonic() - started


def locust_exit(code: int) -> Check:
    """Locust's exit code: its CSVs exist even when it was killed or crashed (and --exit-code-on-error 0 keeps
    failed requests out of it, the SLOs judge those), so anything but 0 means the run did not end as it should."""
    check = Check("Locust ended by itself (exit code 0)", checked=1)
    if code == KILLED:
        check.problem("killed at the time limit: the shape, the stop timeout or the callback drain did not end")
    elif code != 0:
        check.problem(f"Locust exited with code {code}; see locust.log")
    return check


def successes(rows: list[slo.RequestStats]) -> dict[str, int]:
    """Successful requests by Locust name."""
    return {row.name: row.count - row.failures for row in rows}


def _limits_text(verdict: slo.Verdict) -> str:
    if verdict.p95_limit == float("inf"):
        return "errors only"
    return f"{verdict.p95_limit:.0f}/{verdict.p99_limit:.0f}"


def summary(profile: str, plan: DayPlan, seconds: float, verdicts: list[slo.Verdict], total: slo.RequestStats | None,
            errors_ok: bool, checks: list[Check], out: Path, factor: float,
            served: dict[str, server_latency.ServerLatency] | None = None) -> str:
    records = read_ledgers(sorted((out / "ledger").glob("ledger-*.jsonl")))
    counts = {kind: sum(1 for record in records if record["kind"] == kind)
              for kind in (PAYMENT, DOCUMENT, SHARE, REDEEMED)}
    offered = plan.expected_flows()
    passed = errors_ok and all(v.ok for v in verdicts) and all(c.ok for c in checks)
    lines = [
        f"# Load test `{profile}` — {'PASS' if passed else 'FAIL'}", "",
        f"- when: {datetime.now(UTC).isoformat(timespec='seconds')}; machine: {os.cpu_count()} cores "
        f"(load generator, platform, PostgreSQL and S3 together)",
        f"- replayed day: compression ×{plan.compress:g} ({plan.duration_seconds:.0f} s), volume ×{plan.volume:g} "
        f"(offered {offered['dossier']:,.0f} dossiers, {offered['payment']:,.0f} payments)",
        f"- Locust wall time {seconds:.0f} s (set-up and callback drain included)",
        f"- done: {counts[PAYMENT]:,} payments created, {counts[SHARE]:,} shares granted, {counts[REDEEMED]:,} "
        f"redeemed, {counts[DOCUMENT]:,} documents issued",
    ]
    if total is not None:
        rate = total.failures / total.count if total.count else 0.0
        lines.append(f"- requests: {total.count:,} at {total.rps:.1f}/s; failures {total.failures:,} "
                     f"({rate:.3%}; SLO ≤ {slo.MAX_ERROR_RATE:.1%}) — {'ok' if errors_ok else 'BROKEN'}")
    served = served or {}
    lines += ["", "| request | count | fail | p50 ms | p95 ms | p99 ms | SLO p95/p99 ms | | server p50/p95/p99 ms |",
              "|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for verdict in verdicts:
        s = verdict.stats
        server = served.get(s.name) if s.kind == "grpc" else None
        server_text = f"{server.p50:.0f}/{server.p95:.0f}/{server.p99:.0f}" if server else ""
        lines.append(f"| {s.kind} {s.name} | {s.count:,} | {s.failures:,} | {s.p50:.0f} | {s.p95:.0f} | "
                     f"{s.p99:.0f} | {_limits_text(verdict)} | "
                     f"{'ok' if verdict.ok else 'BROKEN'} | {server_text} |")
    if served:
        lines += ["", "Server p50/p95/p99: the service's own RPC handling time (its Prometheus histogram, interpolated "
                      "inside the buckets 1, 2.5, 5, 10, 25, 50, 100, 250 ms ...). The SLOs judge what the load "
                      "generator saw; the gap is queueing between them and the load generator itself."]
    if factor != 1.0:
        lines += ["", f"(smoke: latency limits ×{factor:g}, see loadtests/slo.py)"]
    lines += ["", "## Run and invariant checks", ""] + [f"- {check.line()}" for check in checks]
    lines += ["", "Reports: report.html (Locust), locust_stats.csv, locust_failures.csv, ledger/, logs/."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.run", description=__doc__)
    parser.add_argument("--profile", choices=["smoke", "day"], default="smoke")
    parser.add_argument("--compress", type=float, default=None, help="time compression of the day")
    parser.add_argument("--volume", type=float, default=None, help="share of the portal's daily volume")
    parser.add_argument("--out", type=Path, default=None, help="report directory (artifacts/loadtest/<profile>)")
    args = parser.parse_args(argv)
    plan = plan_for(args.profile, args.compress, args.volume)
    out = args.out or ROOT / "artifacts" / "loadtest" / args.profile
    busy = busy_ports()
    if busy:
        print(f"ports {', '.join(map(str, busy))} are busy (is `make run` running?); stop it first",
              file=sys.stderr)
        return 2
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    print(f"load test {args.profile}: ×{plan.compress:g} for {plan.duration_seconds:.0f} s, volume ×{plan.volume:g}; "
          f"reports in {out}", flush=True)
    managed = start_platform(out)
    try:
        print("platform SERVING; running Locust", flush=True)
        code, seconds = run_locust(plan, out)
        # Before the invariant check adds its own calls to the services' histograms.
        served = server_latency.scrape(metrics_urls(managed))
        stats_file = out / "locust_stats.csv"
        if not stats_file.exists():
            print(f"Locust produced no statistics (exit {code}); see {out / 'locust.log'}", file=sys.stderr)
            return 1
        factor = slo.SMOKE_LATENCY_FACTOR if args.profile == "smoke" else 1.0
        rows, total = slo.read_stats(stats_file)
        verdicts, errors_ok = slo.judge(rows, total, factor)
        print("checking invariants", flush=True)
        checks = [locust_exit(code), *run_checks(out / "ledger", locust_successes=successes(rows))]
    finally:
        stop_platform(managed)
    text = summary(args.profile, plan, seconds, verdicts, total, errors_ok, checks, out, factor, served)
    (out / "summary.md").write_text(text, encoding="utf-8")
    print(text)
    return 0 if errors_ok and all(v.ok for v in verdicts) and all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
