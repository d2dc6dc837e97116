"""Wallet hot paths: issuing 100 KB documents, redeeming shares, and the document put path against raw S3 put."""

from __future__ import annotations

import os

from bench.measure import throughput
from bench.report import Report
from servicekit.testing import fresh_postgres_url
from wallet_service.benchsupport import replace_tail, start_for_bench

DOCUMENT = b"%PDF-1.7\n" + bytes(100 * 1024 - 9)
RAW_PUT = "raw: minio put_object 100 KB"
ECHO = "raw: bare gRPC echo (same server stack)"


def run(report: Report) -> None:
    bench = start_for_bench(fresh_postgres_url("bench_wallet"), os.environ["DVC_TEST_S3_ENDPOINT"],
                            os.environ["DVC_TEST_S3_ACCESS_KEY"], os.environ["DVC_TEST_S3_SECRET_KEY"])
    try:
        issued = throughput(lambda i: bench.issue_document(replace_tail(DOCUMENT, i)), seconds=report.seconds)
        report.compare("IssueDocument 100 KB (PostgreSQL + S3, signed manifest)", issued.per_second, "documents/s",
                       baseline=RAW_PUT, absolute_target=200.0, p50_ms=round(issued.p50_ms, 2),
                       p99_ms=round(issued.p99_ms, 2), errors=issued.errors)
        redeem = bench.create_share_and_redeem_fn(DOCUMENT, delivery="stream")
        redeemed = throughput(redeem, seconds=report.seconds)
        report.compare("RedeemShare, 100 KB content re-verified and streamed", redeemed.per_second, "redeems/s",
                       baseline=ECHO, absolute_target=500.0, p50_ms=round(redeemed.p50_ms, 2),
                       p99_ms=round(redeemed.p99_ms, 2), errors=redeemed.errors)
        by_url = bench.create_share_and_redeem_fn(DOCUMENT, delivery="url")
        redeemed_url = throughput(by_url, seconds=report.seconds)
        report.compare("RedeemShare, presigned URL (content verified)", redeemed_url.per_second, "redeems/s",
                       baseline=ECHO, absolute_target=500.0, p99_ms=round(redeemed_url.p99_ms, 2),
                       errors=redeemed_url.errors)
        put = bench.document_put_fn()
        stored = throughput(lambda i: put(replace_tail(DOCUMENT, i)), threads=8, seconds=report.seconds)
        report.compare("document put path (typed, hashed, content-addressed)", stored.per_second, "puts/s",
                       baseline=RAW_PUT, ratio_target=0.7, p99_ms=round(stored.p99_ms, 2), errors=stored.errors)
    finally:
        bench.stop()
