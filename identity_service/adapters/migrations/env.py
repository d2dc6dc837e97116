"""Alembic environment of the identity service (run by servicekit with its own version table)."""

from identity_service.adapters.orm import metadata
from servicekit.alembic_env import run

run(metadata)
