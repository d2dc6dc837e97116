"""Every bad token the identity issue lists, refused with UNAUTHENTICATED and its own reason code — through
IntrospectToken, upstream ID-token verification (the sandbox misbehaving on purpose), client assertions, and the
sandbox's token endpoint over HTTP — never a 500."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlparse

import grpc
import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from dvc.identity.v1 import identity_pb2 as pb
from identity_support import (
    CALLBACK,
    CITIZEN_L2,
    ISSUER,
    PROVINCE_CLIENT,
    ClientKey,
    Identity,
    admin_metadata,
    client_token,
    error_info,
    refused,
    sandbox_authorize,
)

from identity_service.domain import pkce

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"


def hs256_with_public_key(public_key: ec.EllipticCurvePublicKey, header: dict[str, Any],
                          claims: dict[str, Any]) -> str:
    """The key-confusion attack: HMAC keyed with the victim's PUBLIC key, hoping the verifier uses it as a secret."""
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = unsigned({**header, "alg": "HS256"}, claims)
    return f"{signing_input}.{b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())}"


# ---- IntrospectToken ---------------------------------------------------------------------------------------------

def access_claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {"iss": ISSUER, "sub": "hcm-dossier-system", "aud": "dvc-payments", "iat": now,
                              "nbf": now, "exp": now + 300, "jti": uuid.uuid4().hex, "dvc_kind": "client",
                              "scope": "payments.read", "client_id": "hcm-dossier-system", "agency": "HCM"}
    claims.update(changes)
    return claims


def service_signed(identity: Identity, claims: dict[str, Any], **header: Any) -> str:
    kid, key = identity.handlers.keyring.signing_key()
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid, "typ": "at+jwt", **header})


def introspection_reason(identity: Identity, token: str) -> str:
    return refused(lambda: identity.stub.IntrospectToken(pb.IntrospectTokenRequest(token=token), timeout=10),
                   UNAUTHENTICATED)


def test_a_token_we_signed_introspects_as_active(identity: Identity) -> None:
    answer = identity.stub.IntrospectToken(pb.IntrospectTokenRequest(token=service_signed(identity, access_claims())))
    assert answer.active and answer.subject == "hcm-dossier-system" and answer.audience == "dvc-payments"


@pytest.mark.parametrize("make_token, reason", [
    (lambda identity: "not-a-jwt", "MALFORMED_TOKEN"),
    (lambda identity: "eyJhbGciOiJFUzI1NiJ9.%%%.abc", "MALFORMED_TOKEN"),
    (lambda identity: service_signed(identity, access_claims(iat=int(time.time()) - 2000,
                                                             exp=int(time.time()) - 1000)), "TOKEN_EXPIRED"),
    (lambda identity: service_signed(identity, access_claims(nbf=int(time.time()) + 900,
                                                             exp=int(time.time()) + 1200)), "TOKEN_NOT_YET_VALID"),
    (lambda identity: service_signed(identity, access_claims(aud="dvc-elsewhere")), "WRONG_AUDIENCE"),
    (lambda identity: service_signed(identity, access_claims(iss="https://impostor.example")), "WRONG_ISSUER"),
    (lambda identity: service_signed(identity, access_claims(), kid="kid-nobody-published"), "UNKNOWN_KID"),
    (lambda identity: service_signed(identity, access_claims(), crit=["urn:x:unknown"]), "UNKNOWN_CRITICAL_HEADER"),
], ids=["malformed", "malformed-payload", "expired", "not-yet-valid", "wrong-aud", "wrong-iss", "unknown-kid",
        "unknown-crit"])
def test_introspection_refuses(identity: Identity, make_token: Any, reason: str) -> None:
    assert introspection_reason(identity, make_token(identity)) == reason


def test_introspection_refuses_a_token_signed_by_another_key_under_our_kid(identity: Identity) -> None:
    kid, _ = identity.handlers.keyring.signing_key()
    forged = jwt.encode(access_claims(), ec.generate_private_key(ec.SECP256R1()), algorithm="ES256",
                        headers={"kid": kid, "typ": "at+jwt"})
    assert introspection_reason(identity, forged) == "BAD_SIGNATURE"


def test_introspection_refuses_alg_none(identity: Identity) -> None:
    kid, _ = identity.handlers.keyring.signing_key()
    assert introspection_reason(identity, unsigned({"alg": "none", "kid": kid, "typ": "at+jwt"},
                                                   access_claims()) + ".") == "ALGORITHM_NOT_ALLOWED"


def test_introspection_refuses_hs256_signed_with_our_public_key(identity: Identity) -> None:
    kid, key = identity.handlers.keyring.signing_key()
    token = hs256_with_public_key(key.public_key(), {"kid": kid, "typ": "at+jwt"}, access_claims())
    assert introspection_reason(identity, token) == "ALGORITHM_NOT_ALLOWED"


def test_introspection_refuses_a_revoked_jti(identity: Identity) -> None:
    token = client_token(identity, PROVINCE_CLIENT, "dvc-payments")
    identity.stub.RevokeToken(pb.RevokeTokenRequest(token=token, reason="test"), timeout=10)
    assert introspection_reason(identity, token) == "TOKEN_REVOKED"


def test_introspection_refuses_a_token_that_is_not_an_access_token_type(identity: Identity) -> None:
    assert introspection_reason(identity, service_signed(identity, access_claims(), typ="JWT")) == "WRONG_TOKEN_TYPE"


# ---- upstream ID tokens (the sandbox misbehaves on request) --------------------------------------------------------

@pytest.mark.parametrize("fault, reason", [
    ("malformed", "MALFORMED_TOKEN"),
    ("expired", "TOKEN_EXPIRED"),
    ("not_yet_valid", "TOKEN_NOT_YET_VALID"),
    ("stale", "TOKEN_TOO_OLD"),
    ("bad_signature", "BAD_SIGNATURE"),
    ("alg_none", "ALGORITHM_NOT_ALLOWED"),
    ("hs256_public_key", "ALGORITHM_NOT_ALLOWED"),
    ("wrong_audience", "WRONG_AUDIENCE"),
    ("wrong_issuer", "WRONG_ISSUER"),
    ("unknown_kid", "UNKNOWN_KID"),
    ("crit", "UNKNOWN_CRITICAL_HEADER"),
    ("wrong_nonce", "NONCE_MISMATCH"),
    ("no_national_id", "UPSTREAM_CLAIMS_INVALID"),
])
def test_upstream_id_token_is_refused(identity: Identity, fault: str, reason: str) -> None:
    started = identity.stub.StartLogin(pb.StartLoginRequest(provider_id="vneid", redirect_uri=CALLBACK))
    answer = sandbox_authorize(started.authorization_url, CITIZEN_L2, fault=fault)
    with pytest.raises(grpc.RpcError) as caught:
        identity.stub.CompleteLogin(pb.CompleteLoginRequest(state=answer["state"], code=answer["code"]), timeout=10)
    assert caught.value.code() == UNAUTHENTICATED
    info = error_info(caught.value)
    assert info.reason == reason
    assert info.metadata["provider"] == "vneid"
    events = identity.stub.ListAuditEvents(pb.ListAuditEventsRequest(event_type="login.failed", page_size=5),
                                           metadata=admin_metadata(identity))
    assert json.loads(events.events[0].detail_json)["reason"] == reason


def test_a_replayed_callback_is_refused(identity: Identity) -> None:
    started = identity.stub.StartLogin(pb.StartLoginRequest(provider_id="vneid", redirect_uri=CALLBACK))
    answer = sandbox_authorize(started.authorization_url, CITIZEN_L2)
    request = pb.CompleteLoginRequest(state=answer["state"], code=answer["code"])
    identity.stub.CompleteLogin(request, timeout=10)
    assert refused(lambda: identity.stub.CompleteLogin(request, timeout=10),
                   UNAUTHENTICATED) == "LOGIN_ALREADY_COMPLETED"


def test_a_code_replayed_at_the_upstream_is_refused_with_the_upstream_error(identity: Identity) -> None:
    started = identity.stub.StartLogin(pb.StartLoginRequest(provider_id="vneid", redirect_uri=CALLBACK))
    answer = sandbox_authorize(started.authorization_url, CITIZEN_L2)
    # An attacker who intercepted the code redeems it first (without the verifier, which only we hold).
    token_endpoint = f"{identity.sandboxes.vneid.url}/token"
    stolen = requests.post(token_endpoint, data={"grant_type": "authorization_code", "code": answer["code"],
                                                  "redirect_uri": CALLBACK, "client_id": "dvc-portal",
                                                  "client_secret": "dev-sandbox-vneid-secret",
                                                  "code_verifier": pkce.new_verifier()}, timeout=5)
    assert stolen.json()["error"] == "invalid_grant"
    assert refused(lambda: identity.stub.CompleteLogin(pb.CompleteLoginRequest(
        state=answer["state"], code=answer["code"]), timeout=10), UNAUTHENTICATED) == "UPSTREAM_INVALID_GRANT"


def test_an_unknown_state_is_refused(identity: Identity) -> None:
    assert refused(lambda: identity.stub.CompleteLogin(pb.CompleteLoginRequest(state="made-up", code="x")),
                   UNAUTHENTICATED) == "UNKNOWN_LOGIN_STATE"


# ---- the sandbox token endpoint over HTTP ---------------------------------------------------------------------------

def sandbox_code(identity: Identity, verifier: str) -> str:
    params = {"response_type": "code", "client_id": "dvc-portal", "redirect_uri": CALLBACK, "scope": "openid",
              "state": "s", "nonce": "n", "code_challenge": pkce.s256_challenge(verifier),
              "code_challenge_method": "S256", "account": CITIZEN_L2}
    response = requests.post(f"{identity.sandboxes.vneid.url}/authorize", data=params, allow_redirects=False,
                             timeout=5)
    return parse_qs(urlparse(response.headers["Location"]).query)["code"][0]


def redeem_at_sandbox(identity: Identity, code: str, verifier: str) -> requests.Response:
    return requests.post(f"{identity.sandboxes.vneid.url}/token", timeout=5, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "client_id": "dvc-portal",
        "client_secret": "dev-sandbox-vneid-secret", "code_verifier": verifier})


def test_sandbox_refuses_a_replayed_authorization_code_with_invalid_grant(identity: Identity) -> None:
    verifier = pkce.new_verifier()
    code = sandbox_code(identity, verifier)
    assert redeem_at_sandbox(identity, code, verifier).status_code == 200
    replay = redeem_at_sandbox(identity, code, verifier)
    assert (replay.status_code, replay.json()["error"]) == (400, "invalid_grant")


def test_sandbox_refuses_a_wrong_pkce_verifier_with_invalid_grant(identity: Identity) -> None:
    response = redeem_at_sandbox(identity, sandbox_code(identity, pkce.new_verifier()), pkce.new_verifier())
    assert (response.status_code, response.json()["error"]) == (400, "invalid_grant")


# ---- client assertions (private_key_jwt) ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def jwt_client(identity: Identity) -> tuple[str, ClientKey]:
    key = ClientKey.generate()
    client_id = "bank-assertion-tests"
    identity.stub.RegisterClient(pb.RegisterClientRequest(
        client_id=client_id, display_name="bank", agency="VCB", scopes=["payments.read"],
        auth_method=pb.CLIENT_AUTH_METHOD_PRIVATE_KEY_JWT, public_jwks_json=key.public_jwks_json()),
        metadata=admin_metadata(identity))
    return client_id, key


def assertion_reason(identity: Identity, client_id: str, assertion: str) -> str:
    return refused(lambda: identity.stub.IssueClientToken(pb.IssueClientTokenRequest(
        client_id=client_id, client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        client_assertion=assertion, audience="dvc-payments"), timeout=10), UNAUTHENTICATED)


def test_a_good_assertion_gets_a_token(identity: Identity, jwt_client: tuple[str, ClientKey]) -> None:
    client_id, key = jwt_client
    response = identity.stub.IssueClientToken(pb.IssueClientTokenRequest(
        client_id=client_id, client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        client_assertion=key.assertion(client_id), audience="dvc-payments"))
    assert response.tokens.scope == "payments.read"


@pytest.mark.parametrize("make, reason", [
    (lambda cid, key: "garbage", "MALFORMED_TOKEN"),
    (lambda cid, key: key.assertion(cid, iat=int(time.time()) - 900, exp=int(time.time()) - 600), "TOKEN_EXPIRED"),
    (lambda cid, key: key.assertion(cid, nbf=int(time.time()) + 600), "TOKEN_NOT_YET_VALID"),
    (lambda cid, key: key.assertion(cid, audience="https://someone-else.example/token"), "WRONG_AUDIENCE"),
    (lambda cid, key: key.assertion(cid, iss="another-client"), "WRONG_ISSUER"),
    (lambda cid, key: ClientKey("client-key-unregistered", key.private_key).assertion(cid), "UNKNOWN_KID"),
    (lambda cid, key: ClientKey(key.kid, ec.generate_private_key(ec.SECP256R1())).assertion(cid), "BAD_SIGNATURE"),
    (lambda cid, key: key.assertion(cid, headers={"crit": ["urn:x:unknown"]}), "UNKNOWN_CRITICAL_HEADER"),
    (lambda cid, key: key.assertion(cid, lifetime=3600), "ASSERTION_LIFETIME_TOO_LONG"),
    (lambda cid, key: unsigned({"alg": "none", "kid": key.kid}, {"iss": cid, "sub": cid}) + ".",
     "ALGORITHM_NOT_ALLOWED"),
    (lambda cid, key: hs256_with_public_key(key.private_key.public_key(), {"kid": key.kid},
                                            {"iss": cid, "sub": cid, "aud": ISSUER, "exp": int(time.time()) + 60,
                                             "iat": int(time.time()), "jti": "x"}), "ALGORITHM_NOT_ALLOWED"),
], ids=["malformed", "expired", "not-yet-valid", "wrong-aud", "wrong-iss", "unknown-kid", "wrongly-signed",
        "unknown-crit", "too-long", "alg-none", "hs256-public-key"])
def test_bad_client_assertions_are_refused(identity: Identity, jwt_client: tuple[str, ClientKey], make: Any,
                                           reason: str) -> None:
    client_id, key = jwt_client
    assert assertion_reason(identity, client_id, make(client_id, key)) == reason


def test_a_replayed_assertion_jti_is_refused(identity: Identity, jwt_client: tuple[str, ClientKey]) -> None:
    client_id, key = jwt_client
    assertion = key.assertion(client_id)
    identity.stub.IssueClientToken(pb.IssueClientTokenRequest(
        client_id=client_id, client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        client_assertion=assertion, audience="dvc-payments"))
    assert assertion_reason(identity, client_id, assertion) == "ASSERTION_REPLAYED"


def test_a_wrong_client_secret_is_refused(identity: Identity) -> None:
    assert refused(lambda: identity.stub.IssueClientToken(pb.IssueClientTokenRequest(
        client_id=PROVINCE_CLIENT[0], client_secret="not-the-secret", audience="dvc-payments")),
        UNAUTHENTICATED) == "INVALID_CLIENT_SECRET"


def test_a_secret_is_refused_for_a_client_registered_with_keys(identity: Identity,
                                                              jwt_client: tuple[str, ClientKey]) -> None:
    assert refused(lambda: identity.stub.IssueClientToken(pb.IssueClientTokenRequest(
        client_id=jwt_client[0], client_secret="anything", audience="dvc-payments")),
        UNAUTHENTICATED) == "AUTH_METHOD_NOT_ALLOWED"


def test_an_unknown_client_is_refused(identity: Identity) -> None:
    assert refused(lambda: identity.stub.IssueClientToken(pb.IssueClientTokenRequest(
        client_id="nobody-here", client_secret="x", audience="dvc-payments")), UNAUTHENTICATED) == "INVALID_CLIENT"
