"""Alembic environment of the payment service: migrates on the connection the runtime hands over."""

from payment_service.adapters.orm import metadata
from servicekit.alembic_env import run

run(metadata)
