"""Reading an HTTP answer within one deadline: requests' read timeout bounds each socket read, not the body."""

from __future__ import annotations

import time

import requests
from urllib3.exceptions import HTTPError, ReadTimeoutError
from urllib3.response import BaseHTTPResponse


class AnswerTooLarge(Exception):
    """The answer's body passed the size limit; the caller says what that means for its protocol."""


def read_body(answer: requests.Response, deadline: float, max_bytes: int) -> bytes:
    """The streamed body of ``answer``, or requests.Timeout once ``deadline`` (time.monotonic) passes: a
    counterpart that trickles a byte at a time cannot hold a caller past its deadline (by more than one read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = _next_piece(answer.raw)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            raise AnswerTooLarge(f"answer larger than {max_bytes} bytes")
        if time.monotonic() > deadline:
            raise requests.Timeout("deadline passed while reading the answer")
    return b"".join(chunks)


def _next_piece(raw: object) -> bytes:
    if not isinstance(raw, BaseHTTPResponse):
        return raw.read(65536)  # type: ignore[attr-defined]  # a transport adapter's file-like body
    # read1 returns after one socket read; iter_content would wait for a whole chunk of trickled bytes. Its
    # errors are urllib3's own: turned into requests' as iter_content does, so callers catch one family.
    try:
        return raw.read1(65536, decode_content=True)
    except ReadTimeoutError as stalled:
        raise requests.Timeout(str(stalled)) from None
    except (HTTPError, OSError) as broken:
        raise requests.ConnectionError(type(broken).__name__) from None
