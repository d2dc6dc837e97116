"""A failed gRPC call as pages see it: status, the platform's reason code, and the bad fields to point at."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409, grpc.StatusCode.ABORTED: 409, grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429, grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 503,
}


@dataclass
class CallFailed(Exception):
    """What a service answered instead of a result."""

    code: grpc.StatusCode
    reason: str = ""
    message: str = ""
    violations: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.code.name} {self.reason}: {self.message}"

    @property
    def http_status(self) -> int:
        return _HTTP_STATUS.get(self.code, 502)

    def field_errors(self) -> dict[str, str]:
        """Bad fields by their top-level name (``document_ids[2]`` counts as ``document_ids``)."""
        errors: dict[str, str] = {}
        for path, description in self.violations:
            name = path.split("[", 1)[0].split(".", 1)[0]
            errors.setdefault(name, description)
        return errors


def call_failed(error: grpc.RpcError) -> CallFailed:
    """Read the rich status (ErrorInfo reason, BadRequest violations) out of a failed call."""
    code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
    message = error.details() if isinstance(error, grpc.Call) else str(error)
    reason = ""
    violations: list[tuple[str, str]] = []
    status = rpc_status.from_call(error) if isinstance(error, grpc.Call) else None
    for detail in status.details if status is not None else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations.extend((item.field, item.description) for item in bad.field_violations)
    return CallFailed(code=code or grpc.StatusCode.UNKNOWN, reason=reason, message=message or "",
                      violations=violations)
