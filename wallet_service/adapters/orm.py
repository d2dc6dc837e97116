"""The wallet's tables (SQLAlchemy Core), portable between PostgreSQL and SQLite."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

document_types = Table(
    "wallet_document_types", metadata,
    Column("code", String(64), primary_key=True),
    Column("definition", JSON, nullable=False),
)

issuer_keys = Table(
    "wallet_issuer_keys", metadata,
    Column("key_id", String(128), primary_key=True),
    Column("agency_code", String(64), nullable=False, index=True),
    Column("agency_kind", String(64), nullable=False),
    Column("algorithm", String(16), nullable=False),
    Column("public_key_pem", Text, nullable=False),
    Column("registered_at", DateTime(timezone=True), nullable=False),
)

blobs = Table(
    "wallet_blobs", metadata,
    Column("sha256", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("content_type", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

documents = Table(
    "wallet_documents", metadata,
    Column("document_id", String(36), primary_key=True),
    Column("citizen_id", String(12), nullable=False),
    Column("type_code", String(64), nullable=False),
    Column("trust_level", String(16), nullable=False),
    Column("title", String(200), nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("content_sha256", String(64), ForeignKey("wallet_blobs.sha256"), nullable=False, index=True),
    Column("content_type", String(64), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("issuer_agency", String(64), nullable=False),
    Column("issuer_key_id", String(128), nullable=False),
    Column("signature", LargeBinary, nullable=False),
    Column("valid_from", DateTime(timezone=True)),
    Column("valid_until", DateTime(timezone=True)),
    Column("supersedes_document_id", String(36), nullable=False),
    Column("superseded_by_document_id", String(36), nullable=False),
    Column("stored_status", String(16), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    Column("revocation_reason", String(500), nullable=False),
    Column("idempotency_scope", String(80), nullable=False),
    Column("idempotency_key", String(128), nullable=False),
    UniqueConstraint("idempotency_scope", "idempotency_key", name="uq_wallet_documents_idempotency"),
    Index("ix_wallet_documents_citizen", "citizen_id", "issued_at"),
    Index("ix_wallet_documents_issuer", "issuer_agency", "issued_at"),
)

shares = Table(
    "wallet_shares", metadata,
    Column("share_id", String(36), primary_key=True),
    Column("citizen_id", String(12), nullable=False),
    Column("agency_code", String(64), nullable=False),
    Column("dossier_code", String(64), nullable=False),
    Column("procedure_code", String(64), nullable=False),
    Column("purpose", String(500), nullable=False),
    Column("document_ids", JSON, nullable=False),
    Column("type_codes", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("max_uses", Integer, nullable=False),
    Column("use_count", Integer, nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    Column("request_id", String(36), nullable=False),
    Column("redeemed_document_ids", JSON, nullable=False),
    Column("idempotency_key", String(160), nullable=False),
    UniqueConstraint("citizen_id", "idempotency_key", name="uq_wallet_shares_idempotency"),
    Index("ix_wallet_shares_citizen", "citizen_id", "created_at"),
    Index("ix_wallet_shares_agency", "agency_code", "created_at"),
)

document_requests = Table(
    "wallet_document_requests", metadata,
    Column("request_id", String(36), primary_key=True),
    Column("citizen_id", String(12), nullable=False),
    Column("agency_code", String(64), nullable=False),
    Column("requested_by", String(128), nullable=False),
    Column("type_codes", JSON, nullable=False),
    Column("dossier_code", String(64), nullable=False),
    Column("procedure_code", String(64), nullable=False),
    Column("purpose", String(500), nullable=False),
    Column("status", String(16), nullable=False),
    Column("share_id", String(36), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("answered_at", DateTime(timezone=True)),
    Column("idempotency_key", String(128), nullable=False),
    UniqueConstraint("agency_code", "idempotency_key", name="uq_wallet_requests_idempotency"),
    Index("ix_wallet_requests_citizen", "citizen_id", "created_at"),
    Index("ix_wallet_requests_agency", "agency_code", "created_at"),
)

access_log = Table(
    "wallet_access_log", metadata,
    Column("citizen_id", String(12), primary_key=True),
    Column("sequence", BigInteger, primary_key=True, autoincrement=False),
    Column("action", String(32), nullable=False),
    Column("actor_subject", String(128), nullable=False),
    Column("actor_kind", String(16), nullable=False),
    Column("agency_code", String(64), nullable=False),
    Column("on_behalf_of", String(128), nullable=False),
    Column("relation", String(32), nullable=False),
    Column("document_id", String(36), nullable=False),
    Column("share_id", String(36), nullable=False),
    Column("request_id", String(36), nullable=False),
    Column("dossier_code", String(64), nullable=False),
    Column("procedure_code", String(64), nullable=False),
    Column("detail", Text, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("previous_hash", String(64), nullable=False),
    Column("entry_hash", String(64), nullable=False),
    Index("ix_wallet_access_log_document", "citizen_id", "document_id"),
)

# One row per citizen: the chain's head, locked by every append so two writers cannot both extend
# the same entry; also the reference VerifyAccessLog compares against, so truncation shows.
log_heads = Table(
    "wallet_log_heads", metadata,
    Column("citizen_id", String(12), primary_key=True),
    Column("sequence", BigInteger, nullable=False),
    Column("head_hash", String(64), nullable=False),
)
