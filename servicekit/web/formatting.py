"""How pages write money, times, sizes and identifiers, per language (times always in Viet Nam time)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

VIETNAM = timezone(timedelta(hours=7), "ICT")
_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def group_digits(amount: int, separator: str) -> str:
    sign = "-" if amount < 0 else ""
    digits = str(abs(amount))
    groups = []
    while digits:
        groups.append(digits[-3:])
        digits = digits[:-3]
    return sign + separator.join(reversed(groups))


def money(amount: int, language: str) -> str:
    """Integer đồng: ``185.000 đồng`` in Vietnamese (dots group thousands), ``185,000 VND`` in English."""
    if language == "vi":
        return f"{group_digits(amount, '.')} đồng"
    return f"{group_digits(amount, ',')} VND"


def number(value: int, language: str) -> str:
    return group_digits(value, "." if language == "vi" else ",")


def _local(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(VIETNAM)


def date_text(moment: datetime | None, language: str) -> str:
    if moment is None:
        return ""
    local = _local(moment)
    if language == "vi":
        return f"{local:%d/%m/%Y}"
    return f"{local.day} {_MONTHS_EN[local.month - 1]} {local.year}"


def datetime_text(moment: datetime | None, language: str) -> str:
    if moment is None:
        return ""
    local = _local(moment)
    if language == "vi":
        return f"{local:%H:%M} {local:%d/%m/%Y}"
    return f"{date_text(moment, language)}, {local:%H:%M}"


def iso_local(moment: datetime | None) -> str:
    """Machine-readable time for <time datetime="...">."""
    return _local(moment).isoformat(timespec="seconds") if moment is not None else ""


def size_text(size: int, language: str) -> str:
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    unit = "KB"
    if value >= 1024:
        value /= 1024
        unit = "MB"
    text = f"{value:.1f}"
    return f"{text.replace('.', ',') if language == 'vi' else text} {unit}"


def masked_id(national_id: str) -> str:
    """A national ID with all but its last four digits hidden: enough for its owner to recognise it."""
    if len(national_id) <= 4:
        return "•" * len(national_id)
    return "•" * (len(national_id) - 4) + national_id[-4:]
