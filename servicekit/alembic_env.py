"""The body of every service's Alembic env.py: migrate on the connection the runtime hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, MetaData, create_engine


def run(metadata: MetaData) -> None:
    """Run migrations online, on the caller's connection, or on ``sqlalchemy.url`` for the alembic CLI."""
    config = context.config
    version_table = config.attributes.get("version_table") or config.get_main_option("version_table") \
        or "alembic_version"
    connection = config.attributes.get("connection")
    if connection is None:
        url = config.get_main_option("sqlalchemy.url")
        if not url:
            raise RuntimeError("set sqlalchemy.url, or run migrations with the service's migrate command")
        with create_engine(url).begin() as own_connection:
            _configure_and_run(own_connection, metadata, version_table)
        return
    _configure_and_run(connection, metadata, version_table)


def _configure_and_run(connection: Connection, metadata: MetaData, version_table: str) -> None:
    # render_as_batch lets the same migrations alter tables on SQLite (make run) and PostgreSQL.
    context.configure(connection=connection, target_metadata=metadata, version_table=version_table,
                      render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()
