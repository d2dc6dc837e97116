"""The sandboxes' default ports and their published test credentials (test mode only: never production keys)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

DEFAULT_NOTIFY_URL_BASE = "http://127.0.0.1:8082/callbacks"
DEFAULT_RETURN_URL = "http://127.0.0.1:8082/pay/return"
MERCHANT_ID = "DVCQG"

SANDBOX_PORTS: dict[str, int] = {
    "vnpay": 8101, "momo": 8102, "payoo": 8103, "nganluong": 8104, "vietcombank": 8105, "vietinbank": 8106,
    "bidv": 8107, "agribank": 8108, "mb": 8109, "vnptpay": 8110, "vietqr": 8111,
}


@dataclass(frozen=True)
class PortalBank:
    """A bank (or VNPT Pay) that speaks the portal connection standard."""

    code: str
    display_name: str
    bank_bin: str
    channel: str = "bank"


PORTAL_BANKS: dict[str, PortalBank] = {bank.code: bank for bank in (
    PortalBank("vietcombank", "Vietcombank", "970436"),
    PortalBank("vietinbank", "VietinBank", "970415"),
    PortalBank("bidv", "BIDV", "970418"),
    PortalBank("agribank", "Agribank", "970405"),
    PortalBank("mb", "MB Bank", "970422"),
    PortalBank("vnptpay", "VNPT Pay", "", channel="wallet"),
)}
# The sandbox collecting bank of the agencies' beneficiary accounts (NAPAS 247 credits), signing like a portal bank.
VIETQR_BANK = PortalBank("vietqr", "VietQR (NAPAS 247)", "970436", channel="vietqr")

VNPAY = {"tmn_code": "DVCSBX01", "hash_secret": "SANDBOXVNPAYHASHSECRETDVC2026XYZ"}
MOMO = {"partner_code": "MOMODVC0SBX", "access_key": "SbxMoMoAccess2026",
        "secret_key": "SbxMoMoSecretKeyForDvcSandbox2026"}
PAYOO = {"business_username": "dvc_sandbox", "shop_id": "1188", "checksum_key": "SbxPayooChecksumKey2026DVC",
         "api_username": "dvc_sandbox_api", "api_password": "SbxPayooApiPassword2026",
         "api_signature": "SbxPayooApiSignature2026"}
NGANLUONG = {"merchant_id": "36680", "merchant_password": "SbxNganLuongSecurePass2026",
             "receiver_email": "thu-phi@dichvucong.test"}


@cache
def portal_key(code: str, party: str) -> Ed25519PrivateKey:
    """The sandbox Ed25519 key of ``party`` ('platform' or 'bank') for portal connector ``code``: derived from a
    published seed so every machine and the documentation's worked example agree, and obviously not secret."""
    seed = hashlib.sha256(f"dvc-sandbox:{code}:{party}".encode()).digest()
    return Ed25519PrivateKey.from_private_bytes(seed)


def portal_key_id(code: str, party: str) -> str:
    return f"{code}-{party}-sandbox-1"
