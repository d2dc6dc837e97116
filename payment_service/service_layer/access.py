"""Who may do what: scopes, and the rule that an agency sees and changes only its own payments."""

from __future__ import annotations

from dataclasses import dataclass

from servicekit.errors import PermissionDenied

SCOPE_CREATE = "payments.create"
SCOPE_READ = "payments.read"
SCOPE_ADMIN = "payments.admin"


@dataclass(frozen=True)
class Caller:
    """The verified caller, reduced to what payment rules look at (built from the token by the entrypoint)."""

    subject: str
    agency: str = ""
    scopes: frozenset[str] = frozenset()

    @property
    def is_admin(self) -> bool:
        return SCOPE_ADMIN in self.scopes

    def require(self, scope: str) -> None:
        """Refuse unless the token has ``scope`` (payments.admin implies the others)."""
        if scope in self.scopes or self.is_admin:
            return
        raise PermissionDenied(f"this call needs the scope {scope!r}", reason="MISSING_SCOPE",
                               metadata={"required_scope": scope})

    def require_admin(self) -> None:
        if not self.is_admin:
            raise PermissionDenied(f"this call needs the scope {SCOPE_ADMIN!r}", reason="MISSING_SCOPE",
                                   metadata={"required_scope": SCOPE_ADMIN})

    def own_agency(self) -> str:
        """The agency the caller acts for; machine clients and officials carry it in the token."""
        if not self.agency:
            raise PermissionDenied("the token carries no agency claim; only agency clients create payments",
                                   reason="NO_AGENCY")
        return self.agency

    def check_agency(self, agency_code: str) -> None:
        """An agency reaches only its own payments; admins reach all."""
        if self.is_admin or (self.agency and self.agency == agency_code):
            return
        raise PermissionDenied("this payment belongs to another agency", reason="OTHER_AGENCY")

    def agency_filter(self, requested: str = "") -> str | None:
        """The agency a listing is restricted to: the caller's own, or (admins only) the requested one or all."""
        if self.is_admin:
            return requested or None
        own = self.own_agency()
        if requested and requested != own:
            raise PermissionDenied("only admins may read another agency's data", reason="OTHER_AGENCY")
        return own
