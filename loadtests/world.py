"""Who takes part in the load and how to reach them: target addresses from the environment, the machine clients
and payment agencies a Locust process registers for itself (so workers never share secrets), and token caches."""

from __future__ import annotations

import os
import random
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from dvc.identity.v1 import identity_pb2 as ipb
from dvc.identity.v1 import identity_pb2_grpc
from dvc.payments.v1 import payments_pb2 as ppb
from dvc.payments.v1 import payments_pb2_grpc

from identity_service.devseed import DEV_CLIENTS
from loadtests.day import PAYER_CHANNELS

ENV_PREFIX = "DVC_LOADTEST_"
AUDIENCE_IDENTITY, AUDIENCE_PAYMENTS, AUDIENCE_WALLET = "dvc-identity", "dvc-payments", "dvc-wallet"
RPC_TIMEOUT_SECONDS = 10.0
TOKEN_MARGIN_SECONDS = 60.0  # renew a token this long before it expires, so no call carries an expired one
PROVINCES = ("HCM", "HN", "DN")  # provincial dossier systems each Locust process plays
# Issuing agencies with the wallet's development keys (wallet_service.bootstrap.DEV_ISSUERS): the civil-status
# registrar issues the birth certificate every citizen starts with; the judicial records centre issues results.
BASE_DOCUMENT_ISSUER = "STP-HCM"
RESULT_ISSUER = "TTLLTP-QG"
_ADMIN = next(client for client in DEV_CLIENTS if "identity.admin" in client.scopes)


def setting(name: str, default: str) -> str:
    return os.environ.get(ENV_PREFIX + name, default)


@dataclass(frozen=True)
class Targets:
    """Where the platform is (env DVC_LOADTEST_*; defaults are `make run`'s / the load test's local ports)."""

    identity: str = field(default_factory=lambda: setting("IDENTITY_ADDR", "127.0.0.1:7051"))
    payment: str = field(default_factory=lambda: setting("PAYMENT_ADDR", "127.0.0.1:7052"))
    wallet: str = field(default_factory=lambda: setting("WALLET_ADDR", "127.0.0.1:7053"))
    identity_url: str = field(default_factory=lambda: setting("IDENTITY_URL", "http://127.0.0.1:8081"))
    payment_url: str = field(default_factory=lambda: setting("PAYMENT_URL", "http://127.0.0.1:8082"))
    wallet_url: str = field(default_factory=lambda: setting("WALLET_URL", "http://127.0.0.1:8083"))
    # The NAPAS 247 sandbox, where payers' banking apps "scan" VietQR codes (other channels redirect the payer).
    vietqr_url: str = field(default_factory=lambda: setting("VIETQR_URL", "http://127.0.0.1:8111"))
    admin_client_id: str = field(default_factory=lambda: setting("ADMIN_CLIENT_ID", _ADMIN.client_id))
    admin_client_secret: str = field(default_factory=lambda: setting("ADMIN_CLIENT_SECRET", _ADMIN.client_secret))


def renewal_delay(expires_in: float, draw: Callable[[float, float], float] = random.uniform) -> float:
    """Seconds until a token that lives ``expires_in`` s is renewed: at a random point between 60 % and 85 % of
    its life (at least TOKEN_MARGIN_SECONDS before it expires), so the tokens a process got together at set-up do
    not all renew in the same second -- a burst of argon2id secret checks at identity."""
    return max(min(expires_in * draw(0.60, 0.85), expires_in - TOKEN_MARGIN_SECONDS), 1.0)


class ClientToken:
    """A machine client's access token for one audience, renewed before it expires."""

    def __init__(self, identity: identity_pb2_grpc.IdentityServiceStub, client_id: str, client_secret: str,
                 audience: str) -> None:
        self._identity = identity
        self._request = ipb.IssueClientTokenRequest(client_id=client_id, client_secret=client_secret,
                                                    audience=audience)
        self._token = ""
        self._renew_at = 0.0
        self._lock = threading.Lock()

    def metadata(self) -> tuple[tuple[str, str], ...]:
        with self._lock:
            if time.monotonic() >= self._renew_at:
                tokens = self._identity.IssueClientToken(self._request, timeout=RPC_TIMEOUT_SECONDS).tokens
                self._token = tokens.access_token
                self._renew_at = time.monotonic() + renewal_delay(tokens.expires_in)
            return (("authorization", f"Bearer {self._token}"),)


@dataclass
class Agency:
    """One provincial system: its payment tenant, its callback secret and its clients' tokens."""

    code: str
    account: ppb.BeneficiaryAccount
    callback_secret: str
    payments: ClientToken
    redeem: ClientToken


@dataclass
class World:
    """Everything one Locust process registered for its users."""

    tag: str
    agencies: list[Agency]
    issuers: dict[str, ClientToken]
    admin_payments: ClientToken
    citizens: list[str]
    # What this process issued to each citizen, as the wallet confirmed it: document id -> SHA-256 of the content
    # sent. The dossier flow shares only these (a wallet also holds e-receipts the load did not write), so every
    # redeemed content can be checked against what was issued.
    documents: dict[str, dict[str, str]] = field(default_factory=dict)
    _citizen_locks: dict[str, threading.Lock] = field(default_factory=dict)

    def citizen_lock(self, citizen: str) -> threading.Lock:
        """Held while a citizen's first document is issued, so a second dossier of the same citizen waits for it
        instead of finding an empty wallet (gevent's lock once Locust has patched threading)."""
        return self._citizen_locks.setdefault(citizen, threading.Lock())


def _register_client(identity: identity_pb2_grpc.IdentityServiceStub, admin: ClientToken, client_id: str,
                     agency: str, scopes: tuple[str, ...]) -> str:
    answer = identity.RegisterClient(ipb.RegisterClientRequest(
        idempotency_key=f"register-{client_id}", client_id=client_id, display_name=f"load test {client_id}",
        agency=agency, scopes=list(scopes), auth_method=ipb.CLIENT_AUTH_METHOD_CLIENT_SECRET),
        metadata=admin.metadata(), timeout=RPC_TIMEOUT_SECONDS)
    return str(answer.client_secret)


def citizen_ids(tag_number: int, count: int) -> list[str]:
    """``count`` distinct 12-digit national IDs (province 079, born 1990s) unique to this process's tag."""
    return [f"0792{90 + index % 10:02d}{(tag_number * 10_007 + index) % 1_000_000:06d}" for index in range(count)]


def build_world(identity: identity_pb2_grpc.IdentityServiceStub, payments: payments_pb2_grpc.PaymentServiceStub,
                targets: Targets, callback_url_of: Callable[[str], str], citizens: int) -> World:
    """Register this process's clients at identity and its agencies at the payment service (admin client),
    each under a random tag so several workers or runs against one deployment never collide."""
    tag_number = secrets.randbelow(1_000_000)
    tag = f"{tag_number:06d}"
    admin = ClientToken(identity, targets.admin_client_id, targets.admin_client_secret, AUDIENCE_IDENTITY)
    admin_payments = ClientToken(identity, targets.admin_client_id, targets.admin_client_secret, AUDIENCE_PAYMENTS)
    agencies = []
    for number, province in enumerate(PROVINCES):
        code = f"LT{tag}-{province}"
        system_id = f"lt{tag}-{province.lower()}-system"
        receiver_id = f"lt{tag}-{province.lower()}-receiver"
        system_secret = _register_client(identity, admin, system_id, code, ("payments.create", "payments.read"))
        receiver_secret = _register_client(identity, admin, receiver_id, code, ("wallet.redeem",))
        account = ppb.BeneficiaryAccount(bank_bin="970405", account=f"71{tag}{number:04d}",
                                         name=f"KBNN {province} (load test)")
        registered = payments.RegisterAgency(ppb.RegisterAgencyRequest(
            code=code, name=f"Load test {province}", callback_url=callback_url_of(code), accounts=[account],
            channels=[ppb.ChannelPriority(connector_code=connector, priority=priority)
                      for priority, connector in enumerate(PAYER_CHANNELS, start=1)],
            idempotency_key=f"register-{code}"), metadata=admin_payments.metadata(), timeout=RPC_TIMEOUT_SECONDS)
        agencies.append(Agency(code, account, registered.callback_secret,
                               ClientToken(identity, system_id, system_secret, AUDIENCE_PAYMENTS),
                               ClientToken(identity, receiver_id, receiver_secret, AUDIENCE_WALLET)))
    issuers = {}
    for issuer in (BASE_DOCUMENT_ISSUER, RESULT_ISSUER):
        client_id = f"lt{tag}-{issuer.lower()}-issuer"
        secret = _register_client(identity, admin, client_id, issuer, ("wallet.issue",))
        issuers[issuer] = ClientToken(identity, client_id, secret, AUDIENCE_WALLET)
    return World(tag, agencies, issuers, admin_payments, citizen_ids(tag_number, citizens))


def vneid_login(identity: identity_pb2_grpc.IdentityServiceStub, http: requests.Session, citizen: str,
                timer: Callable[[Callable[[], dict[str, list[str]]]], dict[str, list[str]]] = lambda step: step(),
                timeout: float = RPC_TIMEOUT_SECONDS) -> str:
    """A citizen's VNeID login without a browser: StartLogin, the sandbox's form POST with ``account`` (its
    documented non-browser path; ``timer`` wraps that HTTP step), then CompleteLogin with the code and state the
    sandbox redirected with. Returns a wallet access token."""
    started = identity.StartLogin(ipb.StartLoginRequest(provider_id="vneid", audience=AUDIENCE_WALLET),
                                  timeout=timeout)
    url = urlsplit(started.authorization_url)
    form: dict[str, Any] = {name: values[0] for name, values in parse_qs(url.query).items()}
    form["account"] = citizen

    def authorize() -> dict[str, list[str]]:
        answer = http.post(f"{url.scheme}://{url.netloc}{url.path}", data=form, allow_redirects=False,
                           timeout=timeout)
        if answer.status_code != 302:
            raise RuntimeError(f"VNeID sandbox answered {answer.status_code}: {answer.text[:200]}")
        # A refusal is a 302 too (back with an error instead of a code): inside the step, so the timer reports
        # the step as failed rather than as a success followed by an error nobody counts.
        back = parse_qs(urlsplit(answer.headers.get("Location", "")).query)
        if "code" not in back:
            raise RuntimeError(f"VNeID sandbox refused the login: {back}")
        return back

    back = timer(authorize)
    done = identity.CompleteLogin(ipb.CompleteLoginRequest(state=back["state"][0], code=back["code"][0]),
                                  timeout=timeout)
    return str(done.tokens.access_token)
