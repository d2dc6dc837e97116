"""Object storage for document content: the S3 adapter (minio SDK) and an in-memory fake for unit tests."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import IO
from urllib.parse import urlsplit

from minio import Minio
from minio.error import S3Error

from servicekit.errors import Unavailable
from wallet_service.service_layer.ports import StoredObject

_MISSING = ("NoSuchKey", "NoSuchObject", "NotFound")
# Presigned URLs for the adapter's own requests live only as long as one request needs.
_REQUEST_URL_LIFETIME = timedelta(minutes=1)
_SEND_BLOCK_BYTES = 256 * 1024
_READ_URLS_KEPT = 10_000


class _KeepAliveConnections:
    """One keep-alive HTTP connection per thread and server, for presigned requests: the SDK's request
    path (signing, urllib3, retries) costs about twice the CPU of the request itself on the hot paths."""

    def __init__(self, timeout_seconds: float) -> None:
        self._timeout = timeout_seconds
        self._local = threading.local()

    def _connection(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        connections: dict[str, http.client.HTTPConnection] = self._local.__dict__.setdefault("connections", {})
        connection = connections.get(netloc)
        if connection is None:
            kind = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
            connection = connections[netloc] = kind(netloc, timeout=self._timeout, blocksize=_SEND_BLOCK_BYTES)
        return connection

    def request(self, method: str, url: str, *, headers: dict[str, str],
                body: IO[bytes] | None = None) -> tuple[int, bytes]:
        """(status, body) of one request; a connection the server closed meanwhile is retried once."""
        parts = urlsplit(url)
        target = f"{parts.path}?{parts.query}" if parts.query else parts.path
        start = body.tell() if body is not None else 0
        for attempt in (1, 2):
            connection = self._connection(parts.scheme, parts.netloc)
            try:
                if body is not None:
                    body.seek(start)
                connection.request(method, target, body=body, headers=headers)
                response = connection.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, OSError) as exc:
                connection.close()
                self._local.connections.pop(parts.netloc, None)
                if attempt == 2:
                    raise Unavailable(f"object storage unreachable ({type(exc).__name__})",
                                      reason="STORAGE_UNAVAILABLE") from None
        raise AssertionError("unreachable")


class MinioObjectStorage:
    """Content in one S3 bucket; the client carries the connect/read timeouts (servicekit.s3.make_client)."""

    def __init__(self, client: Minio, bucket: str, *, timeout_seconds: float = 10.0) -> None:
        self.client = client
        self.bucket = bucket
        # Content (at most 20 MB) goes in one PUT, and reads are one ranged GET, each over a presigned URL
        # on a kept-alive connection; listing, deleting and presigning for readers stay with the SDK.
        self._http = _KeepAliveConnections(timeout_seconds)
        self._read_urls: dict[str, tuple[float, str]] = {}

    def _read_url(self, key: str) -> str:
        """A presigned GET for our own read, reused for half its lifetime: signing costs more CPU than a
        cached lookup, and these URLs never leave the process."""
        now = time.monotonic()
        cached = self._read_urls.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        url = self.client.presigned_get_object(self.bucket, key, expires=_REQUEST_URL_LIFETIME)
        if len(self._read_urls) >= _READ_URLS_KEPT:
            self._read_urls.clear()
        self._read_urls[key] = (now + _REQUEST_URL_LIFETIME.total_seconds() / 2, url)
        return url

    def put(self, key: str, body: IO[bytes], length: int, content_type: str) -> None:
        url = self.client.presigned_put_object(self.bucket, key, expires=_REQUEST_URL_LIFETIME)
        status, _ = self._http.request("PUT", url, body=body,
                                       headers={"Content-Type": content_type, "Content-Length": str(length)})
        if status != 200:
            raise Unavailable(f"object storage refused the upload (HTTP {status})", reason="STORAGE_UNAVAILABLE")

    def get(self, key: str, max_bytes: int) -> bytes | None:
        url = self._read_url(key)
        # One byte past the recorded size is enough to prove an object grew; never read more.
        status, data = self._http.request("GET", url, headers={"Range": f"bytes=0-{max_bytes}"})
        if status in (200, 206):
            return data
        if status == 404:
            return None
        raise Unavailable(f"object storage refused the read (HTTP {status})", reason="STORAGE_UNAVAILABLE")

    def exists(self, key: str) -> bool:
        url = self.client.get_presigned_url("HEAD", self.bucket, key, expires=_REQUEST_URL_LIFETIME)
        status, _ = self._http.request("HEAD", url, headers={})
        if status == 200:
            return True
        if status == 404:
            return False
        raise Unavailable(f"object storage refused the check (HTTP {status})", reason="STORAGE_UNAVAILABLE")

    def delete(self, key: str) -> None:
        try:
            self.client.remove_object(self.bucket, key)
        except S3Error as exc:
            if exc.code not in _MISSING:
                raise

    def presigned_get_url(self, key: str, expires: timedelta) -> str:
        # Downloaded, never rendered by the object store's origin: whatever the bytes are, nothing in them runs.
        return self.client.presigned_get_object(self.bucket, key, expires=expires, response_headers={
            "response-content-disposition": "attachment"})

    def list(self, prefix: str) -> Iterator[StoredObject]:
        for item in self.client.list_objects(self.bucket, prefix=prefix, recursive=True):
            if item.object_name and item.last_modified:
                yield StoredObject(key=item.object_name, last_modified=item.last_modified)

    def check(self) -> None:
        self.client.bucket_exists(self.bucket)


class InMemoryObjectStorage:
    """A dict standing in for the bucket, with the same contract as the S3 adapter."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.modified: dict[str, datetime] = {}
        self.puts = 0
        self.fail_next_put: Exception | None = None
        self._lock = threading.Lock()

    def put(self, key: str, body: IO[bytes], length: int, content_type: str) -> None:
        if self.fail_next_put is not None:
            failure, self.fail_next_put = self.fail_next_put, None
            raise failure
        data = body.read(length)
        with self._lock:
            self.objects[key] = data
            self.modified[key] = datetime.now(UTC)
            self.puts += 1

    def get(self, key: str, max_bytes: int) -> bytes | None:
        data = self.objects.get(key)
        return None if data is None else data[:max_bytes + 1]

    def exists(self, key: str) -> bool:
        return key in self.objects

    def delete(self, key: str) -> None:
        with self._lock:
            self.objects.pop(key, None)
            self.modified.pop(key, None)

    def presigned_get_url(self, key: str, expires: timedelta) -> str:
        return f"memory://wallet/{key}?expires={int(expires.total_seconds())}"

    def list(self, prefix: str) -> Iterator[StoredObject]:
        for key in sorted(self.objects):
            if key.startswith(prefix):
                yield StoredObject(key=key, last_modified=self.modified[key])

    def check(self) -> None:
        return None
