"""VietQR (NAPAS 247, EMVCo merchant-presented QR): build and parse payloads, CRC-16/CCITT-FALSE, ASCII notes."""

from __future__ import annotations

import binascii
import re
import string
import unicodedata
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from enum import Enum
from typing import ClassVar

from servicekit.errors import InvalidArgument, ViolationCollector

NAPAS_GUID = "A000000727"
CURRENCY_VND = "704"
COUNTRY_VN = "VN"
PAYLOAD_FORMAT = "01"
STATIC_INITIATION = "11"
DYNAMIC_INITIATION = "12"

ACCOUNT_MAX = 19
AMOUNT_MAX_DIGITS = 13
AMOUNT_MAX = 10**AMOUNT_MAX_DIGITS - 1
ADDITIONAL_FIELD_MAX = 25
MERCHANT_NAME_MAX = 25
MERCHANT_CITY_MAX = 15
TLV_VALUE_MAX = 99  # two length digits

# The only punctuation kept in notes: dossier codes need "." and "-", and bank apps are known to drop or mangle
# most other symbols, which would make the note (and the payment reference in it) unmatchable.
_NOTE_SAFE_CHARACTERS = frozenset(string.ascii_letters + string.digits + " .,-")
# Đ/đ carry no combining mark, so Unicode decomposition alone would drop them instead of mapping them to D/d.
_NOTE_LETTER_FOLDS = str.maketrans({"Đ": "D", "đ": "d"})
# Bank apps strip punctuation and spaces from transfer notes, so a reference must be letters and digits to stay
# recognisable in the note the bank reports back.
_REFERENCE_PATTERN = re.compile(r"[A-Za-z0-9]{1,25}")

_BIN_PATTERN = re.compile(r"[0-9]{6}")
_ACCOUNT_PATTERN = re.compile(r"[A-Za-z0-9]{1,19}")
_CARD_PATTERN = re.compile(r"[0-9]{1,19}")
_AMOUNT_PATTERN = re.compile(r"[1-9][0-9]{0,12}")
_MCC_PATTERN = re.compile(r"[0-9]{4}")
_TWO_DIGITS = re.compile(r"[0-9]{2}")
_CRC_PATTERN = re.compile(r"[0-9A-Fa-f]{4}")


class Service(Enum):
    """NAPAS 247 service code (tag 38/02): where the money goes."""

    TO_ACCOUNT = "QRIBFTTA"
    TO_CARD = "QRIBFTTC"


# Where each dataclass field lives in the payload; violations name both so a reader can find either.
_FIELD_TAGS = {
    "bank_bin": "38/01/00",
    "account": "38/01/01",
    "service": "38/02",
    "dynamic": "01",
    "amount": "54",
    "merchant_category": "52",
    "merchant_name": "59",
    "merchant_city": "60",
    "bill_number": "62/01",
    "reference_label": "62/05",
    "terminal": "62/07",
    "purpose": "62/08",
}
_ADDITIONAL_DATA_FIELDS = ("bill_number", "reference_label", "terminal", "purpose")
_TEXT_LIMITS = {
    "merchant_name": MERCHANT_NAME_MAX,
    "merchant_city": MERCHANT_CITY_MAX,
    **dict.fromkeys(_ADDITIONAL_DATA_FIELDS, ADDITIONAL_FIELD_MAX),
}


def _label(tag: str, name: str) -> str:
    return f"tag {tag} ({name})"


def _field_label(name: str) -> str:
    return _label(_FIELD_TAGS[name], name)


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final XOR (check value 0x29B1)."""
    # crc_hqx is the same non-reflected 0x1021 CRC with a caller-chosen initial value, computed in C.
    return binascii.crc_hqx(data, 0xFFFF)


def to_ascii_note(text: str) -> str:
    """Plain-ASCII note: Vietnamese diacritics stripped, Đ/đ -> D/d, risky symbols dropped, spaces collapsed."""
    decomposed = unicodedata.normalize("NFD", text.translate(_NOTE_LETTER_FOLDS))
    kept = "".join(
        character if character in _NOTE_SAFE_CHARACTERS else " "
        for character in decomposed
        if not unicodedata.combining(character)
    )
    return " ".join(kept.split())


@dataclass(frozen=True)
class VietQr:
    """One VietQR code.

    ``amount`` is integer đồng. It is required on a dynamic code (tag 01 = ``12``): NAPAS defines that code as
    one payment, and each dynamic example of the specification carries its amount, so a dynamic code without
    one could only be paid with an amount the payer types in. A static (reusable) code may carry an amount, for
    example a poster for a fixed fee, or leave it to the payer.

    Free-text fields keep whatever a parsed code contained; ``build_payload`` writes them through
    ``to_ascii_note`` because bank apps mangle anything but plain ASCII.
    """

    CURRENCY: ClassVar[str] = CURRENCY_VND
    COUNTRY: ClassVar[str] = COUNTRY_VN

    bank_bin: str
    account: str
    service: Service = Service.TO_ACCOUNT
    dynamic: bool = False
    amount: int | None = None
    merchant_category: str | None = None
    merchant_name: str | None = None
    merchant_city: str | None = None
    bill_number: str | None = None
    reference_label: str | None = None
    terminal: str | None = None
    purpose: str | None = None

    def __post_init__(self) -> None:
        collector = ViolationCollector()
        _check_fields(asdict(self), collector)
        collector.raise_if_any("invalid VietQR code")


def _check_fields(values: Mapping[str, object], collector: ViolationCollector) -> None:
    """Check every field present in ``values``; the parser passes only the fields it could decode."""
    bank_bin = values.get("bank_bin")
    if "bank_bin" in values and not (isinstance(bank_bin, str) and _BIN_PATTERN.fullmatch(bank_bin)):
        collector.add(_field_label("bank_bin"), f"must be the 6-digit bank BIN, found {bank_bin!r}")

    service = values.get("service")
    if "service" in values and not isinstance(service, Service):
        collector.add(_field_label("service"), f"must be one of {[s.value for s in Service]}, found {service!r}")

    account = values.get("account")
    if "account" in values:
        to_card = service is Service.TO_CARD
        pattern = _CARD_PATTERN if to_card else _ACCOUNT_PATTERN
        if not (isinstance(account, str) and pattern.fullmatch(account)):
            kind = "card number of digits" if to_card else "account of ASCII letters and digits"
            collector.add(_field_label("account"), f"must be a {kind}, 1 to {ACCOUNT_MAX} long, found {account!r}")

    dynamic = values.get("dynamic")
    if "dynamic" in values and not isinstance(dynamic, bool):
        collector.add(_field_label("dynamic"), f"must be true or false, found {dynamic!r}")

    amount = values.get("amount")
    if amount is None:
        if dynamic is True and "amount" in values:
            collector.add(_field_label("amount"), "is required on a dynamic (one-payment) code")
    elif isinstance(amount, bool) or not isinstance(amount, int):
        collector.add(_field_label("amount"), f"must be an integer number of đồng, found {amount!r}")
    elif not 1 <= amount <= AMOUNT_MAX:
        collector.add(_field_label("amount"), f"must be 1 to {AMOUNT_MAX} đồng ({AMOUNT_MAX_DIGITS} digits)")

    category = values.get("merchant_category")
    if category is not None and not (isinstance(category, str) and _MCC_PATTERN.fullmatch(category)):
        collector.add(_field_label("merchant_category"), f"must be 4 digits, found {category!r}")

    for name, limit in _TEXT_LIMITS.items():
        text = values.get(name)
        if text is None:
            continue
        if not isinstance(text, str) or not text or not text.isprintable():
            collector.add(_field_label(name), f"must be printable text or absent, found {text!r}")
        elif len(text) > limit:
            collector.add(_field_label(name), f"must be at most {limit} characters, found {len(text)}")

    additional = [values.get(name) for name in _ADDITIONAL_DATA_FIELDS]
    additional_length = sum(4 + len(text) for text in additional if isinstance(text, str))
    if additional_length > TLV_VALUE_MAX:
        collector.add(
            _label("62", "additional_data"),
            f"sub-fields together must fit in {TLV_VALUE_MAX} characters, found {additional_length}",
        )


def _tlv(tag: str, value: str) -> str:
    return f"{tag}{len(value):02d}{value}"


def _with_crc(body: str) -> str:
    """Append tag 63: the CRC covers everything before it including its own ``6304`` header."""
    covered = body + "6304"
    return f"{covered}{crc16_ccitt_false(covered.encode('utf-8')):04X}"


def _note(name: str, text: str | None) -> str | None:
    if text is None:
        return None
    note = to_ascii_note(text)
    if not note:
        raise InvalidArgument.single(_field_label(name), f"has no plain-ASCII letters or digits left: {text!r}")
    return note


def build_payload(code: VietQr) -> str:
    """The VietQR payload string for ``code``: EMVCo TLV fields in tag order, then the uppercase CRC."""
    beneficiary = _tlv("00", code.bank_bin) + _tlv("01", code.account)
    account_info = _tlv("00", NAPAS_GUID) + _tlv("01", beneficiary) + _tlv("02", code.service.value)
    fields = [
        _tlv("00", PAYLOAD_FORMAT),
        _tlv("01", DYNAMIC_INITIATION if code.dynamic else STATIC_INITIATION),
        _tlv("38", account_info),
    ]
    if code.merchant_category is not None:
        fields.append(_tlv("52", code.merchant_category))
    fields.append(_tlv("53", CURRENCY_VND))
    if code.amount is not None:
        fields.append(_tlv("54", str(code.amount)))
    fields.append(_tlv("58", COUNTRY_VN))
    for tag, name in (("59", "merchant_name"), ("60", "merchant_city")):
        text = _note(name, getattr(code, name))
        if text is not None:
            fields.append(_tlv(tag, text))
    # Sub-tags in ascending order put the bill number (the payment reference) first, so it survives truncation.
    additional = ""
    for name in _ADDITIONAL_DATA_FIELDS:
        text = _note(name, getattr(code, name))
        if text is not None:
            additional += _tlv(_FIELD_TAGS[name].split("/")[1], text)
    if additional:
        fields.append(_tlv("62", additional))
    return _with_crc("".join(fields))


def payment_qr(bank_bin: str, account: str, amount: int, reference: str, purpose: str) -> str:
    """Dynamic to-account payload for one payment: reference in the bill number and first in the purpose."""
    if not isinstance(reference, str) or not _REFERENCE_PATTERN.fullmatch(reference):
        raise InvalidArgument.single(
            "reference", f"must be 1 to {ADDITIONAL_FIELD_MAX} ASCII letters and digits, found {reference!r}"
        )
    note = to_ascii_note(f"{reference} {purpose}")[:ADDITIONAL_FIELD_MAX].rstrip()
    code = VietQr(
        bank_bin=bank_bin,
        account=account,
        service=Service.TO_ACCOUNT,
        dynamic=True,
        amount=amount,
        bill_number=reference,
        purpose=note,
    )
    return build_payload(code)


def with_amount(payload: str, amount: int) -> str:
    """The same code asking for ``amount`` instead: beneficiary, bill number and note unchanged, so a transfer made
    with it is matched to the same payment."""
    return build_payload(replace(parse_payload(payload), amount=amount))


def _split_tlv(text: str, path: str, collector: ViolationCollector) -> dict[str, str] | None:
    """Split ``text`` into {tag: value}; on a structural fault record it and return None."""
    fields: dict[str, str] = {}
    position = 0
    while position < len(text):
        header = text[position : position + 4]
        tag, length = header[:2], header[2:]
        where = _label(f"{path}{tag}" if _TWO_DIGITS.fullmatch(tag) else f"{path}?", "tlv")
        if len(header) < 4 or not _TWO_DIGITS.fullmatch(tag) or not _TWO_DIGITS.fullmatch(length):
            collector.add(where, f"expected a 2-digit tag and 2-digit length at offset {position}, found {header!r}")
            return None
        size = int(length)
        if size == 0:
            collector.add(where, f"length must be 01 to 99 at offset {position}, found 00")
            return None
        value = text[position + 4 : position + 4 + size]
        if len(value) < size:
            collector.add(where, f"length {size} runs past the end (only {len(value)} characters left)")
            return None
        if tag in fields:
            collector.add(where, "appears more than once")
            return None
        fields[tag] = value
        position += 4 + size
    return fields


def _check_crc(text: str, fields: Mapping[str, str], collector: ViolationCollector) -> None:
    where = _label("63", "crc")
    found = fields.get("63")
    if found is None:
        collector.add(where, "is missing")
    elif list(fields)[-1] != "63":
        collector.add(where, "must be the last field")
    elif not _CRC_PATTERN.fullmatch(found):
        collector.add(where, f"must be 4 hexadecimal digits, found {found!r}")
    else:
        expected = crc16_ccitt_false(text[:-4].encode("utf-8"))
        if int(found, 16) != expected:
            collector.add(where, f"checksum mismatch: expected {expected:04X}, found {found}")


def _require_value(
    fields: Mapping[str, str], tag: str, name: str, wanted: str, collector: ViolationCollector, *, path: str = ""
) -> None:
    found = fields.get(tag)
    if found is None:
        collector.add(_label(path + tag, name), f"is missing (must be {wanted!r})")
    elif found != wanted:
        collector.add(_label(path + tag, name), f"must be {wanted!r}, found {found!r}")


def _decode_account_info(fields: Mapping[str, str], values: dict[str, object], collector: ViolationCollector) -> None:
    account_info_value = fields.get("38")
    if account_info_value is None:
        other = ", ".join(f"tag {tag}" for tag in fields if "26" <= tag <= "51")
        hint = f" (found other schemes' account info: {other})" if other else ""
        collector.add(_label("38", "merchant_account"), f"is missing: not a VietQR code{hint}")
        return
    account_info = _split_tlv(account_info_value, "38/", collector)
    if account_info is None:
        return
    _require_value(account_info, "00", "guid", NAPAS_GUID, collector, path="38/")
    service = account_info.get("02")
    if service is None:
        collector.add(_field_label("service"), "is missing")
    elif service in {s.value for s in Service}:
        values["service"] = Service(service)
    else:
        collector.add(_field_label("service"), f"must be one of {[s.value for s in Service]}, found {service!r}")
    beneficiary_value = account_info.get("01")
    if beneficiary_value is None:
        collector.add(_label("38/01", "beneficiary"), "is missing")
        return
    beneficiary = _split_tlv(beneficiary_value, "38/01/", collector)
    if beneficiary is None:
        return
    for tag, name in (("00", "bank_bin"), ("01", "account")):
        if tag in beneficiary:
            values[name] = beneficiary[tag]
        else:
            collector.add(_field_label(name), "is missing")


def parse_payload(text: str) -> VietQr:
    """Parse and validate a VietQR payload; every fault is reported as a FieldViolation naming its tag."""
    if not isinstance(text, str):
        raise InvalidArgument.single("payload", f"must be text, found {type(text).__name__}")
    text = text.strip()
    if not text.isprintable():
        raise InvalidArgument.single("payload", "contains control or unencodable characters")
    collector = ViolationCollector()
    fields = _split_tlv(text, "", collector)
    # A structural fault makes every later check meaningless, so it is reported alone.
    collector.raise_if_any("malformed VietQR payload")
    assert fields is not None, "_split_tlv records why it failed"
    if fields and next(iter(fields)) != "00":
        collector.add(_label("00", "payload_format"), "must be the first field")
    _check_crc(text, fields, collector)
    _require_value(fields, "00", "payload_format", PAYLOAD_FORMAT, collector)
    _require_value(fields, "53", "currency", CURRENCY_VND, collector)
    _require_value(fields, "58", "country", COUNTRY_VN, collector)

    values: dict[str, object] = {}
    initiation = fields.get("01")
    if initiation in (STATIC_INITIATION, DYNAMIC_INITIATION):
        values["dynamic"] = initiation == DYNAMIC_INITIATION
    else:
        collector.add(
            _field_label("dynamic"), f"point of initiation must be '11' or '12', found {initiation!r}"
        )
    _decode_account_info(fields, values, collector)

    amount = fields.get("54")
    if amount is None:
        values["amount"] = None
    elif _AMOUNT_PATTERN.fullmatch(amount):
        values["amount"] = int(amount)
    else:
        collector.add(
            _field_label("amount"),
            f"must be a plain integer of đồng, 1 to {AMOUNT_MAX_DIGITS} digits, no decimals, found {amount!r}",
        )

    for tag, name in (("52", "merchant_category"), ("59", "merchant_name"), ("60", "merchant_city")):
        if tag in fields:
            values[name] = fields[tag]
    additional_value = fields.get("62")
    if additional_value is not None:
        additional = _split_tlv(additional_value, "62/", collector)
        for name in _ADDITIONAL_DATA_FIELDS:
            sub_tag = _FIELD_TAGS[name].split("/")[1]
            if additional is not None and sub_tag in additional:
                values[name] = additional[sub_tag]

    _check_fields(values, collector)
    collector.raise_if_any("invalid VietQR payload")
    return VietQr(**values)  # type: ignore[arg-type]  # every field was type-checked by _check_fields


__all__ = [
    "NAPAS_GUID",
    "Service",
    "VietQr",
    "build_payload",
    "crc16_ccitt_false",
    "parse_payload",
    "payment_qr",
    "to_ascii_note",
    "with_amount",
]
