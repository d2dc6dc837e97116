"""Sessions, cookies, CSRF and the login flow of the pages, over a fake identity and wallet."""

from __future__ import annotations

import time
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlparse

import pytest
from cryptography.fernet import Fernet
from pages_fakes import CITIZEN_A, FakeIdentity, FakeWallet, csrf_of, log_in, wallet_app

from servicekit.settings import StartupError
from servicekit.web import site
from servicekit.web.sessions import MemorySessionStore
from servicekit.web.settings import WebSettings
from servicekit.web.sql_sessions import SessionCipher
from wallet_service.entrypoints.pages import session_cipher


def set_cookies(response: object) -> dict[str, SimpleCookie]:
    found = {}
    for header in response.headers.getlist("Set-Cookie"):  # type: ignore[attr-defined]
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(header)
        for name in cookie:
            found[name] = cookie
    return found


def session_cookie_header(response: object) -> str:
    return next(header for header in response.headers.getlist("Set-Cookie")  # type: ignore[attr-defined]
                if "dvc_session=" in header)


def test_the_session_cookie_is_http_only_lax_and_secure_unless_told_otherwise(wallet: FakeWallet,
                                                                               identity: FakeIdentity) -> None:
    secure = wallet_app(wallet, identity, cookie_secure="true").test_client()
    header = session_cookie_header(secure.get("/login"))
    assert header.startswith("__Host-dvc_session=")
    assert "Secure" in header and "HttpOnly" in header and "SameSite=Lax" in header and "Path=/" in header
    assert "Domain" not in header and "Max-Age" not in header

    # "auto": a public host over https (or behind TLS) gets a Secure cookie, plain http on loopback does not.
    auto = wallet_app(wallet, identity, cookie_secure="auto")
    public = session_cookie_header(auto.test_client().get("/login", base_url="https://wallet.dichvucong.test"))
    assert public.startswith("__Host-dvc_session=") and "Secure" in public
    local = session_cookie_header(auto.test_client().get("/login", base_url="http://127.0.0.1:8083"))
    assert local.startswith("dvc_session=") and "Secure" not in local and "HttpOnly" in local


def test_the_cookie_holds_only_an_opaque_id_and_login_rotates_it(wallet: FakeWallet, identity: FakeIdentity) -> None:
    store = MemorySessionStore()
    client = wallet_app(wallet, identity, sessions=store).test_client()
    start = client.get("/login?next=/wallet/")
    before = client.get_cookie("dvc_session")
    assert before is not None
    state = parse_qs(urlparse(start.headers["Location"]).query)["state"][0]
    client.get(f"/login/callback?state={state}&code={CITIZEN_A}")
    after = client.get_cookie("dvc_session")
    assert after is not None and after.value != before.value
    assert store.load(before.value) is None           # the pre-login id is dead: fixation is useless
    session = store.load(after.value)
    assert session is not None and session.data["user"]["subject"] == CITIZEN_A
    assert "access-" not in after.value and CITIZEN_A not in after.value  # tokens stay on the server


def test_a_callback_with_another_state_or_without_a_started_login_is_refused(wallet: FakeWallet,
                                                                             identity: FakeIdentity) -> None:
    client = wallet_app(wallet, identity).test_client()
    assert client.get(f"/login/callback?state=made-up&code={CITIZEN_A}").status_code == 400
    client.get("/login")
    forged = client.get(f"/login/callback?state=state-999&code={CITIZEN_A}")
    assert forged.status_code == 400
    assert client.get("/wallet/").status_code == 303  # still not logged in
    cancelled = client.get("/login/callback?error=access_denied&state=x")
    assert cancelled.status_code == 400 and "Đăng nhập đã bị hủy".encode() in cancelled.data


def test_login_asks_identity_for_a_wallet_token_and_comes_back_to_where_it_began(
        wallet: FakeWallet, identity: FakeIdentity) -> None:
    client = wallet_app(wallet, identity).test_client()
    first = client.get("/wallet/shares?all=1")
    assert first.status_code == 303 and first.headers["Location"] == "/login?next=/wallet/shares%3Fall%3D1"
    start = client.get(first.headers["Location"])
    assert identity.started == [("vneid", "http://localhost/login/callback", "dvc-wallet")]
    state = parse_qs(urlparse(start.headers["Location"]).query)["state"][0]
    back = client.get(f"/login/callback?state={state}&code={CITIZEN_A}")
    assert back.headers["Location"] == "/wallet/shares?all=1"


def test_a_next_address_off_the_site_is_never_followed(wallet: FakeWallet, identity: FakeIdentity) -> None:
    client = wallet_app(wallet, identity).test_client()
    for target in ("//evil.example/steal", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"):
        start = client.get("/login", query_string={"next": target})
        state = parse_qs(urlparse(start.headers["Location"]).query)["state"][0]
        back = client.get(f"/login/callback?state={state}&code={CITIZEN_A}")
        assert back.headers["Location"] == "/wallet/", target
        client.post("/logout", data={"csrf_token": csrf_of(client.get("/wallet/upload").get_data(as_text=True))})
    switched = client.get("/lang/en", query_string={"next": "//evil.example"})
    assert switched.headers["Location"] == "/"


def test_a_form_without_this_sessions_token_or_from_another_origin_is_refused(
        wallet: FakeWallet, identity: FakeIdentity) -> None:
    client = wallet_app(wallet, identity).test_client()
    log_in(client, CITIZEN_A)
    token = csrf_of(client.get("/wallet/upload").get_data(as_text=True))
    assert client.post("/logout").status_code == 400
    assert client.post("/logout", data={"csrf_token": token + "x"}).status_code == 400
    assert client.post("/logout", data={"csrf_token": token},
                       headers={"Origin": "https://evil.example"}).status_code == 400
    assert identity.logged_out == []
    other = wallet_app(wallet, identity).test_client()   # another browser's valid token is not this one's
    log_in(other, CITIZEN_A)
    assert client.post("/logout", data={"csrf_token": csrf_of(other.get("/wallet/upload").get_data(as_text=True))}
                       ).status_code == 400
    done = client.post("/logout", data={"csrf_token": token}, headers={"Origin": "http://localhost"})
    assert done.status_code == 303 and done.headers["Location"] == "/?logged_out=1"


def test_logout_ends_the_login_at_identity_and_here(wallet: FakeWallet, identity: FakeIdentity) -> None:
    store = MemorySessionStore()
    client = wallet_app(wallet, identity, sessions=store).test_client()
    log_in(client, CITIZEN_A)
    session_id = client.get_cookie("dvc_session").value  # type: ignore[union-attr]
    refresh = store.load(session_id).data["user"]["refresh_token"]  # type: ignore[union-attr]
    token = csrf_of(client.get("/wallet/upload").get_data(as_text=True))
    answer = client.post("/logout", data={"csrf_token": token})
    assert identity.logged_out == [refresh]
    assert store.load(session_id) is None
    assert 'dvc_session=;' in session_cookie_header(answer) or "Expires=Thu, 01 Jan 1970" in \
        session_cookie_header(answer)
    assert client.get("/wallet/").status_code == 303


def test_an_expiring_access_token_is_refreshed_once_and_a_refused_refresh_means_logging_in_again(
        wallet: FakeWallet) -> None:
    identity = FakeIdentity(access_seconds=10)   # within the refresh margin from the start
    client = wallet_app(wallet, identity).test_client()
    log_in(client, CITIZEN_A)
    assert client.get("/wallet/").status_code == 200
    assert len(identity.refreshed) == 1
    assert wallet.tokens_seen[-1].startswith(f"access-{CITIZEN_A}-")
    first_refresh = identity.refreshed[0]
    client.get("/wallet/")
    assert identity.refreshed[1] != first_refresh   # the rotated refresh token was kept, not the spent one
    identity.refuse_refresh = True
    again = client.get("/wallet/")
    assert again.status_code == 303 and again.headers["Location"].startswith("/login")


def test_a_request_that_changes_its_session_keeps_tokens_another_request_refreshed_meanwhile(
        wallet: FakeWallet, identity: FakeIdentity) -> None:
    store = MemorySessionStore()
    app = wallet_app(wallet, identity, sessions=store)
    refreshed = {"subject": CITIZEN_A, "name": "A", "level": 2, "access_token": f"access-{CITIZEN_A}-other",
                 "access_expires_at": time.time() + 900, "refresh_token": "refresh-from-another-replica"}

    # No wallet page keeps anything of its own in the session now; this stands in for one that does.
    @app.get("/test/remember")
    def remember() -> str:
        session = site.current_session()  # read before...
        assert session is not None
        elsewhere = store.load(session.session_id)  # ...another request (or replica) refreshes the tokens
        assert elsewhere is not None
        elsewhere.data["user"] = refreshed
        store.save(elsewhere)
        session.data["remembered"] = True
        site.save_session(session)
        return "ok"

    client = app.test_client()
    log_in(client, CITIZEN_A)
    cookie = client.get_cookie("dvc_session")
    assert cookie is not None
    assert client.get("/test/remember").status_code == 200
    stored = store.load(cookie.value)
    assert stored is not None and stored.data["remembered"]  # this request's change was written...
    assert stored.data["user"] == refreshed                   # ...and the other one's was not undone


def test_pages_say_no_store_and_forbid_framing_and_sniffing(wallet: FakeWallet, identity: FakeIdentity) -> None:
    client = wallet_app(wallet, identity).test_client()
    log_in(client, CITIZEN_A)
    page = client.get("/wallet/")
    assert page.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "same-origin"
    assert "<script>" not in page.get_data(as_text=True)   # no inline script for the policy to allow


def test_production_refuses_the_public_session_key_and_a_malformed_key_names_the_setting() -> None:
    with pytest.raises(StartupError) as missing:
        session_cipher(WebSettings(), production=True)
    assert "WALLET_WEB_SESSION_KEYS" in str(missing.value)
    with pytest.raises(StartupError) as malformed:
        session_cipher(WebSettings(web_session_keys="CHANGE-ME"), production=False)
    assert "WALLET_WEB_SESSION_KEYS" in str(malformed.value) and "32 bytes" in str(malformed.value)
    key = Fernet.generate_key().decode()
    assert session_cipher(WebSettings(web_session_keys=key), production=True).open(
        SessionCipher.from_setting(key).seal({"user": "x"})) == {"user": "x"}
