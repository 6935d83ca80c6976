"""Languages of the service's words: which one a request asks for (`Accept-Language`), and the message catalogs
that render a message id with its values in it.

English is the source language: every message is written in English where it is said (a rule's `messages`,
an error's `title`), and that text is the English rendering. Other languages come from gettext catalogs,
`locale/<language>/LC_MESSAGES/marketplace.po`, whose entries name the message id as their context
(`msgctxt`) and its English template as `msgid`. A catalog is read with Babel the first time it is needed and
kept for the life of the process: the .po file in the source tree is all a fresh clone needs, with no build
step that could be forgotten."""

from __future__ import annotations

import enum
import functools
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "marketplace"

log = logging.getLogger("marketplace.i18n")


class Language(enum.StrEnum):
    """The languages the service speaks, as `Content-Language` names them (BCP 47)."""

    EN = "en"
    ZH_CN = "zh-CN"

    @property
    def locale(self) -> str:
        """The catalog's directory name (a POSIX locale: zh_CN)."""
        return self.value.replace("-", "_")


SOURCE_LANGUAGE = Language.EN
# How a list of messages inside another is joined.
_LIST_SEPARATOR = {Language.EN: "; ", Language.ZH_CN: "；"}
# Every Chinese tag (zh, zh-CN, zh-Hans, zh-TW, ...) is served the one Chinese catalog, Simplified Chinese:
# a reader of Chinese is better served by it than by English.
_PRIMARY = {"en": Language.EN, "zh": Language.ZH_CN}


def negotiate(accept_language: str | None, default: Language) -> Language:
    """The language of `Accept-Language` (RFC 9110 12.5.4) the service speaks with the highest weight, the
    first named on a tie; `*`, an empty header or one naming no language we speak gives `default`."""
    best, best_weight = default, 0.0
    for item in (accept_language or "").split(","):
        tag, _, parameters = item.partition(";")
        weight = _weight(parameters)
        language = _language_of(tag.strip().lower(), default)
        if language is not None and weight > best_weight:
            best, best_weight = language, weight
    return best


def _language_of(tag: str, default: Language) -> Language | None:
    if tag == "*":
        return default
    return _PRIMARY.get(tag.split("-", 1)[0])


def _weight(parameters: str) -> float:
    """The `q` of a language range, 1 when absent; a malformed one gives 0 (the range is ignored)."""
    name, _, value = parameters.strip().partition("=")
    if not name:
        return 1.0
    if name.strip().lower() != "q":
        return 0.0
    try:
        weight = float(value.strip())
    except ValueError:
        return 0.0
    return weight if 0.0 <= weight <= 1.0 else 0.0


@functools.cache
def catalog(language: Language) -> Mapping[str, str]:
    """The translated template of every message id the language's catalog holds (fuzzy and empty entries are
    not translations); empty for English, the source language."""
    if language is SOURCE_LANGUAGE:
        return {}
    # imported here: every command imports this module (the settings name the languages), few translate
    from babel.messages.pofile import read_po

    with catalog_path(language).open("rb") as file:
        read = read_po(file, locale=language.locale, domain=DOMAIN)
    return {
        message.context: str(message.string)
        for message in read
        if message.context and message.string and not message.fuzzy
    }


def catalog_path(language: Language) -> Path:
    return LOCALE_DIR / language.locale / "LC_MESSAGES" / f"{DOMAIN}.po"


def localize(language: Language, message_id: str | None, english: str, params: Mapping[str, Any] | None = None) -> str:
    """The message `message_id` with `params` in `language`; its English rendering when the language is
    English, the message has no id (plain text, or stored before messages had ids) or nothing translates it."""
    if language is SOURCE_LANGUAGE or message_id is None:
        return english
    template = catalog(language).get(message_id)
    if template is None:
        log.warning("no %s translation of message %s", language.value, message_id)
        return english
    try:
        return template.format_map(_values(language, params or {}))
    except (KeyError, IndexError, ValueError):
        # stored values that no longer fit the template (it changed since): the stored English still does
        log.warning("the %s translation of message %s does not fit its values", language.value, message_id)
        return english


class Message:
    """A sentence the service says to a caller: a stable message id, its English template with `{placeholders}`,
    and the values apart, so that each language's catalog renders it with the same values.

    Written where it is said, `Message("order.not-found", "order not found")`, with literal id and template
    (`marketplace messages update` reads them from the source); `str()` is the English rendering."""

    __slots__ = ("id", "params", "template")

    def __init__(self, message_id: str, template: str, /, **params: Any) -> None:
        self.id = message_id
        self.template = template
        self.params = params

    def __str__(self) -> str:
        return self.template.format_map(_values(SOURCE_LANGUAGE, self.params))

    def __repr__(self) -> str:
        return f"Message({self.id!r}, {str(self)!r})"

    def render(self, language: Language) -> str:
        """The message in `language` (its English rendering when nothing translates it)."""
        return localize(language, self.id, str(self), self.params)


def value_id(word: str) -> str:
    """The message id of a vocabulary word a message carries as a value (`core`, `provider`)."""
    return f"value.{word}"


def _values(language: Language, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """The values as the template reads them in `language`: a message rendered, a list of messages (`Message`s,
    or as `text` keeps them) rendered and joined, a vocabulary word the catalog knows translated, anything else
    (numbers, codes, names) as it is."""
    words = catalog(language)
    return {name: _value(language, value, words) for name, value in params.items()}


def _value(language: Language, value: Any, words: Mapping[str, str]) -> Any:
    if isinstance(value, Message):
        return value.render(language)
    if isinstance(value, list):
        return _LIST_SEPARATOR[language].join(
            part.render(language)
            if isinstance(part, Message)
            else localize(language, part.get("message_id"), part.get("message", ""), part.get("params"))
            for part in value
        )
    if isinstance(value, str):
        return words.get(value_id(value), value)
    return value
