"""Client registration rules, who may rotate credentials, secrets at rest, and start-up refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from identity_service import config
from identity_service.adapters.crypto import (
    DEV_KEY_ENCRYPTION_KEY,
    KeyDecryptionError,
    KeyEncryptor,
    hash_secret,
    verify_secret,
)
from identity_service.adapters.provider_file import ProviderFileError, load_providers
from identity_service.config import IdentitySettings
from identity_service.devseed import SeedingRefused, seed_dev_clients
from identity_service.domain import clients
from identity_service.sandbox.accounts import AGENCY_ACCOUNTS
from servicekit.auth import Principal
from servicekit.errors import InvalidArgument, PermissionDenied
from servicekit.settings import StartupError

EC_PUBLIC = {"kty": "EC", "crv": "P-256", "kid": "k1", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}


def test_a_private_key_sent_as_public_jwks_is_refused() -> None:
    private = {**EC_PUBLIC, "d": "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}
    with pytest.raises(InvalidArgument) as caught:
        clients.parse_public_jwks(json.dumps({"keys": [private]}))
    assert caught.value.reason == "PRIVATE_KEY_SUBMITTED"


@pytest.mark.parametrize("text", ["not json", "{}", '{"keys": []}', json.dumps({"keys": [EC_PUBLIC, EC_PUBLIC]}),
                                  json.dumps({"keys": [{**EC_PUBLIC, "kid": ""}]}),
                                  json.dumps({"keys": [{**EC_PUBLIC, "alg": "HS256"}]})])
def test_malformed_jwks_are_refused(text: str) -> None:
    with pytest.raises(InvalidArgument):
        clients.parse_public_jwks(text)


def test_registration_collects_every_problem() -> None:
    with pytest.raises(InvalidArgument) as caught:
        clients.validate_registration("001085000101", "", "h", ["payments.everything"], "client_secret", "")
    fields = {violation.field for violation in caught.value.violations}
    assert {"client_id", "agency", "scopes"} <= fields


def test_only_an_admin_or_the_client_itself_rotates_credentials() -> None:
    own = Principal(subject="hcm-dossier-system", kind="client", client_id="hcm-dossier-system", agency="HCM")
    clients.check_can_rotate(own, "hcm-dossier-system")
    clients.check_can_rotate(Principal(subject="a", kind="official", scopes=frozenset({"identity.admin"})), "x")
    with pytest.raises(PermissionDenied) as caught:
        clients.check_can_rotate(own, "hn-dossier-receiver")
    assert caught.value.reason == "NOT_YOUR_CLIENT"
    citizen = Principal(subject="hcm-dossier-system", kind="citizen")
    with pytest.raises(PermissionDenied):
        clients.check_can_rotate(citizen, "hcm-dossier-system")


def test_keys_at_rest_open_only_with_the_same_key_and_row() -> None:
    sealed = KeyEncryptor("a" * 40).encrypt(b"-----BEGIN PRIVATE KEY-----", "kid-1")
    assert b"PRIVATE KEY" not in sealed
    assert KeyEncryptor("a" * 40).decrypt(sealed, "kid-1") == b"-----BEGIN PRIVATE KEY-----"
    with pytest.raises(KeyDecryptionError):
        KeyEncryptor("b" * 40).decrypt(sealed, "kid-1")
    with pytest.raises(KeyDecryptionError):
        KeyEncryptor("a" * 40).decrypt(sealed, "kid-2")


def test_client_secrets_are_stored_as_argon2_hashes() -> None:
    stored = hash_secret("s3cret-value")
    assert stored.startswith("$argon2id$") and "s3cret-value" not in stored
    assert verify_secret(stored, "s3cret-value")
    assert not verify_secret(stored, "s3cret-valuE")
    assert not verify_secret(None, "s3cret-value")


def test_production_refuses_the_development_key_encryption_key() -> None:
    with pytest.raises(StartupError) as caught:
        config.check(IdentitySettings(environment="production"))
    assert "IDENTITY_KEY_ENCRYPTION_KEY" in str(caught.value)
    config.check(IdentitySettings(environment="production", key_encryption_key="x" * 48))
    assert IdentitySettings().key_encryption_key == DEV_KEY_ENCRYPTION_KEY


@pytest.mark.parametrize("changes, variable", [
    ({"access_token_seconds": 901}, "IDENTITY_ACCESS_TOKEN_SECONDS"),
    ({"environment": "staging"}, "IDENTITY_ENVIRONMENT"),
    ({"key_encryption_key": "short"}, "IDENTITY_KEY_ENCRYPTION_KEY"),
])
def test_unusable_settings_name_their_variable(changes: dict[str, object], variable: str) -> None:
    with pytest.raises(StartupError) as caught:
        config.check(IdentitySettings(**changes))  # type: ignore[arg-type]
    assert variable in str(caught.value)


def test_demo_clients_are_never_seeded_in_production() -> None:
    class Untouchable:
        def __enter__(self) -> None:
            raise AssertionError("the database must not be touched")

    with pytest.raises(SeedingRefused):
        seed_dev_clients(Untouchable(), "production")  # type: ignore[arg-type]


def test_the_embedded_registry_points_at_the_sandboxes() -> None:
    by_id = {provider.provider_id: provider for provider in load_providers("")}
    assert by_id["vneid"].issuer == "http://127.0.0.1:8091" and by_id["vneid"].kind == "citizen"
    assert by_id["agency-sandbox"].issuer == "http://127.0.0.1:8092"
    assert by_id["agency-sandbox"].role_scopes["identity-admin"] == ("identity.admin",)
    # `make run`: every sandbox official can log in.
    assert {account.agency for account in AGENCY_ACCOUNTS} <= set(by_id["agency-sandbox"].allowed_agencies)


def official_provider_file(tmp_path: Path, *extra_lines: str) -> Path:
    """A providers file with one official provider, HCM's SSO, plus ``extra_lines`` in its entry."""
    path = tmp_path / "providers.yaml"
    path.write_text("\n".join([
        "providers:", "  - id: hcm", "    kind: official", "    issuer: https://sso.hcm.example",
        "    discovery_url: https://sso.hcm.example/.well-known/openid-configuration", "    client_id: portal",
        "    default_level: 2", "    claims: {national_id: cccd, agency: org}",
        *(f"    {line}" for line in extra_lines)]) + "\n")
    return path


def test_a_provider_file_secret_can_come_from_the_environment(tmp_path: Path) -> None:
    path = official_provider_file(tmp_path, "client_secret_env: HCM_SSO_SECRET", "allowed_agencies: [HCM]")
    assert load_providers(str(path), {"HCM_SSO_SECRET": "from-env"})[0].client_secret == "from-env"
    with pytest.raises(ProviderFileError, match="HCM_SSO_SECRET"):
        load_providers(str(path), {})


def test_an_official_provider_entry_without_an_agency_list_is_refused(tmp_path: Path) -> None:
    path = official_provider_file(tmp_path)
    with pytest.raises(ProviderFileError, match=r"\(hcm\): allowed_agencies: is required for official providers"):
        load_providers(str(path), {})


@pytest.mark.parametrize("text, problem", [
    ("providers: nope", "providers"),
    ("providers:\n  - id: x\n    kind: citizen\n    issuer: http://evil.example\n", "issuer"),
    (": : :", "YAML"),
])
def test_bad_provider_files_say_what_is_wrong(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "providers.yaml"
    path.write_text(text)
    with pytest.raises(ProviderFileError, match=problem):
        load_providers(str(path), {})
