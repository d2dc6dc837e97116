"""The provider registry file (YAML): parsed into validated Provider entries."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from identity_service.domain.providers import ClaimMapping, Provider, validate
from servicekit.errors import InvalidArgument

DEFAULT_PROVIDERS_FILE = Path(__file__).resolve().parent.parent / "providers.default.yaml"
_CLAIM_FIELDS = ("national_id", "name", "agency", "roles", "level", "dependents")


class ProviderFileError(ValueError):
    """The file cannot be used; the message says which entry and field."""


def _entry(raw: Any, index: int, environ: dict[str, str]) -> Provider:
    if not isinstance(raw, dict):
        raise ProviderFileError(f"providers[{index}] is not a mapping")
    claims = raw.get("claims") or {}
    unknown = set(claims) - set(_CLAIM_FIELDS)
    if unknown:
        raise ProviderFileError(f"providers[{index}].claims has unknown keys {sorted(unknown)}")
    secret = str(raw.get("client_secret", "") or "")
    if raw.get("client_secret_env"):
        variable = str(raw["client_secret_env"])
        if variable not in environ:
            raise ProviderFileError(f"providers[{index}].client_secret_env names {variable}, which is not set")
        secret = environ[variable]
    try:
        provider = Provider(
            provider_id=str(raw.get("id", "")), kind=str(raw.get("kind", "")), issuer=str(raw.get("issuer", "")),
            discovery_url=str(raw.get("discovery_url", "")), client_id=str(raw.get("client_id", "")),
            claim_mapping=ClaimMapping(**{name: str(claims.get(name, "") or "") for name in _CLAIM_FIELDS}),
            display_name=str(raw.get("display_name", "")), audience=str(raw.get("audience", "") or ""),
            client_secret=secret, allowed_algorithms=tuple(raw.get("allowed_algorithms") or ("ES256",)),
            upstream_scopes=tuple(raw.get("upstream_scopes") or ("openid", "profile")),
            default_level=int(raw.get("default_level", 0) or 0),
            role_scopes={str(role): tuple(scopes) for role, scopes in (raw.get("role_scopes") or {}).items()},
            source="file", allowed_agencies=tuple(str(code) for code in raw.get("allowed_agencies") or ()))
        return validate(provider)
    except InvalidArgument as error:
        problems = "; ".join(f"{v.field}: {v.description}" for v in error.violations) or error.message
        raise ProviderFileError(f"providers[{index}] ({raw.get('id', '?')}): {problems}") from None
    except (TypeError, ValueError) as error:
        raise ProviderFileError(f"providers[{index}] ({raw.get('id', '?')}): {error}") from None


def load_providers(path: str = "", environ: dict[str, str] | None = None) -> list[Provider]:
    """Providers from ``path``, or the embedded default (the sandbox providers) when empty."""
    source = Path(path) if path else DEFAULT_PROVIDERS_FILE
    try:
        document = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as error:
        raise ProviderFileError(f"cannot read {source}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ProviderFileError(f"{source} is not valid YAML: {error}") from None
    entries = document.get("providers") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ProviderFileError(f"{source} needs a top-level 'providers:' list")
    env = dict(os.environ if environ is None else environ)
    providers = [_entry(raw, index, env) for index, raw in enumerate(entries)]
    ids = [provider.provider_id for provider in providers]
    duplicates = sorted({pid for pid in ids if ids.count(pid) > 1})
    if duplicates:
        raise ProviderFileError(f"{source} lists providers more than once: {', '.join(duplicates)}")
    return providers
