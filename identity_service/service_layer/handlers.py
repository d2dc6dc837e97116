"""Identity use cases: login, refresh, client credentials, exchange, introspection, revocation and admin; each
one command in, ports injected, ``with uow: ...; uow.commit()``. The areas live in their own modules over a
shared core; IdentityHandlers is the one object the gRPC servicer and the HTTP edge call."""

from __future__ import annotations

from identity_service.service_layer.clients import ClientCredentials, ClientHandlers, ClientTokenRequest
from identity_service.service_layer.core import (
    ACCESS_TOKEN_TYPE_URN,
    NATIONAL_ID_TOKEN_TYPE_URN,
    IssuedTokens,
    TokenPolicy,
)
from identity_service.service_layer.exchange import DelegationHandlers, ExchangeRequest
from identity_service.service_layer.login import LoginCompleted, LoginHandlers, LoginStarted
from identity_service.service_layer.providers import ProviderHandlers, ProviderView
from identity_service.service_layer.tokens import Introspection, KeyRotation, Revocation, TokenHandlers, UserInfo

__all__ = ["ACCESS_TOKEN_TYPE_URN", "NATIONAL_ID_TOKEN_TYPE_URN", "ClientCredentials", "ClientTokenRequest",
           "ExchangeRequest", "IdentityHandlers", "Introspection", "IssuedTokens", "KeyRotation", "LoginCompleted",
           "LoginStarted", "ProviderView", "Revocation", "TokenPolicy", "UserInfo"]


class IdentityHandlers(LoginHandlers, ClientHandlers, DelegationHandlers, TokenHandlers, ProviderHandlers):
    """The identity service's use cases; the gRPC servicer and the HTTP edge both call these."""
