"""Identity's tables (SQLAlchemy Core), portable between PostgreSQL and SQLite."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

metadata = MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY, PostgreSQL needs BIGINT for a long audit trail.
_SERIAL = BigInteger().with_variant(Integer(), "sqlite")


def _when(name: str, nullable: bool = False, index: bool = False) -> Column:
    return Column(name, DateTime(timezone=True), nullable=nullable, index=index)


signing_keys = Table(
    "signing_keys", metadata,
    Column("kid", String(64), primary_key=True),
    Column("algorithm", String(16), nullable=False),
    Column("public_jwk", JSON, nullable=False),
    # AES-GCM ciphertext of the PKCS#8 private key; the key-encryption key never touches the database.
    Column("private_key_encrypted", LargeBinary, nullable=False),
    _when("created_at"),
    _when("active_from", index=True),
    # Null while the key may still sign; set when a newer key takes over, to when its last token expires.
    _when("publish_until", nullable=True),
    Column("idempotency_key", String(128), nullable=True, unique=True),
)

identity_providers = Table(
    "identity_providers", metadata,
    Column("provider_id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("display_name", String(200), nullable=False, default=""),
    Column("issuer", String(500), nullable=False),
    Column("discovery_url", String(1000), nullable=False),
    Column("client_id", String(200), nullable=False),
    Column("audience", String(200), nullable=False, default=""),
    Column("client_secret_encrypted", LargeBinary, nullable=True),
    Column("allowed_algorithms", JSON, nullable=False),
    Column("claim_mapping", JSON, nullable=False),
    Column("upstream_scopes", JSON, nullable=False),
    Column("default_level", Integer, nullable=False, default=0),
    Column("role_scopes", JSON, nullable=False),
    Column("source", String(16), nullable=False),
    _when("updated_at"),
    # Agency codes an official provider may assert; entries older than the column get none (logins refused).
    Column("allowed_agencies", JSON, nullable=False, server_default="[]"),
)

clients = Table(
    "clients", metadata,
    Column("client_id", String(64), primary_key=True),
    Column("display_name", String(200), nullable=False, default=""),
    Column("agency", String(32), nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("auth_method", String(32), nullable=False),
    Column("public_jwks", JSON, nullable=True),
    Column("secret_hash", String(256), nullable=True),
    Column("previous_secret_hash", String(256), nullable=True),
    _when("previous_secret_valid_until", nullable=True),
    _when("created_at"),
    _when("rotated_at"),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("registration_key", String(128), nullable=True),
    Column("rotation_key", String(128), nullable=True),
)

login_sessions = Table(
    "login_sessions", metadata,
    Column("state", String(64), primary_key=True),
    Column("provider_id", String(64), nullable=False),
    Column("nonce", String(64), nullable=False),
    Column("code_verifier", String(128), nullable=False),
    Column("redirect_uri", String(2000), nullable=False),
    Column("audience", String(32), nullable=False),
    _when("created_at"),
    _when("expires_at", index=True),
    _when("completed_at", nullable=True),
)

accounts = Table(
    "accounts", metadata,
    Column("subject", String(128), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("national_id", String(12), nullable=False, index=True),
    Column("name", String(300), nullable=False, default=""),
    Column("agency", String(32), nullable=False, default=""),
    Column("roles", JSON, nullable=False),
    Column("level", Integer, nullable=False),
    _when("first_login_at"),
    _when("last_login_at"),
    Column("last_provider_id", String(64), nullable=False),
)

refresh_tokens = Table(
    "refresh_tokens", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("family_id", String(36), nullable=False, index=True),
    Column("subject", String(128), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    # What every access token of the login carries: level, agency, roles, scopes.
    Column("session", JSON, nullable=False),
    Column("default_audience", String(32), nullable=False),
    _when("created_at"),
    _when("expires_at"),
    _when("family_expires_at"),
    _when("used_at", nullable=True),
    _when("revoked_at", nullable=True),
    # The access token issued with this refresh token, so ending the family deny-lists it too.
    Column("access_jti", String(64), nullable=False),
    _when("access_expires_at"),
)

revoked_tokens = Table(
    "revoked_tokens", metadata,
    Column("jti", String(64), primary_key=True),
    _when("expires_at", index=True),
    _when("revoked_at"),
    Column("reason", String(200), nullable=False, default=""),
    Column("subject", String(128), nullable=False, default=""),
)

used_assertions = Table(
    "used_assertions", metadata,
    Column("client_id", String(64), primary_key=True),
    Column("jti", String(200), primary_key=True),
    _when("expires_at", index=True),
)

delegations = Table(
    "delegations", metadata,
    Column("delegation_id", String(36), primary_key=True),
    Column("principal_subject", String(128), nullable=False, index=True),
    Column("delegate_kind", String(16), nullable=False),
    Column("delegate_id", String(128), nullable=False),
    Column("relation", String(16), nullable=False),
    Column("audiences", JSON, nullable=False),
    Column("purpose", String(500), nullable=False, default=""),
    _when("created_at"),
    _when("expires_at"),
    _when("revoked_at", nullable=True),
    Column("granted_by", String(160), nullable=False),
    Column("idempotency_key", String(128), nullable=True),
    UniqueConstraint("granted_by", "idempotency_key", name="uq_delegations_grantor_key"),
)
Index("ix_delegations_delegate", delegations.c.delegate_kind, delegations.c.delegate_id)

# Access tokens token exchange minted under a delegation, so ending the delegation deny-lists them too.
delegation_tokens = Table(
    "delegation_tokens", metadata,
    Column("jti", String(64), primary_key=True),
    Column("delegation_id", String(36), nullable=False, index=True),
    _when("expires_at", index=True),
)

audit_events = Table(
    "audit_events", metadata,
    Column("event_id", _SERIAL, primary_key=True, autoincrement=True),
    _when("occurred_at"),
    Column("event_type", String(64), nullable=False, index=True),
    Column("actor", String(160), nullable=False, default=""),
    Column("subject", String(160), nullable=False, default="", index=True),
    Column("outcome", String(16), nullable=False),
    Column("detail", JSON, nullable=False),
    Column("request_id", String(64), nullable=False, default=""),
)
