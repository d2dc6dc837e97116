"""The one interface every bank and intermediary connector implements, its response shape and error vocabulary."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol


class ConnectorStatus(enum.Enum):
    """What the counterpart says about a payment, in the platform's words."""

    PENDING = "pending"        # created at the counterpart, payer has not finished
    SUCCEEDED = "succeeded"    # money taken / credited
    FAILED = "failed"          # payer or counterpart declined
    CANCELLED = "cancelled"    # payer abandoned or counterpart expired it
    UNKNOWN = "unknown"        # the counterpart does not know the reference


class ConnectorErrorKind(enum.Enum):
    """Why a call to a counterpart failed; drives retries and the circuit breaker."""

    TIMEOUT = "timeout"                    # no answer within the deadline: outcome unknown, query later
    UNAVAILABLE = "unavailable"            # connection refused, 5xx: safe to fail over
    REJECTED = "rejected"                  # counterpart refused the request (bad amount, duplicate order)
    BAD_SIGNATURE = "bad_signature"        # a message from the counterpart failed verification
    PROTOCOL = "protocol"                  # the counterpart answered something we cannot parse
    CONFIGURATION = "configuration"        # our credentials or settings are wrong


class ConnectorError(Exception):
    """A failed counterpart call, with a kind, the counterpart's own code and a scrubbed message."""

    def __init__(self, kind: ConnectorErrorKind, message: str, *, provider_code: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.provider_code = provider_code

    @property
    def counts_against_health(self) -> bool:
        """Timeouts and outages open the circuit breaker; a refused request does not."""
        return self.kind in (ConnectorErrorKind.TIMEOUT, ConnectorErrorKind.UNAVAILABLE, ConnectorErrorKind.PROTOCOL)


@dataclass(frozen=True)
class PaymentOrder:
    """What a connector needs to start collecting one payment."""

    payment_id: str
    reference: str              # short ASCII payment reference, ≤ 25 characters
    amount: int                 # integer đồng
    description: str            # ASCII, safe in any bank's transfer note
    beneficiary_bin: str
    beneficiary_account: str
    expires_at: datetime
    return_url: str = ""
    payer_name: str = ""


@dataclass(frozen=True)
class Credit:
    """One transfer a bank credited for a payment (VietQR): its transaction id and amount in đồng."""

    provider_reference: str
    amount: int
    account: str = ""                # "bin/number" of the account credited ('' when the bank does not say)


@dataclass(frozen=True)
class ConnectorResult:
    """The one response shape of every connector call."""

    status: ConnectorStatus
    provider_reference: str = ""     # the counterpart's transaction id
    amount: int | None = None        # in đồng, already converted from the provider's unit
    redirect_url: str = ""           # where to send the payer, if the channel has a page
    provider_code: str = ""          # the counterpart's own result code, for support
    message: str = ""
    paid_at: datetime | None = None
    # For an account that is paid by transfers: each credit found, so those already counted are recognised by
    # their transaction id (amount is then their total, not one more payment).
    credits: tuple[Credit, ...] = ()


class NotificationKind(enum.Enum):
    """What an inbound, verified counterpart message is about."""

    PAYMENT_RESULT = "payment_result"     # IPN / result notification for one of our payments
    ACCOUNT_CREDITED = "account_credited"  # a bank credit notice to a beneficiary account (VietQR transfer)
    REFUND_RESULT = "refund_result"


@dataclass(frozen=True)
class InboundNotification:
    """A callback whose signature has been verified, parsed into the platform's terms."""

    kind: NotificationKind
    reference: str                   # our payment reference as the counterpart echoes it ('' if unreadable)
    status: ConnectorStatus
    amount: int                      # đồng
    provider_reference: str
    notification_id: str             # the counterpart's id for this message (deduplication)
    transfer_note: str = ""          # for credit notices: the note as the bank received it
    credited_account: str = ""       # for credit notices: "bin/number" of the account credited
    refund_id: str = ""              # for refund results: the platform's refund id the counterpart echoes
    occurred_at: datetime | None = None
    raw_code: str = ""


@dataclass(frozen=True)
class CallbackRequest:
    """An HTTP callback as the edge received it: method, query, headers and body (framework-free)."""

    method: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class CallbackReply:
    """What to answer the counterpart, in its own format."""

    status_code: int
    body: bytes
    content_type: str = "application/json"


class CallbackOutcome(enum.Enum):
    """How the platform handled a verified callback; each connector maps these to its reply format."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    UNKNOWN_REFERENCE = "unknown_reference"
    AMOUNT_MISMATCH = "amount_mismatch"
    BAD_SIGNATURE = "bad_signature"
    REJECTED = "rejected"             # verified but refused for another reason (e.g. malformed)
    ERROR = "error"


@dataclass(frozen=True)
class SettlementLine:
    """One transaction in a counterpart's daily settlement file."""

    reference: str
    provider_reference: str
    amount: int
    status: ConnectorStatus
    settled_on: date


@dataclass(frozen=True)
class RefundResult:
    """The counterpart's answer to a refund."""

    accepted: bool
    provider_reference: str = ""
    provider_code: str = ""
    message: str = ""


@dataclass
class ConnectorInfo:
    """Static facts about a connector instance (from configuration)."""

    code: str                        # e.g. "vnpay", "momo", "vietcombank", "vietqr"
    display_name: str
    channel: str                     # "bank", "wallet", "vietqr", "gateway"
    supports_refund: bool = True
    push_notifications: bool = True  # False for pull-only providers (Ngân Lượng)
    extra: dict[str, str] = field(default_factory=dict)


class Connector(Protocol):
    """One bank or intermediary. Every method that talks to the counterpart has a timeout ≤ 10 s and raises
    ConnectorError on failure; nothing else escapes."""

    info: ConnectorInfo

    def check_credentials(self) -> None:
        """Raise ConnectorError(CONFIGURATION) at start-up when keys or settings are missing or malformed."""

    def create(self, order: PaymentOrder) -> ConnectorResult:
        """Register the payment with the counterpart; returns PENDING and usually a redirect URL."""

    def query_status(self, reference: str, *, amount: int, created_at: datetime,
                     provider_reference: str = "") -> ConnectorResult:
        """Ask the counterpart for the payment's current status (status sweep, reconciliation).
        ``provider_reference`` is what ``create`` returned for the payment ('' if nothing): some counterparts
        (Ngân Lượng) look payments up by it only."""

    def refund(self, reference: str, provider_reference: str, amount: int, refund_id: str, *,
               created_at: datetime | None = None) -> RefundResult:
        """Refund ``amount`` đồng of a succeeded payment; ``created_at`` is when the payment was created (VNPay
        wants the original transaction's date)."""

    def parse_callback(self, request: CallbackRequest) -> InboundNotification:
        """Verify the signature FIRST, then parse; raise ConnectorError(BAD_SIGNATURE) on any doubt."""

    def reply(self, outcome: CallbackOutcome) -> CallbackReply:
        """The answer the counterpart expects for ``outcome``, in its own format."""

    def fetch_settlement(self, day: date) -> list[SettlementLine]:
        """Fetch and parse the counterpart's settlement file for ``day``."""

    def parse_settlement(self, content: bytes) -> list[SettlementLine]:
        """Parse a settlement file the operator uploaded."""

    def scrub(self, text: str) -> str:
        """Mask this connector's keys, signatures and account numbers in a transcript before it is logged."""
