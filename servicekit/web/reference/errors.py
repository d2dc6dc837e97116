"""Every error reason a service can answer with, found by reading its source with Python's own parser: each
construction of a servicekit domain error with a literal ``reason`` gives the reason code, the gRPC status it maps
to, and the message written beside it."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from servicekit import errors as domain_errors

SKIPPED_PARTS = frozenset({"sandbox", "migrations", "tests", "__pycache__"})


def error_classes() -> dict[str, str]:
    """Name → gRPC status name of every DomainError subclass (``kind`` is the status name in lower case)."""
    found = {}
    for name, value in vars(domain_errors).items():
        if inspect.isclass(value) and issubclass(value, domain_errors.DomainError) \
                and value is not domain_errors.DomainError:
            found[name] = value.kind.upper()
    return found


@dataclass
class ErrorReason:
    """One reason code: its status, and where and with which messages it is raised."""

    reason: str
    status: str
    messages: list[str] = field(default_factory=list)
    places: list[str] = field(default_factory=list)


def _text(node: ast.expr | None) -> str:
    """A string literal, or an f-string with each placeholder shown as … (the value depends on the request)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(part.value if isinstance(part, ast.Constant) and isinstance(part.value, str) else "…"
                       for part in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _text(node.left) + _text(node.right)
    return ""


def _class_of(call: ast.Call, classes: dict[str, str]) -> str:
    target = call.func
    if isinstance(target, ast.Attribute) and target.attr == "single" and isinstance(target.value, ast.Name):
        target = target.value  # InvalidArgument.single(field, description, reason=...)
    if isinstance(target, ast.Name) and target.id in classes:
        return target.id
    if isinstance(target, ast.Attribute) and target.attr in classes:
        return target.attr  # errors.NotFound(...)
    return ""


def scan_source(source: str, place: str, classes: dict[str, str] | None = None) -> list[tuple[str, str, str]]:
    """(reason, status, message) of each domain error built in ``source`` with a literal reason."""
    known = classes or error_classes()
    found = []
    for node in ast.walk(ast.parse(source, filename=place)):
        if not isinstance(node, ast.Call):
            continue
        name = _class_of(node, known)
        if not name:
            continue
        reason = next((_text(keyword.value) for keyword in node.keywords if keyword.arg == "reason"), "")
        if not reason:
            continue
        is_single = isinstance(node.func, ast.Attribute) and node.func.attr == "single"
        message_node = node.args[1] if is_single and len(node.args) > 1 else (node.args[0] if node.args else None)
        message = _text(message_node)
        if is_single and node.args:
            message = f"{_text(node.args[0])}: {message}"
        found.append((reason, known[name], message))
    return found


def scan_package(root: Path, package: str) -> list[ErrorReason]:
    """Every reason raised under ``root/package`` (sandboxes, migrations and tests left out), sorted."""
    reasons: dict[str, ErrorReason] = {}
    classes = error_classes()
    for path in sorted((root / package).rglob("*.py")):
        relative = path.relative_to(root)
        if SKIPPED_PARTS & set(relative.parts):
            continue
        for reason, status, message in scan_source(path.read_text(encoding="utf-8"), str(relative), classes):
            entry = reasons.setdefault(reason, ErrorReason(reason, status))
            if status != entry.status and status not in entry.status.split(" / "):
                entry.status = f"{entry.status} / {status}"
            if message and message not in entry.messages:
                entry.messages.append(message)
            if str(relative) not in entry.places:
                entry.places.append(str(relative))
    return sorted(reasons.values(), key=lambda item: item.reason)


def scan_all(root: Path, packages: Iterable[str]) -> dict[str, list[ErrorReason]]:
    return {package: scan_package(root, package) for package in packages}
