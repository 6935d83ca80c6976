"""Search text: CJK bigram documents and queries, checked against real SQLite FTS5 and PostgreSQL."""

from __future__ import annotations

import os
import re
import sqlite3
import time
import unicodedata
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from marketplace.catalog.search_text import (
    MAX_QUERY_CHARS,
    MAX_TERM_CHARS,
    MAX_TERMS,
    document_tokens,
    fts5_match,
    is_prefix_term,
    is_typo_tolerant,
    one_edit_apart,
    query_terms,
    search_document,
    tsquery,
    vocabulary,
)

# rowid -> the texts of one product (title, description, tags..., industry code, region codes)
CATALOG: dict[int, tuple[str, ...]] = {
    1: ("贵阳市主干道实时路况", "每5分钟更新，覆盖云岩区、南明区。"),
    2: ("Guiyang 交通 data",),
    3: ("ＧＵＩＹＡＮＧ ＤＡＴＡ　１２３",),
    4: ("城市公交刷卡数据", "按线路汇总的日客流。", "公交", "public-transport", "5431", "520100"),
    5: ("贵州省气象数据",),
    6: ("贵阳站客流",),
    7: ("Straße ﬁles",),
}

EXAMPLES = [
    # A Chinese title is found by any word inside it...
    ("路况", {1}),
    ("主干道", {1}),
    ("贵阳", {1, 6}),
    ("实时路况", {1}),
    ("贵阳市", {1}),
    ("贵", {1, 5, 6}),  # one character: a prefix term
    ("况", {1}),  # the last character of a run is a token of its own
    ("站", {6}),
    ("交", {2, 4}),  # 交通, 公交
    # ...but not by characters that are there in another order.
    ("路贵", set()),
    ("市贵阳", set()),
    ("贵阳 气象", set()),
    # Latin words: case and width folded; a word of three or more characters is a prefix.
    ("guiyang 交通", {2}),
    ("GUIYANG 交通", {2}),
    ("guiyang", {2, 3}),
    ("ｇｕｉｙａｎｇ", {2, 3}),
    ("guiyang data", {2, 3}),
    ("guiyan", {2, 3}),
    ("gui", {2, 3}),
    ("gu", set()),  # two characters: a whole word only
    ("iyang", set()),  # a prefix, not any piece
    ("guiyang 交通 weather", set()),
    ("123", {3}),
    ("strasse", {7}),
    ("STRASSE FILES", {7}),
    # Tags and codes.
    ("公交", {4}),
    ("public-transport", {4}),
    ("transport", {4}),
    ("5431", {4}),
    ("520100", {4}),
    ("公交 520100", {4}),
    ("543", {4}),  # codes are hierarchical: a prefix is the codes under it
    ("5201", {4}),
    ("52", set()),
    # Nothing to search for.
    ("", set()),
    ("  ，。!?", set()),
    ("😀", set()),
]

HOSTILE = [
    '"',
    '""',
    "'",
    "''",
    '"路况',
    "路况'",
    "(",
    ")",
    "()",
    "a OR b",
    "a AND",
    "NOT a",
    "NEAR(a b, 3)",
    "document:guiyang",
    "{document}: a",
    "-guiyang",
    "^guiyang",
    "guiyang*",
    "*",
    "a & b | !c",
    "a <-> b",
    "a:*",
    "a:AB",
    "'a':* & !",
    "\\",
    "a\\'b",
    "\x00",
    "路\x00况",
    "😀",
    "😀路况😀",
    "\ud800",  # a lone surrogate: not even encodable as UTF-8
    "AND OR NOT NEAR",
    " " * 1000,
    "路" * 10_000,
    "a" * 10_000,
]

# Pieces that a hostile query is made of: query syntax of both databases, and words.
SYNTAX = [*"\"'()&|!:*-^\\{}[]+~<>@,.;/ \t\n\x00", "AND", "OR", "NOT", "NEAR", "<->", ":*", "😀"]
WORDS = ["贵", "阳", "路况", "guiyang", "Data", "１２３", "5431", "東京", "서울"]
hostile_queries = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(SYNTAX + WORDS), max_size=40).map("".join),
)
any_strings = st.text(st.characters(exclude_categories=()), max_size=80)  # surrogates included

# Documents made of CJK runs and Latin words, separated: every run and word is a findable unit.
CJK_TEXT = "贵阳市主干道实时路况交通数据気象東京タワー서울특별시"
cjk_runs = st.text(alphabet=CJK_TEXT, min_size=1, max_size=12)
ascii_words = st.from_regex(r"[A-Za-z0-9]{1,12}", fullmatch=True)
latin_words = ascii_words | st.from_regex(r"[ａ-ｚＡ-Ｚ０-９]{1,6}", fullmatch=True)  # full width
separators = st.sampled_from([" ", "  ", "，", "。", "、", "-", "/", "(", ")", "「", "」", "\n", "·", "_"])
segments = st.lists(st.tuples(cjk_runs | latin_words, separators), min_size=1, max_size=12)


def to_text(parts: list[tuple[str, str]]) -> str:
    return "".join(segment + separator for segment, separator in parts)


# --- SQLite FTS5 -------------------------------------------------------------------------------


def fts5_database(documents: dict[int, str]) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE product_search USING fts5(document)")  # default unicode61
    db.execute("CREATE VIRTUAL TABLE product_search_terms USING fts5vocab(product_search, 'instance')")
    db.executemany("INSERT INTO product_search(rowid, document) VALUES (?, ?)", documents.items())
    return db


def fts5_search(db: sqlite3.Connection, query: str) -> set[int]:
    match = fts5_match(query_terms(query))
    return {row[0] for row in db.execute("SELECT rowid FROM product_search WHERE product_search MATCH ?", (match,))}


def fts5_tokens(db: sqlite3.Connection, document: str) -> list[str]:
    """How FTS5 tokenizes a document: its terms in position order."""
    db.execute("DELETE FROM product_search")
    db.execute("INSERT INTO product_search(rowid, document) VALUES (1, ?)", (document,))
    rows = db.execute('SELECT term, "offset" FROM product_search_terms WHERE doc = 1 ORDER BY "offset"').fetchall()
    assert [offset for _, offset in rows] == list(range(len(rows)))
    return [term for term, _ in rows]


@pytest.fixture(scope="module")
def catalog_fts5() -> Iterator[sqlite3.Connection]:
    db = fts5_database({rowid: search_document(*texts) for rowid, texts in CATALOG.items()})
    yield db
    db.close()


@pytest.fixture(scope="module")
def scratch_fts5() -> Iterator[sqlite3.Connection]:
    db = fts5_database({})
    yield db
    db.close()


# --- tokens ------------------------------------------------------------------------------------


def test_a_chinese_title_becomes_overlapping_bigrams_and_its_last_character() -> None:
    assert document_tokens("贵阳市主干道实时路况") == [
        "贵阳", "阳市", "市主", "主干", "干道", "道实", "实时", "时路", "路况", "况",
    ]  # fmt: skip
    assert document_tokens("站") == ["站"]
    assert document_tokens("贵阳站，站") == ["贵阳", "阳站", "站", "站"]  # duplicates are kept


def test_latin_words_are_folded_and_split_on_everything_but_letters_and_digits() -> None:
    assert document_tokens("Guiyang 交通 data") == ["guiyang", "交通", "通", "data"]
    assert document_tokens("ＧＵＩＹＡＮＧ　１２３") == ["guiyang", "123"]
    assert document_tokens("GPS轨迹2024版") == ["gps", "轨迹", "迹", "2024", "版"]
    assert search_document("GPS-2024_v2 e-mail: a.b@x.cn ①") == "gps 2024 v2 e mail a b x cn 1"
    assert document_tokens("Straße ﬁles Ⅻ") == ["strasse", "files", "xii"]
    assert search_document("東京タワー・서울", "ｶﾀｶﾅ") == "東京 京タ タワ ワー ー 서울 울 カタ タカ カナ ナ"
    assert document_tokens("😀 ，。！？ \x00 _ ") == []
    assert document_tokens() == []


def test_tokens_never_cross_from_one_text_into_the_next() -> None:
    assert document_tokens("贵阳", "路况", "data", "5431", "520100") == [
        "贵阳", "阳", "路况", "况", "data", "5431", "520100",
    ]  # fmt: skip


def test_long_words_are_cut_in_documents_and_queries_alike() -> None:
    word = "x" * (MAX_TERM_CHARS + 50)
    assert document_tokens(word) == ["x" * MAX_TERM_CHARS]
    assert query_terms(word) == ["x" * MAX_TERM_CHARS]


def test_search_document_is_the_tokens_joined_by_spaces() -> None:
    texts = ("贵阳市主干道实时路况", "Guiyang 交通 data；ＧＵＩＹＡＮＧ", "公交", "5431", "520100")
    assert search_document(*texts) == " ".join(document_tokens(*texts))
    assert search_document("贵阳市", "GPS") == "贵阳 阳市 市 gps"
    assert search_document() == ""


def test_query_terms_are_bigrams_without_the_trailing_unigram() -> None:
    assert query_terms("路况") == ["路况"]
    assert query_terms("实时路况") == ["实时", "时路", "路况"]
    assert query_terms("贵") == ["贵"]
    assert query_terms("Guiyang 交通, DATA!") == ["guiyang", "交通", "data"]
    assert query_terms("路况 路况 LUKUANG lukuang") == ["路况", "lukuang"]  # distinct
    assert query_terms("\"'()*:-^&|!") == []


def test_a_query_is_cut_to_its_limits() -> None:
    assert query_terms(" ".join(f"w{i}" for i in range(100))) == [f"w{i}" for i in range(MAX_TERMS)]
    run = "".join(chr(0x4E00 + i) for i in range(30))
    assert query_terms(run) == [run[i : i + 2] for i in range(MAX_TERMS)]
    assert query_terms("路" * (MAX_QUERY_CHARS - 1) + "况") == ["路路", "路况"]
    assert query_terms("路" * MAX_QUERY_CHARS + "况") == ["路路"]  # 况 is beyond the limit
    assert query_terms(" " * MAX_QUERY_CHARS + "guiyang") == []


def test_a_single_cjk_character_and_a_word_of_three_are_prefix_terms() -> None:
    assert is_prefix_term("贵")
    assert is_prefix_term("タ")
    assert is_prefix_term("서")
    assert is_prefix_term("wea")
    assert is_prefix_term("543")
    assert not is_prefix_term("贵阳")
    assert not is_prefix_term("a")
    assert not is_prefix_term("ab")
    assert not is_prefix_term("1")
    assert not is_prefix_term("")
    assert not is_prefix_term("a b")  # a phrase a builder made from an unsafe term


def test_the_cjk_ranges_hold_only_letters_and_numbers() -> None:
    """A CJK run must never swallow a separator (a punctuation mark inside a bigram)."""
    for code in range(0x1100, 0x323B0):
        char = chr(code)
        if is_prefix_term(char) and unicodedata.category(char) != "Cn":
            assert char.isalnum(), f"U+{code:04X} {unicodedata.category(char)}"
    assert not is_prefix_term("・")
    assert not is_prefix_term("、")
    assert not is_prefix_term("\u3099")  # combining voicing mark


# --- MATCH and tsquery text --------------------------------------------------------------------


def test_fts5_match_quotes_every_term_and_stars_prefix_terms() -> None:
    assert fts5_match(query_terms("实时路况 贵 guiyang")) == '"实时" AND "时路" AND "路况" AND "贵"* AND "guiyang"*'
    assert fts5_match(["traffc", "gu"], {"traffc": ["traffic"]}) == '("traffc"* OR "traffic") AND "gu"'
    assert fts5_match(["AND"]) == '"AND"*'  # a word like any other
    assert fts5_match([]) == '""'  # valid, matches nothing; an empty MATCH string is a syntax error
    assert fts5_match(['"', "\x00", "_"]) == '""'


def test_tsquery_quotes_every_term_and_marks_prefix_terms() -> None:
    assert tsquery(query_terms("实时路况 贵 guiyang")) == "'实时' & '时路' & '路况' & '贵':* & 'guiyang':*"
    assert tsquery(["traffc", "gu"], {"traffc": ["traffic", "t'x"]}) == "('traffc':* | 'traffic' | 't x') & 'gu'"
    assert tsquery(["!a"]) == "'a'"
    assert tsquery([]) == ""


def test_terms_not_from_query_terms_are_made_safe() -> None:
    # Anything but letters and digits separates: a term of several words is a phrase.
    assert fts5_match(['a"b', "x\x00y", "(*)", "it's", "a\\b", "a a"]) == '"a b" AND "x y" AND "it s" AND "a a"'
    assert tsquery(['a"b', "x\x00y", "(*)", "it's", "a\\b"]) == "'a b' & 'x y' & 'it s'"
    assert fts5_match(["a" * 1000]) == '"' + "a" * MAX_TERM_CHARS + '"*'
    assert tsquery(f"t{i}" for i in range(100)).count("&") == MAX_TERMS - 1


@given(hostile_queries)
def test_query_terms_pass_through_the_builders_unchanged(query: str) -> None:
    terms = query_terms(query)
    assert len(terms) <= MAX_TERMS
    assert len(set(terms)) == len(terms)
    assert all(0 < len(term) <= MAX_TERM_CHARS for term in terms)
    starred = ['"' + t + '"' + ("*" if is_prefix_term(t) else "") for t in terms]
    assert fts5_match(terms) == (" AND ".join(starred) or '""')
    marked = ["'" + t + "'" + (":*" if is_prefix_term(t) else "") for t in terms]
    assert tsquery(terms) == " & ".join(marked)


# --- against SQLite FTS5 -----------------------------------------------------------------------


@pytest.mark.parametrize(("query", "expected"), EXAMPLES)
def test_fts5_finds(catalog_fts5: sqlite3.Connection, query: str, expected: set[int]) -> None:
    assert fts5_search(catalog_fts5, query) == expected


def test_fts5_keeps_each_token_as_one_term(scratch_fts5: sqlite3.Connection) -> None:
    for texts in CATALOG.values():
        assert fts5_tokens(scratch_fts5, search_document(*texts)) == document_tokens(*texts)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(segments)
def test_fts5_tokenizes_any_search_document_exactly_as_written(
    scratch_fts5: sqlite3.Connection, parts: list[tuple[str, str]]
) -> None:
    text = to_text(parts)
    assert fts5_tokens(scratch_fts5, search_document(text)) == document_tokens(text)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(segments, st.data())
def test_fts5_finds_every_word_and_every_piece_of_a_cjk_run(
    scratch_fts5: sqlite3.Connection, parts: list[tuple[str, str]], data: st.DataObject
) -> None:
    text = to_text(parts)
    segment = data.draw(st.sampled_from([segment for segment, _ in parts]))
    if all(char in CJK_TEXT for char in segment):
        start = data.draw(st.integers(0, len(segment) - 1))
        end = data.draw(st.integers(start + 1, len(segment)))
        query = segment[start:end]
    else:
        query = data.draw(st.sampled_from([segment, segment.upper(), segment.lower()]))
    tokens = document_tokens(text)
    for term in query_terms(query):
        assert any(token.startswith(term) for token in tokens) if is_prefix_term(term) else term in tokens
    scratch_fts5.execute("DELETE FROM product_search")
    scratch_fts5.execute("INSERT INTO product_search(rowid, document) VALUES (1, ?)", (search_document(text),))
    assert fts5_search(scratch_fts5, query) == {1}


@pytest.mark.parametrize("query", HOSTILE)
def test_fts5_accepts_every_hostile_query(catalog_fts5: sqlite3.Connection, query: str) -> None:
    fts5_search(catalog_fts5, query)
    catalog_fts5.execute("SELECT count(*) FROM product_search WHERE product_search MATCH ?", (fts5_match([query]),))


@settings(max_examples=300)
@given(hostile_queries, st.lists(any_strings, max_size=20))
def test_fts5_match_is_never_a_syntax_error(catalog_fts5: sqlite3.Connection, query: str, terms: list[str]) -> None:
    for match in (fts5_match(query_terms(query)), fts5_match(terms), fts5_match([query])):
        catalog_fts5.execute("SELECT count(*) FROM product_search WHERE product_search MATCH ?", (match,)).fetchone()


def test_search_document_is_fast() -> None:
    title = "贵阳市主干道实时路况数据（2024年版）Guiyang Traffic API"
    description = (
        "本数据产品提供贵阳市主干道、快速路和城市高架的实时路况信息，包括路段平均车速、拥堵指数、事件告警等，"
        "每5分钟更新一次。数据来源于交通管理部门的视频检测与浮动车GPS轨迹，经脱敏处理后以RESTful API和CSV"
        "批量文件两种方式交付，适用于出行导航、物流调度、城市规划与学术研究。Coverage: Yunyan, Nanming, "
        "Guanshanhu districts; refresh interval 5 min; format JSON/CSV, encoding UTF-8."
    )
    texts = (title, description, "交通", "实时路况", "traffic", "5431", "520100")
    runs = 1_000
    started = time.perf_counter()
    for _ in range(runs):
        search_document(*texts)
    per_call = (time.perf_counter() - started) / runs
    # ~50 µs on a 2-core CI machine; the bound only catches a regression to something quadratic.
    assert per_call < 0.002, per_call


# --- against PostgreSQL ------------------------------------------------------------------------


def postgres_dsn() -> str:
    """asyncpg's DSN for the server in TEST_DATABASE_URL (a SQLAlchemy URL)."""
    return re.sub(r"^postgresql\+\w+://", "postgresql://", os.environ["TEST_DATABASE_URL"])


@pytest.fixture(scope="module")
async def postgres() -> AsyncIterator[Any]:
    """A connection with a temporary table of the catalog, indexed as the catalog will be."""
    import asyncpg

    connection = await asyncpg.connect(postgres_dsn())
    await connection.execute(
        """
        CREATE TEMPORARY TABLE product_search (
            id integer PRIMARY KEY,
            document text NOT NULL,
            tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', document)) STORED
        );
        CREATE INDEX ON product_search USING gin (tsv);
        """
    )
    await connection.executemany(
        "INSERT INTO product_search (id, document) VALUES ($1, $2)",
        [(rowid, search_document(*texts)) for rowid, texts in CATALOG.items()],
    )
    yield connection
    await connection.close()


async def postgres_search(connection: Any, query: str) -> set[int]:
    rows = await connection.fetch(
        "SELECT id FROM product_search WHERE tsv @@ to_tsquery('simple', $1)", tsquery(query_terms(query))
    )
    return {row["id"] for row in rows}


async def postgres_tokens(connection: Any, document: str) -> list[str]:
    """How PostgreSQL tokenizes a document: its lexemes in position order."""
    rows = await connection.fetch(
        "SELECT lexeme, unnest(positions) AS position FROM unnest(to_tsvector('simple', $1)) ORDER BY 2", document
    )
    assert [row["position"] for row in rows] == list(range(1, len(rows) + 1))
    return [row["lexeme"] for row in rows]


@pytest.mark.postgres
async def test_postgres_finds_what_fts5_finds(postgres: Any, catalog_fts5: sqlite3.Connection) -> None:
    for query, expected in EXAMPLES:
        assert await postgres_search(postgres, query) == expected, query
    for query in HOSTILE:
        assert await postgres_search(postgres, query) == fts5_search(catalog_fts5, query), query
        await postgres.fetch("SELECT to_tsquery('simple', $1)", tsquery([query]))


@pytest.mark.postgres
async def test_postgres_keeps_each_token_as_one_lexeme(postgres: Any) -> None:
    for texts in CATALOG.values():
        assert await postgres_tokens(postgres, search_document(*texts)) == document_tokens(*texts)
    explained = await postgres.fetchval("SELECT to_tsquery('simple', $1)::text", tsquery(query_terms("贵 实时路况")))
    assert explained == "'贵':* & '实时' & '时路' & '路况'"


@pytest.mark.postgres
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(segments)
async def test_postgres_tokenizes_any_search_document_exactly_as_written(
    postgres: Any, parts: list[tuple[str, str]]
) -> None:
    text = to_text(parts)
    # PostgreSQL's parser reads "0e0a" as the number 0e0 and the word "a"; it splits queries the
    # same way, so matching holds, but the tokens are not one lexeme each. Known limit; excluded.
    assume(not re.search(r"\d[eE][+-]?\d", search_document(text)))
    assert await postgres_tokens(postgres, search_document(text)) == document_tokens(text)


@pytest.mark.postgres
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_queries, st.lists(any_strings, max_size=20))
async def test_tsquery_is_never_a_syntax_error(postgres: Any, query: str, terms: list[str]) -> None:
    for text in (tsquery(query_terms(query)), tsquery(terms), tsquery([query])):
        await postgres.fetchval("SELECT count(*) FROM product_search WHERE tsv @@ to_tsquery('simple', $1)", text)


# --- misspellings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "word", "apart"),
    [
        ("traffc", "traffic", True),  # a character dropped
        ("trafffic", "traffic", True),  # one added
        ("trafgic", "traffic", True),  # one replaced
        ("tarffic", "traffic", True),  # two neighbours swapped
        ("traffic", "traffic", False),  # the same word is no correction
        ("raffic", "traffic", False),  # the first character is kept
        ("trfafci", "traffic", False),  # two edits
        ("weahter", "weather", True),
        ("weather", "weathers", True),
        ("weathre", "wreathe", False),
    ],
)
def test_one_edit_apart(query: str, word: str, apart: bool) -> None:
    assert one_edit_apart(query, word) is apart
    assert one_edit_apart(word, query) is apart


@given(st.from_regex(r"[a-z]{5,12}", fullmatch=True), st.data())
def test_every_single_edit_after_the_first_character_is_one_edit_apart(word: str, data: st.DataObject) -> None:
    i = data.draw(st.integers(1, len(word) - 1))
    letter = data.draw(st.sampled_from("abcdefghijklmnopqrstuvwxyz"))
    edits = {word[:i] + word[i + 1 :], word[:i] + letter + word[i:], word[:i] + letter + word[i + 1 :]}
    if i < len(word) - 1:
        edits.add(word[:i] + word[i + 1] + word[i] + word[i + 2 :])
    for edit in edits - {word}:
        assert one_edit_apart(edit, word)


def test_the_vocabulary_is_the_words_of_two_or_more_characters_without_cjk() -> None:
    document = search_document("Guiyang 交通 data", "a 5431 贵阳")
    assert vocabulary(document) == {"guiyang", "data", "5431"}
    assert is_typo_tolerant("traffc")
    assert not is_typo_tolerant("rain")
    assert not is_typo_tolerant("实时路况交通")
