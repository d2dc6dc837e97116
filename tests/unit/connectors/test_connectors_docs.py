"""The documents integrators rely on stay true: the standard's worked example verifies with the published sandbox
keys, and the sandbox guide lists exactly the magic amounts the sandboxes implement."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from payment_service.sandbox.common import MAGIC

DOCS = Path(__file__).resolve().parents[3] / "docs"
STANDARD = (DOCS / "bank-connection-standard.md").read_text(encoding="utf-8")


def example(name: str) -> str:
    match = re.search(rf"<!-- example:{name} -->\n```\n(.*?)\n```", STANDARD, re.DOTALL)
    assert match, name
    return match.group(1)


def headers(name: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in example(name).splitlines())


def key(party: str) -> Ed25519PrivateKey:
    # Derived here from the published seed, the way the standard describes it.
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"dvc-sandbox:vietcombank:{party}".encode()).digest())


@pytest.mark.parametrize(("message", "party", "first_lines"), [
    ("request", "platform", lambda h: ["POST", "/v1/payments"]),
    ("response", "bank", lambda h: ["RESPONSE 201", headers("request-headers")["X-DVC-Nonce"]]),
    ("notification", "bank", lambda h: ["POST", "/callbacks/vietcombank"]),
])
def test_the_worked_example_verifies_with_the_published_keys(message, party, first_lines):
    body = example(f"{message}-body").encode()
    sent = headers(f"{message}-headers")
    expected_base = "\n".join(["DVC-PORTAL-1", *first_lines(sent), sent["X-DVC-Timestamp"], sent["X-DVC-Nonce"],
                               sent["X-DVC-Key-Id"], hashlib.sha256(body).hexdigest()])
    assert example(f"{message}-base") == expected_base
    key(party).public_key().verify(base64.b64decode(sent["X-DVC-Signature"]), expected_base.encode())
    assert sent["X-DVC-Key-Id"] == f"vietcombank-{party}-sandbox-1"


def test_the_worked_settlement_file_verifies():
    *rows, signature_line = example("settlement-file").splitlines()
    content = ("\n".join(rows) + "\n").encode()
    match = re.fullmatch(r"#DVC-SIGNATURE key-id=(\S+) signature=(\S+)", signature_line)
    assert match is not None
    kid, signature = match.groups()
    digest = hashlib.sha256(content).hexdigest()
    assert digest in STANDARD
    key("bank").public_key().verify(base64.b64decode(signature), f"DVC-PORTAL-1\nFILE\n{kid}\n{digest}".encode())


def test_the_published_public_keys_are_the_sandbox_keys():
    for party in ("platform", "bank"):
        raw = key(party).public_key().public_bytes_raw()
        spki = base64.b64encode(bytes.fromhex("302a300506032b6570032100") + raw).decode()
        assert spki in STANDARD


def test_the_sandbox_guide_lists_every_magic_amount():
    guide = (DOCS / "sandboxes.md").read_text(encoding="utf-8")
    documented = {int(ending): name for ending, name in re.findall(r"^\| (\d\d) \| `(\w+)` \|", guide, re.MULTILINE)}
    assert documented == {code: magic.name for code, magic in MAGIC.items()}
