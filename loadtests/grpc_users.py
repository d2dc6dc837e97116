"""Locust plumbing for gRPC: gevent-friendly channels whose client interceptor fires Locust request events, a
timer that reports plain HTTP steps (sandbox pages, the VNeID authorize form) the same way, and the wrapper that
runs a flow so that none fails without Locust counting it."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from loadtests import slo

if TYPE_CHECKING:  # importing locust monkey-patches the interpreter: only the locustfile does it for real
    from locust.env import Environment

T = TypeVar("T")
_gevent_ready = False
# Set while the load process sets itself up (registers its clients and agencies, warms every service's key
# caches): those requests are reported under slo.SETUP_PREFIX.
_name_prefix = ""


@contextmanager
def reported_as_setup() -> Iterator[None]:
    """Report the requests made inside this block under SETUP_PREFIX (set-up runs before any user starts)."""
    global _name_prefix
    _name_prefix = slo.SETUP_PREFIX
    try:
        yield
    finally:
        _name_prefix = ""


def init_gevent() -> None:
    """Make grpc cooperate with gevent's monkey-patched sockets; must run before the first channel is made."""
    global _gevent_ready
    if not _gevent_ready:
        from grpc.experimental import gevent as grpc_gevent

        grpc_gevent.init_gevent()
        _gevent_ready = True


class RpcFailure(Exception):
    """A failed RPC as Locust's failure table shows it: the status code first, so failures group by code."""

    def __init__(self, error: grpc.RpcError) -> None:
        code = error.code() if isinstance(error, grpc.Call) else None
        details = error.details() if isinstance(error, grpc.Call) else str(error)
        self.code = code.name if code is not None else "UNKNOWN"
        super().__init__(f"{self.code}: {details}")


def rpc_name(method: str) -> str:
    """'/dvc.payments.v1.PaymentService/CreatePayment' -> 'PaymentService/CreatePayment'."""
    service, _, rpc = method.strip("/").rpartition("/")
    return f"{_name_prefix}{service.rpartition('.')[2]}/{rpc}"


class LocustInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.StreamUnaryClientInterceptor,
                        grpc.UnaryStreamClientInterceptor):
    """Fires one Locust `request` event per RPC: name = service/RPC, time until the (last) response message,
    exception = RpcFailure carrying the status code. Server streams are timed until the caller drains them."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment

    def _fire(self, method: str, started: float, length: int, error: grpc.RpcError | None) -> None:
        self.environment.events.request.fire(
            request_type="grpc", name=rpc_name(method), response_time=(time.perf_counter() - started) * 1000,
            response_length=length, exception=RpcFailure(error) if error is not None else None, context={})

    def _unary_response(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        started = time.perf_counter()
        call = continuation(details, request)
        try:
            length = call.result().ByteSize()
        except grpc.RpcError as error:
            self._fire(details.method, started, 0, error)
        else:
            self._fire(details.method, started, length, None)
        return call

    def intercept_unary_unary(self, continuation: Callable[..., Any], client_call_details: Any,
                              request: Any) -> Any:
        return self._unary_response(continuation, client_call_details, request)

    def intercept_stream_unary(self, continuation: Callable[..., Any], client_call_details: Any,
                               request_iterator: Any) -> Any:
        return self._unary_response(continuation, client_call_details, request_iterator)

    def intercept_unary_stream(self, continuation: Callable[..., Any], client_call_details: Any,
                               request: Any) -> Any:
        started = time.perf_counter()
        call = continuation(client_call_details, request)
        method = client_call_details.method

        def drained() -> Iterator[Any]:
            length = 0
            try:
                for message in call:
                    length += message.ByteSize()
                    yield message
            except grpc.RpcError as error:
                self._fire(method, started, length, error)
                raise
            self._fire(method, started, length, None)

        return drained()


def instrumented_channel(target: str, environment: Environment) -> grpc.Channel:
    """An insecure channel to ``target`` (host:port) reporting every RPC to Locust."""
    init_gevent()
    channel = grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", 32 * 1024 * 1024),
                                                     ("grpc.keepalive_time_ms", 30_000)])
    return grpc.intercept_channel(channel, LocustInterceptor(environment))


class Reported(Exception):
    """A step's failure that `timed` already reported to Locust as a failed request; the flow stops on it."""


def already_reported(error: BaseException) -> bool:
    """Whether Locust already counted ``error`` as a failed request: a gRPC error (the interceptor reports every
    RPC of an instrumented channel) or a failed HTTP step (`timed`)."""
    return isinstance(error, grpc.RpcError | Reported)


def timed(environment: Environment, kind: str, name: str, step: Callable[[], T]) -> T:
    """Run ``step`` (an HTTP call) and report it to Locust as ``kind`` ``name``; a failure is reported and raised
    as `Reported` so the flow stops where a real client would, and is not reported a second time."""
    started = time.perf_counter()
    name = _name_prefix + name
    try:
        result = step()
    except Exception as error:
        environment.events.request.fire(request_type=kind, name=name,
                                        response_time=(time.perf_counter() - started) * 1000, response_length=0,
                                        exception=error, context={})
        raise Reported(f"{name}: {error}") from error
    environment.events.request.fire(request_type=kind, name=name,
                                    response_time=(time.perf_counter() - started) * 1000, response_length=0,
                                    exception=None, context={})
    return result


def run_flow(environment: Environment, name: str, flow: Callable[[], None], started: Counter[str],
             completed: Counter[str]) -> None:
    """Run one flow, counted in ``started`` and, when it returns, in ``completed`` (the run compares the two). A
    failure no step reported -- the platform answered, but not what the load expects -- is reported here as a
    failed `slo.FLOW_KIND` request, so no flow fails without Locust counting it; either way the next flow goes
    on."""
    began = time.perf_counter()
    started[name] += 1
    try:
        flow()
    except Exception as error:  # noqa: BLE001 - reported (here or by its step); a user keeps starting flows
        if not already_reported(error):
            environment.events.request.fire(request_type=slo.FLOW_KIND, name=name,
                                            response_time=(time.perf_counter() - began) * 1000, response_length=0,
                                            exception=error, context={})
        return
    completed[name] += 1
