"""Test accounts of the sandbox providers: VNeID citizens (level 1 and 2, a minor with a guardian) and agency
officials. The numbers are made up and follow the national ID layout (province, century/sex, year, serial)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

PROVIDER_VNEID = "vneid"
PROVIDER_AGENCY = "agency"


@dataclass(frozen=True)
class SandboxAccount:
    """One person the sandbox can log in."""

    username: str
    national_id: str
    name: str
    level: int
    agency: str = ""
    roles: tuple[str, ...] = ()
    dependents: tuple[str, ...] = ()
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def opaque_sub(self, client_id: str) -> str:
        """A pairwise upstream subject, as real providers issue: deliberately not the national ID, so the
        platform must take the subject from the mapped national-ID claim."""
        return hashlib.sha256(f"{client_id}|{self.national_id}".encode()).hexdigest()[:24]

    def email(self) -> str:
        return f"user{self.national_id[-6:]}@sandbox.vneid.example"


VNEID_ACCOUNTS = (
    SandboxAccount("001085000101", "001085000101", "Nguyễn Văn An", 2, note="level 2 citizen"),
    SandboxAccount("001190000202", "001190000202", "Trần Thị Bình", 1, note="level 1 citizen (no step-up)"),
    SandboxAccount("079080000303", "079080000303", "Lê Minh Cường", 2, dependents=("079215000404",),
                   note="level 2 citizen, guardian of Lê Gia Hân"),
    SandboxAccount("079215000404", "079215000404", "Lê Gia Hân", 1, note="minor (born 2015), guardian Lê Minh Cường"),
    SandboxAccount("048195000505", "048195000505", "Phạm Thu Dung", 2, note="level 2 citizen"),
)

AGENCY_ACCOUNTS = (
    SandboxAccount("canbo.hcm", "079075001001", "Võ Thị Hoa", 2, agency="HCM", roles=("payments-officer",),
                   note="official of Ho Chi Minh City"),
    SandboxAccount("canbo.hn", "001082004004", "Hoàng Thị Lan", 2, agency="HN", roles=("payments-officer",),
                   note="official of Ha Noi"),
    SandboxAccount("canbo.btp", "001080002002", "Đặng Quốc Huy", 2, agency="BTP", roles=("registrar",),
                   note="official of the Ministry of Justice"),
    SandboxAccount("quantri.dvc", "001078003003", "Bùi Minh Khoa", 2, agency="DVC",
                   roles=("identity-admin", "payments-admin", "wallet-admin"), note="platform administrator"),
)


def accounts_for(provider: str) -> tuple[SandboxAccount, ...]:
    return VNEID_ACCOUNTS if provider == PROVIDER_VNEID else AGENCY_ACCOUNTS


def synthetic_citizen(national_id: str, level: int) -> SandboxAccount:
    """Any other 12-digit number logs in as a generated citizen, so load tests can use many distinct people."""
    return SandboxAccount(national_id, national_id, f"Công dân thử nghiệm {national_id[-4:]}", level,
                          note="generated")


def upstream_claims(provider: str, account: SandboxAccount) -> dict[str, Any]:
    """The provider-specific claims (VNeID-style Vietnamese names; the platform maps them by configuration)."""
    if provider == PROVIDER_VNEID:
        claims: dict[str, Any] = {"so_dinh_danh": account.national_id, "ho_va_ten": account.name,
                                  "muc_do_dinh_danh": account.level, "email": account.email()}
        if account.dependents:
            claims["giam_ho_cho"] = list(account.dependents)
        return claims
    return {"so_cccd": account.national_id, "ho_va_ten": account.name, "ma_co_quan": account.agency,
            "vai_tro": list(account.roles), "email": account.email()}
