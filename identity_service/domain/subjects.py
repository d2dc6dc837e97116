"""Platform subjects: a citizen is their 12-digit national ID number, never an e-mail or an upstream id."""

from __future__ import annotations

import re

from servicekit.errors import InvalidArgument

# Applied with fullmatch: "$" also matches before a final newline, and \d takes any script's digits.
_NATIONAL_ID = re.compile(r"[0-9]{12}")
_AGENCY_CODE = re.compile(r"[A-Z0-9][A-Z0-9_-]{1,31}")
_CLIENT_ID = re.compile(r"[a-z][a-z0-9-]{2,63}")

OFFICIAL_PREFIX = "official"


def is_national_id(value: str) -> bool:
    """True for a 12-digit personal identification number (số định danh cá nhân)."""
    return bool(_NATIONAL_ID.fullmatch(value))


def national_id(value: object, field: str = "national_id") -> str:
    """The national ID as a 12-digit string; upstreams sometimes send it as a number, so digits are accepted."""
    text = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if not is_national_id(text):
        raise InvalidArgument.single(field, "must be the 12-digit national ID number", reason="INVALID_NATIONAL_ID")
    return text


def is_agency_code(value: str) -> bool:
    """True for an agency code as stored: upper-case letters, digits, '-' or '_'."""
    return bool(_AGENCY_CODE.fullmatch(value))


def agency_code(value: str, field: str = "agency") -> str:
    """An agency code such as HCM or BTP: upper-case letters, digits, '-' or '_'."""
    code = value.strip().upper()
    if not is_agency_code(code):
        raise InvalidArgument.single(field, "must be an agency code such as HCM or BTP (2-32 letters/digits)",
                                     reason="INVALID_AGENCY_CODE")
    return code


def client_id(value: str, field: str = "client_id") -> str:
    """A machine client id; it can never look like a national ID, so client and citizen subjects never collide."""
    if not _CLIENT_ID.fullmatch(value):
        raise InvalidArgument.single(field, "must be 3-64 lowercase letters, digits or '-', starting with a letter",
                                     reason="INVALID_CLIENT_ID")
    return value


def citizen_subject(number: str) -> str:
    """A citizen's platform subject: their national ID, so a returning citizen always maps to the same subject
    whichever upstream account or e-mail they used."""
    return national_id(number)


def official_subject(agency: str, number: str) -> str:
    """An official's subject: scoped by agency so the same person acting as an official is never confused with
    their own citizen subject."""
    return f"{OFFICIAL_PREFIX}:{agency_code(agency)}:{national_id(number)}"
