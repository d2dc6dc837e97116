"""What every connector shares: configuration reading, the timed HTTP call with its error mapping, signing and
amount helpers, settlement CSV parsing and transcript scrubbing."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import logging
import os
import re
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import requests

from payment_service.adapters.http_deadline import AnswerTooLarge, read_body
from payment_service.domain.connector import (
    ConnectorError,
    ConnectorErrorKind,
    ConnectorInfo,
    ConnectorStatus,
    SettlementLine,
)
from servicekit.logs import scrub as scrub_common

MAX_TIMEOUT_SECONDS = 10.0
DEFAULT_TIMEOUT_SECONDS = 10.0
# Vietnamese providers stamp local time (GMT+7) without a zone in their date fields.
VIETNAM = timezone(timedelta(hours=7), "ICT")
REDACTED = "[redacted]"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class CredentialError(ConnectorError):
    """A missing or malformed configuration value; ``field`` is its key so start-up can name it in one line."""

    def __init__(self, field_name: str, problem: str) -> None:
        super().__init__(ConnectorErrorKind.CONFIGURATION, f"{field_name}: {problem}")
        self.field = field_name
        self.problem = problem


_PLACEHOLDER = re.compile(r"\$\{[^}]*\}")


class ConfigEntry:
    """One connector's configuration mapping, read leniently; problems are collected and raised by
    ``check`` so that start-up (``check_credentials``) reports the first one naming its key.

    A value may be given inline (``hash_secret``), from an environment variable (``hash_secret_env``) or from a
    file (``hash_secret_file``, e.g. a mounted Kubernetes secret), so keys need not sit in the YAML file.
    """

    def __init__(self, code: str, entry: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> None:
        self.code = code
        self._entry = dict(entry)
        self._environ = os.environ if environ is None else environ
        self.problems: list[CredentialError] = []

    def _problem(self, name: str, problem: str) -> None:
        self.problems.append(CredentialError(name, problem))

    def _raw(self, name: str) -> str | None:
        if name in self._entry and self._entry[name] is not None:
            value = str(self._entry[name])
            if _PLACEHOLDER.search(value):
                # Nothing expands ${...} in this file: taken literally it would become a guessable secret.
                self._problem(name, f"looks like a placeholder ({value[:40]}); give the variable's name as "
                                    f"{name}_env instead")
                return ""
            return value
        variable = self._entry.get(f"{name}_env")
        if variable:
            from_environment = self._environ.get(str(variable))
            if from_environment is None:
                self._problem(f"{name}_env", f"environment variable {variable} is not set")
                return ""
            return from_environment
        path = self._entry.get(f"{name}_file")
        if path:
            try:
                return Path(str(path)).read_text(encoding="utf-8").strip()
            except OSError as exc:
                self._problem(f"{name}_file", f"cannot read {path} ({exc.strerror})")
                return ""
        return None

    def text(self, name: str, default: str | None = None) -> str:
        """The value of ``name``; a missing value with no default is recorded as a problem and read as ''."""
        value = self._raw(name)
        if value is None or value == "":
            if default is None:
                if value is None:
                    self._problem(name, "is missing")
                else:
                    self._problem(name, "is empty")
                return ""
            return default
        return value

    def url(self, name: str, default: str | None = None) -> str:
        value = self.text(name, default).rstrip("/")
        if value and not re.match(r"https?://[^/\s]+", value):
            self._problem(name, f"must be an http(s) URL, got {value!r}")
        return value

    def number(self, name: str, default: float, *, low: float, high: float) -> float:
        raw = self._raw(name)
        if raw is None or raw == "":
            return default
        try:
            value = float(raw)
        except ValueError:
            self._problem(name, f"must be a number, got {raw!r}")
            return default
        if not low < value <= high:
            self._problem(name, f"must be more than {low:g} and at most {high:g}, got {raw}")
            return default
        return value

    def timeout(self) -> float:
        """``timeout_seconds``: every outbound call must give up within 10 seconds."""
        return self.number("timeout_seconds", DEFAULT_TIMEOUT_SECONDS, low=0.0, high=MAX_TIMEOUT_SECONDS)

    def check(self) -> None:
        if self.problems:
            raise self.problems[0]


# --- signatures -----------------------------------------------------------------------------------------------

def hmac_hex(algorithm: str, key: str, message: str | bytes) -> str:
    """Lowercase hex HMAC of ``message`` (UTF-8) with ``key`` using ``algorithm`` ('sha256', 'sha512')."""
    data = message.encode("utf-8") if isinstance(message, str) else message
    return hmac.new(key.encode("utf-8"), data, algorithm).hexdigest()


def digest_hex(algorithm: str, message: str | bytes) -> str:
    data = message.encode("utf-8") if isinstance(message, str) else message
    return hashlib.new(algorithm, data).hexdigest()


def signatures_match(expected: str, received: str | None) -> bool:
    """Constant-time comparison of two hex signatures, case-insensitive; an absent signature never matches."""
    if not received or not expected:
        return False
    return hmac.compare_digest(expected.lower().encode("utf-8"), received.strip().lower().encode("utf-8"))


def bad_signature(what: str) -> ConnectorError:
    return ConnectorError(ConnectorErrorKind.BAD_SIGNATURE, what)


def protocol_error(what: str, provider_code: str = "") -> ConnectorError:
    return ConnectorError(ConnectorErrorKind.PROTOCOL, what, provider_code=provider_code)


def parse_xml(text: str) -> ElementTree.Element | None:
    """Parse counterpart XML, or None when it does not parse or carries a DTD (refused before the parser sees it,
    so no entity tricks)."""
    if "<!DOCTYPE" in text.upper() or "<!ENTITY" in text.upper():
        return None
    try:
        return ElementTree.fromstring(text)  # noqa: S314 - DTDs are refused above; expat fetches no entities
    except ElementTree.ParseError:
        return None


# --- amounts and times -----------------------------------------------------------------------------------------

def to_dong(value: Any, *, unit: int = 1, what: str = "amount") -> int:
    """Convert an amount in the provider's unit (``unit`` provider units per đồng) to integer đồng; anything
    that is not a whole, non-negative number of đồng is a protocol error, never rounded."""
    text = str(value).strip()
    if not re.fullmatch(r"[0-9]{1,18}", text):
        raise protocol_error(f"{what} is not a whole number: {text[:20]!r}")
    units = int(text)
    if units % unit:
        raise protocol_error(f"{what} {units} is not a whole number of đồng (unit {unit})")
    return units // unit


def vn_timestamp(moment: datetime) -> str:
    """yyyyMMddHHmmss in Vietnam time, the format VNPay, Payoo and others stamp requests with."""
    return moment.astimezone(VIETNAM).strftime("%Y%m%d%H%M%S")


def parse_vn_timestamp(text: str) -> datetime | None:
    try:
        return datetime.strptime(text.strip(), "%Y%m%d%H%M%S").replace(tzinfo=VIETNAM)
    except ValueError:
        return None


# --- transcripts and scrubbing ---------------------------------------------------------------------------------

_KEEP_LAST = 4


def _mask_keep_last(value: str) -> str:
    return "*" * max(len(value) - _KEEP_LAST, 0) + value[-_KEEP_LAST:] if len(value) > _KEEP_LAST else "****"


@dataclass
class Scrubber:
    """Masks one connector's secrets in a transcript: its literal key values, the signature fields of its
    protocol (form, JSON, header and XML spellings) and account-number fields (last four characters kept),
    then everything the platform-wide scrub knows about."""

    secrets: list[str] = field(default_factory=list)
    signature_fields: tuple[str, ...] = ()
    account_fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.add_secrets()
        self._signature = self._field_pattern(self.signature_fields)
        self._account = self._field_pattern(self.account_fields)

    @staticmethod
    def _field_pattern(names: Iterable[str]) -> re.Pattern[str] | None:
        names = list(names)
        if not names:
            return None
        alternatives = "|".join(re.escape(name) for name in names)
        # name=value (form), "name": "value" (JSON), name: value (headers) and <name>value</name> (XML).
        return re.compile(
            rf"(?i)(?P<open>(?:[\"']?\b(?:{alternatives})[\"']?\s*[:=]\s*[\"']?)|(?:<(?:{alternatives})>))"
            r"(?P<value>[^\"'&,\s{}\[\]<]+)")

    def add_secrets(self, *values: str) -> None:
        # Short values would mask ordinary words; real keys are long. Longest first so no key is half-masked.
        self.secrets = sorted({s for s in (*self.secrets, *values) if s and len(s) >= 6}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        if self._signature is not None:
            text = self._signature.sub(lambda m: m.group("open") + REDACTED, text)
        if self._account is not None:
            text = self._account.sub(lambda m: m.group("open") + _mask_keep_last(m.group("value")), text)
        return scrub_common(text)


def _printable(body: bytes | str | None, limit: int = 4000) -> str:
    if body is None:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return text if len(text) <= limit else text[:limit] + f"...({len(text)} chars)"


# --- HTTP ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HttpResponse:
    """A counterpart's HTTP answer, fully read within the deadline."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise protocol_error(f"answer is not JSON (HTTP {self.status})") from None


class HttpClient:
    """Outbound calls of one connector: every call finishes within ``timeout_seconds`` (connect, wait and read
    together), transport failures become ConnectorError(TIMEOUT/UNAVAILABLE), 5xx and 429 become UNAVAILABLE,
    and request/response transcripts are logged only after ``scrub``."""

    def __init__(self, code: str, timeout_seconds: float, scrub: Callable[[str], str], *,
                 session: requests.Session | None = None, max_body_bytes: int = 8 * 1024 * 1024) -> None:
        self.code = code
        self.timeout_seconds = timeout_seconds
        self.scrub = scrub
        self.session = session or requests.Session()
        self.max_body_bytes = max_body_bytes
        self.log = logging.getLogger(f"dvc.connectors.{code}")

    def send(self, method: str, url: str, *, operation: str, headers: Mapping[str, str] | None = None,
             params: Mapping[str, str] | None = None, body: bytes | None = None) -> HttpResponse:
        """Send one request; answers below 500 (other than 429) are returned for the protocol to interpret."""
        deadline = time.monotonic() + self.timeout_seconds
        headers = dict(headers or {})
        self.log.debug(self.scrub(f"{self.code} {operation} request: {method} {url} params={dict(params or {})} "
                                  f"headers={headers} body={_printable(body)}"))
        started = time.monotonic()
        try:
            # The connect timeout is part of the same budget; read_body enforces the overall deadline.
            with self.session.request(method, url, params=params, data=body, headers=headers, stream=True,
                                      allow_redirects=False,
                                      timeout=(min(self.timeout_seconds, 5.0), self.timeout_seconds)) as answer:
                try:
                    content = read_body(answer, deadline, self.max_body_bytes)
                except AnswerTooLarge as too_large:
                    raise protocol_error(f"{operation}: {too_large}") from None
                response = HttpResponse(answer.status_code, dict(answer.headers), content)
        except requests.Timeout:
            self.log.warning("%s %s timed out after %.1fs", self.code, operation, time.monotonic() - started)
            raise ConnectorError(ConnectorErrorKind.TIMEOUT,
                                 f"{self.code} {operation}: no answer within {self.timeout_seconds:g}s") from None
        except requests.RequestException as exc:
            problem = self.scrub(type(exc).__name__)
            self.log.warning("%s %s unavailable: %s", self.code, operation, problem)
            raise ConnectorError(ConnectorErrorKind.UNAVAILABLE,
                                 f"{self.code} {operation}: cannot reach the counterpart ({problem})") from None
        elapsed_ms = (time.monotonic() - started) * 1000
        self.log.debug(self.scrub(f"{self.code} {operation} response: HTTP {response.status} in {elapsed_ms:.0f} ms "
                                  f"headers={dict(response.headers)} body={_printable(response.body)}"))
        if response.status >= 500 or response.status == 429:
            raise ConnectorError(ConnectorErrorKind.UNAVAILABLE,
                                 f"{self.code} {operation}: counterpart answered HTTP {response.status}",
                                 provider_code=str(response.status))
        return response


# --- settlement files ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SettlementLayout:
    """Column names and units of one provider's settlement CSV."""

    reference: str
    provider_reference: str
    amount: str
    status: str
    settled_on: str
    statuses: Mapping[str, ConnectorStatus]
    amount_unit: int = 1
    date_format: str = "%Y-%m-%d"

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.reference, self.provider_reference, self.amount, self.status, self.settled_on)


def parse_settlement_csv(content: bytes, layout: SettlementLayout) -> list[SettlementLine]:
    """Parse a settlement CSV (header row first; lines starting with '#' are comments/signatures)."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise protocol_error("settlement file is not UTF-8") from None
    rows = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    reader = csv.DictReader(io.StringIO("\n".join(rows)))
    missing = [name for name in layout.columns if name not in (reader.fieldnames or [])]
    if missing:
        raise protocol_error(f"settlement file lacks columns {', '.join(missing)}")
    lines = []
    for number, row in enumerate(reader, start=2):
        status = layout.statuses.get(row[layout.status].strip())
        if status is None:
            raise protocol_error(f"settlement line {number}: unknown status {row[layout.status][:20]!r}")
        try:
            settled_on = datetime.strptime(row[layout.settled_on].strip(), layout.date_format).date()
        except ValueError:
            raise protocol_error(f"settlement line {number}: bad date {row[layout.settled_on][:20]!r}") from None
        lines.append(SettlementLine(
            reference=row[layout.reference].strip(),
            provider_reference=row[layout.provider_reference].strip(),
            amount=to_dong(row[layout.amount], unit=layout.amount_unit, what=f"settlement line {number} amount"),
            status=status,
            settled_on=settled_on,
        ))
    return lines


def render_settlement_csv(lines: Iterable[SettlementLine], layout: SettlementLayout) -> bytes:
    """Write lines in ``layout`` (used by the sandboxes, which produce the files connectors parse)."""
    names = {status: name for name, status in layout.statuses.items()}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(layout.columns)
    for line in lines:
        writer.writerow([line.reference, line.provider_reference, line.amount * layout.amount_unit,
                         names[line.status], line.settled_on.strftime(layout.date_format)])
    return out.getvalue().encode("utf-8")


def day_text(day: date, fmt: str = "%Y-%m-%d") -> str:
    return day.strftime(fmt)


class ConnectorBase:
    """State every connector has: its facts, configuration, clock, scrubber and HTTP client. Protocol files
    subclass it and implement the Connector methods in their counterpart's terms."""

    info: ConnectorInfo
    settlement_layout: SettlementLayout | None = None

    def __init__(self, info: ConnectorInfo, config: ConfigEntry, scrubber: Scrubber, *, clock: Clock = utc_now,
                 session: requests.Session | None = None) -> None:
        self.info = info
        self.config = config
        self.clock = clock
        self.scrubber = scrubber
        self.http = HttpClient(info.code, config.timeout(), scrubber, session=session)
        self.log = self.http.log

    def check_credentials(self) -> None:
        self.config.check()

    def scrub(self, text: str) -> str:
        return self.scrubber(text)

    def parse_settlement(self, content: bytes) -> list[SettlementLine]:
        if self.settlement_layout is None:
            raise ConnectorError(ConnectorErrorKind.CONFIGURATION, f"{self.info.code} has no settlement file format")
        return parse_settlement_csv(content, self.settlement_layout)
