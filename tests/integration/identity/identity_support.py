"""Identity integration helpers: the real service on fresh PostgreSQL beside sandbox providers on port 0, and
logging people in through the sandbox the way a browser would (without HTML)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import grpc
import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from dvc.identity.v1 import identity_pb2 as pb
from dvc.identity.v1 import identity_pb2_grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from jwt.algorithms import ECAlgorithm

from identity_service.bootstrap import handlers_of, start_identity
from identity_service.config import IdentitySettings
from identity_service.sandbox.app import create_app as create_sandbox
from identity_service.service_layer.handlers import IdentityHandlers
from servicekit import auth
from servicekit.config import PlatformSettings
from servicekit.http_edge import RunningHttp, start_http
from servicekit.process import RunningService
from servicekit.testing import bearer, fresh_postgres_url

ISSUER = "https://identity.test.dvc.local"
CALLBACK = "http://127.0.0.1:9/login/callback"  # never followed: tests read the code from the redirect
ADMIN_CLIENT = ("dvc-dev-admin", "dev-secret-dvc-dev-admin-0005")
PROVINCE_CLIENT = ("hcm-dossier-system", "dev-secret-hcm-dossier-system-0001")
RECEIVER_CLIENT = ("hn-dossier-receiver", "dev-secret-hn-dossier-receiver-0003")

CITIZEN_L2 = "001085000101"
CITIZEN_L1 = "001190000202"
GUARDIAN = "079080000303"
MINOR = "079215000404"
OTHER_CITIZEN = "048195000505"


@dataclass
class Sandboxes:
    vneid: RunningHttp
    agency: RunningHttp


@dataclass
class Identity:
    """The running service and handy clients."""

    running: RunningService
    stub: identity_pb2_grpc.IdentityServiceStub
    channel: grpc.Channel
    sandboxes: Sandboxes
    settings: IdentitySettings

    @property
    def http_url(self) -> str:
        assert self.running.http is not None
        return self.running.http.url

    @property
    def handlers(self) -> IdentityHandlers:
        return handlers_of(self.running)


def provider_yaml(vneid_url: str, agency_url: str) -> str:
    return f"""
providers:
  - id: vneid
    display_name: VNeID (test sandbox)
    kind: citizen
    issuer: {vneid_url}
    discovery_url: {vneid_url}/.well-known/openid-configuration
    client_id: dvc-portal
    client_secret: dev-sandbox-vneid-secret
    allowed_algorithms: [ES256]
    claims: {{national_id: so_dinh_danh, name: ho_va_ten, level: muc_do_dinh_danh, dependents: giam_ho_cho}}
  - id: agency-sandbox
    kind: official
    issuer: {agency_url}
    discovery_url: {agency_url}/.well-known/openid-configuration
    client_id: dvc-portal
    client_secret: dev-sandbox-agency-secret
    allowed_algorithms: [ES256]
    default_level: 2
    allowed_agencies: [HCM, HN, DVC]  # not BTP: logins of canbo.btp show an agency the provider may not name
    claims: {{national_id: so_cccd, name: ho_va_ten, agency: ma_co_quan, roles: vai_tro}}
    role_scopes:
      identity-admin: [identity.admin]
      payments-officer: [payments.read]
"""


def start_sandboxes() -> Sandboxes:
    return Sandboxes(start_http(create_sandbox("vneid"), name="test-vneid"),
                     start_http(create_sandbox("agency"), name="test-agency-idp"))


def start_service(tmp_path: Path, sandboxes: Sandboxes, **overrides: Any) -> Identity:
    providers = tmp_path / f"providers-{uuid.uuid4().hex[:6]}.yaml"
    providers.write_text(provider_yaml(sandboxes.vneid.url, sandboxes.agency.url), encoding="utf-8")
    settings = IdentitySettings(database_url=overrides.pop("database_url", None) or fresh_postgres_url("identity"),
                                metrics_port=-1, providers_file=str(providers), **overrides)
    running = start_identity(settings, PlatformSettings(jwt_issuer=ISSUER))
    assert running.grpc is not None
    channel = grpc.insecure_channel(f"127.0.0.1:{running.grpc.port}")
    return Identity(running, identity_pb2_grpc.IdentityServiceStub(channel), channel, sandboxes, settings)


def stop_service(service: Identity) -> None:
    service.channel.close()
    service.running.stop(0.2)


# ---- helpers ---------------------------------------------------------------------------------------------------

def sandbox_authorize(authorization_url: str, account: str, **extra: str) -> dict[str, str]:
    """What a person clicking an account on the sandbox page does: POST /authorize; returns the callback query."""
    parsed = urlparse(authorization_url)
    params = {key: values[0] for key, values in parse_qs(parsed.query).items()}
    response = requests.post(f"{parsed.scheme}://{parsed.netloc}{parsed.path}",
                             data={**params, "account": account, **extra}, allow_redirects=False, timeout=5)
    assert response.status_code == 302, response.text
    location = urlparse(response.headers["Location"])
    return {key: values[0] for key, values in parse_qs(location.query).items()}


def login(identity: Identity, account: str, *, provider: str = "vneid", audience: str = "dvc-identity",
          **extra: str) -> pb.CompleteLoginResponse:
    started = identity.stub.StartLogin(pb.StartLoginRequest(provider_id=provider, redirect_uri=CALLBACK,
                                                            audience=audience), timeout=10)
    answer = sandbox_authorize(started.authorization_url, account, **extra)
    assert answer["state"] == started.state
    return identity.stub.CompleteLogin(pb.CompleteLoginRequest(state=answer["state"], code=answer["code"]),
                                       timeout=10)


def client_token(identity: Identity, client: tuple[str, str], audience: str, scope: str = "") -> str:
    response = identity.stub.IssueClientToken(pb.IssueClientTokenRequest(
        client_id=client[0], client_secret=client[1], audience=audience, scope=scope), timeout=10)
    return response.tokens.access_token


def http_verifier(identity: Identity, audience: str) -> auth.TokenVerifier:
    """Exactly what payment and wallet services build: JWKS and deny-list fetched from identity over HTTP."""
    keys = auth.JwksCache(lambda: auth.http_json(f"{identity.http_url}/jwks.json"), min_refetch_seconds=0.0)
    revocations = auth.RevocationList(lambda: auth.http_json(f"{identity.http_url}/revocations.json"),
                                      refresh_seconds=0.0)
    return auth.TokenVerifier(keys, issuer=ISSUER, audience=audience, revocations=revocations)


def admin_metadata(identity: Identity) -> tuple[tuple[str, str], ...]:
    return bearer(client_token(identity, ADMIN_CLIENT, "dvc-identity"))


def error_reason(error: grpc.RpcError) -> str:
    """The ErrorInfo reason of a failed call."""
    status = rpc_status.from_call(error)
    assert status is not None, f"no rich status on {error}"
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info.reason
    raise AssertionError("no ErrorInfo detail")


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(error)
    assert status is not None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info
    raise AssertionError("no ErrorInfo detail")


def refused(call: Any, code: grpc.StatusCode) -> str:
    """Run ``call``; assert it fails with ``code`` and return the reason code."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    assert caught.value.code() == code, caught.value.details()
    return error_reason(caught.value)


@dataclass
class ClientKey:
    """A machine client's own ES256 key pair, and assertions signed with it."""

    kid: str
    private_key: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls) -> ClientKey:
        return cls(f"client-key-{uuid.uuid4().hex[:6]}", ec.generate_private_key(ec.SECP256R1()))

    def public_jwks_json(self) -> str:
        import json

        public = ECAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        public.update({"kid": self.kid, "alg": "ES256", "use": "sig"})
        return json.dumps({"keys": [public]})

    def assertion(self, client_id: str, audience: str = f"{ISSUER}/token", *, lifetime: int = 120,
                  jti: str | None = None, headers: dict[str, Any] | None = None, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": client_id, "sub": client_id, "aud": audience, "iat": now, "exp": now + lifetime,
                "jti": jti or uuid.uuid4().hex, **claims}
        return jwt.encode(body, self.private_key, algorithm="ES256", headers={"kid": self.kid, **(headers or {})})
