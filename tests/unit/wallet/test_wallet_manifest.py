"""The signed manifest: canonical bytes every party can rebuild, and ES256/Ed25519 signatures over them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from servicekit.errors import InvalidArgument
from wallet_service.domain.manifest import (
    SignatureChecks,
    load_public_key,
    manifest_bytes,
    public_pem,
    sign,
    signature_verifies,
)
from wallet_service.domain.model import SignatureAlgorithm


def _manifest(**changes):
    fields = dict(citizen_id="001099012345", content_sha256="ab" * 32, document_type="BIRTH_CERT",
                  issuer_agency="STP-HCM", metadata={"full_name": "Lê Thị Hoa", "date_of_birth": "2015-04-30"},
                  valid_from=datetime(2026, 1, 1, 7, 0, tzinfo=timezone(timedelta(hours=7))), valid_until=None)
    fields.update(changes)
    return manifest_bytes(**fields)


def test_manifest_is_canonical_json_as_documented_in_the_contract():
    # Written out by hand from the rule on IssueDocumentMetadata: sorted keys, no blanks, UTF-8 as is,
    # UTC whole-second times, "" for unset values, "v": 1.
    expected = ('{"citizen_id":"001099012345","content_sha256":"' + "ab" * 32 + '","document_type":"BIRTH_CERT",'
                '"issuer_agency":"STP-HCM","metadata":{"date_of_birth":"2015-04-30","full_name":"Lê Thị Hoa"},'
                '"supersedes":"","v":1,"valid_from":"2026-01-01T00:00:00Z","valid_until":""}').encode("utf-8")
    assert _manifest() == expected


def test_metadata_order_does_not_change_the_manifest():
    assert _manifest(metadata={"b": "2", "a": "1"}) == _manifest(metadata={"a": "1", "b": "2"})


@pytest.mark.parametrize("private_key", [ed25519.Ed25519PrivateKey.generate(), ec.generate_private_key(ec.SECP256R1())],
                         ids=["Ed25519", "ES256"])
def test_a_signature_verifies_over_its_manifest_and_nothing_else(private_key):
    algorithm = SignatureAlgorithm.ED25519 if isinstance(private_key, ed25519.Ed25519PrivateKey) \
        else SignatureAlgorithm.ES256
    public_key = load_public_key(public_pem(private_key), algorithm)
    signature = sign(private_key, _manifest())
    assert signature_verifies(public_key, _manifest(), signature)
    assert not signature_verifies(public_key, _manifest(metadata={"full_name": "Someone else"}), signature)
    assert not signature_verifies(public_key, _manifest(content_sha256="cd" * 32), signature)
    assert not signature_verifies(public_key, _manifest(), signature[:-1] + bytes([signature[-1] ^ 1]))


class _CountingKey:
    """An Ed25519 public key that counts the public-key operations made with it."""

    def __init__(self, key):
        self.key, self.operations = key, 0

    def verify(self, signature, payload):
        self.operations += 1
        self.key.verify(signature, payload)


def test_remembered_checks_skip_the_key_operation_but_any_change_is_checked_afresh(monkeypatch):
    monkeypatch.setattr(ed25519, "Ed25519PublicKey", _CountingKey)
    private_key = ed25519.Ed25519PrivateKey.generate()
    counting = _CountingKey(private_key.public_key())
    checks = SignatureChecks()
    signature = sign(private_key, _manifest())
    assert checks.verifies("k1", counting, _manifest(), signature)
    assert checks.verifies("k1", counting, _manifest(), signature)
    assert counting.operations == 1
    # An altered manifest (say a metadata value edited in the database) misses the memo and fails.
    assert not checks.verifies("k1", counting, _manifest(metadata={"full_name": "Someone else"}), signature)
    assert not checks.verifies("k1", counting, _manifest(), signature[:-1] + bytes([signature[-1] ^ 1]))
    assert counting.operations == 3


def test_a_full_memo_starts_over_instead_of_growing():
    private_key = ed25519.Ed25519PrivateKey.generate()
    public_key = private_key.public_key()
    checks = SignatureChecks(capacity=2)
    for number in range(5):
        manifest = _manifest(content_sha256=f"{number:064x}")
        assert checks.verifies("k1", public_key, manifest, sign(private_key, manifest))
    assert len(checks) <= 2


def test_es256_signatures_are_64_bytes_and_der_is_accepted_too():
    private_key = ec.generate_private_key(ec.SECP256R1())
    public_key = load_public_key(public_pem(private_key), SignatureAlgorithm.ES256)
    assert len(sign(private_key, _manifest())) == 64
    der = private_key.sign(_manifest(), ec.ECDSA(hashes.SHA256()))
    assert signature_verifies(public_key, _manifest(), der)


def test_a_key_that_does_not_fit_its_algorithm_is_refused():
    p384 = public_pem(ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(InvalidArgument):
        load_public_key(p384, SignatureAlgorithm.ES256)
    with pytest.raises(InvalidArgument):
        load_public_key(public_pem(ec.generate_private_key(ec.SECP256R1())), SignatureAlgorithm.ED25519)
    with pytest.raises(InvalidArgument):
        load_public_key("-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----", SignatureAlgorithm.ES256)


def test_times_are_rendered_in_utc_whole_seconds():
    moment = datetime(2026, 6, 30, 23, 59, 59, tzinfo=UTC)
    assert b'"valid_until":"2026-06-30T23:59:59Z"' in _manifest(valid_until=moment)
