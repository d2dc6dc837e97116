"""Domain error vocabulary: raised by domain and service code, mapped to gRPC status codes at the edge."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldViolation:
    """One bad field: its path (e.g. ``fee_lines[2].amount``) and a reason a person can act on."""

    field: str
    description: str


class DomainError(Exception):
    """Base of every error the platform reports on purpose; ``reason`` is a stable UPPER_SNAKE code."""

    kind = "internal"

    def __init__(self, message: str, *, reason: str = "", metadata: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or type(self).__name__.upper()
        self.metadata = dict(metadata or {})


class InvalidArgument(DomainError):
    """The request itself is wrong; ``violations`` names each bad field."""

    kind = "invalid_argument"

    def __init__(self, message: str, violations: list[FieldViolation] | None = None, *, reason: str = "",
                 metadata: dict[str, str] | None = None) -> None:
        super().__init__(message, reason=reason or "INVALID_ARGUMENT", metadata=metadata)
        self.violations = list(violations or [])

    @classmethod
    def single(cls, field_path: str, description: str, *, reason: str = "") -> InvalidArgument:
        """An error about exactly one field."""
        return cls(f"{field_path}: {description}", [FieldViolation(field_path, description)], reason=reason)


class NotFound(DomainError):
    """The thing asked for does not exist (or the caller may not know that it does)."""

    kind = "not_found"


class AlreadyExists(DomainError):
    """A create collided with something that already exists."""

    kind = "already_exists"


class PermissionDenied(DomainError):
    """The caller is known but may not do this."""

    kind = "permission_denied"


class Unauthenticated(DomainError):
    """The caller could not be identified: missing, malformed, expired or revoked credentials."""

    kind = "unauthenticated"


class FailedPrecondition(DomainError):
    """The system is not in a state that allows this (e.g. an illegal payment transition)."""

    kind = "failed_precondition"


class Conflict(DomainError):
    """A concurrent change or reused idempotency key with a different request; retrying as-is will not help."""

    kind = "aborted"


class ResourceExhausted(DomainError):
    """A quota or size limit was reached."""

    kind = "resource_exhausted"


class Unavailable(DomainError):
    """A dependency (bank, provider, storage) could not be reached in time; retrying later may help."""

    kind = "unavailable"


@dataclass
class ViolationCollector:
    """Collects every field violation of a request so the caller sees all of them at once."""

    violations: list[FieldViolation] = field(default_factory=list)

    def add(self, field_path: str, description: str) -> None:
        self.violations.append(FieldViolation(field_path, description))

    def raise_if_any(self, message: str = "the request has invalid fields") -> None:
        if self.violations:
            summary = "; ".join(f"{v.field}: {v.description}" for v in self.violations[:5])
            raise InvalidArgument(f"{message}: {summary}", self.violations)
