"""The citizen's wallet pages: documents, one document (view, download), upload, shares and the access log.
Every view calls the wallet's gRPC API with the signed-in citizen's own token, so the wallet decides what they
may see; a document or share that is not theirs answers exactly like one that does not exist."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from typing import Any

import grpc
from flask import Blueprint, Response, g, redirect, request
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import FileStorage

from servicekit.web import site
from servicekit.web.formatting import VIETNAM
from servicekit.web.grpc_calls import CallFailed
from servicekit.web.login import LoginNeeded, access_token, citizen_blueprint, login_required
from servicekit.web.sessions import new_secret
from wallet_service.entrypoints.pages.client import (
    AccessEntryView,
    DocumentView,
    ShareRequest,
    WalletPort,
)

PAGE_SIZE = 20
DEFAULT_SHARE_DAYS = 7
MAX_SHARE_DAYS = 30
UPLOAD_CHUNK_BYTES = 512 * 1024
# Shown inline in the browser; anything else (XML) is only downloaded, so stored content can never run as a page.
INLINE_TYPES = frozenset({"application/pdf", "image/png", "image/jpeg"})
EXTENSIONS = {"application/pdf": "pdf", "image/png": "png", "image/jpeg": "jpg", "application/xml": "xml"}
CONTENT_POLICY = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; object-src 'self'; sandbox"

STATUS_LABELS = {"valid": "Valid", "not_yet_valid": "Not yet valid", "expired": "Expired", "revoked": "Revoked",
                 "superseded": "Replaced by a newer version"}
STATUS_TONES = {"valid": "ok", "not_yet_valid": "warn", "expired": "warn", "revoked": "bad", "superseded": "warn"}
TRUST_LABELS = {"issued": "Issued and signed by the agency", "self_uploaded": "Uploaded by you (not verified)"}
VERIFICATION_LABELS = {"verified": "Signature and content verified", "tampered": "Content altered in storage",
                       "signature_invalid": "Signature does not verify", "content_missing": "Content missing",
                       "unsigned_intact": "Content intact, not signed"}
VERIFICATION_TONES = {"verified": "ok", "unsigned_intact": "", "tampered": "bad", "signature_invalid": "bad",
                      "content_missing": "bad"}
SHARE_LABELS = {"active": "Active", "expired": "Expired", "revoked": "Revoked", "used_up": "Used up"}
SHARE_TONES = {"active": "ok", "expired": "warn", "revoked": "bad", "used_up": "warn"}
ACTION_LABELS = {
    "issued": "Issued a document into your wallet", "uploaded": "Uploaded a document",
    "read": "Looked at a document", "downloaded": "Downloaded a document", "verified": "Checked a document",
    "shared": "Granted a share", "share_revoked": "Revoked a share",
    "redeemed": "Received your documents through a share", "document_revoked": "Revoked a document",
    "superseded": "Replaced a document with a newer version", "deleted": "Deleted a document",
    "documents_requested": "Asked you for documents", "request_approved": "Approved a request for documents",
    "request_declined": "Declined a request for documents",
    "tampering_detected": "Access refused: stored content failed verification",
    "redemption_failed": "Could not hand over your documents through a share; the use was given back",
}
RELATION_LABELS = {"guardian": "guardian", "delegate": "delegate", "consent": "with your consent"}
FAILURE_MESSAGES = {
    "CONTENT_TOO_LARGE": "The file is larger than 20 MB.",
    "CONTENT_EMPTY": "The file is empty.",
    "CONTENT_TYPE_NOT_ALLOWED": "Only PDF, PNG, JPEG or XML files can be uploaded.",
    "DOCUMENT_REVOKED": "A revoked document cannot be shared.",
}
SHARE_FIELDS = ("document_ids", "agency_code", "dossier_code", "procedure_code", "purpose", "expires_at",
                "max_uses")


def _not_found() -> Response:
    return site.error_page(404, site.translate("Not found"),
                           site.translate("There is nothing at this address in your wallet."))


def _failure_page(failure: CallFailed) -> Response:
    """What a citizen sees when the wallet refused: the same 404 for "not yours" and "does not exist"."""
    if failure.code == grpc.StatusCode.UNAUTHENTICATED:
        site.end_session()
        raise LoginNeeded
    if failure.code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED):
        return _not_found()
    if failure.http_status >= 500:
        return site.error_page(503, site.translate("The wallet is not available right now"),
                               site.translate("Please try again in a few minutes."))
    known = FAILURE_MESSAGES.get(failure.reason)
    return site.error_page(failure.http_status, site.translate("This cannot be done now"),
                           site.translate(known) if known else "")


def _ascii_name(title: str, extension: str) -> str:
    plain = unicodedata.normalize("NFKD", title.replace("Đ", "D").replace("đ", "d"))
    plain = re.sub(r"[^A-Za-z0-9._-]+", "-", plain.encode("ascii", "ignore").decode()).strip("-.") or "document"
    return f"{plain[:80]}.{extension}"


def _end_of_day(text: str) -> datetime | None:
    try:
        day = datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        return None
    return datetime.combine(day, time(23, 59, 59), tzinfo=VIETNAM)


def wallet_blueprint(wallet: WalletPort) -> Blueprint:
    """The pages; ``wallet`` is the wallet's gRPC API (or a fake in unit tests)."""
    blueprint = citizen_blueprint("wallet_pages", __name__, template_folder="templates")

    def type_names() -> dict[str, str]:
        try:
            types = wallet.document_types()
        except CallFailed:
            return {}
        english = site.language() == "en"
        return {item.code: (item.name_en or item.name) if english else item.name for item in types}

    def title_of(document: DocumentView, names: dict[str, str]) -> str:
        if document.trust == "issued" and document.type_code in names:
            return names[document.type_code]
        return document.title or names.get(document.type_code, "") or site.translate("Untitled document")

    def labels() -> dict[str, Any]:
        return {"status_labels": STATUS_LABELS, "status_tones": STATUS_TONES, "trust_labels": TRUST_LABELS,
                "verification_labels": VERIFICATION_LABELS, "verification_tones": VERIFICATION_TONES,
                "share_labels": SHARE_LABELS, "share_tones": SHARE_TONES}

    @blueprint.get("/")
    def landing() -> ResponseReturnValue:
        if g.web_user is not None:
            return redirect("/wallet/", code=303)
        return site.render_page("wallet/landing.html", logged_out=request.args.get("logged_out") == "1")

    @blueprint.get("/wallet/")
    @login_required
    def documents() -> ResponseReturnValue:
        # Only what the listing says (status, trust, issuer, validity): a verification reads the whole content from
        # storage and writes an entry to the citizen's access log, so it runs on the document's own page and on
        # download, never for every listed document.
        show_all = request.args.get("all") == "1"
        try:
            listed, next_page = wallet.list_documents(access_token(), include_inactive=show_all,
                                                      page_token=request.args.get("page", ""), page_size=PAGE_SIZE)
        except CallFailed as failure:
            return _failure_page(failure)
        names = type_names()
        return site.render_page("wallet/documents.html", documents=listed, next_page=next_page, show_all=show_all,
                                titles={item.document_id: title_of(item, names) for item in listed},
                                type_names=names, nav="documents", **labels())

    @blueprint.get("/wallet/documents/<document_id>")
    @login_required
    def document(document_id: str) -> ResponseReturnValue:
        token = access_token()
        try:
            found = wallet.get_document(token, document_id)
            verification = wallet.verify_document(token, document_id)
        except CallFailed as failure:
            return _failure_page(failure)
        names = type_names()
        return site.render_page("wallet/document.html", document=found, title=title_of(found, names),
                                type_names=names, verification=verification, nav="documents", inline_types=INLINE_TYPES,
                                uploaded=request.args.get("uploaded") == "1", **labels())

    @blueprint.get("/wallet/documents/<document_id>/content")
    @login_required
    def content(document_id: str) -> ResponseReturnValue:
        try:
            download = wallet.download(access_token(), document_id)
        except CallFailed as failure:
            return _failure_page(failure)
        found = download.document
        media_type = found.content_type if found.content_type in EXTENSIONS else "application/octet-stream"
        inline = request.args.get("download") != "1" and media_type in INLINE_TYPES
        filename = _ascii_name(title_of(found, type_names()), EXTENSIONS.get(media_type, "bin"))
        response = Response(download.chunks, mimetype=media_type)  # already read whole: see GrpcWallet.download
        response.headers["Content-Disposition"] = f'{"inline" if inline else "attachment"}; filename="{filename}"'
        response.headers["Content-Security-Policy"] = CONTENT_POLICY
        response.headers["Cache-Control"] = "private, no-store"
        response.headers["Content-Length"] = str(download.size)
        return response

    def upload_form(errors: dict[str, str], values: dict[str, str], status: int = 200) -> Response:
        names = type_names()
        return site.render_page("wallet/upload.html", status, errors=errors, values=values,
                                types=sorted(names.items(), key=lambda item: item[1]), nav="upload")

    @blueprint.get("/wallet/upload")
    @login_required
    def upload_page() -> ResponseReturnValue:
        return upload_form({}, {"idempotency_key": new_secret()})

    @blueprint.post("/wallet/upload")
    @login_required
    def upload() -> ResponseReturnValue:
        values = {name: request.form.get(name, "").strip() for name in ("title", "type_code", "idempotency_key")}
        values["idempotency_key"] = values["idempotency_key"] or new_secret()
        file: FileStorage | None = request.files.get("file")
        errors = {}
        if file is None or not file.filename:
            errors["file"] = site.translate("Choose the file to upload.")
        if not values["title"]:
            errors["title"] = site.translate("Give the document a title.")
        if errors or file is None:
            return upload_form(errors, values, 400)

        def pieces(stream: Any) -> Iterator[bytes]:
            while piece := stream.read(UPLOAD_CHUNK_BYTES):
                yield piece

        try:
            stored = wallet.upload(access_token(), title=values["title"], type_code=values["type_code"],
                                   idempotency_key=values["idempotency_key"], content=pieces(file.stream))
        except CallFailed as failure:
            if failure.code != grpc.StatusCode.INVALID_ARGUMENT:
                return _failure_page(failure)
            message = FAILURE_MESSAGES.get(failure.reason)
            fields = failure.field_errors()
            if message or not fields:
                errors["file"] = site.translate(message or "The file could not be stored.")
            if "metadata" in fields:
                errors["title"] = site.translate("Check the title and the document type.")
            return upload_form(errors, values, 400)
        return redirect(f"/wallet/documents/{stored.document_id}?uploaded=1", code=303)

    def share_form(token: str, values: dict[str, Any], errors: dict[str, str], status: int = 200) -> Response:
        try:
            active, _ = wallet.list_documents(token, page_size=100)
        except CallFailed as failure:
            return _failure_page(failure)
        names = type_names()
        today = datetime.now(VIETNAM).date()
        return site.render_page(
            "wallet/share_new.html", status, documents=active, values=values, errors=errors, nav="shares",
            titles={item.document_id: title_of(item, names) for item in active},
            min_date=(today + timedelta(days=1)).isoformat(),
            max_date=(today + timedelta(days=MAX_SHARE_DAYS - 1)).isoformat(), **labels())

    @blueprint.get("/wallet/shares/new")
    @login_required
    def new_share() -> ResponseReturnValue:
        today = datetime.now(VIETNAM).date()
        values = {"document_ids": request.args.getlist("document"), "agency_code": "", "dossier_code": "",
                  "procedure_code": "", "purpose": "", "max_uses": "1",
                  "expires_on": (today + timedelta(days=DEFAULT_SHARE_DAYS)).isoformat(),
                  "idempotency_key": new_secret()}
        return share_form(access_token(), values, {})

    @blueprint.post("/wallet/shares/new")
    @login_required
    def create_share() -> ResponseReturnValue:
        token = access_token()
        form = request.form
        values: dict[str, Any] = {name: form.get(name, "").strip() for name in (
            "agency_code", "dossier_code", "procedure_code", "purpose", "max_uses", "expires_on",
            "idempotency_key")}
        values["document_ids"] = form.getlist("document_ids")
        values["idempotency_key"] = values["idempotency_key"] or new_secret()
        errors: dict[str, str] = {}
        expires_at = _end_of_day(values["expires_on"])
        now = datetime.now(VIETNAM)
        if expires_at is None:
            errors["expires_at"] = site.translate("Give the last day the share may be used.")
        else:
            # The last day counts whole; the wallet allows at most 30 days from now, so a share chosen to end
            # on the 30th day ends a minute before that limit.
            expires_at = min(expires_at, now + timedelta(days=MAX_SHARE_DAYS, minutes=-1))
        if not values["document_ids"]:
            errors["document_ids"] = site.translate("Choose at least one document.")
        max_uses = 1 if values["max_uses"] != "0" else 0
        if errors or expires_at is None:
            return share_form(token, values, errors, 400)
        try:
            share = wallet.create_share(token, ShareRequest(
                document_ids=values["document_ids"], agency_code=values["agency_code"],
                dossier_code=values["dossier_code"], procedure_code=values["procedure_code"],
                purpose=values["purpose"], expires_at=expires_at, max_uses=max_uses,
                idempotency_key=values["idempotency_key"]))
        except CallFailed as failure:
            if failure.code != grpc.StatusCode.INVALID_ARGUMENT:
                return _failure_page(failure)
            for name, description in failure.field_errors().items():
                errors[name if name in SHARE_FIELDS else "form"] = description
            return share_form(token, values, errors, 400)
        return redirect(f"/wallet/shares/{share.share_id}?created=1", code=303)

    @blueprint.get("/wallet/shares")
    @login_required
    def shares() -> ResponseReturnValue:
        show_all = request.args.get("all") == "1"
        try:
            listed, next_page = wallet.list_shares(access_token(), include_inactive=show_all,
                                                   page_token=request.args.get("page", ""))
        except CallFailed as failure:
            return _failure_page(failure)
        return site.render_page("wallet/shares.html", shares=listed, next_page=next_page, show_all=show_all,
                                revoked=request.args.get("revoked", ""), nav="shares", **labels())

    @blueprint.get("/wallet/shares/<share_id>")
    @login_required
    def share(share_id: str) -> ResponseReturnValue:
        token = access_token()
        found = None
        page = ""
        try:
            # The API lists a citizen's own shares only; a share id of someone else is simply never found.
            while found is None:
                listed, page = wallet.list_shares(token, include_inactive=True, page_token=page, page_size=200)
                found = next((item for item in listed if item.share_id == share_id), None)
                if not page:
                    break
            documents, _ = wallet.list_documents(token, include_inactive=True, page_size=500)
        except CallFailed as failure:
            return _failure_page(failure)
        if found is None:
            return _not_found()
        names = type_names()
        return site.render_page("wallet/share.html", share=found, nav="shares", type_names=names,
                                titles={item.document_id: title_of(item, names) for item in documents},
                                created=request.args.get("created") == "1",
                                revoked=request.args.get("revoked") == "1", **labels())

    @blueprint.post("/wallet/shares/<share_id>/revoke")
    @login_required
    def revoke_share(share_id: str) -> ResponseReturnValue:
        try:
            wallet.revoke_share(access_token(), share_id)
        except CallFailed as failure:
            return _failure_page(failure)
        return redirect(f"/wallet/shares/{share_id}?revoked=1", code=303)

    @blueprint.get("/wallet/access-log")
    @login_required
    def access_log() -> ResponseReturnValue:
        token = access_token()
        user = g.web_user
        others_only = request.args.get("others") == "1"
        try:
            entries, next_page = wallet.access_log(token, page_token=request.args.get("page", ""))
            intact, checked = wallet.verify_access_log(token)
            documents, _ = wallet.list_documents(token, include_inactive=True, page_size=500)
        except CallFailed as failure:
            return _failure_page(failure)
        if others_only:
            entries = [entry for entry in entries if entry.actor_subject != user.subject or entry.on_behalf_of]
        names = type_names()
        return site.render_page("wallet/access_log.html", entries=entries, next_page=next_page, intact=intact,
                                checked=checked, others_only=others_only, nav="access_log",
                                titles={item.document_id: title_of(item, names) for item in documents},
                                action_labels=ACTION_LABELS, actor=lambda entry: actor_text(entry, user.subject))

    return blueprint


def actor_text(entry: AccessEntryView, me: str) -> str:
    """Who acted, in words: you, an agency's system, an official, or someone acting for you."""
    if entry.on_behalf_of:
        relation = site.translate(RELATION_LABELS.get(entry.relation, entry.relation or "delegate"))
        who = entry.actor_subject
        if entry.actor_kind == "client" and entry.agency_code:
            who = site.translate("the system of %(agency)s", agency=entry.agency_code)
        elif entry.agency_code:
            who = f"{entry.actor_subject} ({entry.agency_code})"
        return site.translate("%(who)s (%(relation)s) on behalf of you", who=who, relation=relation)
    if entry.actor_subject == me:
        return site.translate("You")
    if entry.actor_kind == "client":
        return site.translate("the system of %(agency)s", agency=entry.agency_code or entry.actor_subject)
    if entry.actor_kind == "official":
        return site.translate("an official of %(agency)s (%(who)s)", agency=entry.agency_code or "?",
                              who=entry.actor_subject)
    return entry.actor_subject
