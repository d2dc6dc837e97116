"""The sandbox provider's authorization and token endpoints (Flask test client: no sockets)."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlparse

import jwt
import pytest
from flask.testing import FlaskClient

from identity_service.domain import pkce
from identity_service.sandbox.app import SandboxClient, create_app

ISSUER = "http://127.0.0.1:8091"
CALLBACK = "http://127.0.0.1:8081/login/callback"
SECRET = "dev-sandbox-vneid-secret"


@pytest.fixture
def client() -> FlaskClient:
    return create_app("vneid", issuer=ISSUER).test_client()


def authorization(verifier: str, **changes: str) -> dict[str, str]:
    params = {"response_type": "code", "client_id": "dvc-portal", "redirect_uri": CALLBACK, "scope": "openid profile",
              "state": "st-1", "nonce": "n-1", "code_challenge": pkce.s256_challenge(verifier),
              "code_challenge_method": "S256"}
    params.update(changes)
    return params


def get_code(client: FlaskClient, verifier: str, account: str = "001085000101", **extra: str) -> str:
    response = client.post("/authorize", data={**authorization(verifier), "account": account, **extra})
    assert response.status_code == 302
    query = parse_qs(urlparse(response.headers["Location"]).query)
    assert query["state"] == ["st-1"]
    return query["code"][0]


def redeem(client: FlaskClient, code: str, verifier: str, **changes: str) -> Any:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "client_id": "dvc-portal",
            "client_secret": SECRET, "code_verifier": verifier}
    form.update(changes)
    return client.post("/token", data=form)


def test_the_login_page_lists_level_1_and_2_citizens_and_the_minor(client: FlaskClient) -> None:
    page = client.get("/authorize", query_string=authorization(pkce.new_verifier())).get_data(as_text=True)
    for expected in ("001085000101", "001190000202", "079215000404", "mức 1", "mức 2", "Lê Gia Hân"):
        assert expected in page


def test_a_good_code_and_verifier_give_an_id_token_with_the_mapped_claims(client: FlaskClient) -> None:
    verifier = pkce.new_verifier()
    response = redeem(client, get_code(client, verifier), verifier)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    claims = jwt.decode(response.get_json()["id_token"], options={"verify_signature": False})
    assert claims["so_dinh_danh"] == "001085000101" and claims["muc_do_dinh_danh"] == 2
    assert claims["nonce"] == "n-1" and claims["iss"] == ISSUER and claims["aud"] == "dvc-portal"
    assert claims["sub"] != "001085000101"  # pairwise: the platform must map the national-ID claim


def test_a_wrong_pkce_verifier_is_invalid_grant(client: FlaskClient) -> None:
    verifier = pkce.new_verifier()
    response = redeem(client, get_code(client, verifier), pkce.new_verifier())
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_grant"
    assert "PKCE" in response.get_json()["error_description"]


def test_a_replayed_code_is_invalid_grant(client: FlaskClient) -> None:
    verifier = pkce.new_verifier()
    code = get_code(client, verifier)
    assert redeem(client, code, verifier).status_code == 200
    replay = redeem(client, code, verifier)
    assert replay.status_code == 400
    assert replay.get_json() == {"error": "invalid_grant", "error_description": "authorization code was already used"}


def test_a_code_is_burnt_by_a_failed_attempt(client: FlaskClient) -> None:
    verifier = pkce.new_verifier()
    code = get_code(client, verifier)
    assert redeem(client, code, "x" * 43).status_code == 400
    assert redeem(client, code, verifier).get_json()["error"] == "invalid_grant"


def test_a_wrong_client_secret_is_invalid_client_with_basic_auth_too(client: FlaskClient) -> None:
    verifier = pkce.new_verifier()
    code = get_code(client, verifier)
    assert redeem(client, code, verifier, client_secret="wrong").status_code == 401
    basic = base64.b64encode(b"dvc-portal:wrong").decode()
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "code_verifier": verifier}
    response = client.post("/token", data=form, headers={"Authorization": f"Basic {basic}"})
    assert (response.status_code, response.get_json()["error"]) == (401, "invalid_client")


def test_a_mismatched_redirect_uri_is_invalid_grant(client: FlaskClient) -> None:
    verifier = pkce.new_verifier()
    response = redeem(client, get_code(client, verifier), verifier, redirect_uri="http://127.0.0.1:1/other")
    assert response.get_json()["error"] == "invalid_grant"


def test_other_grant_types_are_unsupported(client: FlaskClient) -> None:
    response = client.post("/token", data={"grant_type": "password"})
    assert (response.status_code, response.get_json()["error"]) == (400, "unsupported_grant_type")


@pytest.mark.parametrize("change, error", [
    ({"code_challenge": ""}, "invalid_request"),
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"scope": "profile"}, "invalid_scope"),
])
def test_bad_authorization_requests_return_to_the_client_with_an_error(client: FlaskClient, change: dict[str, str],
                                                                     error: str) -> None:
    response = client.get("/authorize", query_string=authorization(pkce.new_verifier(), **change))
    assert response.status_code == 302
    assert parse_qs(urlparse(response.headers["Location"]).query)["error"] == [error]


def test_an_unregistered_client_or_redirect_is_never_redirected_to(client: FlaskClient) -> None:
    bad_client = client.get("/authorize", query_string=authorization(pkce.new_verifier(), client_id="nobody"))
    assert (bad_client.status_code, bad_client.get_json()["error"]) == (400, "invalid_client")
    evil = client.get("/authorize", query_string=authorization(pkce.new_verifier(),
                                                                redirect_uri="https://evil.example/cb"))
    assert evil.status_code == 400 and "Location" not in evil.headers


def test_declining_redirects_with_access_denied(client: FlaskClient) -> None:
    response = client.post("/authorize", data={**authorization(pkce.new_verifier()), "account": "deny"})
    assert parse_qs(urlparse(response.headers["Location"]).query)["error"] == ["access_denied"]


def test_any_other_national_id_logs_in_as_a_generated_citizen(client: FlaskClient) -> None:
    verifier = pkce.new_verifier()
    response = redeem(client, get_code(client, verifier, account="999000123456", level="1"), verifier)
    claims = jwt.decode(response.get_json()["id_token"], options={"verify_signature": False})
    assert (claims["so_dinh_danh"], claims["muc_do_dinh_danh"]) == ("999000123456", 1)


def test_the_agency_provider_issues_officials_with_agency_and_roles() -> None:
    agency = create_app("agency", issuer="http://127.0.0.1:8092").test_client()
    verifier = pkce.new_verifier()
    secret = "dev-sandbox-agency-secret"
    code = get_code(agency, verifier, account="canbo.hcm")
    response = redeem(agency, code, verifier, client_secret=secret)
    claims = jwt.decode(response.get_json()["id_token"], options={"verify_signature": False})
    assert (claims["ma_co_quan"], claims["vai_tro"], claims["so_cccd"]) == ("HCM", ["payments-officer"],
                                                                          "079075001001")


def test_the_login_page_escapes_what_the_client_sent(client: FlaskClient) -> None:
    page = client.get("/authorize", query_string=authorization(pkce.new_verifier(),
                                                              state='"><script>alert(1)</script>'))
    assert page.status_code == 200
    assert "<script>alert(1)</script>" not in page.get_data(as_text=True)


@pytest.mark.parametrize(("secret", "sent_encoded", "status"), [
    ("p+q/r=&ổ", True, 200),     # form-urlencoded before Basic, as RFC 6749 §2.3.1 asks
    ("p+q/r=&ổ", False, 401),    # raw: a real provider would refuse it, so the sandbox does too
])
def test_basic_client_credentials_are_form_decoded_and_odd_secrets_never_crash(secret: str, sent_encoded: bool,
                                                                               status: int) -> None:
    client = create_app("vneid", issuer=ISSUER,
                        clients={"dvc-portal": SandboxClient("dvc-portal", secret)}).test_client()
    verifier = pkce.new_verifier()
    code = get_code(client, verifier)
    password = quote_plus(secret) if sent_encoded else secret
    basic = base64.b64encode(f"dvc-portal:{password}".encode()).decode()
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "code_verifier": verifier}
    response = client.post("/token", data=form, headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == status
