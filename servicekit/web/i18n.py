"""Languages of the pages: Vietnamese by default, English on request; English source strings are the message ids."""

from __future__ import annotations

from collections.abc import Mapping

LANGUAGES = ("vi", "en")
DEFAULT_LANGUAGE = "vi"
LANGUAGE_NAMES = {"vi": "Tiếng Việt", "en": "English"}


class Catalog:
    """English message ids and their Vietnamese translations, gathered from every page package."""

    def __init__(self, *translations: Mapping[str, str]) -> None:
        self._vietnamese: dict[str, str] = {}
        for table in translations:
            self.add(table)

    def add(self, translations: Mapping[str, str]) -> None:
        for message, translated in translations.items():
            known = self._vietnamese.get(message)
            if known is not None and known != translated:
                raise ValueError(f"two Vietnamese translations of {message!r}: {known!r} and {translated!r}")
            self._vietnamese[message] = translated

    def translate(self, language: str, message: str) -> str:
        """The message in ``language``; an untranslated message shows in English rather than not at all (a unit
        test keeps the Vietnamese catalogue complete)."""
        if language == "vi":
            return self._vietnamese.get(message, message)
        return message

    def knows(self, message: str) -> bool:
        return message in self._vietnamese


def pick_language(cookie_value: str | None) -> str:
    """The language a visitor chose with the switch, else Vietnamese."""
    return cookie_value if cookie_value in LANGUAGES else DEFAULT_LANGUAGE
