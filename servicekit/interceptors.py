"""Server interceptors: request ids and access logs, domain-error mapping, metrics, authentication."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import sqlalchemy.exc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from prometheus_client import Counter, Histogram

from servicekit import auth, errors
from servicekit.logs import request_id_var

log = logging.getLogger("dvc.rpc")

REQUEST_ID_HEADER = "x-request-id"
ERROR_DOMAIN = "dvc.gov.vn"

Behaviour = Callable[[Any, grpc.ServicerContext], Any]


def _wrap(handler: grpc.RpcMethodHandler, around: Callable[[Behaviour, bool], Behaviour]) -> grpc.RpcMethodHandler:
    """Rebuild ``handler`` with its behaviour wrapped; ``around`` learns whether the response streams."""
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(around(handler.unary_unary, False), handler.request_deserializer,
                                                   handler.response_serializer)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(around(handler.unary_stream, True),
                                                    handler.request_deserializer, handler.response_serializer)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(around(handler.stream_unary, False),
                                                    handler.request_deserializer, handler.response_serializer)
    return grpc.stream_stream_rpc_method_handler(around(handler.stream_stream, True), handler.request_deserializer,
                                                 handler.response_serializer)


def _split(method: str) -> tuple[str, str]:
    _, service, name = method.split("/", 2)
    return service, name


class _Interceptor(grpc.ServerInterceptor):
    """Wraps each RPC's behaviour with ``around(method, behaviour, streaming)``; infrastructure RPCs pass through."""

    def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
                          handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(("/grpc.health.", "/grpc.reflection.")):
            return handler
        return _wrap(handler, lambda behaviour, streaming: self.around(method, behaviour, streaming))

    def around(self, method: str, behaviour: Behaviour, streaming: bool) -> Behaviour:
        raise NotImplementedError


class _BeforeAfterInterceptor(_Interceptor):
    """An interceptor that does something before an RPC and something after it, streaming or not."""

    def before(self, method: str, context: grpc.ServicerContext) -> Any:
        raise NotImplementedError

    def after(self, method: str, context: grpc.ServicerContext, state: Any) -> None:
        raise NotImplementedError

    def around(self, method: str, behaviour: Behaviour, streaming: bool) -> Behaviour:
        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            state = self.before(method, context)
            try:
                return behaviour(request, context)
            finally:
                self.after(method, context, state)

        def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            state = self.before(method, context)
            try:
                yield from behaviour(request, context)
            finally:
                self.after(method, context, state)

        return stream if streaming else unary


def _code_name(context: grpc.ServicerContext) -> str:
    code = context.code() if hasattr(context, "code") else None
    return code.name if isinstance(code, grpc.StatusCode) else "OK"


def _metadata(context: grpc.ServicerContext) -> dict[str, str]:
    return {key: value for key, value in context.invocation_metadata() if isinstance(value, str)}


class RequestIdInterceptor(_BeforeAfterInterceptor):
    """Takes the caller's x-request-id (or makes one), returns it, and writes one JSON access-log line per RPC."""

    def before(self, method: str, context: grpc.ServicerContext) -> Any:
        request_id = _metadata(context).get(REQUEST_ID_HEADER) or uuid.uuid4().hex
        context.set_trailing_metadata(((REQUEST_ID_HEADER, request_id),))
        return request_id_var.set(request_id), time.perf_counter()

    def after(self, method: str, context: grpc.ServicerContext, state: Any) -> None:
        token, started = state
        if log.isEnabledFor(logging.INFO):
            log.info("rpc", extra={"method": method, "code": _code_name(context),
                                   "duration_ms": round((time.perf_counter() - started) * 1000, 2)})
        request_id_var.reset(token)


_KIND_TO_CODE = {
    "invalid_argument": code_pb2.INVALID_ARGUMENT,
    "not_found": code_pb2.NOT_FOUND,
    "already_exists": code_pb2.ALREADY_EXISTS,
    "permission_denied": code_pb2.PERMISSION_DENIED,
    "unauthenticated": code_pb2.UNAUTHENTICATED,
    "failed_precondition": code_pb2.FAILED_PRECONDITION,
    "aborted": code_pb2.ABORTED,
    "resource_exhausted": code_pb2.RESOURCE_EXHAUSTED,
    "unavailable": code_pb2.UNAVAILABLE,
}


def status_for(error: errors.DomainError) -> status_pb2.Status:
    """The google.rpc.Status for a domain error: code, message, ErrorInfo(reason) and BadRequest details."""
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata)
    details = [info]
    if isinstance(error, errors.InvalidArgument) and error.violations:
        details.append(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in error.violations]))
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    return status_pb2.Status(code=_KIND_TO_CODE.get(error.kind, code_pb2.INTERNAL), message=error.message,
                             details=packed)


def abort_with(context: grpc.ServicerContext, error: errors.DomainError) -> None:
    context.abort_with_status(rpc_status.to_status(status_for(error)))


class ErrorInterceptor(_Interceptor):
    """Turns DomainError into its gRPC status with rich details, and anything else into a logged INTERNAL
    that carries the request id, never a stack trace."""

    @staticmethod
    def _report(method: str, context: grpc.ServicerContext, exc: Exception) -> None:
        if isinstance(exc, errors.DomainError):
            abort_with(context, exc)
        if _already_aborted(exc, context):
            raise exc
        if isinstance(exc, sqlalchemy.exc.OperationalError):
            # Lost or refused database connections are transient: tell the caller to retry, not "internal".
            log.warning("database unavailable", extra={"method": method, "error": type(exc.orig).__name__})
            context.abort(grpc.StatusCode.UNAVAILABLE, "the database is temporarily unavailable; retry the call")
        log.exception("unhandled error", extra={"method": method})
        context.abort(grpc.StatusCode.INTERNAL, f"internal error; quote request id {request_id_var.get()} to support")

    def around(self, method: str, behaviour: Behaviour, streaming: bool) -> Behaviour:
        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                return behaviour(request, context)
            except Exception as exc:  # noqa: BLE001 - every failure becomes a status
                self._report(method, context, exc)

        def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            try:
                yield from behaviour(request, context)
            except Exception as exc:  # noqa: BLE001 - every failure becomes a status
                self._report(method, context, exc)

        return stream if streaming else unary


def _already_aborted(exc: Exception, context: grpc.ServicerContext) -> bool:
    # context.abort() records the status on the context and raises a bare Exception; pass it through untouched,
    # or the status the servicer chose would be replaced by INTERNAL.
    return type(exc) is Exception and _code_name(context) != "OK"


HANDLED = Counter("dvc_grpc_server_handled_total", "RPCs completed, by method and status code",
                  ["grpc_service", "grpc_method", "grpc_code"])
LATENCY = Histogram("dvc_grpc_server_handling_seconds", "RPC handling time, by method and status code",
                    ["grpc_service", "grpc_method", "grpc_code"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))


class MetricsInterceptor(_BeforeAfterInterceptor):
    """Per-RPC counters and latency histograms, labelled by the final status code."""

    def before(self, method: str, context: grpc.ServicerContext) -> Any:
        return time.perf_counter()

    def after(self, method: str, context: grpc.ServicerContext, state: Any) -> None:
        service, name = _split(method)
        label = _code_name(context)
        HANDLED.labels(service, name, label).inc()
        LATENCY.labels(service, name, label).observe(time.perf_counter() - state)


class AuthInterceptor(_BeforeAfterInterceptor):
    """Verifies the bearer token of every RPC except the listed public ones and exposes the caller through
    ``servicekit.auth.current_principal()``; a public RPC still sees the caller when a token is sent."""

    def __init__(self, verifier: auth.TokenVerifier | None, public_methods: frozenset[str] = frozenset()) -> None:
        self._verifier = verifier
        self._public = public_methods

    def _authenticate(self, method: str, context: grpc.ServicerContext) -> auth.Principal | None:
        header = _metadata(context).get("authorization", "")
        if not header:
            if method in self._public or _split(method)[1] in self._public:
                return None
            raise errors.Unauthenticated("this call needs an access token: send 'authorization: Bearer <token>'",
                                         reason="MISSING_TOKEN")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise errors.Unauthenticated("the authorization header must be 'Bearer <token>'",
                                         reason="MALFORMED_AUTHORIZATION")
        if self._verifier is None:
            raise errors.Unauthenticated("this server verifies no tokens", reason="NO_VERIFIER")
        return self._verifier.verify(token.strip())

    def before(self, method: str, context: grpc.ServicerContext) -> Any:
        return auth.set_principal(self._authenticate(method, context))

    def after(self, method: str, context: grpc.ServicerContext, state: Any) -> None:
        auth.reset_principal(state)


def standard_interceptors(verifier: auth.TokenVerifier | None,
                          public_methods: frozenset[str] = frozenset()) -> list[grpc.ServerInterceptor]:
    """The platform's chain, outermost first: request id/log, metrics, error mapping, then authentication
    (inside error mapping so a refused token becomes UNAUTHENTICATED with its reason)."""
    return [RequestIdInterceptor(), MetricsInterceptor(), ErrorInterceptor(), AuthInterceptor(verifier, public_methods)]
