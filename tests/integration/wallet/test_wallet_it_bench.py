"""The benchmark helpers the lead's `make bench` drives work against the real servers."""

from __future__ import annotations

import hashlib

import pytest

from servicekit.testing import fresh_postgres_url
from wallet_service.benchsupport import start_for_bench

pytestmark = pytest.mark.integration


def test_bench_support_issues_redeems_and_puts(s3_settings, postgres_admin_url):
    bench = start_for_bench(fresh_postgres_url("wallet_bench_it"), s3_settings["endpoint"],
                            s3_settings["access_key"], s3_settings["secret_key"])
    try:
        assert bench.grpc_port > 0
        content = b"%PDF-1.7\n" + bytes(100 * 1024)
        assert bench.issue_document(content)
        redeem = bench.create_share_and_redeem_fn(content, shares=2)
        assert redeem(0) == len(content) and redeem(1) == len(content)
        assert bench.create_share_and_redeem_fn(content, shares=1, delivery="none")(0) == 0
        put = bench.document_put_fn()
        assert put(content + b"x") == hashlib.sha256(content + b"x").hexdigest()
    finally:
        bench.stop()
