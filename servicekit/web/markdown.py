"""A small Markdown renderer for the project's own documents (headings, paragraphs, lists, pipe tables, fenced
code, block quotes, links, emphasis, code spans). Everything is HTML-escaped: raw HTML in a document is shown, not
run."""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
_RULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")
_ITEM = re.compile(r"^(\s*)([-*]|\d{1,9}[.)])\s+(.*)$")
_TABLE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_AUTOLINK = re.compile(r"&lt;(https?://[^\s&]+)&gt;")
_STRONG = re.compile(r"\*\*(.+?)\*\*")
_EMPHASIS = re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])|(?<!\w)_(?!\s)(.+?)(?<!\s)_(?!\w)")
_ESCAPABLE = "\\`*_{}[]()#+-.!|<>"
_LINK_SCHEMES = ("http", "https")


@dataclass
class Heading:
    level: int
    anchor: str
    text: str


@dataclass
class Rendered:
    html: str
    headings: list[Heading] = field(default_factory=list)

    @property
    def title(self) -> str:
        return next((heading.text for heading in self.headings if heading.level == 1), "")


def safe_target(target: str) -> bool:
    """Whether ``target`` may be a link: an http(s) address, a relative path or a #fragment. Any other scheme
    (javascript:, data:, vbscript:...) could run in the reader's page."""
    try:
        parts = urlsplit(target)
    except ValueError:
        return False
    if parts.scheme:
        return parts.scheme in _LINK_SCHEMES and bool(parts.netloc)
    return not parts.netloc  # //host/... leaves the site without saying how; not a relative path


def slug(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text.replace("đ", "d").replace("Đ", "D"))
    plain = "".join(character for character in plain if not unicodedata.combining(character)).lower()
    return re.sub(r"[^a-z0-9]+", "-", plain).strip("-") or "section"


class _Renderer:
    def __init__(self, link: Callable[[str], str]) -> None:
        self.link = link
        self.headings: list[Heading] = []
        self.anchors: set[str] = set()

    # --- inline ----------------------------------------------------------------------------------------------

    def inline(self, text: str) -> str:
        parts = re.split(r"(`+)(.+?)\1", text)
        out = []
        # re.split with two groups yields: text, ticks, code, text, ticks, code, ...
        for index in range(0, len(parts), 3):
            out.append(self._text(parts[index]))
            if index + 2 < len(parts):
                out.append(f"<code>{html.escape(parts[index + 2].strip())}</code>")
        return "".join(out)

    def _text(self, text: str) -> str:
        escaped_characters: list[str] = []

        def hold(match: re.Match[str]) -> str:
            escaped_characters.append(match.group(1))
            return f"\x00{len(escaped_characters) - 1}\x00"

        def anchor(href: str, label: str, source: str) -> str:
            """A link to ``href`` (raw text) labelled ``label`` (HTML); an unsafe target leaves ``source`` as
            written. The target is judged as the browser will read it, with escaped characters back in place; the
            text around was escaped without quotes, so the attribute is escaped here with them."""
            written = re.sub("\x00(\\d+)\x00", lambda m: escaped_characters[int(m.group(1))], href)
            if not safe_target(written):
                return source
            return f'<a href="{html.escape(href, quote=True)}">{label}</a>'

        text = re.sub(r"\\([" + re.escape(_ESCAPABLE) + r"])", hold, text)
        text = html.escape(text, quote=False)
        text = _LINK.sub(lambda m: anchor(self.link(html.unescape(m.group(2))), m.group(1), m.group(0)), text)
        text = _AUTOLINK.sub(lambda m: anchor(html.unescape(m.group(1)), m.group(1), m.group(0)), text)
        text = _STRONG.sub(r"<strong>\1</strong>", text)
        text = _EMPHASIS.sub(lambda m: f"<em>{m.group(1) or m.group(2)}</em>", text)
        return re.sub("\x00(\\d+)\x00", lambda m: html.escape(escaped_characters[int(m.group(1))]), text)

    # --- blocks ----------------------------------------------------------------------------------------------

    def blocks(self, lines: list[str]) -> str:
        out: list[str] = []
        index = 0
        while index < len(lines):
            line = lines[index]
            if not line.strip():
                index += 1
                continue
            fence = _FENCE.match(line)
            if fence:
                index = self._fence(lines, index, fence, out)
                continue
            heading = _HEADING.match(line)
            if heading and not line.startswith(" "):
                self._heading(len(heading.group(1)), heading.group(2), out)
                index += 1
                continue
            if _RULE.match(line):
                out.append("<hr>")
                index += 1
                continue
            if "|" in line and index + 1 < len(lines) and _TABLE_SEPARATOR.match(lines[index + 1]):
                index = self._table(lines, index, out)
                continue
            if line.lstrip().startswith(">"):
                quoted = []
                while index < len(lines) and lines[index].lstrip().startswith(">"):
                    quoted.append(re.sub(r"^\s*>\s?", "", lines[index]))
                    index += 1
                out.append(f"<blockquote>{self.blocks(quoted)}</blockquote>")
                continue
            if _ITEM.match(line):
                index = self._list(lines, index, out)
                continue
            index = self._paragraph(lines, index, out)
        return "\n".join(out)

    def _starts_block(self, line: str) -> bool:
        return bool(_FENCE.match(line) or _HEADING.match(line) or _RULE.match(line) or _ITEM.match(line)
                    or line.lstrip().startswith(">"))

    def _paragraph(self, lines: list[str], index: int, out: list[str]) -> int:
        collected: list[str] = []
        while index < len(lines) and lines[index].strip() and (not collected or not self._starts_block(lines[index])):
            collected.append(lines[index].strip())
            index += 1
        out.append(f"<p>{self.inline(' '.join(collected))}</p>")
        return index

    def _fence(self, lines: list[str], index: int, fence: re.Match[str], out: list[str]) -> int:
        indent, marker, language = len(fence.group(1)), fence.group(2), fence.group(3)
        body = []
        index += 1
        while index < len(lines) and not lines[index].strip().startswith(marker):
            body.append(lines[index][indent:] if lines[index][:indent].isspace() else lines[index].lstrip())
            index += 1
        attribute = f' class="language-{html.escape(language)}"' if language else ""
        out.append(f"<pre><code{attribute}>{html.escape(chr(10).join(body))}</code></pre>")
        return index + 1

    def _heading(self, level: int, text: str, out: list[str]) -> None:
        anchor = base = slug(text)
        number = 2
        while anchor in self.anchors:
            anchor = f"{base}-{number}"
            number += 1
        self.anchors.add(anchor)
        rendered = self.inline(text)
        self.headings.append(Heading(level, anchor, html.unescape(re.sub(r"<[^>]+>", "", rendered))))
        out.append(f'<h{level} id="{anchor}">{rendered}</h{level}>')

    @staticmethod
    def _cells(row: str) -> list[str]:
        row = row.strip()
        row = row[1:] if row.startswith("|") else row
        row = row[:-1] if row.endswith("|") and not row.endswith("\\|") else row
        cells, current, in_code = [], "", False
        for position, character in enumerate(row):
            if character == "`":
                in_code = not in_code
            if character == "|" and not in_code and (position == 0 or row[position - 1] != "\\"):
                cells.append(current.strip())
                current = ""
            else:
                current += character
        cells.append(current.strip())
        return [cell.replace("\\|", "|") for cell in cells]

    def _table(self, lines: list[str], index: int, out: list[str]) -> int:
        header = self._cells(lines[index])
        aligns = ["right" if cell.endswith(":") and not cell.startswith(":") else "center"
                  if cell.startswith(":") and cell.endswith(":") else "" for cell in self._cells(lines[index + 1])]
        index += 2
        rows = []
        while index < len(lines) and lines[index].strip() and "|" in lines[index]:
            rows.append(self._cells(lines[index]))
            index += 1

        def cell(tag: str, text: str, column: int) -> str:
            align = aligns[column] if column < len(aligns) else ""
            style = f' class="align-{align}"' if align else ""
            scope = ' scope="col"' if tag == "th" else ""
            return f"<{tag}{scope}{style}>{self.inline(text)}</{tag}>"

        head = "".join(cell("th", text, column) for column, text in enumerate(header))
        body = "".join("<tr>" + "".join(cell("td", text, column) for column, text in enumerate(row)) + "</tr>"
                       for row in rows)
        out.append(f'<div class="table-scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
                   f"</table></div>")
        return index

    def _list(self, lines: list[str], index: int, out: list[str]) -> int:
        first = _ITEM.match(lines[index])
        assert first is not None
        base = len(first.group(1))
        ordered = first.group(2)[0].isdigit()
        items: list[list[str]] = []
        while index < len(lines):
            match = _ITEM.match(lines[index])
            if match and len(match.group(1)) == base and match.group(2)[0].isdigit() == ordered:
                items.append([match.group(3)])
                content_indent = base + len(match.group(2)) + 1
                index += 1
                while index < len(lines):
                    line = lines[index]
                    indent = len(line) - len(line.lstrip())
                    if not line.strip():
                        following = lines[index + 1] if index + 1 < len(lines) else ""
                        if following.strip() and len(following) - len(following.lstrip()) >= content_indent:
                            items[-1].append("")
                            index += 1
                            continue
                        break
                    if indent >= content_indent or (indent > base and not _ITEM.match(line)):
                        items[-1].append(line[min(indent, content_indent):])
                        index += 1
                        continue
                    if not self._starts_block(line) and indent > base - 1 and not _ITEM.match(line):
                        items[-1].append(line.strip())  # a lazy continuation line
                        index += 1
                        continue
                    break
                continue
            break
        rendered = []
        for item in items:
            inner = self.blocks(item)
            if inner.startswith("<p>") and inner.count("<p>") == 1:
                inner = inner.replace("<p>", "", 1).replace("</p>", "", 1)
            rendered.append(f"<li>{inner}</li>")
        tag = "ol" if ordered else "ul"
        out.append(f"<{tag}>{''.join(rendered)}</{tag}>")
        return index


def render(text: str, link: Callable[[str], str] = lambda target: target) -> Rendered:
    """HTML of the Markdown ``text`` and its headings; ``link`` rewrites link targets (e.g. other documents)."""
    renderer = _Renderer(link)
    return Rendered(renderer.blocks(text.replace("\r\n", "\n").split("\n")), renderer.headings)
