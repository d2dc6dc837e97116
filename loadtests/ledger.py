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

# Record kinds.
PAYMENT = "payment"          # created: id, reference, agency, amount, channel, action, created_day
PAYER = "payer"              # the payer's action reached the sandbox (or was skipped on purpose): id, done
DOCUMENT = "document"        # issued: document_id, citizen_id, issuer_agency, type_code
SHARE = "share"              # granted: share_id, citizen_id, agency, document_ids
REDEEMED = "redeemed"        # redeemed: share_id, documents (count), valid (all verified)
CALLBACK = "callback"        # received by the provincial receiver: event_id, payment_id, type, status, signature_ok
SETUP = "setup"              # the agencies this process registered: agencies, citizens


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


def read_ledgers(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Every record of the given ledger files."""
    records: list[dict[str, Any]] = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                records.append(json.loads(line))
    return records
