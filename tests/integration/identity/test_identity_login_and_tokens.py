"""Citizen and official login through the sandbox, tokens that pass servicekit's verifier, refresh rotation,
revocation seen through /revocations.json, introspection, key rotation with overlap, JWKS cache headers."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import grpc
import jwt
import pytest
import requests
from dvc.identity.v1 import identity_pb2 as pb
from google.protobuf.timestamp_pb2 import Timestamp
from identity_support import (
    ADMIN_CLIENT,
    CITIZEN_L1,
    CITIZEN_L2,
    GUARDIAN,
    ISSUER,
    MINOR,
    PROVINCE_CLIENT,
    ClientKey,
    Identity,
    admin_metadata,
    client_token,
    error_reason,
    http_verifier,
    login,
    refused,
)

from servicekit import auth
from servicekit.errors import Unauthenticated
from servicekit.testing import bearer

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


def header_and_claims(token: str) -> tuple[dict[str, object], dict[str, object]]:
    return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})


def test_level_2_citizen_login_gives_a_token_other_services_accept(identity: Identity) -> None:
    done = login(identity, CITIZEN_L2, audience="dvc-wallet")
    assert (done.subject, done.kind, done.level_of_assurance) == (CITIZEN_L2, pb.SUBJECT_KIND_CITIZEN, 2)
    assert done.name == "Nguyễn Văn An"
    principal = http_verifier(identity, "dvc-wallet").verify(done.tokens.access_token)
    assert (principal.subject, principal.kind, principal.level_of_assurance) == (CITIZEN_L2, "citizen", 2)
    header, claims = header_and_claims(done.tokens.access_token)
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256" and header["kid"]
    assert claims["aud"] == "dvc-wallet" and isinstance(claims["jti"], str)
    assert 0 < int(claims["exp"]) - int(claims["iat"]) <= 900  # type: ignore[call-overload]
    assert "@" not in json.dumps(claims)  # the upstream e-mail never leaks into platform tokens
    assert done.tokens.refresh_token.startswith("dvcrt_")
    with pytest.raises(Unauthenticated) as caught:  # one audience per service
        http_verifier(identity, "dvc-payments").verify(done.tokens.access_token)
    assert caught.value.reason == "WRONG_AUDIENCE"


def test_level_1_citizen_login_carries_level_1(identity: Identity) -> None:
    done = login(identity, CITIZEN_L1)
    assert done.level_of_assurance == 1
    principal = http_verifier(identity, "dvc-identity").verify(done.tokens.access_token)
    with pytest.raises(Exception) as caught:
        principal.require_level(2)
    assert getattr(caught.value, "metadata", {}) == {"required_level": "2"}


def test_a_returning_citizen_keeps_the_same_subject(identity: Identity) -> None:
    first = login(identity, "001099887766")  # a generated citizen nobody else uses in this module
    again = login(identity, "001099887766")
    assert (first.returning, again.returning) == (False, True)
    assert first.subject == again.subject == "001099887766"
    info = identity.stub.GetUserInfo(pb.GetUserInfoRequest(), metadata=bearer(again.tokens.access_token))
    assert info.first_login_at.ToSeconds() <= info.last_login_at.ToSeconds()
    assert info.subject == "001099887766"


def test_official_login_carries_agency_roles_and_role_scopes(identity: Identity) -> None:
    done = login(identity, "quantri.dvc", provider="agency-sandbox")
    assert done.subject == "official:DVC:001078003003"
    assert (done.kind, done.agency) == (pb.SUBJECT_KIND_OFFICIAL, "DVC")
    assert "identity-admin" in done.roles and done.tokens.scope == "identity.admin"
    principal = http_verifier(identity, "dvc-identity").verify(done.tokens.access_token)
    assert principal.agency == "DVC" and principal.has_scope("identity.admin")
    officer = login(identity, "canbo.hcm", provider="agency-sandbox", audience="dvc-payments")
    assert officer.tokens.scope == "payments.read" and officer.agency == "HCM"


def test_an_official_provider_cannot_vouch_for_an_agency_outside_its_list(identity: Identity) -> None:
    # The test registry lets agency-sandbox assert HCM, HN and DVC; canbo.btp's ID token names BTP.
    with pytest.raises(grpc.RpcError) as caught:
        login(identity, "canbo.btp", provider="agency-sandbox")
    assert caught.value.code() == UNAUTHENTICATED
    assert error_reason(caught.value) == "UPSTREAM_AGENCY_NOT_ALLOWED"
    assert "BTP" in (caught.value.details() or "")


def test_a_guardian_login_records_the_guardianship_the_upstream_asserts(identity: Identity) -> None:
    done = login(identity, GUARDIAN)
    listed = identity.stub.ListDelegations(pb.ListDelegationsRequest(), metadata=bearer(done.tokens.access_token))
    links = [d for d in listed.delegations if d.relation == pb.DELEGATION_RELATION_GUARDIAN]
    assert [(d.principal_subject, d.delegate_id) for d in links] == [(MINOR, GUARDIAN)]
    assert links[0].granted_by == "upstream:vneid"


def test_logins_are_audited(identity: Identity) -> None:
    login(identity, CITIZEN_L2)
    events = identity.stub.ListAuditEvents(pb.ListAuditEventsRequest(event_type="login.succeeded",
                                                                     subject=CITIZEN_L2, page_size=1),
                                           metadata=admin_metadata(identity))
    assert events.events[0].subject == CITIZEN_L2 and events.events[0].outcome == "success"
    assert json.loads(events.events[0].detail_json)["provider"] == "vneid"


# ---- machine clients --------------------------------------------------------------------------------------------

def test_client_secret_token_passes_the_payment_services_verifier(identity: Identity) -> None:
    token = client_token(identity, PROVINCE_CLIENT, "dvc-payments")
    principal = http_verifier(identity, "dvc-payments").verify(token)
    assert (principal.kind, principal.client_id, principal.agency) == ("client", "hcm-dossier-system", "HCM")
    assert principal.scopes == {"payments.create", "payments.read"}


def test_private_key_jwt_client_gets_a_token(identity: Identity) -> None:
    key = ClientKey.generate()
    identity.stub.RegisterClient(pb.RegisterClientRequest(
        client_id="vietcombank-connector", display_name="Vietcombank", agency="VCB", scopes=["payments.read"],
        auth_method=pb.CLIENT_AUTH_METHOD_PRIVATE_KEY_JWT, public_jwks_json=key.public_jwks_json()),
        metadata=admin_metadata(identity))
    for audience in (ISSUER, f"{ISSUER}/token"):  # the issuer or the token endpoint, as RFC 7523 allows
        response = identity.stub.IssueClientToken(pb.IssueClientTokenRequest(
            client_id="vietcombank-connector",
            client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            client_assertion=key.assertion("vietcombank-connector", audience=audience), audience="dvc-payments"))
        principal = http_verifier(identity, "dvc-payments").verify(response.tokens.access_token)
        assert principal.client_id == "vietcombank-connector" and principal.agency == "VCB"


def test_a_client_cannot_get_scopes_it_was_not_given(identity: Identity) -> None:
    assert refused(lambda: identity.stub.IssueClientToken(pb.IssueClientTokenRequest(
        client_id=PROVINCE_CLIENT[0], client_secret=PROVINCE_CLIENT[1], audience="dvc-payments",
        scope="payments.admin")), grpc.StatusCode.PERMISSION_DENIED) == "SCOPE_NOT_ALLOWED"
    assert refused(lambda: identity.stub.IssueClientToken(pb.IssueClientTokenRequest(
        client_id=PROVINCE_CLIENT[0], client_secret=PROVINCE_CLIENT[1], audience="dvc-payments",
        scope="wallet.issue")), grpc.StatusCode.INVALID_ARGUMENT) == "SCOPE_AUDIENCE_MISMATCH"


# ---- refresh, revocation, logout, introspection ----------------------------------------------------------------

def test_refresh_rotates_and_reuse_revokes_the_whole_family(identity: Identity) -> None:
    done = login(identity, CITIZEN_L2, audience="dvc-wallet")
    first = done.tokens
    second = identity.stub.RefreshToken(pb.RefreshTokenRequest(refresh_token=first.refresh_token)).tokens
    assert second.refresh_token != first.refresh_token and second.audience == "dvc-wallet"
    to_payments = identity.stub.RefreshToken(pb.RefreshTokenRequest(refresh_token=second.refresh_token,
                                                                    audience="dvc-payments")).tokens
    assert to_payments.audience == "dvc-payments"
    # The first refresh token, already used, comes back: stolen. Everything of that login ends.
    assert refused(lambda: identity.stub.RefreshToken(pb.RefreshTokenRequest(refresh_token=first.refresh_token)),
                   UNAUTHENTICATED) == "REFRESH_TOKEN_REUSED"
    assert refused(lambda: identity.stub.RefreshToken(pb.RefreshTokenRequest(
        refresh_token=to_payments.refresh_token)), UNAUTHENTICATED) == "REFRESH_TOKEN_REVOKED"
    for access in (first.access_token, second.access_token, to_payments.access_token):
        assert refused(lambda token=access: identity.stub.IntrospectToken(pb.IntrospectTokenRequest(token=token)),
                       UNAUTHENTICATED) == "TOKEN_REVOKED"
    with pytest.raises(Unauthenticated) as caught:
        http_verifier(identity, "dvc-payments").verify(to_payments.access_token)
    assert caught.value.reason == "TOKEN_REVOKED"


def test_a_revoked_access_token_is_refused_by_other_services_through_the_revocation_list(identity: Identity) -> None:
    token = client_token(identity, PROVINCE_CLIENT, "dvc-payments")
    verifier = http_verifier(identity, "dvc-payments")
    jti = verifier.verify(token).token_id
    revoked = identity.stub.RevokeToken(pb.RevokeTokenRequest(token=token, reason="leaked in a log"))
    assert list(revoked.revoked_jtis) == [jti]
    listed = requests.get(f"{identity.http_url}/revocations.json", timeout=5)
    assert jti in listed.json()["revoked_jtis"]
    assert "max-age" in listed.headers["Cache-Control"]
    with pytest.raises(Unauthenticated) as caught:
        verifier.verify(token)
    assert caught.value.reason == "TOKEN_REVOKED"


def test_a_revoked_token_stays_on_the_published_list_while_any_verifier_may_still_accept_it(
        identity: Identity) -> None:
    # Verifiers accept a token up to MAX_LEEWAY_SECONDS past its exp, so the list must cover that window.
    admin = admin_metadata(identity)
    for jti, expired_seconds_ago in (("expired-inside-the-leeway", auth.MAX_LEEWAY_SECONDS - 15),
                                     ("expired-past-the-leeway", auth.MAX_LEEWAY_SECONDS + 15)):
        expires_at = Timestamp()
        expires_at.FromDatetime(datetime.now(UTC) - timedelta(seconds=expired_seconds_ago))
        identity.stub.RevokeToken(pb.RevokeTokenRequest(jti=jti, jti_expires_at=expires_at), metadata=admin)
    listed = requests.get(f"{identity.http_url}/revocations.json", timeout=5).json()["revoked_jtis"]
    assert "expired-inside-the-leeway" in listed and "expired-past-the-leeway" not in listed


def test_a_wrong_token_type_hint_still_revokes_the_token(identity: Identity) -> None:
    # RFC 7009: the hint is advisory; an access token sent as a refresh token is still revoked, over gRPC and HTTP.
    verifier = http_verifier(identity, "dvc-payments")
    over_grpc, over_http = (client_token(identity, PROVINCE_CLIENT, "dvc-payments") for _ in range(2))
    jti = verifier.verify(over_grpc).token_id
    answer = identity.stub.RevokeToken(pb.RevokeTokenRequest(token=over_grpc, token_type_hint="refresh_token"))
    assert list(answer.revoked_jtis) == [jti]
    assert requests.post(f"{identity.http_url}/revoke", data={"token": over_http, "token_type_hint": "refresh_token"},
                         timeout=5).status_code == 200
    for token in (over_grpc, over_http):
        with pytest.raises(Unauthenticated) as caught:
            verifier.verify(token)
        assert caught.value.reason == "TOKEN_REVOKED"
    done = login(identity, CITIZEN_L2)  # and a refresh token sent as an access token still ends its family
    assert identity.stub.RevokeToken(pb.RevokeTokenRequest(token=done.tokens.refresh_token,
                                                           token_type_hint="access_token")).refresh_family_revoked


def test_logout_ends_the_session(identity: Identity) -> None:
    done = login(identity, CITIZEN_L2)
    answer = identity.stub.Logout(pb.LogoutRequest(refresh_token=done.tokens.refresh_token))
    assert answer.revoked_access_tokens == 1
    assert refused(lambda: identity.stub.GetUserInfo(pb.GetUserInfoRequest(),
                                                     metadata=bearer(done.tokens.access_token)),
                   UNAUTHENTICATED) == "TOKEN_REVOKED"
    assert refused(lambda: identity.stub.RefreshToken(pb.RefreshTokenRequest(
        refresh_token=done.tokens.refresh_token)), UNAUTHENTICATED) == "REFRESH_TOKEN_REVOKED"


def test_revoking_a_refresh_token_ends_its_family(identity: Identity) -> None:
    done = login(identity, CITIZEN_L2)
    answer = identity.stub.RevokeToken(pb.RevokeTokenRequest(token=done.tokens.refresh_token))
    assert answer.refresh_family_revoked and list(answer.revoked_jtis) == [
        jwt.decode(done.tokens.access_token, options={"verify_signature": False})["jti"]]


def test_revoking_by_jti_is_for_admins_only(identity: Identity) -> None:
    citizen = login(identity, CITIZEN_L2).tokens.access_token
    assert refused(lambda: identity.stub.RevokeToken(pb.RevokeTokenRequest(jti="some-jti"),
                                                     metadata=bearer(citizen)),
                   grpc.StatusCode.PERMISSION_DENIED) == "MISSING_SCOPE"
    answer = identity.stub.RevokeToken(pb.RevokeTokenRequest(jti="jti-from-an-incident"),
                                       metadata=admin_metadata(identity))
    assert list(answer.revoked_jtis) == ["jti-from-an-incident"]


def test_introspection_describes_an_active_token(identity: Identity) -> None:
    token = client_token(identity, PROVINCE_CLIENT, "dvc-payments", scope="payments.read")
    answer = identity.stub.IntrospectToken(pb.IntrospectTokenRequest(token=token))
    assert answer.active and answer.kind == pb.SUBJECT_KIND_CLIENT
    assert (answer.subject, answer.client_id, answer.agency, answer.scope) == (
        "hcm-dossier-system", "hcm-dossier-system", "HCM", "payments.read")
    assert answer.kid == jwt.get_unverified_header(token)["kid"] and answer.issuer == ISSUER
    assert answer.expires_at.ToSeconds() - answer.issued_at.ToSeconds() == identity.settings.access_token_seconds


# ---- keys ---------------------------------------------------------------------------------------------------------

def test_jwks_and_discovery_are_served_with_cache_headers(identity: Identity) -> None:
    jwks = requests.get(f"{identity.http_url}/jwks.json", timeout=5)
    assert jwks.headers["Cache-Control"] == f"public, max-age={identity.settings.jwks_max_age_seconds}"
    keys = jwks.json()["keys"]
    assert keys and all(key["alg"] == "ES256" and key["use"] == "sig" and "d" not in key for key in keys)
    discovery = requests.get(f"{identity.http_url}/.well-known/openid-configuration", timeout=5)
    assert discovery.json()["issuer"] == ISSUER and discovery.json()["jwks_uri"] == f"{ISSUER}/jwks.json"
    assert "max-age" in discovery.headers["Cache-Control"]
    over_grpc = identity.stub.GetJwks(pb.GetJwksRequest())
    assert json.loads(over_grpc.jwks_json) == jwks.json()
    assert over_grpc.max_age_seconds == identity.settings.jwks_max_age_seconds


def test_key_rotation_overlaps_old_and_new_keys(identity: Identity) -> None:
    before = client_token(identity, PROVINCE_CLIENT, "dvc-payments")
    old_kid = jwt.get_unverified_header(before)["kid"]
    rotated = identity.stub.RotateSigningKey(pb.RotateSigningKeyRequest(idempotency_key="rotate-1"),
                                             metadata=admin_metadata(identity))
    assert rotated.kid != old_kid and {old_kid, rotated.kid} <= set(rotated.published_kids)
    after = client_token(identity, PROVINCE_CLIENT, "dvc-payments")
    assert jwt.get_unverified_header(after)["kid"] == rotated.kid
    verifier = http_verifier(identity, "dvc-payments")
    assert verifier.verify(before).subject == verifier.verify(after).subject == "hcm-dossier-system"
    for token in (before, after):
        assert identity.stub.IntrospectToken(pb.IntrospectTokenRequest(token=token)).active
    published = {key["kid"] for key in requests.get(f"{identity.http_url}/jwks.json", timeout=5).json()["keys"]}
    assert {old_kid, rotated.kid} <= published
    again = identity.stub.RotateSigningKey(pb.RotateSigningKeyRequest(idempotency_key="rotate-1"),
                                           metadata=admin_metadata(identity))
    assert again.kid == rotated.kid  # a retried rotation does not rotate twice
    events = identity.stub.ListAuditEvents(pb.ListAuditEventsRequest(event_type="key.rotated"),
                                           metadata=admin_metadata(identity))
    assert [event.subject for event in events.events].count(rotated.kid) == 1


def test_a_pre_published_key_is_announced_before_it_signs(identity: Identity) -> None:
    rotated = identity.stub.RotateSigningKey(pb.RotateSigningKeyRequest(activate_after_seconds=3600),
                                             metadata=admin_metadata(identity))
    published = {key["kid"] for key in requests.get(f"{identity.http_url}/jwks.json", timeout=5).json()["keys"]}
    assert rotated.kid in published
    token = client_token(identity, ADMIN_CLIENT, "dvc-identity")
    assert jwt.get_unverified_header(token)["kid"] != rotated.kid
    assert rotated.active_from.ToSeconds() >= int(time.time()) + 3500


def test_a_token_introspected_before_is_still_refused_once_revoked(identity: Identity) -> None:
    token = client_token(identity, PROVINCE_CLIENT, "dvc-payments")
    for _ in range(2):
        assert identity.stub.IntrospectToken(pb.IntrospectTokenRequest(token=token)).active
    identity.stub.RevokeToken(pb.RevokeTokenRequest(token=token))
    assert refused(lambda: identity.stub.IntrospectToken(pb.IntrospectTokenRequest(token=token)),
                   UNAUTHENTICATED) == "TOKEN_REVOKED"


def test_concurrent_revocations_of_one_token_all_succeed_and_count_once(identity: Identity) -> None:
    token = client_token(identity, PROVINCE_CLIENT, "dvc-payments")
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: identity.stub.RevokeToken(pb.RevokeTokenRequest(token=token), timeout=10),
                                range(8)))
    assert sum(len(answer.revoked_jtis) for answer in answers) == 1


def test_a_refresh_token_raced_by_two_holders_yields_one_winner_and_ends_the_family(identity: Identity) -> None:
    refresh = login(identity, CITIZEN_L2).tokens.refresh_token

    def attempt(_: int) -> str:
        try:
            identity.stub.RefreshToken(pb.RefreshTokenRequest(refresh_token=refresh), timeout=10)
            return "ok"
        except grpc.RpcError as error:
            return error_reason(error)

    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = sorted(pool.map(attempt, range(6)))
    assert outcomes.count("ok") == 1
    assert set(outcomes) - {"ok"} <= {"REFRESH_TOKEN_REUSED", "REFRESH_TOKEN_REVOKED"}
    assert "REFRESH_TOKEN_REUSED" in outcomes


def test_issuance_refresh_revocation_and_registration_are_audited(identity: Identity) -> None:
    done = login(identity, CITIZEN_L2)
    identity.stub.RefreshToken(pb.RefreshTokenRequest(refresh_token=done.tokens.refresh_token))
    identity.stub.RevokeToken(pb.RevokeTokenRequest(token=client_token(identity, PROVINCE_CLIENT, "dvc-payments")))
    admin = admin_metadata(identity)
    for event_type, subject in (("token.issued", "hcm-dossier-system"), ("token.refreshed", CITIZEN_L2),
                                ("token.revoked", "hcm-dossier-system"), ("client.registered", "dvc-dev-admin")):
        events = identity.stub.ListAuditEvents(pb.ListAuditEventsRequest(event_type=event_type, subject=subject),
                                               metadata=admin).events
        assert events, f"no {event_type} event"
        assert all("dev-secret-" not in event.detail_json and "eyJ" not in event.detail_json for event in events)
    page = identity.stub.ListAuditEvents(pb.ListAuditEventsRequest(page_size=2), metadata=admin)
    following = identity.stub.ListAuditEvents(pb.ListAuditEventsRequest(page_size=2, page_token=page.next_page_token),
                                              metadata=admin)
    assert page.events[-1].event_id > following.events[0].event_id  # newest first, pages do not overlap
