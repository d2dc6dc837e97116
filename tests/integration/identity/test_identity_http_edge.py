"""The HTTP edge: a browser-style login through /login/start and /login/callback, the OAuth token endpoint, and
OAuth/OIDC error codes (never a 500) for bad requests."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from dvc.identity.v1 import identity_pb2 as pb
from identity_support import CITIZEN_L2, ISSUER, PROVINCE_CLIENT, RECEIVER_CLIENT, Identity, client_token, login

from identity_service.domain import pkce
from servicekit.testing import bearer


def follow_login(identity: Identity, account: str, provider: str = "vneid") -> requests.Response:
    """A browser: start at identity, pick an account on the sandbox, come back to identity's callback."""
    start = requests.get(f"{identity.http_url}/login/start", params={"provider": provider, "audience": "dvc-wallet"},
                         allow_redirects=False, timeout=5)
    assert start.status_code == 302
    upstream = urlparse(start.headers["Location"])
    params = {key: values[0] for key, values in parse_qs(upstream.query).items()}
    assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) == 43
    assert params["state"] and params["nonce"] and params["redirect_uri"] == f"{identity.http_url}/login/callback"
    picked = requests.post(f"{upstream.scheme}://{upstream.netloc}{upstream.path}", data={**params, "account": account},
                           allow_redirects=False, timeout=5)
    return requests.get(picked.headers["Location"], allow_redirects=False, timeout=10)


def test_a_browser_login_returns_platform_tokens(identity: Identity) -> None:
    answer = follow_login(identity, CITIZEN_L2)
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    body = answer.json()
    assert (body["subject"], body["loa"], body["audience"], body["token_type"]) == (CITIZEN_L2, 2, "dvc-wallet",
                                                                                   "Bearer")
    assert body["refresh_token"] and body["access_token"]


def test_the_same_callback_twice_is_invalid_grant(identity: Identity) -> None:
    answer = follow_login(identity, CITIZEN_L2)
    replay = requests.get(answer.url, timeout=10)
    assert replay.status_code == 400
    assert (replay.json()["error"], replay.json()["dvc_reason"]) == ("invalid_grant", "LOGIN_ALREADY_COMPLETED")


def test_an_upstream_refusal_is_passed_on(identity: Identity) -> None:
    answer = follow_login(identity, "deny")
    assert (answer.status_code, answer.json()["error"]) == (400, "access_denied")


def test_a_broken_upstream_id_token_is_invalid_grant_with_the_reason(identity: Identity) -> None:
    start = requests.get(f"{identity.http_url}/login/start", allow_redirects=False, timeout=5)
    upstream = urlparse(start.headers["Location"])
    params = {key: values[0] for key, values in parse_qs(upstream.query).items()}
    picked = requests.post(f"{upstream.scheme}://{upstream.netloc}{upstream.path}",
                           data={**params, "account": CITIZEN_L2, "fault": "wrong_issuer"}, allow_redirects=False,
                           timeout=5)
    answer = requests.get(picked.headers["Location"], timeout=10)
    assert answer.status_code == 400
    assert (answer.json()["error"], answer.json()["dvc_reason"]) == ("invalid_grant", "WRONG_ISSUER")


def test_an_unknown_provider_is_invalid_request(identity: Identity) -> None:
    answer = requests.get(f"{identity.http_url}/login/start", params={"provider": "nobody"}, allow_redirects=False,
                          timeout=5)
    assert (answer.status_code, answer.json()["error"], answer.json()["dvc_reason"]) == (
        400, "invalid_request", "UNKNOWN_PROVIDER")


def test_client_credentials_over_http_with_basic_auth(identity: Identity) -> None:
    basic = base64.b64encode(f"{PROVINCE_CLIENT[0]}:{PROVINCE_CLIENT[1]}".encode()).decode()
    answer = requests.post(f"{identity.http_url}/token", headers={"Authorization": f"Basic {basic}"},
                           data={"grant_type": "client_credentials", "audience": "dvc-payments"}, timeout=10)
    assert answer.status_code == 200
    assert answer.json()["scope"] == "payments.create payments.read" and answer.json()["expires_in"] <= 900


@pytest.mark.parametrize("form, status, error", [
    ({"grant_type": "client_credentials", "client_id": PROVINCE_CLIENT[0], "client_secret": "wrong",
      "audience": "dvc-payments"}, 401, "invalid_client"),
    ({"grant_type": "client_credentials", "client_id": PROVINCE_CLIENT[0], "client_secret": PROVINCE_CLIENT[1],
      "audience": "dvc-payments", "scope": "payments.admin"}, 400, "invalid_scope"),
    ({"grant_type": "client_credentials", "client_id": PROVINCE_CLIENT[0], "client_secret": PROVINCE_CLIENT[1],
      "audience": "dvc-nowhere"}, 400, "invalid_target"),
    ({"grant_type": "refresh_token", "refresh_token": "dvcrt_made-up"}, 400, "invalid_grant"),
    ({"grant_type": "password", "username": "a", "password": "b"}, 400, "unsupported_grant_type"),
    ({"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "subject_token": "001085000101",
      "subject_token_type": "urn:dvc:params:oauth:token-type:national-id", "audience": "dvc-wallet",
      "actor_token": "not.a.token"}, 400, "invalid_grant"),
])
def test_token_endpoint_errors_use_oauth_codes(identity: Identity, form: dict[str, str], status: int,
                                               error: str) -> None:
    answer = requests.post(f"{identity.http_url}/token", data=form, timeout=10)
    assert (answer.status_code, answer.json()["error"]) == (status, error)
    assert answer.json()["error_description"]


def test_token_exchange_and_refresh_over_http(identity: Identity) -> None:
    citizen = login(identity, CITIZEN_L2)
    identity.stub.GrantDelegation(pb.GrantDelegationRequest(
        delegate_kind=pb.DELEGATE_KIND_AGENCY, delegate_id="HN", relation=pb.DELEGATION_RELATION_CONSENT),
        metadata=bearer(citizen.tokens.access_token))
    receiver = client_token(identity, RECEIVER_CLIENT, "dvc-identity")
    exchanged = requests.post(f"{identity.http_url}/token", headers={"Authorization": f"Bearer {receiver}"}, data={
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "subject_token": CITIZEN_L2,
        "subject_token_type": "urn:dvc:params:oauth:token-type:national-id", "audience": "dvc-payments"},
        timeout=10)
    assert exchanged.status_code == 200
    assert exchanged.json()["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    refreshed = requests.post(f"{identity.http_url}/token", data={
        "grant_type": "refresh_token", "refresh_token": citizen.tokens.refresh_token}, timeout=10)
    assert refreshed.status_code == 200 and refreshed.json()["refresh_token"] != citizen.tokens.refresh_token


def test_revoke_and_userinfo_over_http(identity: Identity) -> None:
    citizen = login(identity, CITIZEN_L2).tokens.access_token
    me = requests.get(f"{identity.http_url}/userinfo", headers={"Authorization": f"Bearer {citizen}"}, timeout=5)
    assert me.json()["sub"] == CITIZEN_L2 and me.json()["name"] == "Nguyễn Văn An"
    assert requests.post(f"{identity.http_url}/revoke", data={"token": citizen}, timeout=5).status_code == 200
    after = requests.get(f"{identity.http_url}/userinfo", headers={"Authorization": f"Bearer {citizen}"}, timeout=5)
    assert (after.status_code, after.json()["error"], after.json()["dvc_reason"]) == (
        401, "invalid_token", "TOKEN_REVOKED")


def test_discovery_names_our_endpoints(identity: Identity) -> None:
    document = requests.get(f"{identity.http_url}/.well-known/openid-configuration", timeout=5).json()
    assert document["token_endpoint"] == f"{ISSUER}/token"
    assert "private_key_jwt" in document["token_endpoint_auth_methods_supported"]
    assert document["dvc_revocations_uri"] == f"{ISSUER}/revocations.json"


def test_unknown_paths_are_json_errors_not_stack_traces(identity: Identity) -> None:
    answer = requests.get(f"{identity.http_url}/no-such-page", timeout=5)
    assert answer.status_code == 404 and answer.json()["error"] == "invalid_request"


def test_the_sandbox_login_page_is_html_listing_the_test_accounts(identity: Identity) -> None:
    start = requests.get(f"{identity.http_url}/login/start", allow_redirects=False, timeout=5)
    page = requests.get(start.headers["Location"], timeout=5)
    assert page.headers["Content-Type"].startswith("text/html")
    assert "079215000404" in page.text and pkce.METHOD_S256 in page.text
