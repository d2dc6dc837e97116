"""The agency callback sender: an agency that answers slowly cannot hold a delivery past its timeout."""

from __future__ import annotations

import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import requests

from payment_service.adapters.connectors.base import HttpClient
from payment_service.adapters.http_sender import RequestsCallbackSender
from payment_service.domain.connector import ConnectorError, ConnectorErrorKind
from payment_service.service_layer.outbox import DispatchPolicy


@contextmanager
def one_answer(answer: Callable[[socket.socket, threading.Event], None]) -> Iterator[str]:
    """An HTTP endpoint on loopback that reads one request and writes ``answer`` to it by hand (stopped on exit)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            answer(connection, stop)

    worker = threading.Thread(target=serve, daemon=True)
    worker.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/endpoint"
    finally:
        stop.set()
        listener.close()
        worker.join(timeout=5)


@pytest.fixture
def trickling_agency() -> Iterator[str]:
    """The status line at once, then one body byte every 0.2 s for 20 s."""

    def trickle(connection: socket.socket, stop: threading.Event) -> None:
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        for _ in range(100):
            if stop.wait(0.2):
                return
            try:
                connection.sendall(b"x")
            except OSError:
                return

    with one_answer(trickle) as url:
        yield url


def test_a_trickling_answer_is_cut_off_at_the_timeout(trickling_agency: str) -> None:
    sender = RequestsCallbackSender(pool_size=1)
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        sender.post(trickling_agency, b"{}", {"Content-Type": "application/json"}, timeout_seconds=1.0)
    # Each byte arrives well within the per-read timeout; only the overall deadline stops it.
    assert time.monotonic() - started < 3.0
    sender.close()


def test_the_lease_outlasts_a_batch_in_which_every_delivery_runs_to_its_timeout() -> None:
    for policy in (DispatchPolicy(), DispatchPolicy(batch_size=200, parallelism=4, timeout_seconds=5.0)):
        slowest_batch = math.ceil(policy.batch_size / policy.parallelism) * policy.timeout_seconds
        assert policy.lease.total_seconds() > slowest_batch


@pytest.fixture
def cut_off_answer() -> Iterator[str]:
    """Promises 100 bytes, sends 10 and closes the connection."""
    with one_answer(lambda connection, _: connection.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")) as url:
        yield url


def test_an_answer_cut_off_mid_body_is_a_connector_error_not_a_crash(cut_off_answer: str) -> None:
    client = HttpClient("bank", 2.0, scrub=lambda text: text)
    with pytest.raises(ConnectorError) as failed:   # what failover, sweeps and expiry know how to handle
        client.send("GET", cut_off_answer, operation="status")
    assert failed.value.kind is ConnectorErrorKind.UNAVAILABLE
