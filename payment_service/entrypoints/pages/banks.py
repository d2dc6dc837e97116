"""Short names of Vietnamese banks by their 6-digit NAPAS BIN, for spelling out a transfer on the payment page."""

from __future__ import annotations

BANK_NAMES = {
    "970436": "Vietcombank", "970415": "VietinBank", "970418": "BIDV", "970405": "Agribank", "970422": "MB Bank",
    "970407": "Techcombank", "970416": "ACB", "970432": "VPBank", "970423": "TPBank", "970403": "Sacombank",
    "970443": "SHB", "970441": "VIB", "970437": "HDBank", "970440": "SeABank", "970448": "OCB", "970426": "MSB",
    "970431": "Eximbank", "970449": "LPBank", "970428": "Nam A Bank", "970409": "Bac A Bank", "970412": "PVcomBank",
    "970425": "ABBANK", "970438": "BaoViet Bank", "970452": "Kienlongbank", "970419": "NCB", "970430": "PGBank",
    "970400": "Saigonbank", "970433": "VietBank", "970454": "BVBank", "971025": "MoMo",
}


def bank_name(bank_bin: str) -> str:
    """The bank's short name, or its BIN when the bank is not in the table."""
    return BANK_NAMES.get(bank_bin, f"BIN {bank_bin}")
