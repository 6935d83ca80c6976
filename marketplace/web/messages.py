"""Every message the service can say, by id with its English text: what the message catalogs translate.

`marketplace messages update` (`make messages`) writes them as the catalogs' template, `locale/marketplace.pot`,
and merges that into each language's catalog with Babel, for a translator to fill in what is new or changed;
a test checks that every catalog translates every message."""

from __future__ import annotations

from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

from marketplace.compliance.engine import MESSAGE_VALUES, RULE_ERROR, RULE_ERROR_ID
from marketplace.compliance.registry import load_rule_classes
from marketplace.errors import DomainError
from marketplace.kit.i18n import DOMAIN, LOCALE_DIR, SOURCE_LANGUAGE, Language, catalog_path, value_id
from marketplace.web.console_words import WORDS as CONSOLE_WORDS
from marketplace.web.problems import FRAMEWORK_PROBLEM_STATUSES, FRAMEWORK_PROBLEM_TITLES, problem_title_id

TEMPLATE_PATH = LOCALE_DIR / f"{DOMAIN}.pot"
# Placeholders are str.format fields, which gettext tools check as python-brace-format.
_FLAGS = ("python-brace-format",)


def source_messages() -> dict[str, str]:
    """Message id -> English text: every installed rule's messages, the engine's and the words it puts in them as
    values, every problem title and the console's words.
    Problem titles are read from the error classes defined, so the caller imports the application first."""
    messages = {RULE_ERROR_ID: RULE_ERROR} | {value_id(word): word for word in MESSAGE_VALUES}
    for rule_class in load_rule_classes().values():
        messages.update({f"{rule_class.id}.{key}": text for key, text in rule_class.messages.items()})
    messages.update({problem_title_id(code): title for code, title in problem_titles().items()})
    messages.update(CONSOLE_WORDS)
    return messages


def problem_titles() -> dict[str, str]:
    """Problem code -> English title, of the framework's problems and of every domain error class."""
    return {code: title for code, (_, title) in problem_types().items()}


def problem_types() -> dict[str, tuple[int, str]]:
    """Problem code -> (status, English title), of the framework's problems and of every domain error class
    defined (the caller imports the application first), sorted by status and code."""
    types = {code: (FRAMEWORK_PROBLEM_STATUSES[code], title) for code, title in FRAMEWORK_PROBLEM_TITLES.items()}
    pending: list[type[DomainError]] = [DomainError]
    while pending:
        error = pending.pop()
        types.setdefault(error.code, (error.status, error.title))
        pending.extend(error.__subclasses__())
    return dict(sorted(types.items(), key=lambda item: (item[1][0], item[0])))


def template_catalog() -> Catalog:
    template = Catalog(domain=DOMAIN, project="marketplace", charset="utf-8")
    for message_id, english in sorted(source_messages().items()):
        template.add(english, context=message_id, flags=_FLAGS)
    return template


def update_catalogs() -> list[Path]:
    """Write the template and merge it into each language's catalog (new messages empty, changed ones fuzzy,
    the translations of removed ones kept as obsolete entries); the files written."""
    template = template_catalog()
    TEMPLATE_PATH.parent.mkdir(parents=True, exist_ok=True)
    with TEMPLATE_PATH.open("wb") as file:
        write_po(file, template, width=120, omit_header=False)
    written = [TEMPLATE_PATH]
    for language in Language:
        if language is SOURCE_LANGUAGE:
            continue
        path = catalog_path(language)
        translated = _read(path, language)
        translated.update(template)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as file:
            write_po(file, translated, width=120)
        written.append(path)
    return written


def _read(path: Path, language: Language) -> Catalog:
    if not path.exists():
        return Catalog(locale=language.locale, domain=DOMAIN, project="marketplace", charset="utf-8")
    with path.open("rb") as file:
        return read_po(file, locale=language.locale, domain=DOMAIN)
