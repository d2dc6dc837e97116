"""The token verifier every service uses refuses each kind of bad token with UNAUTHENTICATED and a reason."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from servicekit import auth
from servicekit.errors import PermissionDenied, Unauthenticated
from servicekit.testing import LocalTokenIssuer

AUDIENCE = "dvc-payments"


@pytest.fixture
def issuer() -> LocalTokenIssuer:
    return LocalTokenIssuer()


@pytest.fixture
def verifier(issuer: LocalTokenIssuer) -> auth.TokenVerifier:
    return issuer.verifier(AUDIENCE)


def claims(issuer: LocalTokenIssuer, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": issuer.issuer, "sub": "001099012345", "aud": AUDIENCE, "iat": now, "nbf": now, "exp": now + 300,
            "jti": uuid.uuid4().hex, "dvc_kind": "citizen", "scope": "wallet.read", "loa": 2}
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


def sign(issuer: LocalTokenIssuer, payload: dict[str, Any], **header: Any) -> str:
    headers = {"kid": issuer.kid, "typ": "at+jwt", **header}
    return jwt.encode(payload, issuer.private_key, algorithm="ES256", headers=headers)


def reason_of(verifier: auth.TokenVerifier, token: str) -> str:
    with pytest.raises(Unauthenticated) as refused:
        verifier.verify(token)
    return refused.value.reason


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_valid_token_becomes_the_principal_it_describes(issuer, verifier):
    token = issuer.mint("001099012345", audience=AUDIENCE, scopes=("payments.read", "payments.create"), loa=1,
                        agency="HCM", act={"sub": "079088001122", "dvc_kind": "citizen", "relation": "guardian"})
    principal = verifier.verify(token)
    assert principal.subject == "001099012345"
    assert principal.scopes == {"payments.read", "payments.create"}
    assert principal.level_of_assurance == 1
    assert principal.agency == "HCM"
    assert principal.actor is not None and principal.actor.subject == "079088001122"
    assert principal.acting_for_display() == "079088001122 on behalf of 001099012345"


def test_malformed_token_is_refused(verifier):
    assert reason_of(verifier, "not-a-jwt") == "MALFORMED_TOKEN"


def test_expired_token_is_refused(issuer, verifier):
    past = int(time.time()) - 3600
    token = sign(issuer, claims(issuer, iat=past - 600, nbf=past - 600, exp=past))
    assert reason_of(verifier, token) == "TOKEN_EXPIRED"


def test_expiry_within_the_leeway_is_tolerated(issuer, verifier):
    now = int(time.time())
    token = sign(issuer, claims(issuer, iat=now - 600, nbf=now - 600, exp=now - 10))
    assert verifier.verify(token).subject == "001099012345"


def test_not_yet_valid_token_is_refused(issuer, verifier):
    future = int(time.time()) + 3600
    token = sign(issuer, claims(issuer, nbf=future, exp=future + 300))
    assert reason_of(verifier, token) == "TOKEN_NOT_YET_VALID"


def test_token_signed_by_another_key_with_our_kid_is_refused(issuer, verifier):
    impostor = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(claims(issuer), impostor, algorithm="ES256", headers={"kid": issuer.kid, "typ": "at+jwt"})
    assert reason_of(verifier, token) == "BAD_SIGNATURE"


def test_alg_none_is_refused(issuer, verifier):
    header = b64(json.dumps({"alg": "none", "typ": "at+jwt", "kid": issuer.kid}).encode())
    body = b64(json.dumps(claims(issuer)).encode())
    assert reason_of(verifier, f"{header}.{body}.") == "ALGORITHM_NOT_ALLOWED"


def test_hs256_signed_with_the_public_key_is_refused(issuer, verifier):
    public_pem = issuer.private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    import hashlib
    import hmac

    header = b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": issuer.kid}).encode())
    body = b64(json.dumps(claims(issuer)).encode())
    signature = b64(hmac.new(public_pem, f"{header}.{body}".encode(), hashlib.sha256).digest())
    assert reason_of(verifier, f"{header}.{body}.{signature}") == "ALGORITHM_NOT_ALLOWED"


def test_wrong_audience_is_refused(issuer, verifier):
    assert reason_of(verifier, sign(issuer, claims(issuer, aud="dvc-wallet"))) == "WRONG_AUDIENCE"


def test_wrong_issuer_is_refused(issuer, verifier):
    assert reason_of(verifier, sign(issuer, claims(issuer, iss="https://evil.example"))) == "WRONG_ISSUER"


def test_unknown_kid_is_refused(issuer, verifier):
    assert reason_of(verifier, sign(issuer, claims(issuer), kid="someone-else")) == "UNKNOWN_KID"


def test_revoked_token_is_refused(issuer, verifier):
    payload = claims(issuer)
    token = sign(issuer, payload)
    assert verifier.verify(token).token_id == payload["jti"]
    issuer.revoked.add(payload["jti"])
    assert reason_of(verifier, token) == "TOKEN_REVOKED"


def test_unknown_critical_header_is_refused(issuer, verifier):
    token = sign(issuer, claims(issuer), crit=["urn:example:must-understand"], **{"urn:example:must-understand": 1})
    assert reason_of(verifier, token) == "UNKNOWN_CRITICAL_HEADER"


def test_token_without_jti_is_refused(issuer, verifier):
    assert reason_of(verifier, sign(issuer, claims(issuer, jti=None))) == "MISSING_CLAIM"


def test_an_id_token_is_not_an_access_token(issuer, verifier):
    assert reason_of(verifier, sign(issuer, claims(issuer), typ="JWT")) == "WRONG_TOKEN_TYPE"


def test_leeway_beyond_sixty_seconds_is_not_allowed(issuer):
    with pytest.raises(ValueError, match="leeway"):
        auth.TokenVerifier(auth.JwksCache(issuer.jwks), issuer=issuer.issuer, audience=AUDIENCE, leeway_seconds=61)


def test_step_up_error_names_the_level_needed(issuer, verifier):
    principal = verifier.verify(issuer.mint("001099012345", audience=AUDIENCE, loa=1))
    with pytest.raises(PermissionDenied) as refused:
        principal.require_level(2)
    assert refused.value.reason == "STEP_UP_REQUIRED"
    assert refused.value.metadata == {"required_level": "2"}


def test_missing_scope_names_the_scope(issuer, verifier):
    principal = verifier.verify(issuer.mint("c1", audience=AUDIENCE, kind="client", scopes=("payments.read",)))
    principal.require_scope("payments.read")
    with pytest.raises(PermissionDenied) as refused:
        principal.require_scope("payments.create")
    assert refused.value.metadata == {"required_scope": "payments.create"}


def test_a_repeated_token_is_checked_in_full_once(issuer, verifier, monkeypatch):
    token = issuer.mint("001099012345", audience=AUDIENCE)
    decodes = []
    real_decode = verifier._decode
    monkeypatch.setattr(verifier, "_decode", lambda *args: decodes.append(1) or real_decode(*args))
    for _ in range(3):
        assert verifier.verify(token).subject == "001099012345"
    assert len(decodes) == 1


def test_a_remembered_token_dies_with_its_withdrawn_signing_key(issuer):
    keys = auth.JwksCache(lambda: published, refresh_seconds=0.0, min_refetch_seconds=0.0)
    published = issuer.jwks()
    verifier = auth.TokenVerifier(keys, issuer=issuer.issuer, audience=AUDIENCE)
    token = issuer.mint("001099012345", audience=AUDIENCE)
    assert verifier.verify(token).subject == "001099012345"
    published = LocalTokenIssuer().jwks()  # the platform rotated away from the key that signed the token
    assert reason_of(verifier, token) == "UNKNOWN_KID"



def test_a_token_remembered_for_one_audience_is_still_refused_for_another(issuer):
    keys = auth.JwksCache(issuer.jwks)
    ours = auth.TokenVerifier(keys, issuer=issuer.issuer, audience=AUDIENCE)
    theirs = auth.TokenVerifier(keys, issuer=issuer.issuer, audience="dvc-identity")
    token = issuer.mint("001099012345", audience=AUDIENCE)
    assert ours.verify(token).subject == "001099012345"  # now in ours' memo
    assert reason_of(theirs, token) == "WRONG_AUDIENCE"
