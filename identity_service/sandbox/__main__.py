"""`python -m identity_service.sandbox [--provider vneid|agency] [--port 8091]`: run a sandbox OIDC provider."""

from __future__ import annotations

import argparse
import sys

from identity_service.sandbox.accounts import PROVIDER_AGENCY, PROVIDER_VNEID
from identity_service.sandbox.app import create_app
from servicekit.grpc_server import wait_for_termination
from servicekit.http_edge import start_http
from servicekit.logs import configure_logging
from servicekit.settings import StartupError

DEFAULT_PORTS = {PROVIDER_VNEID: 8091, PROVIDER_AGENCY: 8092}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m identity_service.sandbox", description=__doc__)
    parser.add_argument("--provider", choices=sorted(DEFAULT_PORTS), default=PROVIDER_VNEID)
    parser.add_argument("--port", type=int, default=None, help="listen port (default 8091 vneid, 8092 agency)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--issuer", default="", help="issuer URL (default http://<host>:<port>)")
    args = parser.parse_args(argv)
    port = DEFAULT_PORTS[args.provider] if args.port is None else args.port
    configure_logging("INFO")
    issuer = args.issuer or (f"http://{args.host}:{port}" if port else None)
    try:
        running = start_http(create_app(args.provider, issuer=issuer), host=args.host, port=port,
                             port_setting="--port", name=f"sandbox-{args.provider}")
    except StartupError as error:
        print(f"sandbox {args.provider}: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"sandbox {args.provider} OIDC provider at {issuer or running.url}", flush=True)
    wait_for_termination([running.stop])


if __name__ == "__main__":
    main()
