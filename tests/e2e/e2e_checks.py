"""Checks a page in the browser against what people need: landmarks, labels, text alternatives, WCAG AA contrast
(computed from the rendered colours), no sideways scrolling on a phone, and a skip link for keyboard users."""

from __future__ import annotations

from typing import Any

# The WCAG 2 relative-luminance contrast of every visible text element against the background it is painted on.
_CONTRAST_JS = """
() => {
  const channel = (value) => {
    const c = value / 255;
    return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
  };
  const luminance = ([r, g, b]) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  const parse = (text) => (text.match(/[\\d.]+/g) || []).map(Number);
  const background = (element) => {
    for (let node = element; node; node = node.parentElement) {
      const colour = parse(getComputedStyle(node).backgroundColor);
      if (colour.length === 3 || (colour.length === 4 && colour[3] > 0.5)) return colour.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const problems = [];
  for (const element of document.querySelectorAll('body *')) {
    const style = getComputedStyle(element);
    const ownText = Array.from(element.childNodes).some((node) => node.nodeType === 3 && node.textContent.trim());
    const hidden = style.visibility === 'hidden' || style.display === 'none' || element.offsetParent === null;
    if (!ownText || hidden) continue;
    if (element.closest('.visually-hidden, .skip-link')) continue;
    const foreground = parse(style.color).slice(0, 3);
    const [lighter, darker] = [luminance(foreground), luminance(background(element))].sort((a, b) => b - a);
    const ratio = (lighter + 0.05) / (darker + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    const text = element.textContent.trim().slice(0, 30);
    if (ratio < (large ? 3 : 4.5)) problems.push(`${element.tagName.toLowerCase()} "${text}" ${ratio.toFixed(2)}`);
  }
  return problems;
}
"""

_STRUCTURE_JS = """
() => {
  const problems = [];
  for (const landmark of ['header', 'main', 'footer']) {
    if (!document.querySelector(landmark)) problems.push(`no <${landmark}>`);
  }
  if (!document.documentElement.lang) problems.push('no lang on <html>');
  if (!document.querySelector('h1')) problems.push('no <h1>');
  for (const field of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
    const labelled = (field.labels && field.labels.length) || field.getAttribute('aria-label')
      || field.getAttribute('aria-labelledby');
    if (!labelled) problems.push(`field ${field.name || field.id} has no label`);
  }
  for (const image of document.querySelectorAll('img')) {
    if (!image.hasAttribute('alt')) problems.push(`image ${image.src} has no alt`);
  }
  for (const control of document.querySelectorAll('a, button')) {
    if (!control.textContent.trim() && !control.getAttribute('aria-label')) problems.push(`a control without a name`);
  }
  const ids = Array.from(document.querySelectorAll('[id]')).map((element) => element.id);
  const twice = ids.filter((id, index) => ids.indexOf(id) !== index);
  if (twice.length) problems.push(`duplicate ids ${twice.slice(0, 3).join(', ')}`);
  return problems;
}
"""


def accessibility_problems(page: Any) -> list[str]:
    """Everything on the current page a person with a screen reader or low vision would trip over."""
    return list(page.evaluate(_STRUCTURE_JS)) + list(page.evaluate(_CONTRAST_JS))


def overflows_sideways(page: Any) -> bool:
    return bool(page.evaluate("() => document.documentElement.scrollWidth > window.innerWidth + 1"))


def skip_link_works(page: Any) -> bool:
    """The first Tab stop is the skip link and following it puts keyboard focus on the main content."""
    page.keyboard.press("Tab")
    first = page.evaluate("() => document.activeElement.className")
    page.keyboard.press("Enter")
    focused = page.evaluate("() => document.activeElement.id")
    return first == "skip-link" and focused == "main"
