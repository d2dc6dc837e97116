"""Fakes for the page tests: an identity that logs in whoever the test names, and an in-memory wallet that,
like the real one, answers NOT_FOUND for anything that is not the caller's."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlparse

import grpc
from flask import Flask

from servicekit.web.grpc_calls import CallFailed
from servicekit.web.login import CompletedLogin, Tokens
from servicekit.web.sessions import MemorySessionStore
from wallet_service.entrypoints.pages import install
from wallet_service.entrypoints.pages.client import (
    AccessEntryView,
    DocumentTypeView,
    DocumentView,
    Download,
    ShareRequest,
    ShareView,
    VerificationView,
)

CITIZEN_A = "001085000101"
CITIZEN_B = "048195000505"
NAMES = {CITIZEN_A: "Nguyễn Văn An", CITIZEN_B: "Phạm Thu Dung"}


def not_found(what: str) -> CallFailed:
    return CallFailed(grpc.StatusCode.NOT_FOUND, "NOT_FOUND", f"no {what}")


@dataclass
class FakeIdentity:
    """Logs in the citizen whose national ID the test passed as the code; counts refreshes and logouts."""

    access_seconds: float = 600.0
    started: list[tuple[str, str, str]] = field(default_factory=list)
    refreshed: list[str] = field(default_factory=list)
    logged_out: list[str] = field(default_factory=list)
    refuse_refresh: bool = False
    serial: itertools.count = field(default_factory=lambda: itertools.count(1))  # type: ignore[type-arg]

    def start_login(self, provider: str, redirect_uri: str, audience: str) -> tuple[str, str]:
        state = f"state-{next(self.serial)}"
        self.started.append((provider, redirect_uri, audience))
        return f"https://vneid.test/authorize?state={state}&redirect_uri={redirect_uri}", state

    def _tokens(self, subject: str) -> Tokens:
        serial = next(self.serial)
        return Tokens(f"access-{subject}-{serial}", time.time() + self.access_seconds, f"refresh-{subject}-{serial}")

    def complete_login(self, state: str, code: str) -> CompletedLogin:
        if code not in NAMES:
            raise CallFailed(grpc.StatusCode.UNAUTHENTICATED, "INVALID_CODE", "unknown code")
        return CompletedLogin(subject=code, kind="citizen", level=2, name=NAMES[code], tokens=self._tokens(code))

    def refresh(self, refresh_token: str, audience: str) -> Tokens:
        self.refreshed.append(refresh_token)
        if self.refuse_refresh:
            raise CallFailed(grpc.StatusCode.UNAUTHENTICATED, "REFRESH_TOKEN_REUSED", "reused")
        return self._tokens(refresh_token.split("-")[1])

    def logout(self, refresh_token: str) -> None:
        self.logged_out.append(refresh_token)


def owner(token: str) -> str:
    """The fake tokens name their subject: access-<national id>-<n>."""
    if not token.startswith("access-"):
        raise CallFailed(grpc.StatusCode.UNAUTHENTICATED, "INVALID_TOKEN", "bad token")
    return token.split("-")[1]


@dataclass
class FakeWallet:
    documents: dict[str, tuple[str, DocumentView, bytes]] = field(default_factory=dict)
    shares: dict[str, tuple[str, ShareView]] = field(default_factory=dict)
    log: dict[str, list[AccessEntryView]] = field(default_factory=dict)
    tokens_seen: list[str] = field(default_factory=list)
    verified: list[str] = field(default_factory=list)  # the documents VerifyDocument read, in order
    serial: itertools.count = field(default_factory=lambda: itertools.count(1))  # type: ignore[type-arg]

    def add_document(self, citizen: str, title: str, content: bytes = b"%PDF-1.7 fake", *, trust: str = "issued",
                     issuer: str = "STP-HCM", type_code: str = "BIRTH_CERT") -> DocumentView:
        document = DocumentView(document_id=f"doc-{next(self.serial)}", title=title, type_code=type_code,
                                trust=trust, status="valid", issuer_agency=issuer if trust == "issued" else "",
                                issued_at=datetime(2026, 3, 1, 2, 0, tzinfo=UTC), content_type="application/pdf",
                                size_bytes=len(content), content_sha256="ab" * 32,
                                metadata={"full_name": NAMES.get(citizen, "?")})
        self.documents[document.document_id] = (citizen, document, content)
        return document

    def _mine(self, token: str, document_id: str) -> DocumentView:
        self.tokens_seen.append(token)
        found = self.documents.get(document_id)
        if found is None or found[0] != owner(token):
            raise not_found("document")
        return found[1]

    def list_documents(self, token: str, *, include_inactive: bool = False, page_token: str = "",
                       page_size: int = 20) -> tuple[list[DocumentView], str]:
        self.tokens_seen.append(token)
        citizen = owner(token)
        return [document for who, document, _ in self.documents.values() if who == citizen], ""

    def get_document(self, token: str, document_id: str) -> DocumentView:
        return self._mine(token, document_id)

    def verify_document(self, token: str, document_id: str) -> VerificationView:
        document = self._mine(token, document_id)
        self.verified.append(document_id)
        status = "verified" if document.trust == "issued" else "unsigned_intact"
        return VerificationView(status, True, datetime.now(UTC))

    def download(self, token: str, document_id: str) -> Download:
        document = self._mine(token, document_id)
        return Download(document, [self.documents[document_id][2]])

    def upload(self, token: str, *, title: str, type_code: str, idempotency_key: str,
               content: Iterable[bytes]) -> DocumentView:
        data = b"".join(content)
        if not data:
            raise CallFailed(grpc.StatusCode.INVALID_ARGUMENT, "CONTENT_EMPTY", "empty", [("chunk", "empty")])
        return self.add_document(owner(token), title, data, trust="self_uploaded", type_code=type_code)

    def document_types(self) -> list[DocumentTypeView]:
        return [DocumentTypeView("BIRTH_CERT", "Giấy khai sinh", "Birth certificate")]

    def create_share(self, token: str, request: ShareRequest) -> ShareView:
        citizen = owner(token)
        for document_id in request.document_ids:
            self._mine(token, document_id)
        if not request.agency_code:
            raise CallFailed(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "bad",
                             [("agency_code", "the receiving agency's code is required")])
        share = ShareView(share_id=f"share-{next(self.serial)}", agency_code=request.agency_code,
                          dossier_code=request.dossier_code, procedure_code=request.procedure_code,
                          purpose=request.purpose, document_ids=list(request.document_ids), type_codes=[],
                          created_at=datetime.now(UTC), expires_at=request.expires_at, max_uses=request.max_uses,
                          use_count=0, status="active")
        self.shares[share.share_id] = (citizen, share)
        return share

    def list_shares(self, token: str, *, include_inactive: bool = False, page_token: str = "",
                    page_size: int = 50) -> tuple[list[ShareView], str]:
        citizen = owner(token)
        return [share for who, share in self.shares.values()
                if who == citizen and (include_inactive or share.status == "active")], ""

    def revoke_share(self, token: str, share_id: str) -> ShareView:
        found = self.shares.get(share_id)
        if found is None or found[0] != owner(token):
            raise not_found("share")
        revoked = replace(found[1], status="revoked", revoked_at=datetime.now(UTC))
        self.shares[share_id] = (found[0], revoked)
        return revoked

    def access_log(self, token: str, *, page_token: str = "", page_size: int = 50
                   ) -> tuple[list[AccessEntryView], str]:
        return list(self.log.get(owner(token), [])), ""

    def verify_access_log(self, token: str) -> tuple[bool, int]:
        return True, len(self.log.get(owner(token), []))


def wallet_app(wallet: FakeWallet, identity: FakeIdentity, *, cookie_secure: str = "false",
               sessions: MemorySessionStore | None = None) -> Flask:
    app = Flask("wallet-pages-test")
    install(app, wallet, identity, sessions=sessions if sessions is not None else MemorySessionStore(),
            cookie_secure=cookie_secure)
    return app


def log_in(client: object, citizen: str) -> None:
    """What the browser does: /login, the provider's redirect back with the state, the callback."""
    start = client.get("/login?next=/wallet/")  # type: ignore[attr-defined]
    assert start.status_code == 303, start.data
    state = parse_qs(urlparse(start.headers["Location"]).query)["state"][0]
    done = client.get(f"/login/callback?state={state}&code={citizen}")  # type: ignore[attr-defined]
    assert done.status_code == 303 and done.headers["Location"] == "/wallet/", done.data


def csrf_of(html: str) -> str:
    marker = 'name="csrf_token" value="'
    start = html.index(marker) + len(marker)
    return html[start:html.index('"', start)]
