"""Alembic environment of the wallet service (the runtime hands over the connection and version table)."""

from servicekit.alembic_env import run
from wallet_service.adapters.orm import metadata

run(metadata)
