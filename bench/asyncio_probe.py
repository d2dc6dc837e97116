"""Probe, not the product: a redeem's round trips with nothing else (raw SQL, one event loop) — this machine's floor."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import threading
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import grpc
import psycopg
from grpc import aio
from minio import Minio
from sqlalchemy.engine import make_url

from bench.measure import throughput
from bench.report import Report
from bench.servers import server_process
from servicekit.s3 import drop_bucket
from servicekit.testing import fresh_postgres_url

DOCUMENT = b"%PDF-1.7\n" + bytes(100 * 1024 - 9)
SHARES = 64
ECHO = "raw: bare gRPC echo (same server stack)"
# The statements of one real redeem, in its order and round trips: count the use, read the document, lock the
# access-log head, append the entry and move the head in one statement; then COMMIT.
COUNT_USE = ("UPDATE probe_shares SET use_count = use_count + 1 WHERE share_id = %s "
             "RETURNING citizen_id, document_id")
DOCUMENT_ROW = "SELECT content_sha256, metadata FROM probe_documents WHERE document_id = %s"
LOCK_HEAD = "SELECT sequence, head_hash FROM probe_heads WHERE citizen_id = %s FOR UPDATE"
APPEND = ("WITH entry AS (INSERT INTO probe_log VALUES (%(citizen)s, %(sequence)s, %(hash)s, %(detail)s)) "
          "UPDATE probe_heads SET sequence = %(sequence)s, head_hash = %(hash)s WHERE citizen_id = %(citizen)s")


def _identity(data: bytes) -> bytes:
    return data


def _prepare(dsn: str, s3: Minio, bucket: str) -> str:
    """Tables shaped like the wallet's hot rows, one stored 100 KB object; returns its presigned GET."""
    s3.make_bucket(bucket)
    s3.put_object(bucket, "document", io.BytesIO(DOCUMENT), len(DOCUMENT))
    digest = hashlib.sha256(DOCUMENT).hexdigest()
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("CREATE TABLE probe_shares (share_id text PRIMARY KEY, citizen_id text, "
                           "document_id text, use_count int)")
        connection.execute("CREATE TABLE probe_documents (document_id text PRIMARY KEY, content_sha256 text, "
                           "metadata text)")
        connection.execute("CREATE TABLE probe_heads (citizen_id text PRIMARY KEY, sequence int, head_hash text)")
        connection.execute("CREATE TABLE probe_log (citizen_id text, sequence int, entry_hash text, detail text, "
                           "PRIMARY KEY (citizen_id, sequence))")
        for index in range(SHARES):
            connection.execute("INSERT INTO probe_shares VALUES (%s, %s, %s, 0)", (f"s{index}", f"c{index}",
                                                                                   f"d{index}"))
            connection.execute("INSERT INTO probe_documents VALUES (%s, %s, %s)", (f"d{index}", digest, "{}"))
            connection.execute("INSERT INTO probe_heads VALUES (%s, 0, 'genesis')", (f"c{index}",))
    return s3.presigned_get_object(bucket, "document", expires=timedelta(hours=1))


class _KeptAliveGet:
    """HTTP/1.1 GETs over kept-alive asyncio streams: the probe's stand-in for an async S3 read."""

    def __init__(self) -> None:
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def get(self, url: str) -> bytes:
        parts = urlsplit(url)
        reader, writer = self._idle.pop() if self._idle else await asyncio.open_connection(parts.hostname,
                                                                                           parts.port)
        writer.write(f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        body = await asyncio.wait_for(reader.readexactly(length), 10)
        self._idle.append((reader, writer))
        return body


async def _serve(dsn: str, url: str, ready: asyncio.Future[int], stopping: asyncio.Event) -> None:
    connections: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()
    for _ in range(8):
        connections.put_nowait(await psycopg.AsyncConnection.connect(dsn))
    storage = _KeptAliveGet()

    async def redeem(request: bytes, _context: aio.ServicerContext[bytes, bytes]) -> AsyncIterator[bytes]:
        share_id = request.decode()
        connection = await connections.get()
        try:
            async with connection.transaction():
                citizen, document_id = await (await connection.execute(COUNT_USE, (share_id,))).fetchone() or ("", "")
                expected, _ = await (await connection.execute(DOCUMENT_ROW, (document_id,))).fetchone() or ("", "")
                sequence, head = await (await connection.execute(LOCK_HEAD, (citizen,))).fetchone() or (0, "")
                entry = hashlib.sha256(f"{head}|{share_id}|{uuid.uuid4()}".encode()).hexdigest()
                await connection.execute(APPEND, {"citizen": citizen, "sequence": sequence + 1, "hash": entry,
                                                  "detail": "redeemed for the probe"})
        finally:
            connections.put_nowait(connection)
        yield b"share" * 40
        content = await storage.get(url)
        intact = hashlib.sha256(content).hexdigest() == expected
        yield b"document" * 40 + (b"+" if intact else b"-")
        yield content

    server = aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("probe.Wallet", {
        "Redeem": grpc.unary_stream_rpc_method_handler(redeem, _identity, _identity)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    ready.set_result(port)
    await stopping.wait()
    await server.stop(1)
    while not connections.empty():
        await connections.get_nowait().close()


def start_probe(dsn: str, url: str) -> dict[str, Any]:
    """Run the probe server on an event loop in this (child) process; ``stop`` ends it."""
    loop = asyncio.new_event_loop()
    ready: asyncio.Future[int] = loop.create_future()
    stopping = asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(_serve(dsn, url, ready, stopping),), daemon=True)
    thread.start()
    port = asyncio.run_coroutine_threadsafe(asyncio.wait_for(asyncio.shield(ready), 60), loop).result(70)

    def stop() -> None:
        loop.call_soon_threadsafe(stopping.set)
        thread.join(10)

    return {"info": {"grpc_port": port}, "stop": stop}


def run(report: Report) -> None:
    dsn = make_url(fresh_postgres_url("bench_asyncio_probe")).set(drivername="postgresql").render_as_string(
        hide_password=False)
    s3 = Minio(os.environ["DVC_TEST_S3_ENDPOINT"], access_key=os.environ["DVC_TEST_S3_ACCESS_KEY"],
               secret_key=os.environ["DVC_TEST_S3_SECRET_KEY"], secure=False)
    bucket = f"asyncioprobe{uuid.uuid4().hex[:10]}"
    url = _prepare(dsn, s3, bucket)
    try:
        with server_process("bench.asyncio_probe:start_probe", dsn=dsn, url=url) as info:
            channel = grpc.insecure_channel(f"127.0.0.1:{info['grpc_port']}")
            call = channel.unary_stream("/probe.Wallet/Redeem", request_serializer=_identity,
                                        response_deserializer=_identity)

            def redeem(index: int) -> int:
                share, document, content = list(call(f"s{index % SHARES}".encode(), timeout=30))
                if not document.endswith(b"+") or len(content) != len(DOCUMENT):
                    raise RuntimeError("the probe served content that failed its hash check")
                return len(share) + len(content)

            measured = throughput(redeem, seconds=report.seconds)
            channel.close()
    finally:
        drop_bucket(s3, bucket)
    report.compare("probe: a redeem's round trips alone (raw SQL on asyncio; not the product)",
                   measured.per_second, "redeems/s", baseline=ECHO, p50_ms=round(measured.p50_ms, 2),
                   p99_ms=round(measured.p99_ms, 2), errors=measured.errors)
