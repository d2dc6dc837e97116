"""Typed settings read once from the environment, with documented defaults and one-line errors."""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class SettingsError(Exception):
    """A setting is missing or malformed; the message names the environment variable to fix."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


class StartupError(Exception):
    """Start-up cannot go on; ``str(error)`` is the one line shown to the operator, naming the setting to fix."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"start-up failed: {problem} (fix {setting})")
        self.setting = setting


def setting(default: Any, doc: str, *, secret: bool = False) -> Any:
    """Declare one setting field: its default and the sentence documenting it (shown in the README table)."""
    return dataclasses.field(default=default, metadata={"doc": doc, "secret": secret})


def _convert(variable: str, raw: str, annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return None if raw == "" else _convert(variable, raw, inner[0])
    if annotation is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise SettingsError(variable, f"expected true or false, got {raw!r}")
    if annotation is int:
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(variable, f"expected a whole number, got {raw!r}") from None
    if annotation is float:
        try:
            return float(raw)
        except ValueError:
            raise SettingsError(variable, f"expected a number, got {raw!r}") from None
    if origin is tuple:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw


def load_settings(cls: type[T], prefix: str, environ: Mapping[str, str] | None = None) -> T:
    """Build the settings dataclass ``cls`` from ``<PREFIX>_<FIELD>`` variables, defaults where unset."""
    env = os.environ if environ is None else environ
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for spec in dataclasses.fields(cls):  # type: ignore[arg-type]
        variable = env_name(prefix, spec.name)
        if variable in env:
            values[spec.name] = _convert(variable, env[variable], hints[spec.name])
    return cls(**values)


def env_name(prefix: str, field_name: str) -> str:
    """The environment variable that sets ``field_name``."""
    return f"{prefix}_{field_name}".upper() if prefix else field_name.upper()


def describe(cls: type, prefix: str) -> list[tuple[str, str, str]]:
    """(variable, default, doc) rows for documentation; secrets show no default value."""
    rows = []
    for spec in dataclasses.fields(cls):
        default = "(secret)" if spec.metadata.get("secret") else repr(spec.default)
        rows.append((env_name(prefix, spec.name), default, spec.metadata.get("doc", "")))
    return rows


DEVELOPMENT = "development"
PRODUCTION = "production"


def is_production(environment: str, variable: str) -> bool:
    """Whether ``environment`` is production. Any value but the two stops start-up naming ``variable``: a typo
    such as 'prod' must never run a production deployment with the public development keys."""
    if environment not in (DEVELOPMENT, PRODUCTION):
        raise StartupError(variable, f"must be {DEVELOPMENT} or {PRODUCTION}, not {environment!r}")
    return environment == PRODUCTION
