"""The service-level objectives a load run must hold — the one place their thresholds live — and their check
against Locust's CSV statistics."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

# Errors: any failed RPC or HTTP step counts; the platform must not drop requests at the portal's volumes.
MAX_ERROR_RATE = 0.001
# Latency per request name (Locust's "Name" column): (p95 ms, p99 ms). The default is the platform target of
# PLATFORM.md (p99 <= 100 ms for an RPC); calls that move document content through S3, that call an upstream
# identity provider, or that are HTTP steps against the sandboxes/payment edge get more room.
DEFAULT_LATENCY_MS = (50.0, 100.0)
LATENCY_MS = {
    "WalletService/IssueDocument": (150.0, 300.0),
    "WalletService/RedeemShare": (150.0, 300.0),
    "IdentityService/CompleteLogin": (150.0, 300.0),
    # Checks the client secret against its argon2id hash (memory-hard on purpose, ~30 ms of CPU per call); a
    # machine client calls it once per token lifetime.
    "IdentityService/IssueClientToken": (150.0, 300.0),
}
# A load process's own set-up requests (named with this prefix by loadtests.grpc_users) run once, on cold
# services, before any user starts: their errors count, their latency is reported but not judged.
SETUP_PREFIX = "setup: "
HTTP_LATENCY_MS = (150.0, 300.0)
# A flow the platform answered wrongly (no failed call to show for it) is reported as a failed request of this
# type, named after the flow: its errors count, its latency (the whole flow's) is not judged.
FLOW_KIND = "flow"
# Share of the flows started that must complete. A healthy run completes every flow it starts (Locust's stop
# timeout lets the last ones finish); a failed step stops its flow, and so does a load process killed mid-run.
MIN_FLOWS_COMPLETED = 0.95
# The smoke run proves that every flow works: its handful of samples per RPC on a shared 2-core machine (other
# test suites running) makes p99 equal to the one slowest call, so its latency limits are this many times looser.
# Errors and invariants are judged exactly as in the day run.
SMOKE_LATENCY_FACTOR = 5.0


@dataclass(frozen=True)
class RequestStats:
    """One row of Locust's <prefix>_stats.csv."""

    kind: str
    name: str
    count: int
    failures: int
    p50: float
    p95: float
    p99: float
    rps: float


@dataclass(frozen=True)
class Verdict:
    stats: RequestStats
    p95_limit: float
    p99_limit: float
    ok: bool


def limits_for(stats: RequestStats, factor: float = 1.0) -> tuple[float, float]:
    if stats.name.startswith(SETUP_PREFIX) or stats.kind == FLOW_KIND:
        return float("inf"), float("inf")
    p95, p99 = HTTP_LATENCY_MS if stats.kind == "http" else LATENCY_MS.get(stats.name, DEFAULT_LATENCY_MS)
    return p95 * factor, p99 * factor


def read_stats(path: Path) -> tuple[list[RequestStats], RequestStats | None]:
    """The per-request rows and the aggregated row of a Locust stats CSV."""
    rows, total = [], None
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            def number(column: str, row: dict[str, str] = row) -> float:
                value = row.get(column) or "0"
                return float(value) if value != "N/A" else 0.0

            stats = RequestStats(row["Type"], row["Name"], int(number("Request Count")), int(number("Failure Count")),
                                 number("50%"), number("95%"), number("99%"), number("Requests/s"))
            if row["Name"] == "Aggregated":
                total = stats
            else:
                rows.append(stats)
    return rows, total


def judge(rows: list[RequestStats], total: RequestStats | None, factor: float = 1.0) -> tuple[list[Verdict], bool]:
    """Each request's latency verdict, and whether the error rate holds."""
    verdicts = []
    for stats in rows:
        p95, p99 = limits_for(stats, factor)
        verdicts.append(Verdict(stats, p95, p99, stats.p95 <= p95 and stats.p99 <= p99))
    errors_ok = total is not None and total.count > 0 and total.failures / total.count <= MAX_ERROR_RATE
    return verdicts, errors_ok
