"""What the load did, written down for the invariant check: payments and what the payer did to them, documents
issued, shares granted and redeemed, and every agency callback the receiver took. One JSON line per record;
each Locust process writes its own file, the check reads them all."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Record kinds. What the load sent, paid and issued is written from its own requests, never from the platform's
# answers, so the invariant check compares the platform with the load and not with itself.
PAYMENT = "payment"          # created: id, reference, agency, citizen_id (payer), amount (sent), channel, action,
                             # created_day
PAYER = "payer"              # the payer's action reached the sandbox (or was skipped on purpose): id, done
ATTEMPT = "attempt"          # about to issue or share for citizen_id (a call that fails may still have taken
                             # effect): content_sha256 of a document, or dossier_code of a share
DOCUMENT = "document"        # issued: document_id, citizen_id, issuer_agency, type_code, content_sha256 (sent)
SHARE = "share"              # granted: share_id, citizen_id, agency, dossier_code, document_ids
REDEEMED = "redeemed"        # redeemed: share_id, delivered (document ids in order), sha256 (document id -> SHA-256
                             # of the content received), valid (all verified)
CALLBACK = "callback"        # received by the provincial receiver: event_id, payment_id, type, status, signature_ok
SETUP = "setup"              # the agencies this process registered: agencies, citizens
FLOWS = "flows"              # at the end: started and completed flows by name


@dataclass
class Ledger:
    """Records kept in memory (cheap under load) and written once at the end of the run."""

    records: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, **values: Any) -> None:
        with self.lock:
            self.records.append({"kind": kind, **values})

    def of(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [record for record in self.records if record["kind"] == kind]

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"ledger-{socket.gethostname()}-{os.getpid()}.jsonl"
        with self.lock:
            lines = [json.dumps(record, ensure_ascii=False, sort_keys=True) for record in self.records]
        path.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
        return path


def redemption_problems(shared: list[str], delivered: list[str], contents: dict[str, str], valid: bool,
                        issued: dict[str, str]) -> list[str]:
    """What is wrong with a redemption: each ``shared`` document delivered exactly once and nothing else, every
    signature verified, and each content's SHA-256 (``contents``) the one the load issued (``issued``: document id
    -> SHA-256 of the content sent). Used by the flow as it redeems and by the invariant check afterwards."""
    problems = []
    if sorted(delivered) != sorted(shared):
        problems.append(f"delivered {sorted(delivered)}, shared {sorted(shared)}")
    if not valid:
        problems.append("a signature did not verify")
    for document_id in sorted(set(shared) & set(delivered)):
        got, sent = contents.get(document_id, "none"), issued.get(document_id, "none")
        if got != sent:
            problems.append(f"content of {document_id} is not the content issued (SHA-256 {got[:12]}…, issued "
                            f"{sent[:12]}…)")
    return problems


def read_ledgers(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Every record of the given ledger files."""
    records: list[dict[str, Any]] = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                records.append(json.loads(line))
    return records
