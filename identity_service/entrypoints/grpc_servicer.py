"""The gRPC face of the identity service: proto in, handler call, proto out; errors are mapped by servicekit."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from dvc.identity.v1 import identity_pb2 as pb
from dvc.identity.v1 import identity_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp

from identity_service.domain import clients as client_rules
from identity_service.domain import consent
from identity_service.domain.consent import Delegation
from identity_service.domain.providers import ClaimMapping, Provider
from identity_service.service_layer.handlers import (
    ClientTokenRequest,
    ExchangeRequest,
    IdentityHandlers,
    IssuedTokens,
    ProviderView,
)
from servicekit.auth import KIND_CITIZEN, KIND_CLIENT, KIND_OFFICIAL, Principal, current_principal, optional_principal
from servicekit.grpc_server import ServiceRegistration

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["IdentityService"].full_name
# Callers of these prove themselves in the request body (a code, a refresh token, a client credential, the
# token itself), so no bearer token is required; the rest need one.
PUBLIC_METHODS = frozenset({"StartLogin", "CompleteLogin", "RefreshToken", "IssueClientToken", "ExchangeToken",
                            "IntrospectToken", "RevokeToken", "Logout", "GetJwks"})

_KINDS = {KIND_CITIZEN: pb.SUBJECT_KIND_CITIZEN, KIND_OFFICIAL: pb.SUBJECT_KIND_OFFICIAL,
          KIND_CLIENT: pb.SUBJECT_KIND_CLIENT}
_AUTH_METHODS = {client_rules.AUTH_PRIVATE_KEY_JWT: pb.CLIENT_AUTH_METHOD_PRIVATE_KEY_JWT,
                 client_rules.AUTH_CLIENT_SECRET: pb.CLIENT_AUTH_METHOD_CLIENT_SECRET}
_PROVIDER_KINDS = {"citizen": pb.PROVIDER_KIND_CITIZEN, "official": pb.PROVIDER_KIND_OFFICIAL}
_RELATIONS = {consent.RELATION_CONSENT: pb.DELEGATION_RELATION_CONSENT,
              consent.RELATION_GUARDIAN: pb.DELEGATION_RELATION_GUARDIAN}
_DELEGATES = {consent.DELEGATE_AGENCY: pb.DELEGATE_KIND_AGENCY, consent.DELEGATE_CITIZEN: pb.DELEGATE_KIND_CITIZEN}


def _reverse(mapping: dict[str, Any]) -> dict[Any, str]:
    return {value: key for key, value in mapping.items()}


def _kind(value: Any) -> pb.SubjectKind.ValueType:
    return _KINDS.get(str(value or ""), pb.SUBJECT_KIND_UNSPECIFIED)


def _ts(moment: datetime | None) -> Timestamp | None:
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


def _ts_from_epoch(seconds: Any) -> Timestamp | None:
    return _ts(datetime.fromtimestamp(int(seconds), UTC)) if seconds is not None else None


def _token_set(tokens: IssuedTokens) -> pb.TokenSet:
    return pb.TokenSet(access_token=tokens.access_token, token_type="Bearer", expires_in=tokens.expires_in,
                       expires_at=_ts(tokens.expires_at), audience=tokens.audience, scope=" ".join(tokens.scopes),
                       refresh_token=tokens.refresh_token, refresh_expires_at=_ts(tokens.refresh_expires_at),
                       issued_token_type="urn:ietf:params:oauth:token-type:access_token")


def _actor(act: Any) -> pb.Actor | None:
    if not isinstance(act, dict) or not act.get("sub"):
        return None
    return pb.Actor(subject=str(act["sub"]), kind=_kind(act.get("dvc_kind")),
                    agency=str(act.get("agency", "")), relation=str(act.get("relation", "")))


def _delegation(delegation: Delegation) -> pb.Delegation:
    return pb.Delegation(
        delegation_id=delegation.delegation_id, principal_subject=delegation.principal_subject,
        delegate_kind=_DELEGATES[delegation.delegate_kind], delegate_id=delegation.delegate_id,
        relation=_RELATIONS[delegation.relation], audiences=list(delegation.audiences), purpose=delegation.purpose,
        created_at=_ts(delegation.created_at), expires_at=_ts(delegation.expires_at),
        revoked_at=_ts(delegation.revoked_at), granted_by=delegation.granted_by)


def _client(client: client_rules.Client) -> pb.Client:
    return pb.Client(client_id=client.client_id, display_name=client.display_name, agency=client.agency,
                     scopes=list(client.scopes), auth_method=_AUTH_METHODS[client.auth_method],
                     key_ids=list(client.key_ids), created_at=_ts(client.created_at),
                     rotated_at=_ts(client.rotated_at))


def _provider(view: ProviderView) -> pb.IdentityProvider:
    provider = view.provider
    mapping = provider.claim_mapping
    return pb.IdentityProvider(
        provider_id=provider.provider_id, display_name=provider.display_name,
        kind=_PROVIDER_KINDS.get(provider.kind, pb.PROVIDER_KIND_UNSPECIFIED), issuer=provider.issuer,
        discovery_url=provider.discovery_url,
        client_id=provider.client_id, audience=provider.audience, allowed_algorithms=list(provider.allowed_algorithms),
        claim_mapping=pb.ClaimMapping(national_id=mapping.national_id, name=mapping.name, agency=mapping.agency,
                                      roles=mapping.roles, level=mapping.level, dependents=mapping.dependents),
        upstream_scopes=list(provider.upstream_scopes), default_level=provider.default_level,
        role_scopes=[f"{role}={' '.join(scopes)}" for role, scopes in sorted(provider.role_scopes.items())],
        source=provider.source, has_client_secret=view.has_client_secret,
        allowed_agencies=list(provider.allowed_agencies))


def _provider_from_proto(message: pb.IdentityProvider) -> Provider:
    mapping = message.claim_mapping
    role_scopes: dict[str, tuple[str, ...]] = {}
    for entry in message.role_scopes:
        role, _, scopes = entry.partition("=")
        role_scopes[role.strip()] = tuple(scopes.split())
    return Provider(
        provider_id=message.provider_id, kind=_reverse(_PROVIDER_KINDS).get(message.kind, ""), issuer=message.issuer,
        discovery_url=message.discovery_url, client_id=message.client_id,
        claim_mapping=ClaimMapping(mapping.national_id, mapping.name, mapping.agency, mapping.roles, mapping.level,
                                   mapping.dependents),
        display_name=message.display_name, audience=message.audience,
        allowed_algorithms=tuple(message.allowed_algorithms) or ("ES256",),
        upstream_scopes=tuple(message.upstream_scopes) or ("openid", "profile"), default_level=message.default_level,
        role_scopes=role_scopes, allowed_agencies=tuple(message.allowed_agencies))


class IdentityServicer(identity_pb2_grpc.IdentityServiceServicer):
    """Translates between protobuf messages and IdentityHandlers."""

    def __init__(self, handlers: IdentityHandlers) -> None:
        self.handlers = handlers

    def StartLogin(self, request: pb.StartLoginRequest, context: grpc.ServicerContext) -> pb.StartLoginResponse:
        started = self.handlers.start_login(request.provider_id, request.redirect_uri, request.audience)
        return pb.StartLoginResponse(authorization_url=started.authorization_url, state=started.state,
                                     expires_at=_ts(started.expires_at))

    def CompleteLogin(self, request: pb.CompleteLoginRequest,
                      context: grpc.ServicerContext) -> pb.CompleteLoginResponse:
        done = self.handlers.complete_login(request.state, request.code)
        identity = done.identity
        return pb.CompleteLoginResponse(tokens=_token_set(done.tokens), subject=done.subject,
                                        kind=_KINDS[identity.kind], level_of_assurance=identity.level,
                                        name=identity.name, agency=identity.agency, roles=list(identity.roles),
                                        returning=done.returning)

    def RefreshToken(self, request: pb.RefreshTokenRequest, context: grpc.ServicerContext) -> pb.RefreshTokenResponse:
        return pb.RefreshTokenResponse(tokens=_token_set(self.handlers.refresh(request.refresh_token,
                                                                               request.audience)))

    def IssueClientToken(self, request: pb.IssueClientTokenRequest,
                         context: grpc.ServicerContext) -> pb.IssueClientTokenResponse:
        tokens = self.handlers.issue_client_token(ClientTokenRequest(
            client_id=request.client_id, audience=request.audience, scope=request.scope,
            client_assertion_type=request.client_assertion_type, client_assertion=request.client_assertion,
            client_secret=request.client_secret))
        return pb.IssueClientTokenResponse(tokens=_token_set(tokens))

    def ExchangeToken(self, request: pb.ExchangeTokenRequest,
                      context: grpc.ServicerContext) -> pb.ExchangeTokenResponse:
        tokens, delegation = self.handlers.exchange(ExchangeRequest(
            subject_token=request.subject_token, subject_token_type=request.subject_token_type,
            audience=request.audience, actor_token=request.actor_token, actor_token_type=request.actor_token_type,
            scope=request.scope, requested_token_type=request.requested_token_type), optional_principal())
        return pb.ExchangeTokenResponse(tokens=_token_set(tokens), delegation_id=delegation.delegation_id)

    def IntrospectToken(self, request: pb.IntrospectTokenRequest,
                        context: grpc.ServicerContext) -> pb.IntrospectTokenResponse:
        result = self.handlers.introspect(request.token)
        claims = result.claims
        roles = claims.get("roles", [])
        return pb.IntrospectTokenResponse(
            active=True, subject=str(claims["sub"]), kind=_kind(claims.get("dvc_kind")),
            audience=str(claims["aud"]), scope=str(claims.get("scope", "")),
            client_id=str(claims.get("client_id", "")), level_of_assurance=int(claims.get("loa", 0) or 0),
            agency=str(claims.get("agency", "")), roles=[str(role) for role in roles] if isinstance(roles, list)
            else [], jti=str(claims["jti"]), kid=result.kid, issued_at=_ts_from_epoch(claims.get("iat")),
            expires_at=_ts_from_epoch(claims.get("exp")), actor=_actor(claims.get("act")),
            issuer=str(claims["iss"]))

    def RevokeToken(self, request: pb.RevokeTokenRequest, context: grpc.ServicerContext) -> pb.RevokeTokenResponse:
        expires = request.jti_expires_at.ToDatetime(tzinfo=UTC) if request.HasField("jti_expires_at") else None
        result = self.handlers.revoke(token=request.token, jti=request.jti, jti_expires_at=expires,
                                      reason=request.reason, caller=optional_principal())
        return pb.RevokeTokenResponse(revoked_jtis=list(result.revoked_jtis),
                                      refresh_family_revoked=result.family_revoked)

    def Logout(self, request: pb.LogoutRequest, context: grpc.ServicerContext) -> pb.LogoutResponse:
        return pb.LogoutResponse(revoked_access_tokens=self.handlers.logout(request.refresh_token))

    def GetJwks(self, request: pb.GetJwksRequest, context: grpc.ServicerContext) -> pb.GetJwksResponse:
        jwks, kid = self.handlers.jwks()
        return pb.GetJwksResponse(jwks_json=json.dumps(jwks, separators=(",", ":")), active_kid=kid,
                                  max_age_seconds=self.handlers.policy.jwks_max_age_seconds)

    def GetUserInfo(self, request: pb.GetUserInfoRequest, context: grpc.ServicerContext) -> pb.GetUserInfoResponse:
        info = self.handlers.user_info(current_principal())
        principal: Principal = info.principal
        account = info.account
        return pb.GetUserInfoResponse(
            subject=principal.subject, kind=_kind(principal.kind), name=account.name if account else "",
            level_of_assurance=principal.level_of_assurance, agency=principal.agency, roles=sorted(principal.roles),
            scope=" ".join(sorted(principal.scopes)), first_login_at=_ts(account.first_login_at) if account else None,
            last_login_at=_ts(account.last_login_at) if account else None, actor=_actor(principal.claims.get("act")))

    def GrantDelegation(self, request: pb.GrantDelegationRequest,
                        context: grpc.ServicerContext) -> pb.GrantDelegationResponse:
        grant = consent.GrantRequest(
            principal_subject=request.principal_subject,
            delegate_kind=_reverse(_DELEGATES).get(request.delegate_kind, ""), delegate_id=request.delegate_id,
            relation=_reverse(_RELATIONS).get(request.relation, ""), audiences=tuple(request.audiences),
            purpose=request.purpose, ttl=timedelta(seconds=request.ttl_seconds) if request.ttl_seconds else None)
        delegation = self.handlers.grant_delegation(current_principal(), grant, request.idempotency_key)
        return pb.GrantDelegationResponse(delegation=_delegation(delegation))

    def RevokeDelegation(self, request: pb.RevokeDelegationRequest,
                         context: grpc.ServicerContext) -> pb.RevokeDelegationResponse:
        delegation = self.handlers.revoke_delegation(current_principal(), request.delegation_id)
        return pb.RevokeDelegationResponse(delegation=_delegation(delegation))

    def ListDelegations(self, request: pb.ListDelegationsRequest,
                        context: grpc.ServicerContext) -> pb.ListDelegationsResponse:
        rows, token = self.handlers.list_delegations(current_principal(), request.subject, request.include_inactive,
                                                     request.page_size, request.page_token)
        return pb.ListDelegationsResponse(delegations=[_delegation(row) for row in rows], next_page_token=token)

    def RegisterClient(self, request: pb.RegisterClientRequest,
                       context: grpc.ServicerContext) -> pb.RegisterClientResponse:
        caller = current_principal()
        caller.require_scope("identity.admin")
        registration = client_rules.validate_registration(
            request.client_id, request.display_name, request.agency, list(request.scopes),
            _reverse(_AUTH_METHODS).get(request.auth_method, ""), request.public_jwks_json)
        result = self.handlers.register_client(caller, registration, request.idempotency_key)
        return pb.RegisterClientResponse(client=_client(result.client), client_secret=result.secret)

    def RotateClientCredentials(self, request: pb.RotateClientCredentialsRequest,
                                context: grpc.ServicerContext) -> pb.RotateClientCredentialsResponse:
        result = self.handlers.rotate_client_credentials(current_principal(), request.client_id,
                                                         request.public_jwks_json,
                                                         request.previous_secret_grace_seconds,
                                                         request.idempotency_key)
        return pb.RotateClientCredentialsResponse(client=_client(result.client), client_secret=result.secret)

    def RegisterIdentityProvider(self, request: pb.RegisterIdentityProviderRequest,
                                 context: grpc.ServicerContext) -> pb.RegisterIdentityProviderResponse:
        stored = self.handlers.register_provider(current_principal(), _provider_from_proto(request.provider),
                                                 request.client_secret)
        return pb.RegisterIdentityProviderResponse(provider=_provider(ProviderView(stored,
                                                                                   bool(request.client_secret))))

    def ListIdentityProviders(self, request: pb.ListIdentityProvidersRequest,
                              context: grpc.ServicerContext) -> pb.ListIdentityProvidersResponse:
        views, token = self.handlers.list_providers(current_principal(), request.page_size, request.page_token)
        return pb.ListIdentityProvidersResponse(providers=[_provider(view) for view in views], next_page_token=token)

    def RotateSigningKey(self, request: pb.RotateSigningKeyRequest,
                         context: grpc.ServicerContext) -> pb.RotateSigningKeyResponse:
        rotation = self.handlers.rotate_signing_key(current_principal(), request.activate_after_seconds,
                                                    request.idempotency_key)
        return pb.RotateSigningKeyResponse(kid=rotation.key.kid, algorithm=rotation.key.algorithm,
                                           active_from=_ts(rotation.key.active_from),
                                           published_kids=list(rotation.published_kids))

    def ListAuditEvents(self, request: pb.ListAuditEventsRequest,
                        context: grpc.ServicerContext) -> pb.ListAuditEventsResponse:
        events, token = self.handlers.list_audit_events(current_principal(), request.event_type, request.subject,
                                                        request.page_size, request.page_token)
        return pb.ListAuditEventsResponse(events=[pb.AuditEvent(
            event_id=event.event_id, occurred_at=_ts(event.occurred_at), event_type=event.event_type,
            actor=event.actor, subject=event.subject, outcome=event.outcome,
            detail_json=json.dumps(event.detail, ensure_ascii=False, sort_keys=True), request_id=event.request_id)
            for event in events], next_page_token=token)


def registration(handlers: IdentityHandlers) -> ServiceRegistration:
    return ServiceRegistration(identity_pb2_grpc.add_IdentityServiceServicer_to_server, IdentityServicer(handlers),
                               SERVICE_NAME)
