"""Run a server under test in its own process, so the load generator does not share its interpreter lock."""

from __future__ import annotations

import importlib
import multiprocessing
import multiprocessing.connection
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from servicekit.config import ServiceSettings
from servicekit.logs import configure_discarded_logging


def _child(target: str, kwargs: dict[str, Any], pipe: multiprocessing.connection.Connection) -> None:
    configure_discarded_logging()
    module_name, _, function_name = target.partition(":")
    started = getattr(importlib.import_module(module_name), function_name)(**kwargs)
    pipe.send(started.info if hasattr(started, "info") else started["info"])
    pipe.recv()  # any message means stop
    (started.stop if hasattr(started, "stop") else started["stop"])()
    pipe.send("stopped")


@contextmanager
def server_process(target: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Start ``module:function(**kwargs)`` in a child; it returns an object with ``info`` (a dict) and ``stop()``."""
    context = multiprocessing.get_context("spawn")
    parent_end, child_end = context.Pipe()
    process = context.Process(target=_child, args=(target, kwargs, child_end), daemon=True)
    process.start()
    if not parent_end.poll(120):
        process.kill()
        raise RuntimeError(f"{target} did not start within 120 s")
    info = parent_end.recv()
    try:
        yield info
    finally:
        parent_end.send("stop")
        parent_end.poll(30)
        process.join(timeout=30)
        if process.is_alive():
            process.kill()


def start_echo_stack() -> dict[str, Any]:
    """The bare echo on the platform's server stack: same builder, same interceptor chain, no work."""
    from servicekit.echo import echo_registration
    from servicekit.grpc_server import start_server
    from servicekit.interceptors import standard_interceptors

    # The platform's default worker count, as the identity and payment benchmarks run with.
    running = start_server([echo_registration()], interceptors=standard_interceptors(None, frozenset({"Echo"})),
                           max_workers=ServiceSettings().grpc_workers)
    return {"info": {"grpc_port": running.port}, "stop": lambda: running.drain(1)}
