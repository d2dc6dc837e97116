"""The access log's hash chain: recomputed link by link, the first broken link reported."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from wallet_service.domain.access_log import GENESIS_HASH, LogEvent, next_entry, verify_chain
from wallet_service.domain.model import AccessAction, Actor

CITIZEN = "001099012345"


def _chain(length: int = 5):
    entries = []
    previous = GENESIS_HASH
    start = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    for sequence in range(1, length + 1):
        entry = next_entry(CITIZEN, sequence, previous, Actor("stp-hcm-system", "client", "STP-HCM"),
                           LogEvent(AccessAction.READ, document_id=f"doc-{sequence}"),
                           start + timedelta(minutes=sequence))
        entries.append(entry)
        previous = entry.entry_hash
    return entries


def test_each_hash_covers_the_previous_hash_and_the_entry():
    first = _chain(1)[0]
    body = json.dumps({"action": "READ", "actor_kind": "client", "actor_subject": "stp-hcm-system",
                       "agency_code": "STP-HCM", "citizen_id": CITIZEN, "detail": "", "document_id": "doc-1",
                       "dossier_code": "", "occurred_at": "2026-03-01T08:01:00.000000Z", "on_behalf_of": "",
                       "procedure_code": "", "relation": "", "request_id": "", "sequence": 1, "share_id": ""},
                      sort_keys=True, separators=(",", ":")).encode()
    assert first.previous_hash == "0" * 64
    assert first.entry_hash == hashlib.sha256(b"0" * 64 + b"\n" + body).hexdigest()


def test_an_untouched_chain_is_intact_and_reports_its_head():
    entries = _chain()
    check = verify_chain(entries, head=(5, entries[-1].entry_hash))
    assert check.intact and check.entries_checked == 5 and check.head_hash == entries[-1].entry_hash


def test_an_altered_entry_is_the_first_broken_link():
    entries = _chain()
    entries[2] = replace(entries[2], agency_code="SOMEONE-ELSE")
    check = verify_chain(entries)
    assert not check.intact and check.first_broken_sequence == 3


def test_an_altered_entry_with_a_recomputed_hash_breaks_the_next_link():
    entries = _chain()
    forged = replace(entries[1], document_id="doc-x")
    from wallet_service.domain.access_log import hash_of

    entries[1] = replace(forged, entry_hash=hash_of(forged, forged.previous_hash))
    check = verify_chain(entries)
    assert not check.intact and check.first_broken_sequence == 3


def test_a_removed_entry_is_detected():
    entries = _chain()
    del entries[1]
    check = verify_chain(entries)
    assert not check.intact and check.first_broken_sequence == 3


def test_entries_cut_off_the_end_are_detected_against_the_head():
    entries = _chain()
    check = verify_chain(entries[:3], head=(5, entries[-1].entry_hash))
    assert not check.intact and check.first_broken_sequence == 4
