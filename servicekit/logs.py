"""Structured JSON logs carrying the request id, with secrets scrubbed before they are written."""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
import time
from typing import Any, TextIO

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

# Values that must never reach a log line: bearer tokens, JWTs, signatures, keys and long digit runs
# (account and card numbers, national IDs) are masked whatever field they appear in.
_JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*")
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"']+")
_SECRET_FIELD = re.compile(
    r"(?i)([\"']?(?:[a-z_]*secret[a-z_]*|password|passwd|signature|securehash|vnp_securehash|checksum|"
    r"access_?key|private_?key|api_?key|hash_?secret|token|mac)[\"']?\s*[:=]\s*[\"']?)([^\"'&,\s}]+)")
_LONG_DIGITS = re.compile(r"(?<![\d.])(\d{4,})(\d{4})(?![\d.])")


def scrub(text: str) -> str:
    """Mask secrets, signatures, tokens and account-like digit runs in ``text``."""
    text = _JWT.sub("[jwt]", text)
    text = _BEARER.sub(r"\1[redacted]", text)
    text = _SECRET_FIELD.sub(r"\1[redacted]", text)
    return _LONG_DIGITS.sub(lambda m: "*" * len(m.group(1)) + m.group(2), text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and any ``extra`` fields."""

    _RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in self._RESERVED and not key.startswith("_"):
                entry[key] = scrub(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exc"] = scrub(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send every logger's records to ``stream`` (stderr) as JSON lines (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_dvc_json", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler._dvc_json = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Per-request HTTP lines from the embedded werkzeug servers would double the access log.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def configure_discarded_logging() -> None:
    """The production access log (one JSON line per call at INFO), formatted and written as in production but
    into /dev/null: benchmarks pay its cost without burying their table. Echo and product servers alike."""
    configure_logging("INFO", stream=open(os.devnull, "w"))
