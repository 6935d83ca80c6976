"""Search text for the catalog: one tokenizer for SQLite FTS5 and PostgreSQL full-text search.

Neither database can segment Chinese: SQLite's ``unicode61`` tokenizer and PostgreSQL's default
parser both take a whole run of Han characters for one word, so 贵阳市主干道实时路况 could only be
found by itself. Instead of a segmenter this module precomputes a *search document* - words
separated by single spaces - that both databases tokenize exactly as written, and rewrites queries
the same way:

* Text is NFKC-normalised (full-width ＧＵＩＹＡＮＧ and １２３ become ASCII, ligatures and circled
  digits are spelled out) and case-folded (``str.casefold``, so ``Straße`` and ``STRASSE`` agree).
* A run of CJK characters (Han, kana, Hangul) becomes its overlapping character bigrams, followed
  by the run's last character as a unigram: 贵阳市 -> ``贵阳 阳市 市``; a lone CJK character is a
  unigram. The trailing unigram costs one token a run and makes every character of a document the
  *first* character of some token, so a one-character query (a prefix term, below) finds any
  document containing that character - 站 finds 贵阳站 although no bigram starts with it.
* Any other run of letters and digits (Python's ``\\w`` without ``_``) is one word: ``GPS-2024``
  -> ``gps 2024``. Industry and region codes are words of their own: pass them as texts.
  Words longer than :data:`MAX_TERM_CHARS` are cut to that length, in documents and queries alike.
* Everything else - punctuation, symbols, emoji, combining marks, control characters - separates.

A query becomes a list of terms, all required (AND): a Chinese word becomes its bigrams (路况 ->
``路况``; 实时路况 -> ``实时 时路 路况``), a Latin word stays a word. The prefix policy is simple and
depends on the term alone, so the SQL builders need nothing else: **a single CJK character and a
word of at least** :data:`MIN_PREFIX_CHARS` **letters or digits are prefix terms** (贵 matches 贵阳,
贵州, ...; ``wea`` matches ``weather``); CJK bigrams and shorter words match whole tokens only (no
stemming, as in PostgreSQL's ``simple`` configuration). Query syntax is never the user's: ``rain*``,
``"rain"`` and ``rain`` are the same query.

Misspellings: a word of at least :data:`MIN_TYPO_CHARS` characters also matches the words of the
listed catalog's vocabulary (see :func:`vocabulary`) one edit away (a character added, dropped,
replaced, or two neighbours swapped), its first character kept: ``traffc`` finds ``traffic``.
:func:`one_edit_apart` decides; the builders take the corrections as alternatives of their term.

Documents keep duplicate tokens, in order: term frequency and document length feed ranking
(FTS5 ``bm25()``, PostgreSQL ``ts_rank``), and token positions stay those of the text, which a
phrase search could use later. Storage is about three characters a CJK character.

Limits (on hostile queries): a query is cut to :data:`MAX_QUERY_CHARS` characters and keeps at most
:data:`MAX_TERMS` distinct terms. :func:`fts5_match` and :func:`tsquery` apply the same limits and
turn every character that is not a letter or digit into a separator, so they build valid syntax
for *any* strings; terms from :func:`query_terms` pass through them unchanged.

Known limits: scripts written without spaces other than CJK (Thai, Lao, ...) are one word per run;
a few characters that Python counts as letters or digits are separators to a database (PostgreSQL
drops "other numbers" such as ৴ that NFKC keeps; SQLite 3.40 splits on New Tai Lue vowel signs),
which the database then does to document and query alike.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from operator import add

__all__ = [
    "MAX_QUERY_CHARS",
    "MAX_TERMS",
    "MAX_TERM_CHARS",
    "document_tokens",
    "fts5_match",
    "is_prefix_term",
    "is_typo_tolerant",
    "one_edit_apart",
    "query_terms",
    "search_document",
    "tsquery",
    "vocabulary",
]

MAX_QUERY_CHARS = 200
"""A query is cut to this many characters before anything else."""

MAX_TERMS = 16
"""A query keeps at most this many distinct terms (the first ones)."""

MAX_TERM_CHARS = 64
"""Longer words are cut to this length, in documents and queries alike (so they still match)."""

MIN_PREFIX_CHARS = 3
"""A word of letters and digits this long matches every token it begins (shorter ones: whole tokens)."""

MIN_TYPO_CHARS = 5
"""A word this long also matches vocabulary words one edit away (shorter words have too many neighbours)."""

# Characters that are written without spaces between words and are indexed as bigrams: Han
# (unified ideographs with extensions A-H, compatibility ideographs, 々〆〇 and Hangzhou numerals),
# Japanese kana with their iteration and prolonged-sound marks, and Hangul. Only letters and
# numbers are listed (not ・ U+30FB, not the kana voicing marks U+3099-309C), so a run of them
# never holds a separator; tests check this against the Unicode database. Half-width kana and
# Hangul, Kangxi radicals and circled ideographs need no entry: NFKC maps them into these ranges.
_CJK = (
    "\u1100-\u11ff"  # Hangul Jamo
    "\u3005-\u3007\u3021-\u3029\u3031-\u3035\u3038-\u303c"  # 々〆〇, Hangzhou numerals, kana repeats
    "\u3041-\u3096\u309d-\u309f"  # Hiragana
    "\u30a1-\u30fa\u30fc-\u30ff\u31f0-\u31ff"  # Katakana
    "\u3400-\u4dbf\u4e00-\u9fff"  # CJK Unified Ideographs, extension A
    "\ua960-\ua97c\uac00-\ud7a3\ud7b0-\ud7c6\ud7cb-\ud7fb"  # Hangul
    "\uf900-\ufaff"  # CJK Compatibility Ideographs
    "\U00020000-\U0002a6df\U0002a700-\U0002ebef\U0002f800-\U0002fa1f\U00030000-\U000323af"  # ext. B-H
)
# One match is either a run of CJK characters (group 1) or a run of other letters and digits.
_TOKEN = re.compile(f"([{_CJK}]+)|[^\\W_{_CJK}]+")
_CJK_CHAR = re.compile(f"[{_CJK}]")
_NOT_WORD = re.compile(f"(?:[^\\w{_CJK}]|_)+")  # what query terms never hold


def _normalise(text: str) -> str:
    """NFKC, case-folded, NFKC again (case folding can decompose: ΐ)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return folded if folded.isascii() else unicodedata.normalize("NFKC", folded)


def _tokens(text: str, *, document: bool) -> list[str]:
    tokens: list[str] = []
    append = tokens.append
    for match in _TOKEN.finditer(_normalise(text)):
        run = match[1]
        if run is None:
            append(match[0][:MAX_TERM_CHARS])
        elif len(run) == 1:
            append(run)
        else:
            tokens.extend(map(add, run, run[1:]))
            if document:
                append(run[-1])
    return tokens


def document_tokens(*texts: str) -> list[str]:
    """The tokens of a document made of ``texts`` (title, description, tags, codes...), in order,
    duplicates kept. No token crosses from one text into the next."""
    return _tokens("\n".join(texts), document=True)


def search_document(*texts: str) -> str:
    """The search document to store and index: :func:`document_tokens` joined by single spaces.

    SQLite FTS5 (``unicode61``) and PostgreSQL (``to_tsvector('simple', ...)``) both read it as
    exactly these tokens, one position each."""
    return " ".join(document_tokens(*texts))


def query_terms(query: str) -> list[str]:
    """The terms a query requires, all of them: tokens as in a document, except that a CJK run of
    two or more characters yields only its bigrams. Distinct, in order, at most :data:`MAX_TERMS`,
    from the first :data:`MAX_QUERY_CHARS` characters. Empty when the query has no letter or digit:
    the caller should then not search at all."""
    terms = list(dict.fromkeys(_tokens(query[:MAX_QUERY_CHARS], document=False)))
    return terms[:MAX_TERMS]


def is_prefix_term(term: str) -> bool:
    """Whether a term matches every token it begins (a single CJK character, or a word of at least
    MIN_PREFIX_CHARS letters and digits) or whole tokens only."""
    if _CJK_CHAR.match(term) is not None:
        return len(term) == 1
    return len(term) >= MIN_PREFIX_CHARS and _NOT_WORD.search(term) is None


def is_typo_tolerant(term: str) -> bool:
    """Whether a query term also matches vocabulary words one edit away (a long word, not CJK)."""
    return len(term) >= MIN_TYPO_CHARS and _CJK_CHAR.search(term) is None


def vocabulary(document: str) -> set[str]:
    """The words of a search document that misspelt query words are corrected to: its tokens of two
    or more letters and digits that hold no CJK character."""
    return {token for token in document.split(" ") if len(token) >= 2 and _CJK_CHAR.search(token) is None}


def one_edit_apart(query: str, word: str) -> bool:
    """Whether `word` is `query` with one character added, dropped or replaced, or two neighbouring
    characters swapped (optimal string alignment distance 1), the first character the same."""
    if query == word or not query or not word or query[0] != word[0] or abs(len(query) - len(word)) > 1:
        return False
    if len(query) == len(word):
        differ = [i for i, (a, b) in enumerate(zip(query, word, strict=True)) if a != b]
        if len(differ) == 1:
            return True
        first, *rest = differ
        return rest == [first + 1] and query[first] == word[first + 1] and query[first + 1] == word[first]
    shorter, longer = sorted((query, word), key=len)
    i = next((i for i, (a, b) in enumerate(zip(shorter, longer, strict=False)) if a != b), len(shorter))
    return shorter[i:] == longer[i + 1 :]


def _safe_terms(terms: Iterable[str]) -> list[str]:
    """Distinct terms of letters and digits only (anything else becomes a space), with the query
    limits. A term from query_terms is returned as it is."""
    safe: dict[str, None] = {}
    for term in terms:
        cleaned = _NOT_WORD.sub(" ", term[: MAX_TERM_CHARS * 4]).strip()[:MAX_TERM_CHARS].rstrip()
        if cleaned:
            safe[cleaned] = None
            if len(safe) == MAX_TERMS:
                break
    return list(safe)


def fts5_match(terms: Iterable[str], corrections: Mapping[str, Sequence[str]] | None = None) -> str:
    """An FTS5 MATCH expression requiring every term: ``"路况" AND "guiyang" AND "贵"*``.

    Each term is a double-quoted string (quotes doubled, though a safe term has none), so no
    operator, column filter or bareword rule applies; a prefix term (:func:`is_prefix_term`) gets
    ``*``. A term's corrections (whole words) are its alternatives: ``("traffc"* OR "traffic")``.
    With no terms it is ``""``, which is valid and matches nothing (an empty MATCH string would be a
    syntax error)."""

    def quoted(term: str) -> str:
        return '"' + term.replace('"', '""') + '"'

    parts = []
    for term in _safe_terms(terms):
        own = quoted(term) + "*" if is_prefix_term(term) else quoted(term)
        others = [quoted(word) for word in _safe_terms((corrections or {}).get(term, ()))]
        parts.append(f"({' OR '.join([own, *others])})" if others else own)
    return " AND ".join(parts) if parts else '""'


def tsquery(terms: Iterable[str], corrections: Mapping[str, Sequence[str]] | None = None) -> str:
    """Input for PostgreSQL ``to_tsquery('simple', ...)`` requiring every term:
    ``'路况' & 'guiyang' & '贵':*``.

    Each term is a single-quoted value (quotes and backslashes escaped, though a safe term has
    none), so no operator can be injected; a prefix term (:func:`is_prefix_term`) gets ``:*``. A
    term's corrections (whole words) are its alternatives: ``('traffc':* | 'traffic')``. With no
    terms it is ``''``: an empty tsquery, which matches nothing (PostgreSQL emits a NOTICE)."""

    def quoted(term: str) -> str:
        return "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"

    parts = []
    for term in _safe_terms(terms):
        own = quoted(term) + ":*" if is_prefix_term(term) else quoted(term)
        others = [quoted(word) for word in _safe_terms((corrections or {}).get(term, ()))]
        parts.append(f"({' | '.join([own, *others])})" if others else own)
    return " & ".join(parts)
