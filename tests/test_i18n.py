"""Bilingual words: the language a request's Accept-Language chooses, and catalogs that translate every message
id of every rule, the engine, every problem title and every message the source says (domain errors' details,
framework problems'), with the same placeholders as the English."""

from __future__ import annotations

import re
import string

import pytest
from babel.messages.pofile import read_po

import marketplace.app  # noqa: F401 - defines every error class, whose titles are messages
from marketplace.errors import DomainError
from marketplace.kit.i18n import SOURCE_LANGUAGE, Language, Message, catalog, catalog_path, localize, negotiate
from marketplace.web.messages import (
    TEMPLATE_PATH,
    messages_said,
    problem_titles,
    said_messages,
    source_messages,
    template_catalog,
)
from marketplace.web.problems import FRAMEWORK_DETAILS, FRAMEWORK_PROBLEM_TITLES

CJK = re.compile(r"[\u4e00-\u9fff]")
TRANSLATED = [language for language in Language if language is not SOURCE_LANGUAGE]


@pytest.mark.parametrize(
    ("header", "default", "expected"),
    [
        (None, Language.EN, Language.EN),
        (None, Language.ZH_CN, Language.ZH_CN),
        ("", Language.ZH_CN, Language.ZH_CN),
        ("zh-CN", Language.EN, Language.ZH_CN),
        ("zh", Language.EN, Language.ZH_CN),
        ("zh-Hans", Language.EN, Language.ZH_CN),
        ("ZH-hans-cn", Language.EN, Language.ZH_CN),
        ("zh-TW", Language.EN, Language.ZH_CN),  # the one Chinese catalog serves every Chinese reader
        ("en", Language.ZH_CN, Language.EN),
        ("en-GB", Language.ZH_CN, Language.EN),
        ("en-US,en;q=0.9", Language.ZH_CN, Language.EN),
        ("fr-FR, de;q=0.8", Language.ZH_CN, Language.ZH_CN),  # none spoken: the default
        ("fr, en;q=0.5", Language.ZH_CN, Language.EN),
        ("en;q=0.4, zh-CN;q=0.8", Language.EN, Language.ZH_CN),  # the weight decides, not the order
        ("zh;q=0.5, en;q=0.5", Language.EN, Language.ZH_CN),  # a tie: the first named
        ("zh-CN;q=0, en;q=0.1", Language.ZH_CN, Language.EN),  # q=0: not acceptable
        ("*", Language.ZH_CN, Language.ZH_CN),
        ("*;q=0.1, en", Language.ZH_CN, Language.EN),
        ("zh-CN;q=abc, en;q=0.2", Language.ZH_CN, Language.EN),  # a malformed weight ignores its range
        ("zh-CN;q=2", Language.EN, Language.EN),
        ("zh-CN ; q=0.7 ,en ;q=0.6", Language.EN, Language.ZH_CN),
        (",,;q=1,", Language.EN, Language.EN),
    ],
)
def test_accept_language_chooses_a_language_the_service_speaks(
    header: str | None, default: Language, expected: Language
) -> None:
    assert negotiate(header, default) is expected


def placeholders(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}


MESSAGES = sorted(source_messages().items())


def test_the_messages_are_those_of_every_rule_the_engine_and_every_problem() -> None:
    ids = dict(MESSAGES)
    assert "engine.rule-error" in ids
    assert {f"problem.{code}" for code in problem_titles()} <= set(ids)
    assert "problem.trade-rejected" in ids
    said = said_messages()
    assert set(said) <= set(ids)
    rules = {
        message_id.split(".", 1)[0]
        for message_id in ids
        if not message_id.startswith(("engine.", "problem.", "value.", "console.")) and message_id not in said
    }
    assert rules == {f"R{n}" for n in range(1, 9)} | {f"S{n}" for n in range(1, 11)}


@pytest.mark.parametrize("language", TRANSLATED)
@pytest.mark.parametrize(("message_id", "english"), MESSAGES, ids=[message_id for message_id, _ in MESSAGES])
def test_every_message_is_translated_with_the_same_placeholders(
    language: Language, message_id: str, english: str
) -> None:
    translated = catalog(language).get(message_id)
    assert translated, f"{message_id} has no {language.value} translation"
    assert CJK.search(translated), translated
    assert placeholders(translated) == placeholders(english)


@pytest.mark.parametrize("language", TRANSLATED)
def test_each_catalog_translates_the_english_the_sources_say_now(language: Language) -> None:
    """A changed English text must be translated again: the catalog's msgid is the current English."""
    with catalog_path(language).open("rb") as file:
        entries = {m.context: m for m in read_po(file) if m.context}
    stale = [message_id for message_id, english in MESSAGES if entries[message_id].id != english]
    assert not stale, "run `make messages` and translate: " + ", ".join(stale)
    assert not [m for m in entries.values() if m.fuzzy], "fuzzy entries are not translations"


def test_the_template_holds_every_message() -> None:
    with TEMPLATE_PATH.open("rb") as file:
        written = {(m.context, m.id) for m in read_po(file) if m.context}
    assert written == {(m.context, m.id) for m in template_catalog() if m.context}, "run `make messages`"


def test_one_problem_code_has_one_title() -> None:
    """A title is translated by its problem code: two classes sharing a code must share its title."""
    titles: dict[str, set[str]] = {}
    pending: list[type[DomainError]] = [DomainError]
    while pending:
        error = pending.pop()
        titles.setdefault(error.code, set()).add(error.title)
        pending.extend(error.__subclasses__())
    assert {code: found for code, found in titles.items() if len(found) > 1} == {}


def test_a_message_renders_in_each_language_with_its_values() -> None:
    english = "the rule could not be evaluated (KeyError); failing closed"
    params = {"error": "KeyError"}
    assert localize(Language.EN, "engine.rule-error", english, params) == english
    assert localize(Language.ZH_CN, "engine.rule-error", english, params) == "规则无法执行（KeyError），按不通过处理"


def test_text_without_an_id_or_translation_stays_as_it_was_stored() -> None:
    assert localize(Language.ZH_CN, None, "stored before messages had ids") == "stored before messages had ids"
    assert localize(Language.ZH_CN, "R99.unknown", "a vendor's message") == "a vendor's message"
    # values that no longer fit the template: the stored English, never a broken message
    assert localize(Language.ZH_CN, "engine.rule-error", "as stored", {}) == "as stored"


SAID = messages_said()


def test_the_source_says_the_domain_errors_messages() -> None:
    ids = {said.message_id for said in SAID}
    assert {"orders.not-found", "auth.credentials-missing", "request.fields-required", "ledger.overdraft"} <= ids
    assert len(ids) > 150


@pytest.mark.parametrize("said", SAID, ids=[said.where for said in SAID])
def test_a_message_is_given_the_values_its_template_names(said: object) -> None:
    """A value missing would fail at the edge, one too many would be lost; `**values` is checked where it renders."""
    assert said.values is None or placeholders(said.template) == said.values, said.where  # type: ignore[attr-defined]


def test_every_framework_problem_says_something_translated_beyond_english() -> None:
    spoken = set(FRAMEWORK_PROBLEM_TITLES) - {"invalid-request", "internal-error"}  # these say a message of ours
    assert set(FRAMEWORK_DETAILS) == spoken


def test_a_message_renders_its_values_and_the_messages_among_them() -> None:
    address = Message("url.address-private", "a private address")
    refused = Message(
        "url.address-refused", "the host resolves to {address}, {reason}", address="10.0.0.1", reason=address
    )
    assert str(refused) == "the host resolves to 10.0.0.1, a private address"
    assert refused.render(Language.EN) == str(refused)
    assert refused.render(Language.ZH_CN) == "该主机解析为 10.0.0.1，这是私有地址"
    listed = Message(
        "catalog.privacy-terms-inconsistent",
        "the privacy terms do not fit together: {problems}",
        problems=[address, Message("catalog.bounds-order", "lower must be below upper")],
    )
    assert str(listed) == "the privacy terms do not fit together: a private address; lower must be below upper"
    assert listed.render(Language.ZH_CN) == "隐私条款彼此不一致：私有地址；下界必须小于上界"
