"""Every sentence of every page has its Vietnamese, and pages write money and times the way people there read them."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import jinja2
import pytest

from payment_service.entrypoints.pages.messages import VI as PAYMENT_VI
from servicekit.web import formatting
from servicekit.web.i18n import Catalog
from servicekit.web.messages import VI as WEB_VI
from wallet_service.entrypoints.pages.messages import VI as WALLET_VI

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = {  # page package → the catalogues its app installs
    "servicekit/web": (WEB_VI,),
    "wallet_service/entrypoints/pages": (WEB_VI, WALLET_VI),
    "payment_service/entrypoints/pages": (WEB_VI, PAYMENT_VI),
}


def messages_of(package: str) -> set[str]:
    """The English message ids a package uses: _() in its templates (read by Jinja's own extractor), translate()
    calls and the *_LABELS / *_MESSAGES / *_TITLES tables in its Python code."""
    found: set[str] = set()
    environment = jinja2.Environment(extensions=["jinja2.ext.i18n"])
    for template in (ROOT / package).rglob("*.html"):
        # _(variable) yields None: those strings come from the Python tables below.
        for _, _, message in environment.extract_translations(  # type: ignore[attr-defined]
                template.read_text(encoding="utf-8")):
            if isinstance(message, str):
                found.add(message)
            elif message:
                found.update(part for part in message if isinstance(part, str))
    for module in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "translate" \
                    and node.args and isinstance(node.args[0], ast.Constant):
                found.add(str(node.args[0].value))
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict) and any(
                    isinstance(target, ast.Name) and target.id.endswith(("_LABELS", "_MESSAGES", "_TITLES"))
                    for target in node.targets):
                found.update(value.value for value in node.value.values
                             if isinstance(value, ast.Constant) and isinstance(value.value, str))
    return found


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_every_message_of_a_page_package_has_its_vietnamese(package: str) -> None:
    catalog = Catalog(*PACKAGES[package])
    used = messages_of(package)
    assert len(used) > 20, "the extractor found suspiciously few messages"
    assert sorted(message for message in used if not catalog.knows(message)) == []


def test_placeholders_survive_translation() -> None:
    for table in (WEB_VI, WALLET_VI, PAYMENT_VI):
        for english, vietnamese in table.items():
            names = sorted(part.split(")")[0] for part in english.split("%(")[1:])
            assert names == sorted(part.split(")")[0] for part in vietnamese.split("%(")[1:]), english


def test_one_message_never_gets_two_translations() -> None:
    with pytest.raises(ValueError):
        Catalog({"Status": "Trạng thái"}, {"Status": "Tình trạng"})
    assert Catalog(WEB_VI, WALLET_VI).translate("en", "Status") == "Status"


def test_money_dates_and_identifiers_are_written_for_people_in_viet_nam() -> None:
    assert formatting.money(185_000, "vi") == "185.000 đồng"
    assert formatting.money(1_250_000, "en") == "1,250,000 VND"
    assert formatting.money(950, "vi") == "950 đồng"
    late_evening_utc = datetime(2026, 3, 1, 18, 30, tzinfo=UTC)   # already 2 March, 01:30 in Viet Nam
    assert formatting.datetime_text(late_evening_utc, "vi") == "01:30 02/03/2026"
    assert formatting.datetime_text(late_evening_utc, "en") == "2 Mar 2026, 01:30"
    assert formatting.date_text(late_evening_utc, "vi") == "02/03/2026"
    assert formatting.iso_local(late_evening_utc) == "2026-03-02T01:30:00+07:00"
    assert formatting.masked_id("001085000101") == "••••••••0101"
    assert formatting.size_text(1536, "vi") == "1,5 KB" and formatting.size_text(3 * 1024 * 1024, "en") == "3.0 MB"
