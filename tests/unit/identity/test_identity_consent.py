"""Who may consent, who may act for whom, and who may revoke."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from identity_service.domain import consent
from identity_service.domain.consent import Delegation, GrantRequest
from servicekit.auth import Actor, Principal
from servicekit.errors import InvalidArgument, PermissionDenied

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
CITIZEN = Principal(subject="001085000101", kind="citizen", level_of_assurance=2)
CITIZEN_L1 = Principal(subject="001190000202", kind="citizen", level_of_assurance=1)
ADMIN = Principal(subject="official:DVC:001078003003", kind="official", scopes=frozenset({"identity.admin"}),
                  agency="DVC", level_of_assurance=2)
HN_CLIENT = Principal(subject="hn-dossier-receiver", kind="client", agency="HN", client_id="hn-dossier-receiver")
HN_OFFICIAL = Principal(subject="official:HN:001082004004", kind="official", agency="HN", level_of_assurance=2)
HCM_CLIENT = Principal(subject="hcm-dossier-system", kind="client", agency="HCM", client_id="hcm-dossier-system")


def consent_to(delegate_kind: str, delegate_id: str, **changes: object) -> GrantRequest:
    values: dict[str, object] = {"principal_subject": "", "delegate_kind": delegate_kind, "delegate_id": delegate_id,
                                 "relation": "consent", "audiences": ("dvc-wallet",), "purpose": "dossier H01",
                                 "ttl": None}
    values.update(changes)
    return GrantRequest(**values)  # type: ignore[arg-type]


def test_a_level_2_citizen_consents_for_themselves() -> None:
    grant = consent.validate_grant(CITIZEN, consent_to("agency", "hn"), NOW)
    assert (grant.principal_subject, grant.delegate_id, grant.granted_by) == (CITIZEN.subject, "HN", CITIZEN.subject)
    assert grant.expires_at == NOW + timedelta(days=30)


def test_consent_needs_a_level_2_login_and_says_so() -> None:
    with pytest.raises(PermissionDenied) as caught:
        consent.validate_grant(CITIZEN_L1, consent_to("agency", "HN"), NOW)
    assert caught.value.reason == "STEP_UP_REQUIRED"
    assert caught.value.metadata["required_level"] == "2"


def test_nobody_consents_for_another_citizen() -> None:
    with pytest.raises(PermissionDenied) as caught:
        consent.validate_grant(CITIZEN, consent_to("agency", "HN", principal_subject="048195000505"), NOW)
    assert caught.value.reason == "NOT_THE_CITIZEN"
    for caller in (ADMIN, HN_CLIENT):
        with pytest.raises(PermissionDenied):
            consent.validate_grant(caller, consent_to("agency", "HN", principal_subject=CITIZEN.subject), NOW)


def test_a_delegated_token_cannot_give_consent() -> None:
    acting = Principal(subject=CITIZEN.subject, kind="citizen", level_of_assurance=2,
                       actor=Actor("hn-dossier-receiver", "client", "HN", "consent"))
    with pytest.raises(PermissionDenied):
        consent.validate_grant(acting, consent_to("agency", "HN"), NOW)


def test_guardianship_is_recorded_only_by_an_admin() -> None:
    request = consent_to("citizen", "079080000303", relation="guardian", principal_subject="079215000404",
                         ttl=timedelta(days=365 * 10))
    with pytest.raises(PermissionDenied) as caught:
        consent.validate_grant(CITIZEN, request, NOW)
    assert caught.value.reason == "MISSING_SCOPE"
    grant = consent.validate_grant(ADMIN, request, NOW)
    assert grant.granted_by == f"admin:{ADMIN.subject}"


@pytest.mark.parametrize("request_, field", [
    (consent_to("citizen", "001085000101"), "delegate_id"),
    (consent_to("citizen", "12345"), "delegate_id"),
    (consent_to("agency", "h"), "delegate_id"),
    (consent_to("agency", "HN", ttl=timedelta(days=91)), "ttl_seconds"),
    (consent_to("agency", "HN", audiences=("dvc-identity",)), "audiences"),
    (consent_to("robot", "HN"), "delegate_kind"),
])
def test_bad_grants_name_the_field(request_: GrantRequest, field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        consent.validate_grant(CITIZEN, request_, NOW)
    assert field in [violation.field for violation in caught.value.violations]


def delegation(**changes: object) -> Delegation:
    values: dict[str, object] = {
        "delegation_id": "d1", "principal_subject": CITIZEN.subject, "delegate_kind": "agency", "delegate_id": "HN",
        "relation": "consent", "audiences": ("dvc-wallet",), "purpose": "", "created_at": NOW - timedelta(days=1),
        "expires_at": NOW + timedelta(days=1), "granted_by": CITIZEN.subject}
    values.update(changes)
    return Delegation(**values)  # type: ignore[arg-type]


def test_an_agency_delegation_admits_that_agencys_clients_and_officials_only() -> None:
    for actor in (HN_CLIENT, HN_OFFICIAL):
        assert consent.choose([delegation()], actor, CITIZEN.subject, "dvc-wallet", NOW).delegation_id == "d1"
    with pytest.raises(PermissionDenied) as caught:
        consent.choose([delegation()], HCM_CLIENT, CITIZEN.subject, "dvc-wallet", NOW)
    assert caught.value.reason == "NO_DELEGATION"


def test_a_delegation_does_not_cover_other_audiences_or_other_citizens() -> None:
    with pytest.raises(PermissionDenied):
        consent.choose([delegation()], HN_CLIENT, CITIZEN.subject, "dvc-payments", NOW)
    with pytest.raises(PermissionDenied):
        consent.choose([delegation()], HN_CLIENT, "048195000505", "dvc-wallet", NOW)


def test_expired_and_revoked_delegations_admit_nobody() -> None:
    for dead in (delegation(expires_at=NOW), delegation(revoked_at=NOW - timedelta(seconds=1))):
        with pytest.raises(PermissionDenied):
            consent.choose([dead], HN_CLIENT, CITIZEN.subject, "dvc-wallet", NOW)


def test_a_citizen_delegate_is_only_that_citizen() -> None:
    guardian_link = delegation(principal_subject="079215000404", delegate_kind="citizen",
                               delegate_id="079080000303", relation="guardian")
    guardian = Principal(subject="079080000303", kind="citizen", level_of_assurance=2)
    stranger = Principal(subject="048195000505", kind="citizen", level_of_assurance=2)
    assert consent.choose([guardian_link], guardian, "079215000404", "dvc-wallet", NOW).relation == "guardian"
    with pytest.raises(PermissionDenied):
        consent.choose([guardian_link], stranger, "079215000404", "dvc-wallet", NOW)
    with pytest.raises(InvalidArgument):
        consent.choose([guardian_link], guardian, "079080000303", "dvc-wallet", NOW)


def test_a_citizen_acting_for_someone_needs_level_2() -> None:
    with pytest.raises(PermissionDenied) as caught:
        consent.check_actor(CITIZEN_L1)
    assert (caught.value.reason, caught.value.metadata["required_level"]) == ("STEP_UP_REQUIRED", "2")
    consent.check_actor(CITIZEN)


def test_delegation_chains_are_refused() -> None:
    acting = Principal(subject=CITIZEN.subject, kind="citizen", level_of_assurance=2,
                       actor=Actor("hn-dossier-receiver", "client", "HN", "consent"))
    with pytest.raises(PermissionDenied) as caught:
        consent.check_actor(acting)
    assert caught.value.reason == "DELEGATION_CHAIN_NOT_ALLOWED"


def test_only_the_grantor_or_an_admin_revokes_and_a_minor_cannot_end_guardianship() -> None:
    consent.check_can_revoke(CITIZEN, delegation())
    consent.check_can_revoke(ADMIN, delegation())
    with pytest.raises(PermissionDenied):
        consent.check_can_revoke(HN_CLIENT, delegation())
    minor = Principal(subject="079215000404", kind="citizen", level_of_assurance=1)
    with pytest.raises(PermissionDenied):
        consent.check_can_revoke(minor, delegation(principal_subject=minor.subject, relation="guardian",
                                                   delegate_kind="citizen", delegate_id="079080000303"))


def test_citizens_list_only_their_own_delegations() -> None:
    assert consent.check_can_list(CITIZEN, "") == CITIZEN.subject
    assert consent.check_can_list(ADMIN, CITIZEN.subject) == CITIZEN.subject
    with pytest.raises(PermissionDenied):
        consent.check_can_list(CITIZEN, "048195000505")
