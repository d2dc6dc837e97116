"""The services' own latency, read back from their Prometheus histograms after a run."""

from __future__ import annotations

import socket

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from loadtests import server_latency
from servicekit.interceptors import LATENCY


def exposition() -> str:
    """What a service's /metrics shows: the platform's histogram (same name, labels and buckets)."""
    registry = CollectorRegistry()
    histogram = Histogram("dvc_grpc_server_handling_seconds", "RPC handling time",
                          ["grpc_service", "grpc_method", "grpc_code"], buckets=LATENCY._upper_bounds[:-1],
                          registry=registry)
    created = histogram.labels("dvc.payments.v1.PaymentService", "CreatePayment", "OK")
    refused = histogram.labels("dvc.payments.v1.PaymentService", "CreatePayment", "INVALID_ARGUMENT")
    for _ in range(80):
        created.observe(0.003)
    for _ in range(10):
        refused.observe(0.003)
    for _ in range(9):
        created.observe(0.040)
    created.observe(0.200)
    histogram.labels("dvc.wallet.v1.WalletService", "RedeemShare", "OK").observe(30.0)
    return generate_latest(registry).decode()


def test_percentiles_come_from_the_buckets_over_every_status_code():
    latency = server_latency.parse(exposition())["PaymentService/CreatePayment"]
    assert latency.count == 100
    assert 2.5 < latency.p50 <= 5.0      # 90 of 100 calls took 3 ms
    assert 25.0 < latency.p95 <= 50.0    # the 9 calls of 40 ms
    assert 25.0 < latency.p99 <= 50.0
    assert latency.p99 >= latency.p95 >= latency.p50


def test_a_call_slower_than_the_last_bucket_reads_as_that_bucket():
    latency = server_latency.parse(exposition())["WalletService/RedeemShare"]
    assert latency.count == 1
    assert latency.p99 == LATENCY._upper_bounds[-2] * 1000  # 10 s: all the histogram can say about 30 s


def test_a_service_that_does_not_answer_is_left_out():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert server_latency.scrape([f"http://127.0.0.1:{port}/metrics"], timeout=1) == {}
