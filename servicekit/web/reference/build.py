"""Builds the integrators' reference as static HTML in each page language: one page per API (from the protos),
the error codes, the callback signature with its computed example, the sandbox guide and every document of docs/."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from servicekit.interceptors import ERROR_DOMAIN
from servicekit.web import markdown
from servicekit.web.i18n import LANGUAGE_NAMES, LANGUAGES, Catalog
from servicekit.web.messages import VI
from servicekit.web.reference import errors as error_scan
from servicekit.web.reference import examples, protos
from servicekit.web.static_assets import asset_versions

ROOT = Path(__file__).resolve().parents[3]
TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
DEFAULT_OUT = ROOT / ".gen" / "reference"
STAMP = "stamp.json"
# Which service's code raises the errors each API answers with; "servicekit" is what every service shares.
ERROR_PACKAGES = (("servicekit", "Every service"), ("payment_service", "Payments"), ("wallet_service", "Wallet"),
                  ("identity_service", "Identity"))
# The documents an integrator needs first, in this order; any other docs/*.md follows them.
FEATURED_DOCS = ("payments", "wallet", "identity", "bank-connection-standard", "sandboxes")


@dataclass(frozen=True)
class Page:
    slug: str
    title: str
    template: str
    context: dict[str, Any]


def sources(root: Path = ROOT) -> list[Path]:
    """The files the reference is made from (their newest change decides whether a build is stale): the protos,
    the documents, and the templates and code that make the pages."""
    made_by = Path(__file__).resolve().parent
    return sorted([*(root / "proto").rglob("*.proto"), *(root / "docs").glob("*.md"), *made_by.glob("*.py"),
                   *(TEMPLATES / "docs").glob("*.html"), made_by.parent / "messages.py"])


def newest_source(root: Path = ROOT) -> float:
    return max((path.stat().st_mtime for path in sources(root)), default=0.0)


def _api_slug(proto: protos.ProtoFile) -> str:
    return "api-" + proto.package.split(".")[1] if proto.package.count(".") >= 2 else "api-" + proto.package


def _doc_link(target: str) -> str:
    """Links between documents point at their pages here; links to code stay as they are."""
    if target.endswith(".md") and "/" not in target:
        return f"guide-{target[:-3]}.html"
    if "#" in target and target.split("#", 1)[0].endswith(".md") and "/" not in target:
        name, anchor = target.split("#", 1)
        return f"guide-{name[:-3]}.html#{anchor}"
    return target


def _comment(text: str) -> str:
    return markdown.render(text).html if text else ""


def pages(root: Path = ROOT) -> list[Page]:
    files = protos.read_files(protos.descriptor_set(root / "proto"))
    types: dict[str, str] = {}
    for proto in files:
        slug = _api_slug(proto)
        for message in proto.all_messages():
            types[message.full_name] = f"{slug}.html#{message.full_name}"
        for enum in proto.all_enums():
            types[enum.full_name] = f"{slug}.html#{enum.full_name}"
    found = [Page(_api_slug(proto), f"{proto.package}", "docs/api.html",
                  {"proto": proto, "types": types, "comment": _comment}) for proto in files]
    scanned = error_scan.scan_all(root, [package for package, _ in ERROR_PACKAGES])
    found.append(Page("errors", "Errors", "docs/errors.html", {
        "groups": [(label, scanned[package]) for package, label in ERROR_PACKAGES],
        "classes": error_scan.error_classes(), "domain": ERROR_DOMAIN}))
    found.append(Page("callbacks", "Callback signatures", "docs/callbacks.html",
                      {"example": examples.signature_example()}))
    found.append(Page("sandbox", "Sandbox guide", "docs/sandbox.html", {"facts": examples.sandbox_facts()}))
    documents = {path.stem: path for path in (root / "docs").glob("*.md")}
    order = [name for name in FEATURED_DOCS if name in documents] + sorted(set(documents) - set(FEATURED_DOCS))
    for name in order:
        rendered = markdown.render(documents[name].read_text(encoding="utf-8"), link=_doc_link)
        found.append(Page(f"guide-{name}", rendered.title or name, "docs/guide.html",
                          {"document": rendered, "source": f"docs/{name}.md"}))
    found.insert(0, Page("index", "Integrators' reference", "docs/index.html", {
        "apis": [(page, proto) for page, proto in zip(found, files, strict=False)],
        "guides": [page for page in found if page.slug.startswith("guide-")]}))
    return found


def _environment(catalog: Catalog, language: str) -> jinja2.Environment:
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                     extensions=["jinja2.ext.i18n"], undefined=jinja2.StrictUndefined)
    environment.install_gettext_callables(  # type: ignore[attr-defined]
        lambda message: catalog.translate(language, message),
        lambda singular, plural, count: catalog.translate(language, singular if count == 1 else plural),
        newstyle=True)
    return environment


def build(out_dir: Path = DEFAULT_OUT, root: Path = ROOT) -> Path:
    """Write every page in every language into ``out_dir`` (replaced as a whole, so readers never see half)."""
    started = time.time()
    built = pages(root)
    catalog = Catalog(VI)
    versions = asset_versions()
    navigation = [(page.slug, page.title) for page in built]
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".reference-", dir=out_dir.parent))
    try:
        for language in LANGUAGES:
            environment = _environment(catalog, language)
            (scratch / language).mkdir()
            for page in built:
                html = environment.get_template(page.template).render(
                    page=page, navigation=navigation, language=language, language_names=LANGUAGE_NAMES,
                    assets={name: f"/assets/{name}?v={version}" for name, version in versions.items()},
                    **page.context)
                (scratch / language / f"{page.slug}.html").write_text(html, encoding="utf-8")
        (scratch / STAMP).write_text(json.dumps({"built_at": started, "sources_mtime": newest_source(root),
                                                 "pages": [page.slug for page in built]}), encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        scratch.rename(out_dir)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return out_dir


def is_current(out_dir: Path = DEFAULT_OUT, root: Path = ROOT) -> bool:
    """True when ``out_dir`` holds a build at least as new as its sources (or the sources are not here)."""
    stamp = out_dir / STAMP
    if not stamp.exists():
        return False
    if not (root / "proto").exists():
        return True  # a container image: the build shipped with it is the one to serve
    recorded = json.loads(stamp.read_text(encoding="utf-8"))
    return float(recorded.get("sources_mtime", 0)) >= newest_source(root)
