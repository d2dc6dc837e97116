"""The benchmark's own arithmetic: what counts as a call in the window, and when a target is met."""

from __future__ import annotations

import time

from bench.measure import throughput
from bench.report import Report


def test_a_call_still_running_when_the_window_closes_is_not_counted() -> None:
    measured = throughput(lambda _: time.sleep(0.3), threads=1, seconds=0.5, warmup_seconds=0.0)
    # The second call ends at ~0.6 s, after the 0.5 s window: counting it would claim 2 calls in 0.5 s.
    assert measured.calls == 1 and measured.per_second < 2.5


def test_a_target_is_missed_when_any_call_failed() -> None:
    report = Report(seconds=1.0)
    report.raw_limit("raw", 100.0, "calls/s")
    clean = report.compare("clean", 80.0, "calls/s", baseline="raw", ratio_target=0.5, errors=0)
    failing = report.compare("failing", 80.0, "calls/s", baseline="raw", ratio_target=0.5, errors=3)
    # All calls failing leaves no latencies: a p99 of 0 ms must not pass a latency target.
    silent = report.compare("p99", 0.0, "ms", baseline="", higher_is_better=False, absolute_target=50.0, errors=1500)
    assert clean.met is True and failing.met is False and silent.met is False
