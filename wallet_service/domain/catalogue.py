"""Document-type definitions: parsing them from configuration, checking them, and checking metadata against them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from servicekit.errors import InvalidArgument, ViolationCollector
from wallet_service.domain.model import DocumentType, FieldType, MetadataField, ValidityRule

TYPE_CODE = re.compile(r"[A-Z][A-Z0-9_]{1,63}")
FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
AGENCY_KIND = re.compile(r"[A-Z][A-Z0-9_]{1,63}")
MAX_METADATA_VALUE_CHARS = 2000
MAX_METADATA_FIELDS = 64
# ASCII digits only (\d takes any script's), no leading zeros or "-0": the form every receiving system parses.
_INTEGER = re.compile(r"0|-?[1-9][0-9]{0,17}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# RFC 3339 as written, before parsing: fromisoformat also takes compact, week and seconds-less forms.
_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
                       r"(?:Z|[+-][0-9]{2}:[0-9]{2})")


def type_from_mapping(raw: Mapping[str, Any]) -> DocumentType:
    """Build a type from its configuration form (YAML/JSON); raises InvalidArgument naming each bad key."""
    problems = ViolationCollector()
    fields = []
    for index, item in enumerate(raw.get("metadata_fields") or []):
        try:
            field_type = FieldType(str(item.get("type", "")))
        except ValueError:
            problems.add(f"metadata_fields[{index}].type", f"must be one of {', '.join(t.value for t in FieldType)}")
            continue
        fields.append(MetadataField(name=str(item.get("name", "")), type=field_type,
                                    required=bool(item.get("required", False)),
                                    description=str(item.get("description", ""))))
    problems.raise_if_any("the document type is invalid")
    validity = raw.get("validity") or {}
    document_type = DocumentType(
        code=str(raw.get("code", "")), name=str(raw.get("name", "")), name_en=str(raw.get("name_en", "")),
        issuing_agency_kinds=tuple(str(kind) for kind in raw.get("issuing_agency_kinds") or ()),
        validity=ValidityRule(requires_valid_until=bool(validity.get("requires_valid_until", False)),
                              max_validity_days=int(validity.get("max_validity_days", 0) or 0)),
        metadata_fields=tuple(fields), closed_schema=bool(raw.get("closed_schema", False)))
    check_type(document_type)
    return document_type


def check_type(document_type: DocumentType) -> None:
    """Refuse a definition that could not be used to issue documents consistently."""
    problems = ViolationCollector()
    if not TYPE_CODE.fullmatch(document_type.code):
        problems.add("code", "must be UPPER_SNAKE_CASE, 2-64 characters, starting with a letter")
    if not document_type.name.strip():
        problems.add("name", "must not be empty")
    if not document_type.issuing_agency_kinds:
        problems.add("issuing_agency_kinds", "name at least one kind of agency that may issue it")
    for index, kind in enumerate(document_type.issuing_agency_kinds):
        if not AGENCY_KIND.fullmatch(kind):
            problems.add(f"issuing_agency_kinds[{index}]", "must be UPPER_SNAKE_CASE")
    if document_type.validity.max_validity_days < 0:
        problems.add("validity.max_validity_days", "must be 0 (no limit) or positive")
    seen: set[str] = set()
    for index, metadata_field in enumerate(document_type.metadata_fields):
        if not FIELD_NAME.fullmatch(metadata_field.name):
            problems.add(f"metadata_fields[{index}].name", "must be lower_snake_case starting with a letter")
        if metadata_field.name in seen:
            problems.add(f"metadata_fields[{index}].name", f"duplicate field {metadata_field.name!r}")
        seen.add(metadata_field.name)
    problems.raise_if_any("the document type is invalid")


def _parses_as(field_type: FieldType, value: str) -> bool:
    if field_type is FieldType.STRING:
        return bool(value.strip())
    if field_type is FieldType.INTEGER:
        return bool(_INTEGER.fullmatch(value))
    if field_type is FieldType.BOOLEAN:
        return value in ("true", "false")
    if field_type is FieldType.DATE:
        if not _DATE.fullmatch(value):
            return False
        try:
            date.fromisoformat(value)
        except ValueError:
            return False
        return True
    if not _DATETIME.fullmatch(value):
        return False
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return parsed.tzinfo is not None and "T" in value


_EXPECTED = {
    FieldType.STRING: "non-empty text",
    FieldType.INTEGER: "a whole number (digits, optional leading minus)",
    FieldType.BOOLEAN: "true or false",
    FieldType.DATE: "a date YYYY-MM-DD",
    FieldType.DATETIME: "an RFC 3339 date-time with offset, e.g. 2026-01-31T09:30:00+07:00",
}


def check_metadata(document_type: DocumentType, metadata: Mapping[str, str], *, require_all: bool,
                   prefix: str = "metadata") -> None:
    """Check values against the type's schema; issued documents must carry every required field
    (``require_all``), citizen uploads only need the fields they give to be well typed."""
    problems = ViolationCollector()
    schema = {metadata_field.name: metadata_field for metadata_field in document_type.metadata_fields}
    if len(metadata) > MAX_METADATA_FIELDS:
        problems.add(prefix, f"at most {MAX_METADATA_FIELDS} fields")
    if require_all:
        for name, metadata_field in schema.items():
            if metadata_field.required and name not in metadata:
                problems.add(f"{prefix}.{name}",
                             f"is required for {document_type.code} ({_EXPECTED[metadata_field.type]})")
    for name, value in sorted(metadata.items()):
        if len(value) > MAX_METADATA_VALUE_CHARS:
            problems.add(f"{prefix}.{name}", f"at most {MAX_METADATA_VALUE_CHARS} characters")
            continue
        declared = schema.get(name)
        if declared is None:
            if document_type.closed_schema:
                problems.add(f"{prefix}.{name}", f"is not a field of {document_type.code}")
            elif not FIELD_NAME.fullmatch(name):
                problems.add(f"{prefix}.{name}", "field names must be lower_snake_case")
            continue
        if value == "" and not declared.required:
            continue  # an optional field sent empty (e.g. a receipt without dossier code) counts as absent
        if not _parses_as(declared.type, value):
            problems.add(f"{prefix}.{name}", f"must be {_EXPECTED[declared.type]}, got {value[:40]!r}")
    problems.raise_if_any(f"metadata does not match the schema of {document_type.code}")


def require_known_code(code: str, known: DocumentType | None, field_path: str) -> DocumentType:
    if known is None:
        raise InvalidArgument.single(field_path, f"unknown document type {code!r}; see ListDocumentTypes",
                                     reason="UNKNOWN_DOCUMENT_TYPE")
    return known
