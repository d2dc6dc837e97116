"""The e-receipt (biên lai điện tử) of a successful payment, as a canonical JSON document."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from typing import Any

from payment_service.domain.model import Agency, Payment

RECEIPT_TYPE = "dvc.payment.receipt.v1"
CONTENT_TYPE = "application/xml"
XML_NAMESPACE = "urn:dvc:payment:receipt:v1"
# Asia/Ho_Chi_Minh: UTC+7 all year (no daylight saving since 1975).
VIETNAM = timezone(timedelta(hours=7), "ICT")


def receipt_number(payment: Payment, paid_at: datetime) -> str:
    """Unique and stable per payment, so a retried issue never makes a second receipt. The date is the day of
    payment in Viet Nam, as the payer and the agency's books count it (paid_at is kept in UTC)."""
    return f"BL{paid_at.astimezone(VIETNAM):%Y%m%d}{payment.reference}"


def receipt_document(payment: Payment, agency: Agency, issued_at: datetime) -> dict[str, Any]:
    """Number, agency, payer, fee lines, amount, bank transaction id and time of a paid payment."""
    paid_at = payment.paid_at or issued_at
    return {
        "type": RECEIPT_TYPE,
        "number": receipt_number(payment, paid_at),
        "agency": {"code": agency.code, "name": agency.name},
        "payer": {"name": payment.payer.name, "national_id": payment.payer.national_id},
        "payment": {"id": payment.id, "reference": payment.reference, "dossier_code": payment.dossier_code,
                    "procedure_code": payment.procedure_code, "service_code": payment.service_code},
        "fee_lines": [{"kind": line.kind.value, "code": line.code, "name": line.name, "amount": line.amount}
                      for line in payment.fee_lines],
        "amount": payment.amount,
        "currency": "VND",
        "beneficiary": {"bank_bin": payment.beneficiary.bank_bin, "account": payment.beneficiary.account},
        "bank_transaction_id": payment.provider_reference,
        "connector": payment.connector_code,
        "paid_at": paid_at.isoformat(),
        "issued_at": issued_at.isoformat(),
    }


def canonical_json(document: dict[str, Any]) -> bytes:
    """The exact bytes that are signed: sorted keys, no insignificant whitespace, UTF-8."""
    return json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def _add(parent: ET.Element, tag: str, value: Any) -> None:
    if isinstance(value, dict):
        child = ET.SubElement(parent, tag)
        for key, inner in value.items():
            _add(child, key, inner)
    elif isinstance(value, list):
        holder = ET.SubElement(parent, tag)
        for item in value:
            _add(holder, "item", item)
    else:
        ET.SubElement(parent, tag).text = "" if value is None else str(value)


def receipt_xml(document: dict[str, Any], signature: str, algorithm: str, key_id: str) -> bytes:
    """The signed receipt as the XML document the wallet stores: the receipt's fields for people and systems that
    read XML, and the signed canonical JSON (base64) with its detached signature for verifiers, who check the
    signature over the decoded ``SignedContent`` bytes and may compare it with the fields."""
    root = ET.Element("BienLaiDienTu", {"xmlns": XML_NAMESPACE, "type": RECEIPT_TYPE})
    for key, value in document.items():
        if key != "type":
            _add(root, key, value)
    ET.SubElement(root, "SignedContent", {"encoding": "base64", "format": "canonical-json"}).text = \
        base64.b64encode(canonical_json(document)).decode()
    ET.SubElement(root, "Signature", {"alg": algorithm, "kid": key_id, "encoding": "base64url"}).text = signature
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True)
