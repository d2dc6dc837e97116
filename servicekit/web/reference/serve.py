"""Serves the built reference under /docs/ in the visitor's language, building it on first use when the build
is missing or older than its sources (a container image ships the build it was made with)."""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path

from flask import Blueprint, Response, abort, redirect
from flask.typing import ResponseReturnValue

from servicekit.web import site
from servicekit.web.reference import build

log = logging.getLogger("dvc.web.reference")
_PAGE = re.compile(r"[a-z0-9-]{1,80}")


class ReferenceFiles:
    """The built pages in one directory, checked (and rebuilt if stale) once per process."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or build.DEFAULT_OUT
        self._lock = threading.Lock()
        self._checked = False
        self.problem = ""

    def ready(self) -> bool:
        with self._lock:
            if not self._checked:
                self._checked = True
                try:
                    if not build.is_current(self.directory):
                        build.build(self.directory)
                except Exception as exc:  # the rest of the edge serves on; /docs/ says why
                    self.problem = f"{type(exc).__name__}: {exc}"
                    log.exception("the reference could not be built")
            return (self.directory / build.STAMP).exists()

    def page(self, language: str, slug: str) -> Path | None:
        path = self.directory / language / f"{slug}.html"
        return path if path.is_file() else None


def reference_blueprint(directory: Path | None = None) -> Blueprint:
    files = ReferenceFiles(directory)
    blueprint = Blueprint("reference", __name__)

    @blueprint.get("/docs")
    def docs_root() -> ResponseReturnValue:
        return redirect("/docs/", code=301)

    @blueprint.get("/docs/")
    @blueprint.get("/docs/<slug>.html")
    def page(slug: str = "index") -> ResponseReturnValue:
        if not _PAGE.fullmatch(slug):
            abort(404)
        if not files.ready():
            return site.error_page(503, site.translate("The reference is not available"),
                                   site.translate("It has not been built on this server."))
        path = files.page(site.language(), slug)
        if path is None:
            return site.error_page(404, site.translate("Page not found"))
        response = Response(path.read_bytes(), mimetype="text/html")
        # The language comes from a cookie, so caches must keep one copy per cookie value (or none).
        response.headers["Cache-Control"] = "private, max-age=300"
        response.headers["Vary"] = "Cookie"
        return response

    return blueprint
