"""The wallet's unit of work and repositories on SQLAlchemy Core (PostgreSQL in production, SQLite for make run)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    CursorResult,
    Insert,
    RowMapping,
    Select,
    Table,
    Update,
    bindparam,
    delete,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from servicekit.db import SqlUnitOfWork
from servicekit.errors import Conflict
from wallet_service.adapters import orm
from wallet_service.domain.access_log import GENESIS_HASH
from wallet_service.domain.catalogue import type_from_mapping
from wallet_service.domain.model import (
    AccessAction,
    AccessLogEntry,
    Blob,
    Document,
    DocumentRequest,
    DocumentType,
    IssuerKey,
    RequestStatus,
    Share,
    SignatureAlgorithm,
    StoredStatus,
    TrustLevel,
)
from wallet_service.service_layer import ports


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite hands datetimes back without their zone; everything the wallet writes is UTC.
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def _utc(moment: datetime) -> datetime:
    aware = _aware(moment)
    assert aware is not None
    return aware


def _fields(item: Any) -> dict[str, Any]:
    """A dataclass's fields, shallow (asdict deep-copies every value, which the hot paths do not need)."""
    return {spec.name: getattr(item, spec.name) for spec in fields(item)}


# Statements built once: building them per call costs more CPU than executing them (psycopg prepares
# the SQL after a few runs), and issuing and redeeming run them thousands of times a second.
_SELECTS: dict[tuple[str, str, bool], Select[Any]] = {}
_UPDATES: dict[str, Update] = {}
_INSERTS: dict[str, Insert] = {}


def _select_by(table: Table, column: str, lock: bool) -> Select[Any]:
    key = (table.name, column, lock)
    statement = _SELECTS.get(key)
    if statement is None:
        statement = select(table).where(table.c[column] == bindparam("match"))
        if lock:
            statement = statement.with_for_update()
        _SELECTS[key] = statement
    return statement


def _update_by(table: Table, column: str) -> Update:
    statement = _UPDATES.get(table.name)
    if statement is None:
        statement = _UPDATES[table.name] = update(table).where(table.c[column] == bindparam("match"))
    return statement


def _insert_into(table: Table) -> Insert:
    statement = _INSERTS.get(table.name)
    if statement is None:
        statement = _INSERTS[table.name] = table.insert()
    return statement


def _collision() -> Conflict:
    return Conflict("a concurrent request changed the same record; retry the call", reason="CONCURRENT_CHANGE")


class _Repository:
    def __init__(self, session: Session) -> None:
        self.session = session
        self._dialect = ""

    def _execute(self, statement: Any, parameters: dict[str, Any] | None = None) -> CursorResult[Any]:
        # Straight to the transaction's connection: Session.execute adds ORM bookkeeping these Core
        # statements never use, and it costs about a tenth of a millisecond per statement.
        return self.session.connection().execute(statement, parameters)

    @property
    def dialect(self) -> str:
        if not self._dialect:
            self._dialect = self.session.get_bind().dialect.name
        return self._dialect

    def _insert(self, table: Table, values: dict[str, Any]) -> None:
        try:
            self._execute(_insert_into(table), values)
        except IntegrityError:
            raise _collision() from None

    def _insert_new(self, table: Table, key: str, conflict_on: tuple[str, ...] = ()) -> Insert:
        """INSERT ... ON CONFLICT (conflict_on, by default key) DO NOTHING RETURNING key, for this dialect."""
        cache_key = f"{table.name}:new:{self.dialect}"
        statement = _INSERTS.get(cache_key)
        if statement is None:
            insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
            statement = _INSERTS[cache_key] = (insert(table)
                                               .on_conflict_do_nothing(index_elements=list(conflict_on or (key,)))
                                               .returning(table.c[key]))
        return statement

    def _update(self, table: Table, column: str, values: dict[str, Any]) -> None:
        self._execute(_update_by(table, column), {**values, "match": values[column]})

    def _row(self, table: Table, column: str, value: str, lock: bool = False) -> RowMapping | None:
        # SQLite (make run) has no row locks; its writers are serialised on the whole database.
        statement = _select_by(table, column, lock and self.dialect == "postgresql")
        return self._execute(statement, {"match": value}).mappings().first()


class SqlDocumentTypes(_Repository):
    def get(self, code: str) -> DocumentType | None:
        row = self._execute(select(orm.document_types.c.definition)
                                   .where(orm.document_types.c.code == code)).scalar_one_or_none()
        return type_from_mapping(row) if row is not None else None

    def list(self, offset: int, limit: int) -> list[DocumentType]:
        rows = self._execute(select(orm.document_types.c.definition).order_by(orm.document_types.c.code)
                                    .offset(offset).limit(limit)).scalars()
        return [type_from_mapping(row) for row in rows]

    def put(self, document_type: DocumentType) -> None:
        definition = asdict(document_type)
        definition["issuing_agency_kinds"] = list(document_type.issuing_agency_kinds)
        definition["metadata_fields"] = [{**asdict(item), "type": item.type.value}
                                         for item in document_type.metadata_fields]
        table = orm.document_types
        if self._execute(select(table.c.code).where(table.c.code == document_type.code)).first():
            self._execute(update(table).where(table.c.code == document_type.code)
                                 .values(definition=definition))
        else:
            self._insert(table, {"code": document_type.code, "definition": definition})


class SqlIssuerKeys(_Repository):
    def get(self, key_id: str) -> IssuerKey | None:
        row = self._row(orm.issuer_keys, "key_id", key_id)
        if row is None:
            return None
        return IssuerKey(key_id=row["key_id"], agency_code=row["agency_code"], agency_kind=row["agency_kind"],
                         algorithm=SignatureAlgorithm(row["algorithm"]), public_key_pem=row["public_key_pem"],
                         registered_at=_utc(row["registered_at"]))

    def add(self, key: IssuerKey) -> None:
        self._insert(orm.issuer_keys, {**_fields(key), "algorithm": key.algorithm.value})


class SqlBlobs(_Repository):
    def lock(self, sha256: str) -> None:
        if self.dialect == "postgresql":
            # A transaction-scoped advisory lock keyed by the hash: it exists before any row does.
            key = int(sha256[:16], 16) - (1 << 63)
            self._execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        # SQLite (make run) serialises writers on the whole database already.

    def add_if_missing(self, blob: Blob) -> bool:
        # One statement instead of a SELECT and an INSERT; RETURNING yields a row only when it inserted.
        return self._execute(self._insert_new(orm.blobs, "sha256"), _fields(blob)).first() is not None

    def delete(self, sha256: str) -> None:
        self._execute(delete(orm.blobs).where(orm.blobs.c.sha256 == sha256))

    def referenced(self, sha256: str) -> bool:
        return self._execute(select(orm.documents.c.document_id)
                                    .where(orm.documents.c.content_sha256 == sha256).limit(1)).first() is not None

    def known(self, hashes: list[str]) -> set[str]:
        if not hashes:
            return set()
        return set(self._execute(select(orm.blobs.c.sha256)
                                        .where(orm.blobs.c.sha256.in_(hashes))).scalars())


def _document_from_row(row: RowMapping) -> Document:
    return Document(
        document_id=row["document_id"], citizen_id=row["citizen_id"], type_code=row["type_code"],
        trust_level=TrustLevel(row["trust_level"]), metadata=dict(row["metadata"]),
        content_sha256=row["content_sha256"], content_type=row["content_type"], size_bytes=row["size_bytes"],
        issued_at=_utc(row["issued_at"]), idempotency_scope=row["idempotency_scope"],
        idempotency_key=row["idempotency_key"], title=row["title"], issuer_agency=row["issuer_agency"],
        issuer_key_id=row["issuer_key_id"], signature=bytes(row["signature"]), valid_from=_aware(row["valid_from"]),
        valid_until=_aware(row["valid_until"]), supersedes_document_id=row["supersedes_document_id"],
        superseded_by_document_id=row["superseded_by_document_id"],
        stored_status=StoredStatus(row["stored_status"]), revoked_at=_aware(row["revoked_at"]),
        revocation_reason=row["revocation_reason"])


def _document_values(document: Document) -> dict[str, Any]:
    values = _fields(document)
    values["trust_level"] = document.trust_level.value
    values["stored_status"] = document.stored_status.value
    return values


class SqlDocuments(_Repository):
    def get(self, document_id: str, *, lock: bool = False) -> Document | None:
        row = self._row(orm.documents, "document_id", document_id, lock)
        return _document_from_row(row) if row is not None else None

    def by_idempotency(self, scope: str, key: str) -> Document | None:
        table = orm.documents
        row = self._execute(select(table).where(table.c.idempotency_scope == scope,
                                                       table.c.idempotency_key == key)).mappings().first()
        return _document_from_row(row) if row is not None else None

    def add_unless_key_used(self, document: Document) -> bool:
        statement = self._insert_new(orm.documents, "document_id",
                                     conflict_on=("idempotency_scope", "idempotency_key"))
        try:
            return self._execute(statement, _document_values(document)).first() is not None
        except IntegrityError:  # the same document id, or a foreign key: not an idempotent repeat
            raise _collision() from None

    def update(self, document: Document) -> None:
        self._update(orm.documents, "document_id", _document_values(document))

    def delete(self, document_id: str) -> None:
        self._execute(delete(orm.documents).where(orm.documents.c.document_id == document_id))

    def list(self, *, citizen_id: str = "", issuer_agency: str = "", type_code: str = "",
             active_at: datetime | None = None, offset: int = 0, limit: int = 50) -> list[Document]:
        table = orm.documents
        query = select(table)
        if citizen_id:
            query = query.where(table.c.citizen_id == citizen_id)
        if issuer_agency:
            query = query.where(table.c.issuer_agency == issuer_agency)
        if type_code:
            query = query.where(table.c.type_code == type_code)
        if active_at is not None:
            query = query.where(table.c.stored_status == StoredStatus.ACTIVE.value,
                                or_(table.c.valid_until.is_(None), table.c.valid_until > active_at))
        query = query.order_by(table.c.issued_at.desc(), table.c.document_id).offset(offset).limit(limit)
        return [_document_from_row(row) for row in self._execute(query).mappings()]


def _share_from_row(row: RowMapping) -> Share:
    return Share(share_id=row["share_id"], citizen_id=row["citizen_id"], agency_code=row["agency_code"],
                 dossier_code=row["dossier_code"], procedure_code=row["procedure_code"], purpose=row["purpose"],
                 document_ids=list(row["document_ids"]), type_codes=list(row["type_codes"]),
                 created_at=_utc(row["created_at"]), expires_at=_utc(row["expires_at"]), max_uses=row["max_uses"],
                 idempotency_key=row["idempotency_key"], use_count=row["use_count"],
                 revoked_at=_aware(row["revoked_at"]), request_id=row["request_id"],
                 redeemed_document_ids=list(row["redeemed_document_ids"]))


_COUNT_USE: list[Update] = []


def _count_use() -> Update:
    # Counting and locking in one statement: the UPDATE takes the row lock SELECT ... FOR UPDATE would.
    if not _COUNT_USE:
        table = orm.shares
        _COUNT_USE.append(update(table).where(table.c.share_id == bindparam("match"))
                          .values(use_count=table.c.use_count + 1).returning(*table.c))
    return _COUNT_USE[0]


class SqlShares(_Repository):
    def get(self, share_id: str, *, lock: bool = False) -> Share | None:
        row = self._row(orm.shares, "share_id", share_id, lock)
        return _share_from_row(row) if row is not None else None

    def by_idempotency(self, citizen_id: str, key: str) -> Share | None:
        table = orm.shares
        row = self._execute(select(table).where(table.c.citizen_id == citizen_id,
                                                       table.c.idempotency_key == key)).mappings().first()
        return _share_from_row(row) if row is not None else None

    def add(self, share: Share) -> None:
        self._insert(orm.shares, _fields(share))

    def count_use(self, share_id: str) -> Share | None:
        row = self._execute(_count_use(), {"match": share_id}).mappings().first()
        if row is None:
            return None
        share = _share_from_row(row)
        share.use_count -= 1  # the caller judges the share as it stood before this use
        return share

    def set_redeemed(self, share_id: str, document_ids: list[str]) -> None:
        table = orm.shares
        self._execute(_update_by(table, "share_id").values(redeemed_document_ids=bindparam("redeemed")),
                      {"match": share_id, "redeemed": document_ids})

    def update(self, share: Share) -> None:
        self._update(orm.shares, "share_id", _fields(share))

    def list(self, *, citizen_id: str = "", agency_code: str = "", active_at: datetime | None = None,
             offset: int = 0, limit: int = 50) -> list[Share]:
        table = orm.shares
        query = select(table)
        if citizen_id:
            query = query.where(table.c.citizen_id == citizen_id)
        if agency_code:
            query = query.where(table.c.agency_code == agency_code)
        if active_at is not None:
            query = query.where(table.c.revoked_at.is_(None), table.c.expires_at > active_at,
                                or_(table.c.max_uses == 0, table.c.use_count < table.c.max_uses))
        query = query.order_by(table.c.created_at.desc(), table.c.share_id).offset(offset).limit(limit)
        return [_share_from_row(row) for row in self._execute(query).mappings()]


def _request_from_row(row: RowMapping) -> DocumentRequest:
    return DocumentRequest(request_id=row["request_id"], citizen_id=row["citizen_id"],
                           agency_code=row["agency_code"], requested_by=row["requested_by"],
                           type_codes=list(row["type_codes"]), dossier_code=row["dossier_code"],
                           procedure_code=row["procedure_code"], purpose=row["purpose"],
                           created_at=_utc(row["created_at"]), idempotency_key=row["idempotency_key"],
                           status=RequestStatus(row["status"]), share_id=row["share_id"],
                           answered_at=_aware(row["answered_at"]))


def _request_values(request: DocumentRequest) -> dict[str, Any]:
    values = _fields(request)
    values["status"] = request.status.value
    return values


class SqlRequests(_Repository):
    def get(self, request_id: str, *, lock: bool = False) -> DocumentRequest | None:
        row = self._row(orm.document_requests, "request_id", request_id, lock)
        return _request_from_row(row) if row is not None else None

    def by_idempotency(self, agency_code: str, key: str) -> DocumentRequest | None:
        table = orm.document_requests
        row = self._execute(select(table).where(table.c.agency_code == agency_code,
                                                       table.c.idempotency_key == key)).mappings().first()
        return _request_from_row(row) if row is not None else None

    def add(self, request: DocumentRequest) -> None:
        self._insert(orm.document_requests, _request_values(request))

    def update(self, request: DocumentRequest) -> None:
        self._update(orm.document_requests, "request_id", _request_values(request))

    def list(self, *, citizen_id: str = "", agency_code: str = "", status: RequestStatus | None = None,
             offset: int = 0, limit: int = 50) -> list[DocumentRequest]:
        table = orm.document_requests
        query = select(table)
        if citizen_id:
            query = query.where(table.c.citizen_id == citizen_id)
        if agency_code:
            query = query.where(table.c.agency_code == agency_code)
        if status is not None:
            query = query.where(table.c.status == status.value)
        query = query.order_by(table.c.created_at.desc(), table.c.request_id).offset(offset).limit(limit)
        return [_request_from_row(row) for row in self._execute(query).mappings()]


def _entry_from_row(row: RowMapping) -> AccessLogEntry:
    return AccessLogEntry(
        citizen_id=row["citizen_id"], sequence=row["sequence"], action=AccessAction(row["action"]),
        actor_subject=row["actor_subject"], actor_kind=row["actor_kind"], occurred_at=_utc(row["occurred_at"]),
        previous_hash=row["previous_hash"], entry_hash=row["entry_hash"], agency_code=row["agency_code"],
        on_behalf_of=row["on_behalf_of"], relation=row["relation"], document_id=row["document_id"],
        share_id=row["share_id"], request_id=row["request_id"], dossier_code=row["dossier_code"],
        procedure_code=row["procedure_code"], detail=row["detail"])


_ENTRY_PARAMETER = "entry_"
_APPEND_ONE: list[Update] = []


def _append_one_postgres() -> Update:
    """INSERT the entry in a data-modifying CTE and UPDATE the head in the same statement (PostgreSQL)."""
    if not _APPEND_ONE:
        table, heads = orm.access_log, orm.log_heads
        entry = table.insert().values({column.name: bindparam(_ENTRY_PARAMETER + column.name, type_=column.type)
                                       for column in table.c}).cte("appended_entry")
        _APPEND_ONE.append(update(heads).where(heads.c.citizen_id == bindparam("match")).add_cte(entry))
    return _APPEND_ONE[0]


class SqlAccessLog(_Repository):
    def head(self, citizen_id: str, *, lock: bool) -> tuple[int, str]:
        table = orm.log_heads
        row = self._row(table, "citizen_id", citizen_id, lock)
        if row is None and lock:
            # First entry of this wallet: create the head, which our insert holds locked; a racing creator
            # that lost inserts nothing and locks the winner's head instead.
            created = self._execute(self._insert_new(table, "citizen_id"),
                                    {"citizen_id": citizen_id, "sequence": 0, "head_hash": GENESIS_HASH}).first()
            if created is not None:
                return 0, GENESIS_HASH
            row = self._row(table, "citizen_id", citizen_id, lock)
        return (int(row["sequence"]), str(row["head_hash"])) if row is not None else (0, GENESIS_HASH)

    def append(self, entries: Sequence[AccessLogEntry]) -> None:
        rows = [{**_fields(entry), "action": entry.action.value} for entry in entries]
        last = entries[-1]
        if self.dialect == "postgresql" and len(rows) == 1:
            # One round trip instead of two: the entry and the head move in one statement.
            try:
                self._execute(_append_one_postgres(), {
                    **{_ENTRY_PARAMETER + name: value for name, value in rows[0].items()},
                    "match": last.citizen_id, "sequence": last.sequence, "head_hash": last.entry_hash})
            except IntegrityError:
                raise _collision() from None
            return
        try:
            self._execute(_insert_into(orm.access_log), rows)  # type: ignore[arg-type]
        except IntegrityError:
            raise _collision() from None
        self._update(orm.log_heads, "citizen_id", {"citizen_id": last.citizen_id, "sequence": last.sequence,
                                                   "head_hash": last.entry_hash})

    def list(self, citizen_id: str, *, document_id: str = "", offset: int = 0, limit: int = 100
             ) -> list[AccessLogEntry]:
        table = orm.access_log
        query = select(table).where(table.c.citizen_id == citizen_id)
        if document_id:
            query = query.where(table.c.document_id == document_id)
        query = query.order_by(table.c.sequence.desc()).offset(offset).limit(limit)
        return [_entry_from_row(row) for row in self._execute(query).mappings()]

    def chain(self, citizen_id: str) -> Iterator[AccessLogEntry]:
        table = orm.access_log
        query = select(table).where(table.c.citizen_id == citizen_id).order_by(table.c.sequence)
        for row in self._execute(query.execution_options(yield_per=1000)).mappings():
            yield _entry_from_row(row)


class SqlWalletUnitOfWork(SqlUnitOfWork):
    """One database transaction with every wallet repository bound to it."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        super().__init__(session_factory)

    def __enter__(self) -> SqlWalletUnitOfWork:
        super().__enter__()
        self.types: ports.DocumentTypeRepository = SqlDocumentTypes(self.session)
        self.keys: ports.IssuerKeyRepository = SqlIssuerKeys(self.session)
        self.blobs: ports.BlobRepository = SqlBlobs(self.session)
        self.documents: ports.DocumentRepository = SqlDocuments(self.session)
        self.shares: ports.ShareRepository = SqlShares(self.session)
        self.requests: ports.RequestRepository = SqlRequests(self.session)
        self.log: ports.AccessLogRepository = SqlAccessLog(self.session)
        return self

    def commit(self) -> None:
        try:
            super().commit()
        except IntegrityError:
            raise _collision() from None

