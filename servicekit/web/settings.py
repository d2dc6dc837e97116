"""Settings of the pages a service serves (mixed into its settings class, so they share its prefix)."""

from __future__ import annotations

from dataclasses import dataclass

from servicekit.settings import setting

COOKIE_SECURE_CHOICES = ("auto", "true", "false")


@dataclass(frozen=True)
class WebSettings:
    """Pages, sessions and login; every default works for `make run` and is safe in production."""

    web_public_url: str = setting("", "public https address of the pages (login callback URL); empty derives it "
                                      "from each request's host (development)")
    web_cookie_secure: str = setting("auto", "Secure flag of the session cookie: true, false (only for http:// "
                                             "development), or auto = Secure unless the page was reached over "
                                             "plain http on a loopback address")
    web_session_idle_seconds: int = setting(1800, "a web session ends after this long without a request")
    web_session_max_seconds: int = setting(12 * 3600, "a web session ends this long after login, whatever happens")
    web_session_keys: str = setting("", "comma-separated Fernet keys (URL-safe base64 of 32 bytes) that encrypt "
                                        "web session data at rest, newest first (older ones still read during a "
                                        "rotation); empty uses a public development key, refused in production",
                                    secret=True)
    web_identity_target: str = setting("127.0.0.1:7051", "identity gRPC address the pages log people in through")
    web_login_provider: str = setting("vneid", "identity provider id citizens log in with")
    web_grpc_target: str = setting("", "gRPC address of this service that the pages call; empty means this "
                                       "process (127.0.0.1:<grpc_port>), which needs a fixed gRPC port")
    web_rpc_timeout_seconds: float = setting(10.0, "timeout of each gRPC call a page makes (uploads and "
                                                   "downloads get six times as long)")
