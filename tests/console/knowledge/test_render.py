"""Articles' Markdown comes out as HTML without script, event handlers, raw HTML or
dangerous links."""

from __future__ import annotations

import re

import pytest

from deskside.console.knowledge.render import render_article, render_markdown

ATTACKS = [
    "<script>alert(1)</script>",
    '<img src="x" onerror="alert(1)">',
    '<a href="https://example.org" onclick="alert(1)">x</a>',
    "<iframe src='https://evil.example'></iframe>",
    "<div style='background:url(javascript:alert(1))'>x</div>",
    "[click](javascript:alert(1))",
    "[click](JAVASCRIPT:alert(1))",
    "[click](java\tscript:alert(1))",
    "[click](  javascript:alert(1))",
    "[click](vbscript:msgbox(1))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![x](javascript:alert(1))",
    "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "[click][ref]\n\n[ref]: javascript:alert(1)",
    "<javascript:alert(1)>",
    "<svg onload=alert(1)>",
    "[x](file:///etc/passwd)",
    "[x](&#106;avascript:alert(1))",
    "[x](&#x6A;avascript:alert(1))",
    "[x](javascript&colon;alert(1))",
    "[x](\x01javascript:alert(1))",
    "<a href=javascript:alert(1)>x</a>",
]


@pytest.mark.parametrize("text", ATTACKS)
def test_nothing_active_comes_through(text: str) -> None:
    html = render_markdown(text)
    tags = re.findall(r"<([a-zA-Z][a-zA-Z0-9]*)([^>]*)>", html)
    assert {name for name, _ in tags} <= {"p", "a", "img", "code", "pre"}, html
    for _, attributes in tags:
        assert not re.search(r"\son\w+\s*=", attributes), html
        assert "style" not in attributes, html
        for url in re.findall(r'(?:href|src)="([^"]*)"', attributes):
            scheme = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*):", url)
            assert scheme is None or scheme[1] in ("https", "http", "mailto"), html
    assert "<script" not in html.lower()


def test_markdown_is_rendered() -> None:
    html = render_markdown(
        "Run `df -h`, then:\n\n1. empty the bin\n2. [read this](https://example.org/a?b=1&c=2)\n"
    )
    assert "<code>df -h</code>" in html
    assert "<li>empty the bin</li>" in html
    assert '<a href="https://example.org/a?b=1&amp;c=2">read this</a>' in html
    assert '<a href="/kb/2">' in render_markdown("[see](/kb/2)")
    assert '<a href="mailto:desk@example.org">' in render_markdown("[m](mailto:desk@example.org)")


def test_raw_html_is_text() -> None:
    assert render_markdown("<b>bold</b>") == "<p>&lt;b&gt;bold&lt;/b&gt;</p>\n"


def test_an_article_leaves_out_empty_sections() -> None:
    html = render_article([("Problem", "It *breaks*"), ("Cause", "  "), ("Resolution", "Fix")])
    assert (
        html == "<h2>Problem</h2>\n<p>It <em>breaks</em></p>\n\n<h2>Resolution</h2>\n<p>Fix</p>\n"
    )
