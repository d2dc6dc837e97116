"""Object storage for document content: the S3 adapter (minio SDK) and an in-memory fake for unit tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import IO, BinaryIO, cast

from minio import Minio
from minio.error import S3Error

from servicekit.errors import Unavailable
from wallet_service.service_layer.ports import StoredObject

_MISSING = ("NoSuchKey", "NoSuchObject", "NotFound")


class MinioObjectStorage:
    """Content in one S3 bucket; the client carries the connect/read timeouts (servicekit.s3.make_client)."""

    def __init__(self, client: Minio, bucket: str, *, part_size: int = 16 * 1024 * 1024) -> None:
        self.client = client
        self.bucket = bucket
        self._part_size = part_size

    def put(self, key: str, body: IO[bytes], length: int, content_type: str) -> None:
        try:
            self.client.put_object(self.bucket, key, cast(BinaryIO, body), length, content_type=content_type,
                                   part_size=self._part_size)
        except S3Error as exc:
            raise Unavailable(f"object storage refused the upload ({exc.code})", reason="STORAGE_UNAVAILABLE") from None

    def get(self, key: str, max_bytes: int) -> bytes | None:
        try:
            # One byte past the recorded size is enough to prove an object grew; never read more.
            response = self.client.get_object(self.bucket, key, offset=0, length=max_bytes + 1)
        except S3Error as exc:
            if exc.code in _MISSING:
                return None
            raise Unavailable(f"object storage refused the read ({exc.code})", reason="STORAGE_UNAVAILABLE") from None
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def delete(self, key: str) -> None:
        try:
            self.client.remove_object(self.bucket, key)
        except S3Error as exc:
            if exc.code not in _MISSING:
                raise

    def presigned_get_url(self, key: str, expires: timedelta) -> str:
        return self.client.presigned_get_object(self.bucket, key, expires=expires)

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
