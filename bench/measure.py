"""Measuring primitives: single-thread cost per call and multi-thread throughput with latency percentiles."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Throughput:
    """Calls per second over a fixed wall-clock window and the latency distribution of those calls."""

    per_second: float
    p50_ms: float
    p99_ms: float
    calls: int
    errors: int

    @classmethod
    def of(cls, latencies: list[float], errors: int, window_seconds: float) -> Throughput:
        """Rate and percentiles of ``latencies`` (seconds) completed within ``window_seconds``."""
        if not latencies:
            return cls(0.0, 0.0, 0.0, 0, errors)
        ordered = sorted(latencies)
        return cls(per_second=len(ordered) / window_seconds, p50_ms=ordered[len(ordered) // 2] * 1000,
                   p99_ms=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
                   calls=len(ordered), errors=errors)


def per_call_seconds(operation: Callable[[], object], *, calls: int = 2000, warmup: int = 200) -> float:
    """Median cost of one call over five batches, on one thread (for CPU-bound paths like token checks)."""
    for _ in range(warmup):
        operation()
    batches = []
    per_batch = max(1, calls // 5)
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(per_batch):
            operation()
        batches.append((time.perf_counter() - started) / per_batch)
    return statistics.median(batches)


def throughput(operation: Callable[[int], object], *, threads: int = 16, seconds: float = 5.0,
               warmup_seconds: float = 1.0) -> Throughput:
    """Run ``operation(i)`` from ``threads`` threads for ``seconds`` after a warm-up; errors are counted, not hidden."""
    counter = iter(range(10**9))
    lock = threading.Lock()
    latencies: list[float] = []
    errors = 0
    measuring = threading.Event()
    stop = threading.Event()

    def worker() -> None:
        nonlocal errors
        own: list[float] = []
        own_errors = 0
        while not stop.is_set():
            with lock:
                index = next(counter)
            started = time.perf_counter()
            try:
                operation(index)
            except Exception:  # noqa: BLE001 - counted and reported
                if measuring.is_set() and not stop.is_set():
                    own_errors += 1
                continue
            # Only calls that finish inside the window count: the rate divides by the window's length.
            if measuring.is_set() and not stop.is_set():
                own.append(time.perf_counter() - started)
        with lock:
            latencies.extend(own)
            errors += own_errors

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    time.sleep(warmup_seconds)
    measuring.set()
    window_start = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    window = time.perf_counter() - window_start
    for thread in pool:
        thread.join(timeout=30)
    return Throughput.of(latencies, errors, window)


def paced(operation: Callable[[int], object], *, rate: float, seconds: float = 5.0, threads: int = 32) -> Throughput:
    """Offer ``rate`` calls per second on a fixed schedule (open loop) and report the latency each call saw,
    measured from its scheduled start so a stalled server cannot hide queueing (no coordinated omission)."""
    total = int(rate * seconds)
    start_at = time.perf_counter() + 0.2
    schedule = iter(range(total))
    lock = threading.Lock()
    latencies: list[float] = []
    errors = 0

    def worker() -> None:
        nonlocal errors
        while True:
            with lock:
                index = next(schedule, None)
            if index is None:
                return
            due = start_at + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            try:
                operation(index)
            except Exception:  # noqa: BLE001 - counted and reported
                with lock:
                    errors += 1
                continue
            finished = time.perf_counter()
            with lock:
                latencies.append(finished - due)

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=seconds * 4 + 30)
    window = max(time.perf_counter() - start_at, 1e-9)
    return Throughput.of(latencies, errors, window)
