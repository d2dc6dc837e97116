"""Content intake: type from the bytes, size limits, empty content, and the hash computed on the way in."""

from __future__ import annotations

import hashlib

import pytest

from servicekit.errors import InvalidArgument
from wallet_service.domain.content import receive_content, sniff_content_type


@pytest.mark.parametrize(("head", "expected"), [
    (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
    (b'<?xml version="1.0" encoding="UTF-8"?><HoSo/>', "application/xml"),
    (b'\xef\xbb\xbf\r\n  <?xml version="1.0"?><a/>', "application/xml"),
])
def test_accepted_formats_are_recognised_from_their_leading_bytes(head, expected):
    assert sniff_content_type(head) == expected


@pytest.mark.parametrize("head", [
    b"PK\x03\x04 a zip named receipt.pdf",
    b"GIF89a",
    b"plain text that mentions %PDF- later",
    b"<html><body>not xml</body></html>",
    b"MZ\x90\x00 executable",
])
def test_other_bytes_are_not_recognised_whatever_they_claim(head):
    assert sniff_content_type(head) is None


def test_content_is_hashed_and_spooled_across_chunks():
    chunks = [b"%PDF-1.7\n", b"x" * 70_000, b"", b"trailer"]
    received = receive_content(iter(chunks))
    joined = b"".join(chunks)
    try:
        assert received.sha256 == hashlib.sha256(joined).hexdigest()
        assert received.size == len(joined)
        assert received.content_type == "application/pdf"
        assert received.body.read() == joined
    finally:
        received.close()


def test_empty_content_is_refused():
    with pytest.raises(InvalidArgument) as refused:
        receive_content(iter([b"", b""]))
    assert refused.value.reason == "CONTENT_EMPTY"


def test_mistyped_content_is_refused():
    with pytest.raises(InvalidArgument) as refused:
        receive_content(iter([b"just some text, not a document"]))
    assert refused.value.reason == "CONTENT_TYPE_NOT_ALLOWED"


def test_oversized_content_is_refused_without_reading_the_rest():
    consumed = []

    def chunks():
        for index in range(10):
            consumed.append(index)
            yield (b"%PDF-" if index == 0 else b"") + b"x" * 400

    with pytest.raises(InvalidArgument) as refused:
        receive_content(chunks(), max_bytes=1000)
    assert refused.value.reason == "CONTENT_TOO_LARGE"
    # 405 + 400 fits, the third chunk passes 1000 bytes: nothing after it is pulled from the client.
    assert consumed == [0, 1, 2]


def test_content_exactly_at_the_limit_is_accepted():
    received = receive_content(iter([b"%PDF-" + b"x" * 995]), max_bytes=1000)
    assert received.size == 1000
    received.close()


@pytest.mark.parametrize("body", [
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
    b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script></html>',
    b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY e SYSTEM "file:///etc/passwd">]><d>&e;</d>',
    # Behind a namespace prefix, and straddling the 64 KB block boundary of the scan: still found.
    b'<?xml version="1.0"?><!-- ' + b"x" * (65_536 - 3 - 30) + b' --><x:svg xmlns:x="urn:a"></x:svg>',
], ids=["svg", "xhtml", "dtd", "late-and-split"])
def test_xml_a_browser_would_run_or_that_carries_a_dtd_is_refused(body: bytes) -> None:
    cut = body.find(b"<x:svg") + 4 if b"<x:svg" in body else 65_536
    with pytest.raises(InvalidArgument) as refused:
        receive_content(iter([body[:cut], body[cut:]]))
    assert refused.value.reason == "CONTENT_TYPE_NOT_ALLOWED"


def test_plain_xml_documents_are_still_accepted() -> None:
    body = b'<?xml version="1.0" encoding="UTF-8"?><GiayKhaiSinh><HoTen>Nguyen Van An</HoTen></GiayKhaiSinh>'
    assert receive_content(iter([body])).content_type == "application/xml"
