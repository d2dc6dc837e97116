"""Scopes per audience, and access tokens built to the claims contract that servicekit's verifier enforces."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from identity_service.domain import scopes
from identity_service.domain.claims import access_token_claims
from servicekit import auth
from servicekit.errors import InvalidArgument, PermissionDenied

CLIENT_SCOPES = ("payments.create", "payments.read", "wallet.issue")


def test_without_a_request_the_token_gets_every_allowed_scope_of_its_audience_only() -> None:
    assert scopes.grant("", CLIENT_SCOPES, "dvc-payments") == ("payments.create", "payments.read")
    assert scopes.grant("", CLIENT_SCOPES, "dvc-wallet") == ("wallet.issue",)
    assert scopes.grant("", CLIENT_SCOPES, "dvc-identity") == ()


def test_a_requested_subset_is_granted_exactly() -> None:
    assert scopes.grant("payments.read", CLIENT_SCOPES, "dvc-payments") == ("payments.read",)


def test_a_scope_of_another_audience_is_refused() -> None:
    with pytest.raises(InvalidArgument) as caught:
        scopes.grant("wallet.issue", CLIENT_SCOPES, "dvc-payments")
    assert caught.value.reason == "SCOPE_AUDIENCE_MISMATCH"


def test_a_scope_not_registered_for_the_caller_is_refused() -> None:
    with pytest.raises(PermissionDenied) as caught:
        scopes.grant("payments.admin", CLIENT_SCOPES, "dvc-payments")
    assert caught.value.reason == "SCOPE_NOT_ALLOWED"


def test_an_unknown_scope_is_refused() -> None:
    with pytest.raises(InvalidArgument) as caught:
        scopes.grant("payments.everything", CLIENT_SCOPES, "dvc-payments")
    assert caught.value.reason == "UNKNOWN_SCOPE"


def test_only_platform_audiences_exist() -> None:
    with pytest.raises(InvalidArgument):
        scopes.audience("dvc-everything")
    assert scopes.audience("", default="dvc-identity") == "dvc-identity"


def test_access_tokens_are_at_most_fifteen_minutes() -> None:
    with pytest.raises(ValueError):
        access_token_claims(issuer="i", subject="s", audience="dvc-wallet", kind="citizen", jti="j", issued_at=0,
                            lifetime=901)


def test_a_token_built_from_these_claims_passes_servicekits_verifier() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update(kid="k1", alg="ES256", use="sig")
    act = {"sub": "hn-dossier-receiver", "dvc_kind": "client", "agency": "HN", "relation": "consent"}
    claims = access_token_claims(issuer="https://id.test", subject="001085000101", audience="dvc-wallet",
                                 kind="citizen", jti=uuid.uuid4().hex, issued_at=int(time.time()), lifetime=600,
                                 scopes=("wallet.redeem",), level=2, act=act)
    token = jwt.encode(claims, key, algorithm="ES256", headers={"kid": "k1", "typ": "at+jwt"})
    verifier = auth.TokenVerifier(auth.JwksCache(lambda: {"keys": [jwk]}), issuer="https://id.test",
                                  audience="dvc-wallet")
    principal = verifier.verify(token)
    assert principal.subject == "001085000101"
    assert principal.level_of_assurance == 2
    assert principal.actor == auth.Actor("hn-dossier-receiver", "client", "HN", "consent")
    assert claims["nbf"] == claims["iat"] and claims["exp"] - claims["iat"] == 600
