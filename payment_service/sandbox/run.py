"""Start every bank and intermediary sandbox together (`python -m payment_service.sandbox`) for `make run` and
load tests, each on its own port, sharing one set of misbehaviour settings given on the command line."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flask import Flask

from payment_service.sandbox import catalog, momo, napas, nganluong, payoo, portal_bank, vnpay
from payment_service.sandbox.common import SandboxSettings, sandbox_of
from servicekit.http_edge import RunningHttp, start_http
from servicekit.logs import configure_logging

log = logging.getLogger("dvc.sandbox")

AppFactory = Callable[..., Flask]


def factories() -> dict[str, AppFactory]:
    """Each sandbox's app factory by connector code (the portal banks share one)."""
    chosen: dict[str, AppFactory] = {"vnpay": vnpay.create_app, "momo": momo.create_app, "payoo": payoo.create_app,
                                     "nganluong": nganluong.create_app, "vietqr": napas.create_app}
    for code in catalog.PORTAL_BANKS:
        chosen[code] = lambda code=code, **kwargs: portal_bank.create_app(code, **kwargs)
    return chosen


def build_app(code: str, *, notify_url_base: str = catalog.DEFAULT_NOTIFY_URL_BASE,
              settings: SandboxSettings | None = None, public_url: str = "") -> Flask:
    """The sandbox app of connector ``code``, calling back to ``<notify_url_base>/<code>``."""
    return factories()[code](notify_url=f"{notify_url_base.rstrip('/')}/{code}", settings=settings,
                             public_url=public_url)


@dataclass
class RunningSandboxes:
    """The sandboxes started by `start_all`: their apps and servers by code."""

    apps: dict[str, Flask]
    servers: dict[str, RunningHttp]

    def urls(self) -> dict[str, str]:
        return {code: server.url for code, server in self.servers.items()}

    def stop(self) -> None:
        # In parallel: each server takes up to its poll interval (0.5 s) to notice the shutdown.
        stoppers = [threading.Thread(target=server.stop) for server in self.servers.values()]
        for stopper in stoppers:
            stopper.start()
        for code in self.servers:
            sandbox_of(self.apps[code]).stop()
        for stopper in stoppers:
            stopper.join()


def start_all(*, host: str = "127.0.0.1", ports: Mapping[str, int] | None = None,
              notify_url_base: str = catalog.DEFAULT_NOTIFY_URL_BASE, settings: dict[str, Any] | None = None,
              only: Sequence[str] = (), public_host: str = "") -> RunningSandboxes:
    """Serve the chosen sandboxes (all by default) on their ports (0 picks free ones); each gets its own copy of
    ``settings`` so one can later be changed through its /sandbox/settings without touching the others."""
    port_of = {**catalog.SANDBOX_PORTS, **(ports or {})}
    codes = list(only) or list(catalog.SANDBOX_PORTS)
    apps: dict[str, Flask] = {}
    servers: dict[str, RunningHttp] = {}
    try:
        # vnpay (port 8101) last: `make run` takes its port answering as "all sandboxes are up".
        for code in sorted(codes, key=lambda name: name == "vnpay"):
            sandbox_settings = SandboxSettings()
            sandbox_settings.update(settings or {})
            public = f"http://{public_host}:{port_of[code]}" if public_host and port_of[code] else ""
            apps[code] = build_app(code, notify_url_base=notify_url_base, settings=sandbox_settings,
                                   public_url=public)
            servers[code] = start_http(apps[code], host=host, port=port_of[code], port_setting=f"--port {code}=",
                                       name=f"sandbox-{code}")
    except Exception:
        RunningSandboxes(apps, servers).stop()
        raise
    return RunningSandboxes(apps, servers)


def _port(text: str) -> tuple[str, int]:
    code, _, port = text.partition("=")
    if code not in catalog.SANDBOX_PORTS or not port.isdigit():
        raise argparse.ArgumentTypeError(f"use NAME=PORT with NAME one of {', '.join(catalog.SANDBOX_PORTS)}")
    return code, int(port)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m payment_service.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--public-host", default="", help="host name in payer URLs (default: the request's host)")
    parser.add_argument("--port", action="append", type=_port, default=[], metavar="NAME=PORT",
                        help="override one sandbox's port (defaults: " +
                             ", ".join(f"{k} {v}" for k, v in catalog.SANDBOX_PORTS.items()) + ")")
    parser.add_argument("--only", default="", help="comma-separated sandboxes to start (default: all)")
    parser.add_argument("--notify-url-base", default=catalog.DEFAULT_NOTIFY_URL_BASE,
                        help="the payment service's callback routes; each sandbox calls <base>/<name>")
    defaults = SandboxSettings()
    for spec in dataclasses.fields(SandboxSettings):
        value = getattr(defaults, spec.name)
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            parser.add_argument(f"--{spec.name.replace('_', '-')}", type=type(value), default=None,
                                help=f"sandbox setting (default {value})")
    parser.add_argument("--seed", type=int, default=None, help="seed of the misbehaviour rates' random draws")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    settings = {spec.name: getattr(args, spec.name) for spec in dataclasses.fields(SandboxSettings)
                if getattr(args, spec.name, None) is not None}
    only = [code.strip() for code in args.only.split(",") if code.strip()]
    unknown = [code for code in only if code not in catalog.SANDBOX_PORTS]
    if unknown:
        parser.error(f"unknown sandbox {', '.join(unknown)}")
    running = start_all(host=args.host, ports=dict(args.port), notify_url_base=args.notify_url_base,
                        settings=settings, only=only, public_host=args.public_host)
    for code, url in running.urls().items():
        log.info("sandbox %s listening on %s", code, url)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    running.stop()
