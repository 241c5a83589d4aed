"""Articles' Markdown as HTML that is safe to show in the console's pages.

markdown-it-py in its CommonMark preset, with raw HTML off (``<script>``, ``<img
onerror=...>`` and any other tag come out as text) and links and images checked
against a short list of schemes (``http``, ``https``, ``mailto``, and relative
links), so ``javascript:``, ``vbscript:``, ``data:`` and ``file:`` URLs are never
rendered as links. The Content-Security-Policy forbids inline script besides.
"""

from __future__ import annotations

import re
from typing import Final

from markdown_it import MarkdownIt

__all__ = ["render_article", "render_markdown"]

# Schemes a link may have: a scheme is letters, digits, "+", "-", "." before a colon.
_SAFE_SCHEMES: Final = frozenset({"http", "https", "mailto"})
_SCHEME: Final = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
# Control characters and spaces browsers drop inside a scheme ("java\tscript:").
_IGNORED: Final = re.compile(r"[\x00-\x20\x7f]")


def _safe_link(url: str) -> bool:
    """Whether a link or image may point at ``url``."""
    match = _SCHEME.match(_IGNORED.sub("", url))
    return match is None or match[1].lower() in _SAFE_SCHEMES


_md: Final = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
_md.validateLink = _safe_link  # type: ignore[method-assign]


def render_markdown(text: str) -> str:
    """``text`` (Markdown) as safe HTML."""
    html: str = _md.render(text)
    return html


def render_article(sections: list[tuple[str, str]]) -> str:
    """An article's sections (heading, Markdown), the empty ones left out, as HTML."""
    parts = []
    for heading, text in sections:
        if text.strip():
            parts.append(f"<h2>{heading}</h2>\n{render_markdown(text)}")
    return "\n".join(parts)
