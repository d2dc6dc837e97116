"""The services' own view of their latency after a run: percentiles from each service's Prometheus histogram of
RPC handling time, to set beside what the load generator measured (the difference is queueing on the way, the
network, and the load generator itself)."""

from __future__ import annotations

import urllib.request
from collections import defaultdict
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

HISTOGRAM = "dvc_grpc_server_handling_seconds"


@dataclass(frozen=True)
class ServerLatency:
    """Percentiles in milliseconds, interpolated inside the histogram's buckets as Prometheus'
    histogram_quantile does (so as coarse as the buckets: 25, 50, 100, 250 ms ...)."""

    count: int
    p50: float
    p95: float
    p99: float


def quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """The ``q`` quantile (seconds) of cumulative ``(upper bound, count)`` buckets sorted by bound, +Inf last."""
    total = buckets[-1][1]
    if total <= 0:
        return 0.0
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, cumulative in buckets:
        if cumulative >= rank:
            if bound == float("inf"):
                return lower_bound  # beyond the last finite bucket: its bound is all the histogram can say
            inside = cumulative - lower_count
            return lower_bound + (bound - lower_bound) * ((rank - lower_count) / inside if inside else 1.0)
        lower_bound, lower_count = bound, cumulative
    return lower_bound


def parse(text: str) -> dict[str, ServerLatency]:
    """'PaymentService/CreatePayment' (the load test's request names) -> latency over every status code."""
    merged: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for family in text_string_to_metric_families(text):
        if family.name != HISTOGRAM:
            continue
        for sample in family.samples:
            if not sample.name.endswith("_bucket"):
                continue
            labels = sample.labels
            name = f"{labels['grpc_service'].rpartition('.')[2]}/{labels['grpc_method']}"
            merged[name][float(labels["le"])] += sample.value
    result = {}
    for name, by_bound in merged.items():
        buckets = sorted(by_bound.items())
        result[name] = ServerLatency(count=int(buckets[-1][1]), p50=quantile(buckets, 0.50) * 1000,
                                     p95=quantile(buckets, 0.95) * 1000, p99=quantile(buckets, 0.99) * 1000)
    return result


def scrape(urls: list[str], timeout: float = 5.0) -> dict[str, ServerLatency]:
    """Every service's histogram; a service that does not answer is left out (the summary shows no server
    figures for its RPCs) rather than failing the run's report."""
    found: dict[str, ServerLatency] = {}
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                found.update(parse(response.read().decode("utf-8")))
        except OSError:
            continue
    return found
