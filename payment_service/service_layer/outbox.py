"""The outbox dispatcher: signed agency callbacks and wallet receipts, retried with backoff, then dead-lettered."""

from __future__ import annotations

import logging
import math
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from prometheus_client import Counter, Histogram

from payment_service import callback_signature
from payment_service.domain.model import Agency
from payment_service.service_layer.ports import (
    CallbackSender,
    Clock,
    OutboxEntry,
    OutboxKind,
    ReceiptIssuer,
    UnitOfWorkFactory,
)
from payment_service.service_layer.services import receipt_from_payload
from servicekit.logs import scrub

log = logging.getLogger("dvc.payments.outbox")

DELIVERED = Counter("dvc_payment_events_delivered_total", "Outbox rows delivered, by kind", ["kind"])
FAILED_ATTEMPTS = Counter("dvc_payment_event_attempts_failed_total", "Failed delivery attempts, by kind", ["kind"])
DEAD_LETTERED = Counter("dvc_payment_events_dead_lettered_total",
                        "Outbox rows given up after the retry window, by kind", ["kind"])
CALLBACK_LAG = Histogram("dvc_payment_callback_lag_seconds",
                         "Time from the bank's confirmation being recorded to the agency acknowledging the callback",
                         buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0))


@dataclass(frozen=True)
class DispatchPolicy:
    """Timeouts and the retry schedule."""

    timeout_seconds: float = 10.0          # every outbound call is bounded; nothing waits 30 s
    backoff_base_seconds: float = 5.0
    backoff_max_seconds: float = 3600.0
    batch_size: int = 50
    parallelism: int = 8

    @property
    def lease(self) -> timedelta:
        """How long a claimed row stays invisible to other replicas: longer than the slowest batch can take
        (every delivery in it running to its timeout), so a row still being delivered is never claimed twice."""
        rounds = math.ceil(self.batch_size / self.parallelism)
        return timedelta(seconds=2 * rounds * self.timeout_seconds + 30)

    def delay_after(self, attempts: int) -> timedelta:
        """Exponential backoff with ±20 % jitter so retries from many rows do not arrive in lockstep."""
        base = min(self.backoff_base_seconds * 2 ** max(attempts - 1, 0), self.backoff_max_seconds)
        return timedelta(seconds=base * random.uniform(0.8, 1.2))


class Dispatcher:
    """Claims due outbox rows (SKIP LOCKED, leased), delivers them in parallel, records the outcome."""

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock, sender: CallbackSender,
                 issuer: ReceiptIssuer, policy: DispatchPolicy | None = None) -> None:
        self.uow_factory = uow_factory
        self.clock = clock
        self.sender = sender
        self.issuer = issuer
        self.policy = policy or DispatchPolicy()
        self._pool = ThreadPoolExecutor(max_workers=self.policy.parallelism, thread_name_prefix="outbox")

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def run_once(self) -> int:
        """Deliver one batch of due rows; returns how many rows were attempted."""
        now = self.clock.now()
        with self.uow_factory() as uow:
            entries = uow.outbox.claim_due(now, now + self.policy.lease,
                                           self.policy.batch_size)
            agencies: dict[str, Agency | None] = {}
            for entry in entries:
                if entry.agency_code not in agencies:
                    agencies[entry.agency_code] = uow.agencies.get(entry.agency_code)
            uow.commit()
        if not entries:
            return 0
        outcomes = list(self._pool.map(lambda e: self._deliver(e, agencies.get(e.agency_code)), entries))
        finished = self.clock.now()
        retries: list[datetime | None] = []
        for entry, error in zip(entries, outcomes, strict=True):
            retry_at = finished + self.policy.delay_after(entry.attempts) if error is not None else None
            # Past the retry window the row is dead-lettered (None) instead of being scheduled again.
            retries.append(retry_at if retry_at is not None and retry_at <= entry.retry_until else None)
        with self.uow_factory() as uow:
            for entry, error, retry_at in zip(entries, outcomes, retries, strict=True):
                assert entry.id is not None
                if error is None:
                    uow.outbox.mark_delivered(entry.id, finished)
                else:
                    uow.outbox.mark_failed(entry.id, error[:500], retry_at)
            uow.commit()
        for entry, error, retry_at in zip(entries, outcomes, retries, strict=True):
            kind = entry.kind.value
            if error is None:
                DELIVERED.labels(kind).inc()
                if entry.kind is OutboxKind.AGENCY_CALLBACK:
                    CALLBACK_LAG.observe(max((finished - entry.confirmed_at).total_seconds(), 0.0))
                continue
            FAILED_ATTEMPTS.labels(kind).inc()
            if retry_at is None:
                DEAD_LETTERED.labels(kind).inc()
                log.warning("outbox row dead-lettered", extra={"kind": kind, "event_id": entry.event_id,
                                                               "error": error})
        return len(entries)

    def _deliver(self, entry: OutboxEntry, agency: Agency | None) -> str | None:
        """None on success, else the reason (scrubbed) for the retry record."""
        try:
            if entry.kind is OutboxKind.RECEIPT:
                self.issuer.issue(receipt_from_payload(entry.payload))
                return None
            return self._post_callback(entry, agency)
        except Exception as exc:  # noqa: BLE001 - any failure of one delivery is retried, never fatal
            return scrub(f"{type(exc).__name__}: {exc}")

    def _post_callback(self, entry: OutboxEntry, agency: Agency | None) -> str | None:
        if agency is None:
            return f"agency {entry.agency_code} is not registered"
        now = self.clock.now()
        active = agency.active_secrets(now)
        if not active:
            return "the agency has no active callback secret"
        body = entry.payload.encode()
        headers = {
            "Content-Type": "application/json",
            callback_signature.HEADER: callback_signature.sign(body, [s.secret for s in active],
                                                               timestamp=int(now.timestamp())),
            callback_signature.EVENT_ID_HEADER: entry.event_id,
            "User-Agent": "dvc-payments/1",
        }
        status = self.sender.post(agency.callback_url, body, headers, self.policy.timeout_seconds)
        if 200 <= status < 300:
            return None
        return f"agency answered HTTP {status}"

