"""Subjects come from the 12-digit national ID in the mapped claim, never from an e-mail or the upstream sub."""

from __future__ import annotations

import pytest

from identity_service.domain import pkce, subjects
from identity_service.domain.providers import ClaimMapping, Provider, map_claims, validate
from servicekit.errors import InvalidArgument, Unauthenticated

VNEID = Provider(provider_id="vneid", kind="citizen", issuer="https://vneid.example", client_id="portal",
                 discovery_url="https://vneid.example/.well-known/openid-configuration",
                 claim_mapping=ClaimMapping(national_id="pid", name="full_name", level="loa", dependents="wards"))
AGENCY = Provider(provider_id="hcm", kind="official", issuer="https://sso.hcm.example", client_id="portal",
                  discovery_url="https://sso.hcm.example/.well-known/openid-configuration", default_level=2,
                  claim_mapping=ClaimMapping(national_id="cccd", name="name", agency="org", roles="groups"),
                  role_scopes={"admin": ("identity.admin",)}, allowed_agencies=("HCM",))


@pytest.mark.parametrize("value", ["00108500010", "0010850001011", "00108500010a", "an@example.vn", "", 12,
                                   "\u0660" * 12])   # twelve Arabic-Indic digits: digits, but not a CCCD number
def test_only_twelve_digits_are_a_national_id(value: object) -> None:
    with pytest.raises(InvalidArgument) as caught:
        subjects.national_id(value)
    assert caught.value.reason == "INVALID_NATIONAL_ID"


def test_a_trailing_newline_is_never_part_of_a_valid_identifier() -> None:
    # "$" matches before a final newline, so a pattern used with match() would let these through.
    assert not subjects.is_national_id("001085000101\n") and subjects.is_national_id("001085000101")
    assert not subjects.is_agency_code("HCM\n") and subjects.is_agency_code("HCM")
    with pytest.raises(InvalidArgument):
        subjects.client_id("dvc-payments\n")
    assert not pkce.is_valid_verifier("a" * 43 + "\n") and pkce.is_valid_verifier("a" * 43)


def test_a_numeric_claim_is_read_as_its_digits() -> None:
    assert subjects.national_id(123456789012) == "123456789012"


def test_citizen_subject_is_the_national_id_whatever_else_the_upstream_sends() -> None:
    identity = map_claims(VNEID, {"sub": "pairwise-abc", "email": "an@example.vn", "pid": "001085000101",
                                  "full_name": "Nguyễn Văn An", "loa": "2"})
    assert identity.subject == "001085000101"
    assert identity.level == 2
    assert identity.name == "Nguyễn Văn An"


def test_a_returning_citizen_with_another_email_and_upstream_sub_maps_to_the_same_subject() -> None:
    first = map_claims(VNEID, {"sub": "a", "email": "one@example.vn", "pid": "079080000303", "loa": 2})
    again = map_claims(VNEID, {"sub": "b", "email": "two@example.vn", "pid": "079080000303", "loa": 1})
    assert first.subject == again.subject == "079080000303"


def test_an_email_in_the_national_id_claim_is_refused() -> None:
    with pytest.raises(Unauthenticated) as caught:
        map_claims(VNEID, {"pid": "an@example.vn", "loa": 2})
    assert caught.value.reason == "UPSTREAM_CLAIMS_INVALID"


def test_a_token_without_the_national_id_claim_is_refused_even_with_an_email() -> None:
    with pytest.raises(Unauthenticated) as caught:
        map_claims(VNEID, {"sub": "x", "email": "an@example.vn", "loa": 2})
    assert caught.value.reason == "UPSTREAM_CLAIMS_INVALID"


def test_a_citizen_without_a_level_is_refused_when_the_provider_has_no_default() -> None:
    with pytest.raises(Unauthenticated):
        map_claims(VNEID, {"pid": "001085000101"})
    with pytest.raises(Unauthenticated):
        map_claims(VNEID, {"pid": "001085000101", "loa": "3"})


def test_dependents_keep_only_other_valid_national_ids() -> None:
    identity = map_claims(VNEID, {"pid": "079080000303", "loa": 2,
                                  "wards": ["079215000404", "079080000303", "not-an-id", "079215000404"]})
    assert identity.dependents == ("079215000404",)


def test_official_subject_is_scoped_by_agency_and_carries_roles() -> None:
    identity = map_claims(AGENCY, {"cccd": "079075001001", "org": "hcm", "groups": "officer admin"})
    assert identity.subject == "official:HCM:079075001001"
    assert identity.subject != subjects.citizen_subject("079075001001")
    assert identity.roles == ("admin", "officer")
    assert identity.level == 2
    assert AGENCY.scopes_for_roles(identity.roles) == ("identity.admin",)


def test_official_without_agency_is_refused() -> None:
    with pytest.raises(Unauthenticated):
        map_claims(AGENCY, {"cccd": "079075001001"})


def test_an_official_provider_cannot_name_an_agency_outside_its_list() -> None:
    with pytest.raises(Unauthenticated) as caught:
        map_claims(AGENCY, {"cccd": "001082004004", "org": "hn"})
    assert caught.value.reason == "UPSTREAM_AGENCY_NOT_ALLOWED"
    assert "HN" in caught.value.message and caught.value.metadata["provider"] == "hcm"


@pytest.mark.parametrize("provider, agencies", [
    (AGENCY, ()),  # an official provider must say which agencies it vouches for
    (AGENCY, ("hcm",)),  # codes are written as the platform stores them
    (VNEID, ("HCM",)),  # citizens belong to no agency
])
def test_agency_lists_are_required_for_official_providers_only(provider: Provider,
                                                               agencies: tuple[str, ...]) -> None:
    from dataclasses import replace

    with pytest.raises(InvalidArgument) as caught:
        validate(replace(provider, allowed_agencies=agencies))
    assert "allowed_agencies" in [violation.field for violation in caught.value.violations]


@pytest.mark.parametrize("change, field", [
    ({"allowed_algorithms": ("HS256",)}, "allowed_algorithms"),
    ({"allowed_algorithms": ("none",)}, "allowed_algorithms"),
    ({"issuer": "http://vneid.example"}, "issuer"),
    ({"claim_mapping": ClaimMapping(national_id="")}, "claim_mapping.national_id"),
    ({"kind": "robot"}, "kind"),
])
def test_unsafe_provider_entries_are_refused(change: dict[str, object], field: str) -> None:
    from dataclasses import replace

    with pytest.raises(InvalidArgument) as caught:
        validate(replace(VNEID, **change))  # type: ignore[arg-type]
    assert field in [violation.field for violation in caught.value.violations]


def test_loopback_http_is_allowed_for_the_sandbox() -> None:
    from dataclasses import replace

    sandbox = replace(VNEID, issuer="http://127.0.0.1:8091",
                      discovery_url="http://127.0.0.1:8091/.well-known/openid-configuration")
    assert validate(sandbox) is sandbox


def test_client_ids_can_never_look_like_a_national_id() -> None:
    with pytest.raises(InvalidArgument):
        subjects.client_id("001085000101")
    assert subjects.client_id("hcm-dossier-system") == "hcm-dossier-system"
