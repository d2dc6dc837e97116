"""Token exchange with the act claim under consent and guardianship, step-up, and every rule that keeps one
caller out of another's data or credentials."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import grpc
import pytest
from dvc.identity.v1 import identity_pb2 as pb
from identity_support import (
    ADMIN_CLIENT,
    CITIZEN_L1,
    CITIZEN_L2,
    GUARDIAN,
    ISSUER,
    MINOR,
    OTHER_CITIZEN,
    PROVINCE_CLIENT,
    RECEIVER_CLIENT,
    Identity,
    admin_metadata,
    client_token,
    error_info,
    error_reason,
    http_verifier,
    login,
    refused,
)

from identity_service.service_layer.unit_of_work import IdentityUnitOfWork
from servicekit import auth
from servicekit.db import make_engine, session_factory
from servicekit.errors import Unauthenticated
from servicekit.testing import bearer, violations_of

NATIONAL_ID_TYPE = "urn:dvc:params:oauth:token-type:national-id"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
DENIED = grpc.StatusCode.PERMISSION_DENIED
RACING_CITIZEN = "001099000777"  # any 12-digit number logs in at the sandbox as a level 2 citizen


def verify_for(identity: Identity, audience: str, token: str) -> auth.Principal:
    keys = auth.JwksCache(lambda: auth.http_json(f"{identity.http_url}/jwks.json"), min_refetch_seconds=0.0)
    return auth.TokenVerifier(keys, issuer=ISSUER, audience=audience).verify(token)


def refused_by(verifier: auth.TokenVerifier, token: str) -> str:
    """The reason ``verifier`` refuses ``token`` with."""
    with pytest.raises(Unauthenticated) as caught:
        verifier.verify(token)
    return caught.value.reason


def consent(identity: Identity, citizen_token: str, agency: str = "HN", key: str = "") -> pb.Delegation:
    request = pb.GrantDelegationRequest(idempotency_key=key, delegate_kind=pb.DELEGATE_KIND_AGENCY,
                                        delegate_id=agency, relation=pb.DELEGATION_RELATION_CONSENT,
                                        audiences=["dvc-wallet"], purpose="dossier HN-2026-000123")
    return identity.stub.GrantDelegation(request, metadata=bearer(citizen_token)).delegation


def exchange(identity: Identity, actor_token: str, subject: str, audience: str = "dvc-wallet",
             subject_type: str = NATIONAL_ID_TYPE) -> pb.ExchangeTokenResponse:
    return identity.stub.ExchangeToken(pb.ExchangeTokenRequest(
        subject_token=subject, subject_token_type=subject_type, actor_token=actor_token, audience=audience),
        timeout=10)


@pytest.fixture(scope="module")
def consenting_citizen(identity: Identity) -> str:
    """A level 2 citizen who consented to Ha Noi (HN) handling their wallet for a dossier."""
    citizen = login(identity, CITIZEN_L2).tokens.access_token
    consent(identity, citizen, key="consent-hn-1")
    return citizen


def test_an_agency_acts_for_a_consenting_citizen_with_the_act_claim(identity: Identity,
                                                                    consenting_citizen: str) -> None:
    receiver = client_token(identity, RECEIVER_CLIENT, "dvc-identity")
    answer = exchange(identity, receiver, CITIZEN_L2)
    principal = verify_for(identity, "dvc-wallet", answer.tokens.access_token)
    assert principal.subject == CITIZEN_L2 and principal.kind == "citizen"
    assert principal.actor == auth.Actor("hn-dossier-receiver", "client", "HN", "consent")
    assert principal.acting_for_display() == f"hn-dossier-receiver on behalf of {CITIZEN_L2}"
    assert answer.tokens.refresh_token == ""
    events = identity.stub.ListAuditEvents(pb.ListAuditEventsRequest(event_type="token.exchanged", page_size=1),
                                           metadata=admin_metadata(identity))
    assert (events.events[0].actor, events.events[0].subject) == ("hn-dossier-receiver", CITIZEN_L2)


def test_an_official_of_that_agency_may_act_too_and_the_bearer_token_can_be_the_actor(
        identity: Identity, consenting_citizen: str) -> None:
    official = login(identity, "canbo.hn", provider="agency-sandbox").tokens.access_token
    answer = identity.stub.ExchangeToken(pb.ExchangeTokenRequest(
        subject_token=consenting_citizen, subject_token_type=ACCESS_TOKEN_TYPE, audience="dvc-wallet"),
        metadata=bearer(official))
    actor = verify_for(identity, "dvc-wallet", answer.tokens.access_token).actor
    assert actor is not None and (actor.subject, actor.kind, actor.agency) == (
        "official:HN:001082004004", "official", "HN")


def test_another_agency_cannot_act_for_the_citizen(identity: Identity, consenting_citizen: str) -> None:
    other_agency = client_token(identity, PROVINCE_CLIENT, "dvc-identity")
    assert refused(lambda: exchange(identity, other_agency, CITIZEN_L2), DENIED) == "NO_DELEGATION"


def test_consent_does_not_reach_other_services_or_other_citizens(identity: Identity, consenting_citizen: str) -> None:
    receiver = client_token(identity, RECEIVER_CLIENT, "dvc-identity")
    assert refused(lambda: exchange(identity, receiver, CITIZEN_L2, audience="dvc-payments"),
                   DENIED) == "NO_DELEGATION"
    assert refused(lambda: exchange(identity, receiver, OTHER_CITIZEN), DENIED) == "NO_DELEGATION"


def test_a_citizen_cannot_exchange_for_another_citizen_without_consent(identity: Identity) -> None:
    other = login(identity, OTHER_CITIZEN).tokens.access_token
    assert refused(lambda: exchange(identity, other, CITIZEN_L2), DENIED) == "NO_DELEGATION"


def test_a_guardian_acts_for_their_minor(identity: Identity) -> None:
    guardian = login(identity, GUARDIAN).tokens.access_token
    answer = exchange(identity, guardian, MINOR)
    principal = verify_for(identity, "dvc-wallet", answer.tokens.access_token)
    assert principal.subject == MINOR
    assert principal.actor == auth.Actor(GUARDIAN, "citizen", "", "guardian")
    other = login(identity, OTHER_CITIZEN).tokens.access_token
    assert refused(lambda: exchange(identity, other, MINOR), DENIED) == "NO_DELEGATION"


def test_acting_for_someone_needs_a_level_2_login_and_the_error_says_which(identity: Identity) -> None:
    citizen = login(identity, CITIZEN_L2).tokens.access_token
    identity.stub.GrantDelegation(pb.GrantDelegationRequest(
        delegate_kind=pb.DELEGATE_KIND_CITIZEN, delegate_id=CITIZEN_L1, relation=pb.DELEGATION_RELATION_CONSENT,
        audiences=["dvc-wallet"]), metadata=bearer(citizen))
    level_1 = login(identity, CITIZEN_L1).tokens.access_token
    with pytest.raises(grpc.RpcError) as caught:
        exchange(identity, level_1, CITIZEN_L2)
    assert caught.value.code() == DENIED
    info = error_info(caught.value)
    assert (info.reason, info.metadata["required_level"]) == ("STEP_UP_REQUIRED", "2")


def test_granting_consent_needs_level_2(identity: Identity) -> None:
    level_1 = login(identity, CITIZEN_L1).tokens.access_token
    with pytest.raises(grpc.RpcError) as caught:
        consent(identity, level_1)
    info = error_info(caught.value)
    assert (caught.value.code(), info.reason, info.metadata["required_level"]) == (DENIED, "STEP_UP_REQUIRED", "2")


def test_a_revoked_consent_stops_the_exchange_and_the_tokens_already_exchanged(identity: Identity) -> None:
    citizen = login(identity, OTHER_CITIZEN).tokens.access_token
    granted = consent(identity, citizen, agency="STP-HCM")
    receiver = client_token(identity, ("stp-hcm-civil-registry", "dev-secret-stp-hcm-civil-registry-0002"),
                            "dvc-identity")
    earlier = exchange(identity, receiver, OTHER_CITIZEN).tokens.access_token
    wallet = http_verifier(identity, "dvc-wallet")
    assert wallet.verify(earlier).subject == OTHER_CITIZEN
    identity.stub.RevokeDelegation(pb.RevokeDelegationRequest(delegation_id=granted.delegation_id),
                                   metadata=bearer(citizen))
    assert refused(lambda: exchange(identity, receiver, OTHER_CITIZEN), DENIED) == "NO_DELEGATION"
    assert refused_by(wallet, earlier) == "TOKEN_REVOKED"


def test_a_revocation_racing_an_exchange_never_lets_the_exchanged_token_escape(identity: Identity) -> None:
    citizen = login(identity, RACING_CITIZEN).tokens.access_token
    granted = consent(identity, citizen)
    receiver = client_token(identity, RECEIVER_CLIENT, "dvc-identity")
    engine = make_engine(identity.settings.database_url)
    try:
        with IdentityUnitOfWork(session_factory(engine)) as revocation, ThreadPoolExecutor(1) as pool:
            # The revocation has ended the delegation and collected its tokens but not committed yet when the
            # exchange starts: the exchange must wait for it and then be refused, or its token would be missed.
            revocation.delegations.revoke(granted.delegation_id, datetime.now(UTC))
            racing = pool.submit(exchange, identity, receiver, RACING_CITIZEN)
            time.sleep(0.5)
            revocation.commit()
            outcome = racing.exception(timeout=10)
    finally:
        engine.dispose()
    assert isinstance(outcome, grpc.RpcError) and error_reason(outcome) == "NO_DELEGATION"


def test_granting_twice_with_one_key_gives_one_delegation(identity: Identity) -> None:
    citizen = login(identity, CITIZEN_L2).tokens.access_token
    first = consent(identity, citizen, agency="HCM", key="same-key")
    again = consent(identity, citizen, agency="HCM", key="same-key")
    assert first.delegation_id == again.delegation_id


# ---- isolation ----------------------------------------------------------------------------------------------------

def test_a_citizen_cannot_list_or_revoke_another_citizens_delegations(identity: Identity,
                                                                       consenting_citizen: str) -> None:
    mine = identity.stub.ListDelegations(pb.ListDelegationsRequest(), metadata=bearer(consenting_citizen))
    target = next(d for d in mine.delegations if d.delegate_id == "HN")
    other = login(identity, OTHER_CITIZEN).tokens.access_token
    assert refused(lambda: identity.stub.ListDelegations(pb.ListDelegationsRequest(subject=CITIZEN_L2),
                                                         metadata=bearer(other)), DENIED) == "NOT_YOUR_DELEGATIONS"
    assert refused(lambda: identity.stub.RevokeDelegation(pb.RevokeDelegationRequest(
        delegation_id=target.delegation_id), metadata=bearer(other)), grpc.StatusCode.NOT_FOUND) == \
        "DELEGATION_NOT_FOUND"


def test_the_agency_cannot_revoke_the_citizens_consent(identity: Identity, consenting_citizen: str) -> None:
    mine = identity.stub.ListDelegations(pb.ListDelegationsRequest(), metadata=bearer(consenting_citizen))
    target = next(d for d in mine.delegations if d.delegate_id == "HN")
    official = login(identity, "canbo.hn", provider="agency-sandbox").tokens.access_token
    refused(lambda: identity.stub.RevokeDelegation(pb.RevokeDelegationRequest(delegation_id=target.delegation_id),
                                                   metadata=bearer(official)), grpc.StatusCode.NOT_FOUND)


def test_a_minor_cannot_end_their_guardianship(identity: Identity) -> None:
    login(identity, GUARDIAN)
    minor = login(identity, MINOR).tokens.access_token
    link = next(d for d in identity.stub.ListDelegations(pb.ListDelegationsRequest(),
                                                         metadata=bearer(minor)).delegations
                if d.relation == pb.DELEGATION_RELATION_GUARDIAN)
    assert refused(lambda: identity.stub.RevokeDelegation(pb.RevokeDelegationRequest(
        delegation_id=link.delegation_id), metadata=bearer(minor)), DENIED) == "NOT_THE_GRANTOR"


def test_a_guardianship_the_upstream_ends_takes_the_tokens_exchanged_under_it(identity: Identity) -> None:
    guardian = login(identity, GUARDIAN).tokens.access_token
    earlier = exchange(identity, guardian, MINOR).tokens.access_token
    wallet = http_verifier(identity, "dvc-wallet")
    assert wallet.verify(earlier).subject == MINOR
    login(identity, GUARDIAN, fault="no_dependents")  # the upstream no longer lists the minor
    assert refused_by(wallet, earlier) == "TOKEN_REVOKED"
    assert refused(lambda: exchange(identity, guardian, MINOR), DENIED) == "NO_DELEGATION"
    login(identity, GUARDIAN)  # listed again: a new link, as the tests after this one expect


def test_only_an_admin_records_a_guardianship(identity: Identity) -> None:
    request = pb.GrantDelegationRequest(principal_subject="079216000999", delegate_kind=pb.DELEGATE_KIND_CITIZEN,
                                        delegate_id=OTHER_CITIZEN, relation=pb.DELEGATION_RELATION_GUARDIAN,
                                        ttl_seconds=3600 * 24 * 365)
    citizen = login(identity, OTHER_CITIZEN).tokens.access_token
    assert refused(lambda: identity.stub.GrantDelegation(request, metadata=bearer(citizen)),
                   DENIED) == "MISSING_SCOPE"
    recorded = identity.stub.GrantDelegation(request, metadata=admin_metadata(identity)).delegation
    assert recorded.granted_by == f"admin:{ADMIN_CLIENT[0]}"
    assert exchange(identity, citizen, "079216000999").delegation_id == recorded.delegation_id


def test_a_client_cannot_rotate_another_clients_credentials(identity: Identity) -> None:
    province = client_token(identity, PROVINCE_CLIENT, "dvc-identity")
    assert refused(lambda: identity.stub.RotateClientCredentials(pb.RotateClientCredentialsRequest(
        client_id=RECEIVER_CLIENT[0]), metadata=bearer(province)), DENIED) == "NOT_YOUR_CLIENT"
    client_token(identity, RECEIVER_CLIENT, "dvc-identity")  # the receiver's secret still works


def test_a_client_rotates_its_own_secret_with_a_grace_period(identity: Identity) -> None:
    admin = admin_metadata(identity)
    created = identity.stub.RegisterClient(pb.RegisterClientRequest(
        client_id="hue-dossier-system", agency="HUE", scopes=["payments.read"],
        auth_method=pb.CLIENT_AUTH_METHOD_CLIENT_SECRET), metadata=admin)
    old_secret = created.client_secret
    own = client_token(identity, ("hue-dossier-system", old_secret), "dvc-identity")
    rotated = identity.stub.RotateClientCredentials(pb.RotateClientCredentialsRequest(
        client_id="hue-dossier-system", previous_secret_grace_seconds=600), metadata=bearer(own))
    assert rotated.client_secret and rotated.client_secret != old_secret
    client_token(identity, ("hue-dossier-system", rotated.client_secret), "dvc-payments")
    client_token(identity, ("hue-dossier-system", old_secret), "dvc-payments")  # within the grace period
    identity.stub.RotateClientCredentials(pb.RotateClientCredentialsRequest(client_id="hue-dossier-system"),
                                          metadata=admin)
    assert refused(lambda: client_token(identity, ("hue-dossier-system", old_secret), "dvc-payments"),
                   grpc.StatusCode.UNAUTHENTICATED) == "INVALID_CLIENT_SECRET"


def test_only_admins_register_clients_and_retries_are_idempotent(identity: Identity) -> None:
    request = pb.RegisterClientRequest(idempotency_key="reg-1", client_id="dn-dossier-system", agency="DN",
                                       scopes=["payments.create"], auth_method=pb.CLIENT_AUTH_METHOD_CLIENT_SECRET)
    province = client_token(identity, PROVINCE_CLIENT, "dvc-identity")
    assert refused(lambda: identity.stub.RegisterClient(request, metadata=bearer(province)),
                   DENIED) == "MISSING_SCOPE"
    admin = admin_metadata(identity)
    first = identity.stub.RegisterClient(request, metadata=admin)
    retry = identity.stub.RegisterClient(request, metadata=admin)
    assert first.client_secret and retry.client_secret == "" and retry.client.client_id == "dn-dossier-system"
    request.idempotency_key = "reg-2"
    assert refused(lambda: identity.stub.RegisterClient(request, metadata=admin),
                   grpc.StatusCode.ALREADY_EXISTS) == "CLIENT_EXISTS"


def test_admin_rpcs_refuse_everyone_else(identity: Identity) -> None:
    citizen = bearer(login(identity, CITIZEN_L2).tokens.access_token)
    for call in (lambda: identity.stub.ListAuditEvents(pb.ListAuditEventsRequest(), metadata=citizen),
                 lambda: identity.stub.ListIdentityProviders(pb.ListIdentityProvidersRequest(), metadata=citizen),
                 lambda: identity.stub.RotateSigningKey(pb.RotateSigningKeyRequest(), metadata=citizen)):
        assert refused(call, DENIED) == "MISSING_SCOPE"
    assert refused(lambda: identity.stub.ListAuditEvents(pb.ListAuditEventsRequest()),
                   grpc.StatusCode.UNAUTHENTICATED) == "MISSING_TOKEN"


def test_an_admin_registers_a_provider_by_configuration_and_people_log_in_through_it(identity: Identity) -> None:
    vneid = identity.sandboxes.vneid.url
    provider = pb.IdentityProvider(
        provider_id="vneid-second-client", display_name="VNeID via a second registration",
        kind=pb.PROVIDER_KIND_CITIZEN, issuer=vneid, discovery_url=f"{vneid}/.well-known/openid-configuration",
        client_id="dvc-portal", allowed_algorithms=["ES256"],
        claim_mapping=pb.ClaimMapping(national_id="so_dinh_danh", name="ho_va_ten", level="muc_do_dinh_danh"))
    admin = admin_metadata(identity)
    stored = identity.stub.RegisterIdentityProvider(pb.RegisterIdentityProviderRequest(
        provider=provider, client_secret="dev-sandbox-vneid-secret"), metadata=admin).provider
    assert stored.source == "admin" and stored.has_client_secret
    listed = identity.stub.ListIdentityProviders(pb.ListIdentityProvidersRequest(page_size=1), metadata=admin)
    assert len(listed.providers) == 1 and listed.next_page_token
    ids = {p.provider_id for p in identity.stub.ListIdentityProviders(pb.ListIdentityProvidersRequest(),
                                                                      metadata=admin).providers}
    assert {"vneid", "agency-sandbox", "vneid-second-client"} <= ids
    assert login(identity, CITIZEN_L2, provider="vneid-second-client").subject == CITIZEN_L2


def test_an_official_provider_registered_by_an_admin_names_the_agencies_it_may_vouch_for(identity: Identity) -> None:
    agency = identity.sandboxes.agency.url
    provider = pb.IdentityProvider(
        provider_id="agency-second-client", display_name="Ministry SSO, second registration",
        kind=pb.PROVIDER_KIND_OFFICIAL, issuer=agency, discovery_url=f"{agency}/.well-known/openid-configuration",
        client_id="dvc-portal", allowed_algorithms=["ES256"], default_level=2,
        claim_mapping=pb.ClaimMapping(national_id="so_cccd", name="ho_va_ten", agency="ma_co_quan"))
    admin = admin_metadata(identity)
    with pytest.raises(grpc.RpcError) as missing:
        identity.stub.RegisterIdentityProvider(pb.RegisterIdentityProviderRequest(
            provider=provider, client_secret="dev-sandbox-agency-secret"), metadata=admin)
    assert missing.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "allowed_agencies" in violations_of(missing.value)
    provider.allowed_agencies.append("HN")
    stored = identity.stub.RegisterIdentityProvider(pb.RegisterIdentityProviderRequest(
        provider=provider, client_secret="dev-sandbox-agency-secret"), metadata=admin).provider
    assert list(stored.allowed_agencies) == ["HN"]


def test_an_unsafe_provider_is_refused_with_field_violations(identity: Identity) -> None:
    provider = pb.IdentityProvider(provider_id="weak", kind=pb.PROVIDER_KIND_CITIZEN, issuer="http://weak.example",
                                   discovery_url="http://weak.example/.well-known/openid-configuration",
                                   client_id="x", allowed_algorithms=["HS256"],
                                   claim_mapping=pb.ClaimMapping(national_id="pid"))
    assert refused(lambda: identity.stub.RegisterIdentityProvider(pb.RegisterIdentityProviderRequest(
        provider=provider), metadata=admin_metadata(identity)), grpc.StatusCode.INVALID_ARGUMENT) == \
        "INVALID_ARGUMENT"
