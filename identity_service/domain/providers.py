"""Upstream identity providers as configuration, and mapping their ID token claims to a platform identity."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from identity_service.domain import scopes as scope_rules
from identity_service.domain import subjects
from servicekit.errors import InvalidArgument, Unauthenticated, ViolationCollector

KIND_CITIZEN = "citizen"
KIND_OFFICIAL = "official"
PROVIDER_KINDS = (KIND_CITIZEN, KIND_OFFICIAL)

# Upstream ID tokens are verified through servicekit's JWKS cache, which pins the platform's asymmetric
# algorithms; symmetric (HS*) and "none" can never be configured.
SUPPORTED_UPSTREAM_ALGORITHMS = ("ES256", "EdDSA")
LEVELS = (1, 2)


@dataclass(frozen=True)
class ClaimMapping:
    """Names of the upstream claims that carry each attribute; adding a provider with other claim names is
    configuration, not code."""

    national_id: str
    name: str = ""
    agency: str = ""
    roles: str = ""
    level: str = ""
    dependents: str = ""


@dataclass(frozen=True)
class Provider:
    """One trusted upstream OIDC provider."""

    provider_id: str
    kind: str
    issuer: str
    discovery_url: str
    client_id: str
    claim_mapping: ClaimMapping
    display_name: str = ""
    audience: str = ""
    client_secret: str = field(default="", repr=False)
    allowed_algorithms: tuple[str, ...] = ("ES256",)
    upstream_scopes: tuple[str, ...] = ("openid", "profile")
    default_level: int = 0
    role_scopes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    source: str = "file"
    # Officials: the agency codes this provider may vouch for. Any provider could otherwise name any agency and
    # mint that agency's officials; empty lets it assert none (what an entry stored before the list existed gets).
    allowed_agencies: tuple[str, ...] = ()

    @property
    def expected_audience(self) -> str:
        return self.audience or self.client_id

    def scopes_for_roles(self, roles: Iterable[str]) -> tuple[str, ...]:
        granted: set[str] = set()
        for role in roles:
            granted.update(self.role_scopes.get(role, ()))
        return tuple(sorted(granted))


def _is_acceptable_url(value: str) -> bool:
    parsed = urlparse(value)
    if parsed.scheme == "https" and parsed.netloc:
        return True
    # Plain HTTP only to this machine: the sandboxes in development and tests.
    return parsed.scheme == "http" and (parsed.hostname or "") in ("127.0.0.1", "localhost", "::1")


def validate(provider: Provider) -> Provider:
    """Refuse a provider entry with every problem listed at once."""
    problems = ViolationCollector()
    if not provider.provider_id or not provider.provider_id.replace("-", "").replace("_", "").isalnum():
        problems.add("provider_id", "must be letters, digits, '-' or '_'")
    if provider.kind not in PROVIDER_KINDS:
        problems.add("kind", f"must be one of {', '.join(PROVIDER_KINDS)}")
    for name in ("issuer", "discovery_url"):
        if not _is_acceptable_url(getattr(provider, name)):
            problems.add(name, "must be an https URL (http only for 127.0.0.1/localhost)")
    if not provider.client_id:
        problems.add("client_id", "is required")
    if not provider.claim_mapping.national_id:
        problems.add("claim_mapping.national_id", "is required: subjects derive from the national ID")
    if provider.kind == KIND_OFFICIAL and not provider.claim_mapping.agency:
        problems.add("claim_mapping.agency", "is required for official providers")
    if provider.kind == KIND_OFFICIAL and not provider.allowed_agencies:
        problems.add("allowed_agencies", "is required for official providers: list the agency codes it may assert")
    if provider.kind == KIND_CITIZEN and provider.allowed_agencies:
        problems.add("allowed_agencies", "is for official providers only: citizens belong to no agency")
    for code in provider.allowed_agencies:
        if not subjects.is_agency_code(code):
            problems.add("allowed_agencies", f"{code!r} is not an agency code such as HCM or BTP")
    if not provider.allowed_algorithms:
        problems.add("allowed_algorithms", "list at least one algorithm")
    for algorithm in provider.allowed_algorithms:
        if algorithm not in SUPPORTED_UPSTREAM_ALGORITHMS:
            problems.add("allowed_algorithms", f"{algorithm!r} is not accepted; use "
                                               f"{', '.join(SUPPORTED_UPSTREAM_ALGORITHMS)}")
    if provider.default_level not in (0, *LEVELS):
        problems.add("default_level", "must be 0 (level claim required), 1 or 2")
    if provider.kind == KIND_OFFICIAL and not provider.claim_mapping.level and provider.default_level == 0:
        problems.add("default_level", "official providers without a level claim need a default level")
    for role, granted in provider.role_scopes.items():
        unknown = [scope for scope in granted if scope not in scope_rules.KNOWN_SCOPES]
        if unknown:
            problems.add(f"role_scopes[{role}]", f"unknown scopes {', '.join(unknown)}")
    problems.raise_if_any("the identity provider entry is invalid")
    return provider


@dataclass(frozen=True)
class UpstreamIdentity:
    """Who the upstream says logged in, in platform terms."""

    kind: str
    national_id: str
    name: str
    level: int
    agency: str = ""
    roles: tuple[str, ...] = ()
    dependents: tuple[str, ...] = ()

    @property
    def subject(self) -> str:
        if self.kind == KIND_CITIZEN:
            return subjects.citizen_subject(self.national_id)
        return subjects.official_subject(self.agency, self.national_id)


def _claim_error(provider: Provider, problem: str, reason: str = "UPSTREAM_CLAIMS_INVALID") -> Unauthenticated:
    return Unauthenticated(f"the ID token of {provider.provider_id} {problem}", reason=reason,
                           metadata={"provider": provider.provider_id})


def _string_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(part for part in value.replace(",", " ").split() if part)
    if isinstance(value, list | tuple):
        return tuple(str(item) for item in value if str(item))
    return ()


def map_claims(provider: Provider, claims: Mapping[str, Any]) -> UpstreamIdentity:
    """Map verified upstream claims with the provider's claim mapping. The national ID must be there and be 12
    digits: an e-mail or the upstream's own ``sub`` is never used as the subject."""
    mapping = provider.claim_mapping
    raw_id = claims.get(mapping.national_id)
    try:
        number = subjects.national_id(raw_id) if raw_id is not None else ""
    except InvalidArgument:
        raise _claim_error(provider, f"has no valid 12-digit national ID in {mapping.national_id!r}") from None
    if not number:
        raise _claim_error(provider, f"lacks the national ID claim {mapping.national_id!r}")
    level = provider.default_level
    if mapping.level and claims.get(mapping.level) is not None:
        try:
            level = int(str(claims[mapping.level]).strip())
        except ValueError:
            raise _claim_error(provider, f"has a level claim that is not 1 or 2: {claims[mapping.level]!r}") from None
    if level not in LEVELS:
        raise _claim_error(provider, "does not state a level of assurance of 1 or 2")
    name = str(claims.get(mapping.name, "") or "") if mapping.name else ""
    if provider.kind == KIND_CITIZEN:
        dependents = tuple(sorted({item for item in _string_list(claims.get(mapping.dependents)) if
                                   subjects.is_national_id(item) and item != number})) if mapping.dependents else ()
        return UpstreamIdentity(KIND_CITIZEN, number, name, level, dependents=dependents)
    try:
        agency = subjects.agency_code(str(claims.get(mapping.agency, "") or ""))
    except InvalidArgument:
        raise _claim_error(provider, f"has no valid agency code in {mapping.agency!r}") from None
    if agency not in provider.allowed_agencies:
        raise _claim_error(provider, f"names agency {agency}, which this provider may not vouch for "
                                     f"(its allowed_agencies: {', '.join(provider.allowed_agencies) or 'none'})",
                           reason="UPSTREAM_AGENCY_NOT_ALLOWED")
    roles = tuple(sorted(set(_string_list(claims.get(mapping.roles))))) if mapping.roles else ()
    return UpstreamIdentity(KIND_OFFICIAL, number, name, level, agency=agency, roles=roles)
