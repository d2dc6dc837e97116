"""Run a Flask HTTP edge (or any WSGI app) in a background thread, with port 0 support for tests."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

from servicekit.settings import StartupError


@dataclass
class RunningHttp:
    """A WSGI server serving in a thread; ``url`` is its base address."""

    server: BaseWSGIServer
    thread: threading.Thread
    port: int
    host: str

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)


def start_http(app: Any, *, host: str = "127.0.0.1", port: int = 0, port_setting: str = "HTTP_PORT",
               name: str = "http") -> RunningHttp:
    """Serve ``app`` with a threaded WSGI server; a port in use stops start-up naming the setting."""
    try:
        server = make_server(host, port, app, threaded=True)
    except OSError as exc:
        raise StartupError(port_setting, f"cannot listen for HTTP on {host}:{port} ({exc.strerror})") from None
    server.daemon_threads = True  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    return RunningHttp(server=server, thread=thread, port=server.server_port, host=host)
