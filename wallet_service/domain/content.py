"""Receiving document content: size limits, type sniffed from the bytes, SHA-256 computed on the way in."""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO

from servicekit.errors import InvalidArgument

MAX_CONTENT_BYTES = 20 * 1024 * 1024
# Enough leading bytes to recognise every accepted format (an XML declaration after a BOM and some blanks).
SNIFF_BYTES = 64
# Small documents stay in memory; larger ones spill to a temporary file instead of holding 20 MB per call.
SPOOL_IN_MEMORY_BYTES = 1024 * 1024

PDF = "application/pdf"
PNG = "image/png"
JPEG = "image/jpeg"
XML = "application/xml"
ACCEPTED_TYPES = (PDF, PNG, JPEG, XML)


# XML that a browser would render and run as a page or an image (XHTML, SVG), or that carries a DTD (entities for
# whoever parses it later): not a document the state issues, and a script in it would run wherever it is opened.
_MARKUP_OVERLAP = 64
_ACTIVE_MARKUP = re.compile(rb"<!DOCTYPE|<(?:[\w.-]+:)?(?:svg|html)[\s>/]|http://www\.w3\.org/(?:1999/xhtml|2000/svg)",
                            re.IGNORECASE)


def sniff_content_type(head: bytes) -> str | None:
    """The media type the leading bytes prove, or None; file names and declared types are never trusted."""
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")
    if text.startswith(b"<?xml"):
        return XML
    return None


@dataclass
class ReceivedContent:
    """Content that passed the checks, spooled, with its hash; ``close`` frees the spool."""

    body: IO[bytes]
    sha256: str
    size: int
    content_type: str

    def close(self) -> None:
        self.body.close()


def _carries_active_markup(spool: IO[bytes], block: int = 65_536) -> bool:
    """Whether spooled XML holds markup a browser would run; read again only for XML, so PDFs and images pay
    nothing. Each block is searched with the end of the one before, so a match cut in two is still found."""
    spool.seek(0)
    tail = b""
    while piece := spool.read(block):
        if _ACTIVE_MARKUP.search(tail + piece):
            return True
        tail = piece[-_MARKUP_OVERLAP:]
    return False


def receive_content(chunks: Iterable[bytes], *, max_bytes: int = MAX_CONTENT_BYTES,
                    field_path: str = "chunk") -> ReceivedContent:
    """Read every chunk, refusing oversize content as soon as it passes the limit (without reading the rest),
    empty content, and content that is not PDF, PNG, JPEG or XML."""
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES)
    digest = hashlib.sha256()
    size = 0
    head = b""
    try:
        for chunk in chunks:
            if not chunk:
                continue
            size += len(chunk)
            if size > max_bytes:
                raise InvalidArgument.single(field_path, f"content exceeds the {max_bytes // (1024 * 1024)} MB limit",
                                             reason="CONTENT_TOO_LARGE")
            if len(head) < SNIFF_BYTES:
                head += chunk[:SNIFF_BYTES - len(head)]
            digest.update(chunk)
            spool.write(chunk)
        if size == 0:
            raise InvalidArgument.single(field_path, "content is empty", reason="CONTENT_EMPTY")
        content_type = sniff_content_type(head)
        if content_type == XML and _carries_active_markup(spool):
            raise InvalidArgument.single(field_path, "XML that a browser would run as a page or image (XHTML, SVG) "
                                                     "or that carries a DTD is not accepted",
                                         reason="CONTENT_TYPE_NOT_ALLOWED")
        if content_type is None:
            raise InvalidArgument.single(field_path, "content is not a PDF, PNG, JPEG or XML document "
                                                     "(checked from the bytes, not the name)",
                                         reason="CONTENT_TYPE_NOT_ALLOWED")
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return ReceivedContent(body=spool, sha256=digest.hexdigest(), size=size, content_type=content_type)
