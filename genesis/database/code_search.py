"""Code search: how code and queries are cut into words, and the snippet shown per hit.

Both indexes (SQLite's FTS5 ``unicode61`` tokenizer, PostgreSQL's ``simple`` configuration
over the code with every run of other characters made a space) see code as lowercase runs
of letters and digits: ``scipy.optimize.minimize`` is the words ``scipy optimize minimize``
and ``snake_case_names`` is ``snake case names``. A query is cut the same way; a program
matches when it holds every word, and programs holding them as one phrase (the identifier
as written) rank first, then by the index's relevance (BM25 on SQLite, ``ts_rank_cd`` on
PostgreSQL).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from genesis.database.errors import InvalidArgumentError

__all__ = ["SearchHit", "SearchTerms", "search_terms", "snippet"]

_WORD = re.compile(r"[^\W_]+")
MAX_TERMS = 32
MAX_INDEXED_CHARS = 200_000  # PostgreSQL indexes this much of each program's code


@dataclass(frozen=True)
class SearchHit:
    """One program found by code search, best first."""

    id: str
    rank: int
    generation: int
    island_idx: int | None
    combined_score: float | None
    correct: bool
    snippet: str


@dataclass(frozen=True)
class SearchTerms:
    """A query cut into index words."""

    words: tuple[str, ...]

    def fts5_all(self) -> str:
        """FTS5 query: every word."""
        return " AND ".join(f'"{word}"' for word in self.words)

    def fts5_phrase(self) -> str:
        """FTS5 query: the words as one phrase."""
        return '"' + " ".join(self.words) + '"'

    def tsquery_all(self) -> str:
        """PostgreSQL tsquery text: every word."""
        return " & ".join(self.words)

    def tsquery_phrase(self) -> str:
        """PostgreSQL tsquery text: the words as one phrase."""
        return " <-> ".join(self.words)


def search_terms(query: str) -> SearchTerms:
    """Cut a search query into index words (an error names ``query`` when none is left)."""
    if not isinstance(query, str):
        raise InvalidArgumentError(f"query must be a string, got {type(query).__name__}")
    words = tuple(word.lower() for word in _WORD.findall(query))
    if not words:
        raise InvalidArgumentError(f"query {query!r} has no letters or digits to search for")
    if len(words) > MAX_TERMS:
        raise InvalidArgumentError(f"query has {len(words)} words; at most {MAX_TERMS}")
    return SearchTerms(words)


def snippet(code: str, terms: SearchTerms, width: int = 160) -> str:
    """The line of ``code`` best showing the query, its words marked ``[like this]``."""
    wanted = set(terms.words)
    best, best_score = "", -1
    for line in code.splitlines():
        words = [w.lower() for w in _WORD.findall(line)]
        phrase = " ".join(terms.words) in " ".join(words)
        score = len(wanted.intersection(words)) + (len(wanted) if phrase else 0)
        if score > best_score:
            best, best_score = line.strip(), score
    marked = _WORD.sub(lambda m: f"[{m[0]}]" if m[0].lower() in wanted else m[0], best)
    if len(marked) <= width:
        return marked
    start = max(0, min(marked.find("[") - width // 4, len(marked) - width))
    head, tail = ("…" if start else ""), ("…" if start + width < len(marked) else "")
    return head + marked[start + len(head):start + width - len(tail)] + tail
