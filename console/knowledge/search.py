"""Finding articles by their words, the same way on SQLite and PostgreSQL.

Each article keeps its words in ``search_text``: every field lower-cased and folded
(accents taken off), a space before each word. A search folds its query the same
way, keeps at most ``MAX_TERMS`` words of two letters or more that are not among the
commonest English ones (``STOP_WORDS``), and asks the database for the articles
whose text holds every word at a word's beginning (``LIKE '% word%'``, escaped:
"print" finds "printer", "rint" does not); the candidates
are then ranked here: a word in the title counts three, in the tags, findings or
category two, elsewhere one, plus a little for each ticket the article solved.

Neither FTS5 nor ``tsvector`` is used: the same query runs on both databases, and
a knowledge base of a help desk (thousands of articles, not millions) is scanned in
milliseconds (``benchmarks/kb_search.py`` measures it).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from typing import Final

__all__ = ["MAX_TERMS", "STOP_WORDS", "fold", "score", "terms"]

MAX_TERMS: Final = 8
# Words too common to tell articles apart.
STOP_WORDS: Final = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "in",
        "is",
        "it",
        "its",
        "my",
        "no",
        "not",
        "of",
        "on",
        "or",
        "our",
        "so",
        "that",
        "the",
        "their",
        "then",
        "there",
        "this",
        "to",
        "was",
        "we",
        "were",
        "what",
        "when",
        "which",
        "who",
        "will",
        "with",
        "you",
        "your",
    ]
)
_WORD: Final = re.compile(r"\w+")


def fold(text: str) -> str:
    """``text`` lower-cased, accents off, as words joined by single spaces."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(_WORD.findall(plain))


def terms(query: str, limit: int = MAX_TERMS) -> list[str]:
    """The words of a query that are searched for: folded, two letters or more, not stop
    words, each once, the first ``limit`` of them."""
    seen: list[str] = []
    for word in fold(query).split():
        if len(word) >= 2 and word not in STOP_WORDS and word not in seen:
            seen.append(word)
    return seen[:limit]


def _has(text: str, word: str) -> bool:
    """Whether a word of ``text`` (folded) begins with ``word``."""
    return f" {word}" in f" {text}"


def score(
    words: Iterable[str], *, title: str, labels: str, body: str, solved: int
) -> tuple[float, list[str]]:
    """How well an article's folded fields match ``words``; and the words that did."""
    total = 0.0
    matched = []
    for word in words:
        weight = (
            3.0
            if _has(title, word)
            else 2.0
            if _has(labels, word)
            else 1.0
            if _has(body, word)
            else 0.0
        )
        if weight:
            matched.append(word)
        total += weight
    return total + math.log1p(solved) / 2, matched
