"""The S3 adapter against the real SeaweedFS server: presigned PUT and ranged GET on kept-alive connections."""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Iterator

import pytest

from servicekit.errors import Unavailable
from servicekit.s3 import drop_bucket, make_client
from wallet_service.adapters.object_storage import MinioObjectStorage

pytestmark = pytest.mark.integration

BODY = b"%PDF-1.7\n" + bytes(range(256)) * 400


@pytest.fixture
def storage(s3_settings: dict[str, str], unique_name: str) -> Iterator[MinioObjectStorage]:
    client = make_client(s3_settings["endpoint"], s3_settings["access_key"], s3_settings["secret_key"])
    client.make_bucket(unique_name)
    try:
        yield MinioObjectStorage(client, unique_name, timeout_seconds=5)
    finally:
        drop_bucket(client, unique_name)


def test_what_is_put_is_read_back_and_seen_by_the_sdk_with_its_type(storage):
    storage.put("sha256/a", io.BytesIO(BODY), len(BODY), "application/pdf")
    assert storage.get("sha256/a", len(BODY)) == BODY
    stat = storage.client.stat_object(storage.bucket, "sha256/a")
    assert (stat.size, stat.content_type) == (len(BODY), "application/pdf")


def test_exists_tells_a_stored_object_from_a_missing_one(storage):
    storage.put("sha256/there", io.BytesIO(BODY), len(BODY), "application/pdf")
    assert storage.exists("sha256/there") and not storage.exists("sha256/never-stored")
    storage.delete("sha256/there")
    assert not storage.exists("sha256/there")


def test_a_read_stops_one_byte_past_the_size_it_expects(storage):
    storage.put("sha256/grown", io.BytesIO(BODY), len(BODY), "application/pdf")
    assert storage.get("sha256/grown", 100) == BODY[:101]


def test_a_missing_object_reads_as_none(storage):
    assert storage.get("sha256/never-stored", 10) is None


def test_the_put_sends_the_body_from_where_the_stream_stands(storage):
    spooled = io.BytesIO(b"ignored" + BODY)
    spooled.seek(len(b"ignored"))
    storage.put("sha256/offset", spooled, len(BODY), "application/pdf")
    assert storage.get("sha256/offset", len(BODY)) == BODY


def test_a_connection_the_server_dropped_is_replaced_without_failing_the_call(storage):
    storage.put("sha256/kept", io.BytesIO(BODY), len(BODY), "application/pdf")
    for connection in storage._http._local.connections.values():
        assert connection.sock is not None
        connection.sock.shutdown(socket.SHUT_RDWR)  # as when the server closes an idle keep-alive connection
    assert storage.get("sha256/kept", len(BODY)) == BODY


def test_an_unreachable_server_is_reported_as_unavailable_quickly(s3_settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    client = make_client(f"127.0.0.1:{free_port}", s3_settings["access_key"], s3_settings["secret_key"])
    storage = MinioObjectStorage(client, "nowhere", timeout_seconds=2)
    started = time.monotonic()
    with pytest.raises(Unavailable) as failure:
        storage.get("sha256/x", 10)
    assert failure.value.reason == "STORAGE_UNAVAILABLE"
    assert time.monotonic() - started < 5


def test_repeated_reads_of_one_object_sign_once_and_still_see_an_overwrite(storage, monkeypatch):
    storage.put("sha256/hot", io.BytesIO(BODY), len(BODY), "application/pdf")
    signed = []
    real_presign = storage.client.presigned_get_object

    def counted_presign(*args, **kwargs):
        signed.append(args)
        return real_presign(*args, **kwargs)

    monkeypatch.setattr(storage.client, "presigned_get_object", counted_presign)
    assert storage.get("sha256/hot", len(BODY)) == BODY
    storage.client.put_object(storage.bucket, "sha256/hot", io.BytesIO(b"tampered"), 8)
    # The reused URL is a read of whatever is stored now, never a cached body.
    assert storage.get("sha256/hot", len(BODY)) == b"tampered"
    assert len(signed) == 1
