"""Short ASCII payment references: unambiguous alphabet, a fixed prefix and a Luhn mod-32 check character."""

from __future__ import annotations

import secrets

# Crockford's base-32 alphabet: no I, L, O or U, so a reference read aloud or retyped from a receipt cannot be
# confused; letters and digits only because bank apps strip punctuation and spaces from transfer notes.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
PREFIX = "DVC"
RANDOM_LENGTH = 12  # 60 random bits: collisions are negligible and the unique index catches the rest
LENGTH = len(PREFIX) + RANDOM_LENGTH + 1
_INDEX = {character: position for position, character in enumerate(ALPHABET)}
_BASE = len(ALPHABET)


def check_character(body: str) -> str:
    """The Luhn mod-32 check character of ``body``: catches every single-character error and most swaps."""
    factor = 2
    total = 0
    for character in reversed(body):
        addend = factor * _INDEX[character]
        factor = 1 if factor == 2 else 2
        total += addend // _BASE + addend % _BASE
    return ALPHABET[(_BASE - total % _BASE) % _BASE]


def new_reference() -> str:
    """A fresh random reference, e.g. ``DVC7K2M9QX4TB1HZ`` (16 characters)."""
    # 60 random bits read five at a time: one call to the OS generator instead of twelve.
    bits = int.from_bytes(secrets.token_bytes(8), "big") >> (64 - 5 * RANDOM_LENGTH)
    body = PREFIX + "".join(ALPHABET[(bits >> (5 * i)) & 31] for i in range(RANDOM_LENGTH))
    return body + check_character(body)


def is_valid(reference: str) -> bool:
    """True when ``reference`` has our shape and its check character matches."""
    if len(reference) != LENGTH or not reference.startswith(PREFIX):
        return False
    if any(character not in _INDEX for character in reference[len(PREFIX):]):
        return False
    return check_character(reference[:-1]) == reference[-1]


def find_in_note(note: str) -> tuple[str | None, bool]:
    """The one valid reference in a bank transfer note, and whether a reference-like token was seen at all (True
    with None means the note was garbled, or named two payments: which one the money is for is a person's call)."""
    compact = "".join(note.upper().split())
    found = {compact[start:start + LENGTH] for start in range(len(compact) - LENGTH + 1)
             if compact.startswith(PREFIX, start) and is_valid(compact[start:start + LENGTH])}
    if len(found) == 1:
        return found.pop(), True
    return None, PREFIX in compact
