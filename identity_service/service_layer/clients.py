"""Machine clients: the client-credentials grant (private_key_jwt or secret), registration and rotation."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from jwt import PyJWK
from jwt.exceptions import PyJWKError

from identity_service.adapters import jwt_checks
from identity_service.adapters.crypto import hash_secret, verify_secret
from identity_service.domain import clients as client_rules
from identity_service.domain import scopes as scope_rules
from identity_service.domain.clients import Client
from identity_service.service_layer.core import (
    HandlerCore,
    IssuedTokens,
    peek_claims,
)
from identity_service.service_layer.unit_of_work import IdentityUnitOfWork
from servicekit.auth import KIND_CLIENT, Principal
from servicekit.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)


@dataclass(frozen=True)
class ClientTokenRequest:
    """A client-credentials request with one credential (assertion or secret)."""

    client_id: str
    audience: str
    scope: str = ""
    client_assertion_type: str = ""
    client_assertion: str = ""
    client_secret: str = ""


@dataclass(frozen=True)
class ClientCredentials:
    """A client and the secret generated for it (empty when none was generated now)."""

    client: Client
    secret: str


class ClientHandlers(HandlerCore):
    """IssueClientToken, RegisterClient, RotateClientCredentials."""

    # ---- machine clients -----------------------------------------------------------------------------------

    def issue_client_token(self, request: ClientTokenRequest) -> IssuedTokens:
        target = scope_rules.audience(request.audience)
        client_id = request.client_id or self._assertion_subject(request.client_assertion)
        try:
            with self._uow() as uow:
                client = self._authenticate_client(uow, client_id, request)
                granted = scope_rules.grant(request.scope, client.scopes, target)
                tokens = self._mint(subject=client.client_id, kind=KIND_CLIENT, audience=target, scopes=granted,
                                    agency=client.agency, client_id=client.client_id)
                self._audit(uow, "token.issued", actor=client.client_id, subject=client.client_id,
                            audience=target, scope=" ".join(granted), auth_method=client.auth_method,
                            jti=tokens.jti)
                uow.commit()
        except (Unauthenticated, PermissionDenied) as error:
            self._audit_failure("client.authentication_failed" if isinstance(error, Unauthenticated)
                                else "token.refused", error, actor=client_id, subject=client_id, audience=target)
            raise
        return tokens

    @staticmethod
    def _assertion_subject(assertion: str) -> str:
        """RFC 7523 lets a client omit client_id when it sends an assertion; its (verified later) sub names it."""
        if not assertion:
            raise InvalidArgument.single("client_id", "is required", reason="MISSING_CLIENT_ID")
        return str(peek_claims(assertion).get("sub", ""))

    def _authenticate_client(self, uow: IdentityUnitOfWork, client_id: str, request: ClientTokenRequest) -> Client:
        client = uow.clients.get(client_id) if client_id else None
        if client is None or client.disabled:
            raise Unauthenticated("unknown or disabled client", reason="INVALID_CLIENT",
                                  metadata={"client_id": client_id[:64]})
        if request.client_assertion:
            if client.auth_method != client_rules.AUTH_PRIVATE_KEY_JWT:
                raise Unauthenticated("this client is registered to authenticate with a client secret",
                                      reason="AUTH_METHOD_NOT_ALLOWED")
            if request.client_assertion_type != client_rules.ASSERTION_TYPE:
                raise Unauthenticated(f"client_assertion_type must be {client_rules.ASSERTION_TYPE}",
                                      reason="UNSUPPORTED_ASSERTION_TYPE")
            self._verify_assertion(uow, client, request.client_assertion)
            return client
        if request.client_secret:
            if client.auth_method != client_rules.AUTH_CLIENT_SECRET:
                raise Unauthenticated("this client is registered for private_key_jwt; send a client assertion",
                                      reason="AUTH_METHOD_NOT_ALLOWED")
            now = self.now()
            previous_valid = client.previous_secret_valid_until is not None and now < \
                client.previous_secret_valid_until
            if verify_secret(client.secret_hash, request.client_secret) or (
                    previous_valid and verify_secret(client.previous_secret_hash, request.client_secret)):
                return client
            raise Unauthenticated("the client secret is wrong", reason="INVALID_CLIENT_SECRET")
        raise Unauthenticated("send a client_assertion (private_key_jwt) or a client_secret",
                              reason="MISSING_CLIENT_CREDENTIALS")

    def _verify_assertion(self, uow: IdentityUnitOfWork, client: Client, assertion: str) -> None:
        what, where = "client assertion", {"client_id": client.client_id}
        header = jwt_checks.unverified_header(assertion, what, where)
        algorithm, kid = jwt_checks.check_header(header, client_rules.ASSERTION_ALGORITHMS, what, where)
        jwk = next((key for key in (client.public_jwks or {}).get("keys", []) if key.get("kid") == kid), None)
        if jwk is None:
            raise Unauthenticated(f"the {what} names key {kid!r}, which is not registered for this client",
                                  reason="UNKNOWN_KID", metadata={"token": what, **where})
        try:
            key = PyJWK(jwk, algorithm if "alg" not in jwk else None)
        except PyJWKError:
            raise Unauthenticated(f"the registered key {kid!r} cannot verify {algorithm}",
                                  reason="ALGORITHM_MISMATCH", metadata={"token": what, **where}) from None
        claims = jwt_checks.decode(assertion, key, algorithm, issuer=client.client_id,
                                   audience=[self.policy.issuer, self.policy.token_endpoint],
                                   leeway=self.policy.leeway_seconds,
                                   required=("iss", "sub", "aud", "exp", "iat", "jti"), what=what, metadata=where)
        if claims["sub"] != client.client_id:
            raise Unauthenticated(f"the {what} sub must be the client id", reason="WRONG_SUBJECT",
                                  metadata={"token": what, **where})
        expires_at = float(claims["exp"])
        if expires_at - self._clock() > client_rules.MAX_ASSERTION_LIFETIME_SECONDS + self.policy.leeway_seconds:
            raise Unauthenticated(f"the {what} must expire within {client_rules.MAX_ASSERTION_LIFETIME_SECONDS}s",
                                  reason="ASSERTION_LIFETIME_TOO_LONG", metadata={"token": what, **where})
        if not uow.assertions.remember(client.client_id, str(claims["jti"])[:200],
                                       datetime.fromtimestamp(expires_at + self.policy.leeway_seconds, UTC)):
            raise Unauthenticated(f"the {what} jti was already used; sign a new assertion for every request",
                                  reason="ASSERTION_REPLAYED", metadata={"token": what, **where})

    def register_client(self, caller: Principal, registration: client_rules.Registration,
                        idempotency_key: str) -> ClientCredentials:
        caller.require_scope(scope_rules.ADMIN_SCOPE)
        now = self.now()
        with self._uow() as uow:
            existing = uow.clients.get(registration.client_id)
            if existing is not None:
                if idempotency_key and existing.registration_key == idempotency_key:
                    return ClientCredentials(existing, "")
                raise AlreadyExists(f"client {registration.client_id!r} is already registered",
                                    reason="CLIENT_EXISTS")
            secret = secrets.token_urlsafe(32) if registration.auth_method == client_rules.AUTH_CLIENT_SECRET else ""
            client = Client(registration.client_id, registration.display_name, registration.agency,
                            registration.scopes, registration.auth_method, registration.public_jwks,
                            hash_secret(secret) if secret else None, None, None, now, now,
                            registration_key=idempotency_key or None)
            uow.clients.add(client)
            self._audit(uow, "client.registered", actor=caller.subject, subject=client.client_id,
                        agency=client.agency, scopes=list(client.scopes), auth_method=client.auth_method)
            uow.commit()
        return ClientCredentials(client, secret)

    def rotate_client_credentials(self, caller: Principal, client_id: str, public_jwks_json: str,
                                  grace_seconds: int, idempotency_key: str) -> ClientCredentials:
        # Checked before the lookup, so a client cannot even learn whether another client id exists.
        client_rules.check_can_rotate(caller, client_id)
        if not 0 <= grace_seconds <= client_rules.MAX_SECRET_GRACE_SECONDS:
            raise InvalidArgument.single("previous_secret_grace_seconds",
                                         f"must be between 0 and {client_rules.MAX_SECRET_GRACE_SECONDS}")
        now = self.now()
        with self._uow() as uow:
            client = uow.clients.get(client_id, for_update=True)
            if client is None:
                raise NotFound(f"no client {client_id!r}", reason="CLIENT_NOT_FOUND")
            if idempotency_key and client.rotation_key == idempotency_key:
                return ClientCredentials(client, "")
            secret = ""
            if client.auth_method == client_rules.AUTH_PRIVATE_KEY_JWT:
                rotated = replace(client, public_jwks=client_rules.parse_public_jwks(public_jwks_json),
                                  rotated_at=now, rotation_key=idempotency_key or None)
            else:
                if public_jwks_json:
                    raise InvalidArgument.single("public_jwks_json", "this client authenticates with a secret")
                secret = secrets.token_urlsafe(32)
                rotated = replace(client, secret_hash=hash_secret(secret), previous_secret_hash=client.secret_hash,
                                  previous_secret_valid_until=now + timedelta(seconds=grace_seconds),
                                  rotated_at=now, rotation_key=idempotency_key or None)
            uow.clients.update_credentials(rotated)
            self._audit(uow, "client.credentials_rotated", actor=caller.subject, subject=client_id,
                        auth_method=client.auth_method, previous_secret_grace_seconds=grace_seconds)
            uow.commit()
        return ClientCredentials(rotated, secret)
