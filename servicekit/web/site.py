"""Installs the page machinery on a service's Flask app: templates and languages, locally served assets, the
server-side session cookie, CSRF checks for page blueprints, security headers and error pages."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, abort, current_app, g, make_response, redirect, render_template, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from servicekit.logs import request_id_var
from servicekit.web import formatting
from servicekit.web.i18n import LANGUAGE_NAMES, LANGUAGES, Catalog, pick_language
from servicekit.web.messages import VI as WEB_MESSAGES
from servicekit.web.sessions import SessionStore, WebSession, changes_since, data_snapshot
from servicekit.web.static_assets import STATIC_DIR, asset_versions

log = logging.getLogger("dvc.web")

EXTENSION = "dvc_web"
LANGUAGE_COOKIE = "dvc_lang"
SESSION_COOKIE = "dvc_session"
# The __Host- prefix makes browsers refuse the cookie unless it is Secure, host-only and for path /.
SECURE_SESSION_COOKIE = "__Host-dvc_session"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                           "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
ASSET_MAX_AGE_SECONDS = 7 * 24 * 3600
LANGUAGE_COOKIE_SECONDS = 365 * 24 * 3600


@dataclass
class WebKit:
    """The machinery installed on one app (``app.extensions['dvc_web']``)."""

    catalog: Catalog
    sessions: SessionStore | None
    cookie_secure: str = "auto"
    asset_versions: dict[str, str] = field(default_factory=dict)
    clock: Callable[[], float] = time.time
    login: Any = None  # the login blueprint's settings, when the app logs people in


def kit() -> WebKit:
    found: WebKit = current_app.extensions[EXTENSION]
    return found


# --- language -----------------------------------------------------------------------------------------------


def language() -> str:
    if "web_language" not in g:
        g.web_language = pick_language(request.cookies.get(LANGUAGE_COOKIE))
    chosen: str = g.web_language
    return chosen


def translate(message: str, **values: Any) -> str:
    """``message`` in the visitor's language, with ``%(name)s`` placeholders filled from ``values``."""
    text = kit().catalog.translate(language(), message)
    return text % values if values else text


def safe_next(target: str | None, default: str = "/") -> str:
    """A local path to go back to; anything that could leave the site (//host, schemes, backslashes) is refused."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


# --- sessions -----------------------------------------------------------------------------------------------


def secure_request() -> bool:
    """Whether cookies of this response must be Secure (see the web_cookie_secure setting)."""
    choice = kit().cookie_secure
    if choice in ("true", "false"):
        return choice == "true"
    host = (request.host or "").rsplit(":", 1)[0].strip("[]")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    return not (request.scheme == "http" and loopback)


def session_cookie_name() -> str:
    return SECURE_SESSION_COOKIE if secure_request() else SESSION_COOKIE


def current_session(*, create: bool = False) -> WebSession | None:
    """This browser's session (loaded once per request); with ``create``, a new empty one if it has none."""
    store = kit().sessions
    if store is None:
        raise RuntimeError("this app was set up without a session store")
    if "web_session" not in g:
        session_id = request.cookies.get(session_cookie_name(), "")
        g.web_session = store.load(session_id) if session_id else None
        if g.web_session is not None:
            g.web_session_loaded = (g.web_session.session_id, data_snapshot(g.web_session.data))
    session: WebSession | None = g.web_session
    if session is None and create:
        session = WebSession.fresh(kit().clock())
        save_session(session)
    return session


def save_session(session: WebSession) -> None:
    """Keep ``session`` (written to the store and the cookie when the response goes out)."""
    g.web_session = session
    g.web_session_dirty = True


def rotate_session() -> WebSession:
    """A new id and CSRF token for the current data (at login: defeats session fixation)."""
    old = current_session(create=True)
    assert old is not None
    rotated = old.rotated(kit().clock())
    end_session()
    save_session(rotated)
    return rotated


def end_session() -> None:
    session = g.get("web_session")
    store = kit().sessions
    if session is not None and store is not None:
        store.delete(session.session_id)
    g.web_session = None
    g.web_session_dirty = False
    g.web_session_ended = True


def csrf_token() -> str:
    """The session's CSRF token, for a hidden field of every form (the session is made if there is none)."""
    session = current_session(create=True)
    assert session is not None
    return session.csrf_token


def _write_session_cookie(response: Response) -> None:
    store = kit().sessions
    if store is None:
        return
    session: WebSession | None = g.get("web_session")
    name = session_cookie_name()
    if g.get("web_session_dirty") and session is not None:
        loaded_id, snapshot = g.get("web_session_loaded", ("", {}))
        if loaded_id == session.session_id:
            store.merge(session, *changes_since(snapshot, session.data))  # only what this request changed
        else:
            store.save(session)  # a new or rotated session: nothing stored to merge with
        # No Max-Age: the cookie ends with the browser; the store enforces idle and absolute lifetimes.
        response.set_cookie(name, session.session_id, path="/", secure=secure_request(), httponly=True,
                            samesite="Lax")
    elif g.get("web_session_ended"):
        response.delete_cookie(name, path="/", secure=secure_request(), httponly=True, samesite="Lax")


# --- CSRF and page blueprints ---------------------------------------------------------------------------------


def _same_origin(origin: str) -> bool:
    parts = urlsplit(origin)
    return bool(parts.netloc) and parts.netloc == request.host


def check_csrf() -> None:
    """Refuse (400) a state-changing request without this session's CSRF token or from another origin."""
    if request.method not in UNSAFE_METHODS:
        return
    origin = request.headers.get("Origin", "")
    if origin and not _same_origin(origin):
        abort(400, description=translate("This form was sent from another site and was refused."))
    session = current_session()
    sent = request.form.get("csrf_token", "") or request.headers.get("X-CSRF-Token", "")
    if session is None or not sent or not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
        abort(400, description=translate("The form has expired or was not sent from this site. "
                                         "Go back, reload the page and try again."))


def render_page(template: str, status: int = 200, **context: Any) -> Response:
    response = make_response(render_template(template, **context), status)
    # Pages carry personal data or a live status: never stored by browsers or proxies.
    response.headers["Cache-Control"] = "no-store"
    return response


def error_page(status: int, title: str, detail: str = "") -> Response:
    return render_page("web/error.html", status, status_code=status, title=title, detail=detail)


_ERROR_TITLES = {400: "The request could not be accepted", 401: "Please log in", 403: "Not allowed",
                 404: "Page not found", 405: "Not allowed", 409: "This cannot be done now",
                 413: "The file is too large", 429: "Too many requests", 503: "Temporarily unavailable"}


def _http_error(error: HTTPException) -> ResponseReturnValue:
    status = error.code or 500
    default_description = type(error).description
    detail = error.description if error.description and error.description != default_description else ""
    return error_page(status, translate(_ERROR_TITLES.get(status, "Something went wrong")), detail)


def _unexpected(error: Exception) -> ResponseReturnValue:
    log.exception("page failed", extra={"path": request.path})
    reference = request_id_var.get() or ""
    detail = translate("Please try again later. If it happens again, quote this code to support: %(code)s",
                       code=reference) if reference else translate("Please try again later.")
    return error_page(500, translate("Something went wrong"), detail)


def page_blueprint(name: str, import_name: str, **options: Any) -> Blueprint:
    """A blueprint of pages: CSRF-checked, with HTML error pages (never a stack trace)."""
    blueprint = Blueprint(name, import_name, **options)
    blueprint.before_request(check_csrf)
    blueprint.register_error_handler(HTTPException, _http_error)
    blueprint.register_error_handler(Exception, _unexpected)
    return blueprint


# --- assets, headers and installation -----------------------------------------------------------------------


def asset_url(filename: str) -> str:
    """URL of a local asset with its content hash, so browsers may cache it for a week."""
    version = kit().asset_versions.get(filename, "")
    return f"/assets/{filename}?v={version}" if version else f"/assets/{filename}"


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    # Payment references and share ids are in our URLs: never hand them to the sites people go on to.
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if response.mimetype == "text/html":
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Frame-Options", "DENY")
    return response


def _web_blueprint() -> Blueprint:
    blueprint = Blueprint("web", __name__, template_folder=str(TEMPLATE_DIR))

    @blueprint.get("/assets/<path:filename>")
    def asset(filename: str) -> ResponseReturnValue:
        from flask import send_from_directory

        if filename not in kit().asset_versions:
            abort(404)
        return send_from_directory(STATIC_DIR, filename, max_age=ASSET_MAX_AGE_SECONDS)

    @blueprint.get("/lang/<code>")
    def switch_language(code: str) -> ResponseReturnValue:
        if code not in LANGUAGES:
            abort(404)
        response = redirect(safe_next(request.args.get("next")), code=303)
        response.set_cookie(LANGUAGE_COOKIE, code, max_age=LANGUAGE_COOKIE_SECONDS, path="/",
                            secure=secure_request(), httponly=True, samesite="Lax")
        return response

    return blueprint


def _language_switch_url(code: str) -> str:
    here = request.full_path.rstrip("?") if request.query_string else request.path
    from urllib.parse import quote

    return f"/lang/{code}?next={quote(here, safe='/')}"


def init_web(app: Flask, *, translations: Sequence[Mapping[str, str]] = (), sessions: SessionStore | None = None,
             cookie_secure: str = "auto") -> WebKit:
    """Set up ``app`` for pages; ``translations`` are the Vietnamese tables of the page packages it serves."""
    if cookie_secure not in ("auto", "true", "false"):
        raise ValueError("cookie_secure is auto, true or false")
    web = WebKit(catalog=Catalog(WEB_MESSAGES, *translations), sessions=sessions, cookie_secure=cookie_secure,
                 asset_versions=asset_versions())
    app.extensions[EXTENSION] = web
    app.config.setdefault("MAX_CONTENT_LENGTH", 21 * 1024 * 1024)  # a 20 MB scan plus the form around it
    app.register_blueprint(_web_blueprint())
    environment = app.jinja_env
    environment.add_extension("jinja2.ext.i18n")
    environment.install_gettext_callables(  # type: ignore[attr-defined]
        lambda message: kit().catalog.translate(language(), message),
        lambda singular, plural, count: kit().catalog.translate(language(), singular if count == 1 else plural),
        newstyle=True)
    environment.globals.update(csrf_token=csrf_token, asset_url=asset_url, language=language,
                               language_names=LANGUAGE_NAMES, language_switch_url=_language_switch_url)
    environment.filters.update(
        money=lambda amount: formatting.money(int(amount), language()),
        number=lambda value: formatting.number(int(value), language()),
        date=lambda moment: formatting.date_text(moment, language()),
        datetime=lambda moment: formatting.datetime_text(moment, language()),
        iso=formatting.iso_local, size=lambda value: formatting.size_text(int(value), language()),
        masked=formatting.masked_id)

    @app.after_request
    def finish(response: Response) -> Response:
        if EXTENSION in current_app.extensions and ("web_session" in g or g.get("web_session_ended")):
            _write_session_cookie(response)
        return _security_headers(response)

    return web
