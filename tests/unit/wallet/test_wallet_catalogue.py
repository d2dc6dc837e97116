"""The document-type catalogue: the seed, configuration files, and metadata checked against each schema."""

from __future__ import annotations

import pytest

from servicekit.errors import InvalidArgument
from servicekit.settings import StartupError
from wallet_service.bootstrap import load_catalogue
from wallet_service.domain.catalogue import check_metadata, type_from_mapping


def _types():
    return {item.code: item for item in load_catalogue()}


def test_the_seed_holds_the_common_results_the_issue_names():
    assert set(_types()) == {"BIRTH_CERT", "JUDICIAL_RECORD", "DRIVING_LICENCE", "LAND_USE_RIGHT",
                             "BUSINESS_REGISTRATION", "RESIDENCE_CONFIRMATION", "FEE_RECEIPT"}
    for document_type in _types().values():
        assert document_type.issuing_agency_kinds and document_type.metadata_fields


def test_an_issued_document_needs_every_required_field():
    with pytest.raises(InvalidArgument) as refused:
        check_metadata(_types()["FEE_RECEIPT"], {"receipt_number": "BL-1"}, require_all=True)
    fields = {violation.field for violation in refused.value.violations}
    assert fields == {"metadata.payment_reference", "metadata.amount_vnd", "metadata.paid_at"}


@pytest.mark.parametrize(("field", "value"), [
    ("amount_vnd", "50.000"),
    ("amount_vnd", "fifty"),
    ("amount_vnd", "50000\n"),
    ("paid_at", "2026-01-31 09:30"),
    ("paid_at", "2026-01-31T09:30:00"),
    ("receipt_number", "   "),
    # Forms other systems would not parse: other scripts' digits, leading zeros, -0, and date-times Python
    # reads but RFC 3339 does not allow (no seconds, compact, week dates).
    ("amount_vnd", "\u0661\u0662\u0663\u0664\u0665"),
    ("amount_vnd", "050000"),
    ("amount_vnd", "-0"),
    ("paid_at", "2026-01-31T09:30Z"),
    ("paid_at", "20260131T093000+0700"),
    ("paid_at", "2026-W05-6T09:30:00+07:00"),
])
def test_values_must_parse_as_their_declared_type(field, value):
    metadata = {"receipt_number": "BL-1", "payment_reference": "PAY1", "amount_vnd": "50000",
                "paid_at": "2026-01-31T09:30:00+07:00", field: value}
    with pytest.raises(InvalidArgument) as refused:
        check_metadata(_types()["FEE_RECEIPT"], metadata, require_all=True)
    assert [violation.field for violation in refused.value.violations] == [f"metadata.{field}"]


def test_well_formed_values_still_pass():
    for amount, paid_at in (("0", "2026-01-31T09:30:00Z"), ("50000", "2026-01-31T09:30:00.5+07:00"),
                            ("-15", "2026-01-31T02:30:00+00:00")):
        check_metadata(_types()["FEE_RECEIPT"], {"receipt_number": "BL-1", "payment_reference": "PAY1",
                                                 "amount_vnd": amount, "paid_at": paid_at}, require_all=True)


def test_dates_must_exist_on_the_calendar_and_booleans_are_words():
    judicial = _types()["JUDICIAL_RECORD"]
    metadata = {"full_name": "A", "date_of_birth": "2001-02-29", "certificate_number": "1", "form_number": "1",
                "has_criminal_record": "no", "issued_on": "2026-01-01"}
    with pytest.raises(InvalidArgument) as refused:
        check_metadata(judicial, metadata, require_all=True)
    assert {v.field for v in refused.value.violations} == {"metadata.date_of_birth", "metadata.has_criminal_record"}


def test_citizen_uploads_need_only_well_typed_fields():
    check_metadata(_types()["BIRTH_CERT"], {"full_name": "Nguyễn Văn An"}, require_all=False)
    with pytest.raises(InvalidArgument):
        check_metadata(_types()["BIRTH_CERT"], {"date_of_birth": "30/04/2015"}, require_all=False)


def test_a_closed_schema_refuses_unknown_fields():
    closed = type_from_mapping({"code": "PASSPORT", "name": "Hộ chiếu", "issuing_agency_kinds": ["POLICE"],
                                "closed_schema": True,
                                "metadata_fields": [{"name": "number", "type": "string", "required": True}]})
    with pytest.raises(InvalidArgument):
        check_metadata(closed, {"number": "C1234567", "colour": "green"}, require_all=True)


def test_invalid_type_definitions_are_refused_field_by_field():
    with pytest.raises(InvalidArgument) as refused:
        type_from_mapping({"code": "bad code", "name": "", "issuing_agency_kinds": [],
                           "metadata_fields": [{"name": "x", "type": "string"}, {"name": "x", "type": "string"}]})
    assert {v.field for v in refused.value.violations} >= {"code", "name", "issuing_agency_kinds",
                                                          "metadata_fields[1].name"}
    with pytest.raises(InvalidArgument):
        type_from_mapping({"code": "OK_CODE", "name": "n", "issuing_agency_kinds": ["POLICE"],
                           "metadata_fields": [{"name": "x", "type": "decimal"}]})


def test_type_definition_names_with_a_trailing_newline_are_refused():
    with pytest.raises(InvalidArgument) as refused:
        type_from_mapping({"code": "OK_CODE\n", "name": "n", "issuing_agency_kinds": ["POLICE\n"],
                           "metadata_fields": [{"name": "number\n", "type": "string"}]})
    assert [v.field for v in refused.value.violations] == ["code", "issuing_agency_kinds[0]",
                                                           "metadata_fields[0].name"]


def test_a_configuration_file_adds_and_overrides_types(tmp_path):
    extra = tmp_path / "types.yaml"
    extra.write_text(
        "document_types:\n"
        "  - code: MARRIAGE_CERT\n    name: Giấy chứng nhận kết hôn\n"
        "    issuing_agency_kinds: [COMMUNE_PEOPLES_COMMITTEE]\n"
        "    metadata_fields: [{name: spouse_names, type: string, required: true}]\n"
        "  - code: FEE_RECEIPT\n    name: Biên lai (tỉnh)\n    issuing_agency_kinds: [FEE_COLLECTOR]\n",
        encoding="utf-8")
    types = {item.code: item for item in load_catalogue(str(extra))}
    assert "MARRIAGE_CERT" in types and "BIRTH_CERT" in types
    assert types["FEE_RECEIPT"].name == "Biên lai (tỉnh)" and types["FEE_RECEIPT"].metadata_fields == ()


def test_a_broken_configuration_file_stops_start_up_naming_the_setting(tmp_path):
    broken = tmp_path / "types.yaml"
    broken.write_text("document_types:\n  - code: lower\n    name: x\n", encoding="utf-8")
    with pytest.raises(StartupError) as stopped:
        load_catalogue(str(broken))
    assert "WALLET_DOCUMENT_TYPES_FILE" in str(stopped.value)
    with pytest.raises(StartupError):
        load_catalogue(str(tmp_path / "missing.yaml"))


def test_optional_fields_may_be_sent_empty_but_required_ones_may_not():
    receipt = {"receipt_number": "BL-1", "payment_reference": "PAY1", "amount_vnd": "50000",
               "paid_at": "2026-01-31T09:30:00+07:00", "dossier_code": "", "payer_name": ""}
    check_metadata(_types()["FEE_RECEIPT"], receipt, require_all=True)
    with pytest.raises(InvalidArgument) as refused:
        check_metadata(_types()["FEE_RECEIPT"], {**receipt, "receipt_number": ""}, require_all=True)
    assert [v.field for v in refused.value.violations] == ["metadata.receipt_number"]
