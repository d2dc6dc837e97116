"""Secrets at rest: private keys and provider secrets encrypted with AES-GCM, client secrets hashed (argon2)."""

from __future__ import annotations

import os

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# DEVELOPMENT ONLY. Anyone can read this value here; start-up refuses it when IDENTITY_ENVIRONMENT=production.
DEV_KEY_ENCRYPTION_KEY = "DEVELOPMENT-ONLY-dvc-identity-key-encryption-key-do-not-use-in-production"
MIN_KEY_ENCRYPTION_KEY_LENGTH = 32
_VERSION = b"\x01"


class KeyDecryptionError(Exception):
    """Stored ciphertext does not open with the configured key-encryption key (wrong key or tampering)."""


class KeyEncryptor:
    """AES-256-GCM under a key derived (HKDF-SHA256) from IDENTITY_KEY_ENCRYPTION_KEY; the associated data binds
    each ciphertext to its row (a key id) so ciphertexts cannot be swapped between rows."""

    def __init__(self, secret: str) -> None:
        if len(secret) < MIN_KEY_ENCRYPTION_KEY_LENGTH:
            raise ValueError(f"the key-encryption key must be at least {MIN_KEY_ENCRYPTION_KEY_LENGTH} characters")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"dvc-identity", info=b"key-encryption-v1").derive(
            secret.encode("utf-8"))
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: bytes, associated: str) -> bytes:
        nonce = os.urandom(12)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, associated.encode("utf-8"))

    def decrypt(self, blob: bytes, associated: str) -> bytes:
        if not blob.startswith(_VERSION) or len(blob) < 1 + 12 + 16:
            raise KeyDecryptionError("unknown ciphertext format")
        try:
            return self._aead.decrypt(blob[1:13], blob[13:], associated.encode("utf-8"))
        except InvalidTag:
            raise KeyDecryptionError("ciphertext does not open with the configured key-encryption key") from None


# OWASP's minimum argon2id settings: client secrets are random 256-bit values, so this guards a leaked table
# without making every client-credentials request slow.
_HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


def hash_secret(secret: str) -> str:
    return _HASHER.hash(secret)


def verify_secret(stored_hash: str | None, secret: str) -> bool:
    if not stored_hash or not secret:
        return False
    try:
        return _HASHER.verify(stored_hash, secret)
    except (VerificationError, InvalidHashError):
        return False
