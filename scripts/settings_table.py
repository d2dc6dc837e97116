"""Print the configuration table of every service (the README's table is checked against it by a test)."""

from __future__ import annotations

from servicekit.config import PlatformSettings
from servicekit.settings import describe


def rows() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) for the platform-wide settings and each service's own."""
    from identity_service.bootstrap import SPEC as IDENTITY
    from payment_service.bootstrap import SPEC as PAYMENT
    from wallet_service.bootstrap import SPEC as WALLET

    table = describe(PlatformSettings, "DVC")
    for spec in (IDENTITY, PAYMENT, WALLET):
        table += describe(spec.settings_cls, spec.prefix)
    return table


def markdown() -> str:
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for variable, default, doc in rows():
        lines.append(f"| `{variable}` | `{default}` | {doc} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
