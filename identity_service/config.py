"""Identity's settings (IDENTITY_ prefix), with defaults that run with zero configuration in development."""

from __future__ import annotations

from dataclasses import dataclass

from identity_service.adapters.crypto import DEV_KEY_ENCRYPTION_KEY, MIN_KEY_ENCRYPTION_KEY_LENGTH
from identity_service.domain.claims import MAX_ACCESS_TOKEN_SECONDS
from servicekit.config import ServiceSettings
from servicekit.settings import DEVELOPMENT, PRODUCTION, StartupError, env_name, is_production, setting

PREFIX = "IDENTITY"


@dataclass(frozen=True)
class IdentitySettings(ServiceSettings):
    """Settings of the identity service."""

    environment: str = setting(DEVELOPMENT, "development or production; production refuses development keys and "
                                            "never seeds demo clients")
    key_encryption_key: str = setting(DEV_KEY_ENCRYPTION_KEY,
                                      "secret (at least 32 characters) that encrypts signing keys and provider "
                                      "secrets at rest; the default is a DEVELOPMENT-ONLY value", secret=True)
    providers_file: str = setting("", "YAML registry of upstream identity providers; empty uses the embedded "
                                      "default pointing at the sandbox providers on ports 8091/8092")
    access_token_seconds: int = setting(600, "lifetime of access tokens (at most 900)")
    refresh_token_seconds: int = setting(8 * 3600, "lifetime of each refresh token (it rotates on every use)")
    session_max_seconds: int = setting(12 * 3600, "absolute lifetime of a login's refresh-token family")
    login_session_seconds: int = setting(600, "how long a started login may take to complete")
    login_redirect_uri: str = setting("", "callback URL sent to upstream providers; default "
                                          "<DVC_JWT_ISSUER>/login/callback")
    allowed_redirect_uris: tuple[str, ...] = setting((), "comma-separated callback URLs StartLogin accepts; "
                                                         "empty accepts any http(s) URL (development)")
    jwks_max_age_seconds: int = setting(300, "Cache-Control max-age of /jwks.json and GetJwks")
    seed_dev_clients: bool = setting(True, "in development, register the demo machine clients with fixed secrets "
                                           "(see identity_service.bootstrap.dev_credentials)")
    upstream_timeout_seconds: float = setting(5.0, "timeout of every call to an upstream identity provider")


def check(settings: IdentitySettings) -> None:
    """Refuse settings that would be unsafe or cannot work, naming the variable to fix."""
    is_production(settings.environment, env_name(PREFIX, "environment"))
    kek_variable = env_name(PREFIX, "key_encryption_key")
    if len(settings.key_encryption_key) < MIN_KEY_ENCRYPTION_KEY_LENGTH:
        raise StartupError(kek_variable, f"must be at least {MIN_KEY_ENCRYPTION_KEY_LENGTH} characters")
    if settings.environment == PRODUCTION and settings.key_encryption_key == DEV_KEY_ENCRYPTION_KEY:
        raise StartupError(kek_variable, "the development key-encryption key is refused in production; "
                                         "set a secret of your own")
    if not 0 < settings.access_token_seconds <= MAX_ACCESS_TOKEN_SECONDS:
        raise StartupError(env_name(PREFIX, "access_token_seconds"),
                           f"must be between 1 and {MAX_ACCESS_TOKEN_SECONDS}")
    if settings.refresh_token_seconds <= 0 or settings.session_max_seconds <= 0:
        raise StartupError(env_name(PREFIX, "refresh_token_seconds"), "refresh lifetimes must be positive")
