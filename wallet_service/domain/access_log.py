"""The citizen's tamper-evident access log: each entry's hash covers the previous hash and the entry itself."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from wallet_service.domain.manifest import canonical_json
from wallet_service.domain.model import AccessAction, AccessLogEntry, Actor

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class LogEvent:
    """What a handler wants recorded; the chain position and hashes are added when it is appended."""

    action: AccessAction
    document_id: str = ""
    share_id: str = ""
    request_id: str = ""
    dossier_code: str = ""
    procedure_code: str = ""
    detail: str = ""
    agency_code: str = ""


def log_time(moment: datetime) -> str:
    """Microsecond UTC text; naive values (SQLite drops the zone) are UTC by construction."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(previous_hash: str, *, citizen_id: str, sequence: int, action: str, actor_subject: str,
               actor_kind: str, agency_code: str, on_behalf_of: str, relation: str, document_id: str,
               share_id: str, request_id: str, dossier_code: str, procedure_code: str, detail: str,
               occurred_at: datetime) -> str:
    body = canonical_json({
        "citizen_id": citizen_id, "sequence": sequence, "action": action, "actor_subject": actor_subject,
        "actor_kind": actor_kind, "agency_code": agency_code, "on_behalf_of": on_behalf_of, "relation": relation,
        "document_id": document_id, "share_id": share_id, "request_id": request_id,
        "dossier_code": dossier_code, "procedure_code": procedure_code, "detail": detail,
        "occurred_at": log_time(occurred_at),
    })
    return hashlib.sha256(previous_hash.encode("ascii") + b"\n" + body).hexdigest()


def hash_of(entry: AccessLogEntry, previous_hash: str) -> str:
    return entry_hash(previous_hash, citizen_id=entry.citizen_id, sequence=entry.sequence, action=entry.action.value,
                      actor_subject=entry.actor_subject, actor_kind=entry.actor_kind, agency_code=entry.agency_code,
                      on_behalf_of=entry.on_behalf_of, relation=entry.relation, document_id=entry.document_id,
                      share_id=entry.share_id, request_id=entry.request_id, dossier_code=entry.dossier_code,
                      procedure_code=entry.procedure_code, detail=entry.detail, occurred_at=entry.occurred_at)


def next_entry(citizen_id: str, sequence: int, previous_hash: str, actor: Actor, event: LogEvent,
               occurred_at: datetime) -> AccessLogEntry:
    """The entry that follows ``previous_hash`` at ``sequence`` (1-based)."""
    draft = AccessLogEntry(
        citizen_id=citizen_id, sequence=sequence, action=event.action, actor_subject=actor.subject,
        actor_kind=actor.kind, occurred_at=occurred_at, previous_hash=previous_hash, entry_hash="",
        agency_code=event.agency_code or actor.agency, on_behalf_of=actor.on_behalf_of, relation=actor.relation,
        document_id=event.document_id, share_id=event.share_id, request_id=event.request_id,
        dossier_code=event.dossier_code, procedure_code=event.procedure_code, detail=event.detail)
    return _with_hash(draft, hash_of(draft, previous_hash))


def _with_hash(entry: AccessLogEntry, value: str) -> AccessLogEntry:
    from dataclasses import replace

    return replace(entry, entry_hash=value)


@dataclass(frozen=True)
class ChainCheck:
    """Result of recomputing a chain."""

    intact: bool
    entries_checked: int
    first_broken_sequence: int = 0
    problem: str = ""
    head_hash: str = GENESIS_HASH


def verify_chain(entries: Iterable[AccessLogEntry], head: tuple[int, str] | None = None) -> ChainCheck:
    """Walk the entries in sequence order, recomputing every hash; stop at the first broken link. ``head``
    (last sequence and hash, kept apart from the entries) also catches entries cut off the end."""
    expected_previous = GENESIS_HASH
    expected_sequence = 1
    checked = 0
    for entry in entries:
        checked += 1
        if entry.sequence != expected_sequence:
            return ChainCheck(False, checked, entry.sequence,
                              f"sequence {entry.sequence} found where {expected_sequence} was expected "
                              "(an entry was removed or inserted)", expected_previous)
        if entry.previous_hash != expected_previous:
            return ChainCheck(False, checked, entry.sequence,
                              "previous_hash does not match the hash of the entry before it", expected_previous)
        recomputed = hash_of(entry, expected_previous)
        if recomputed != entry.entry_hash:
            return ChainCheck(False, checked, entry.sequence,
                              "entry_hash does not match its contents (the entry was altered)", expected_previous)
        expected_previous = entry.entry_hash
        expected_sequence += 1
    if head is not None and (head[0] != checked or head[1] != expected_previous):
        return ChainCheck(False, checked, checked + 1,
                          f"the chain ends at sequence {checked} but its head records sequence {head[0]} "
                          "(entries were removed from the end)", expected_previous)
    return ChainCheck(True, checked, 0, "", expected_previous)
