"""Every message the service can say, by id with its English text: what the message catalogs translate.

Rules declare theirs (`messages`), error classes their titles; every other sentence is a `Message(id, template)`
written where it is said, and read here from the source, so a message cannot be forgotten by the catalogs.

`marketplace messages update` (`make messages`) writes them as the catalogs' template, `locale/marketplace.pot`,
and merges that into each language's catalog with Babel, for a translator to fill in what is new or changed;
a test checks that every catalog translates every message."""

from __future__ import annotations

import ast
from dataclasses import dataclass
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
SOURCE_DIR = Path(__file__).parents[1]
# Placeholders are str.format fields, which gettext tools check as python-brace-format.
_FLAGS = ("python-brace-format",)


def source_messages() -> dict[str, str]:
    """Message id -> English text: every installed rule's messages, the engine's and the words it puts in them as
    values, every problem title, every `Message` the source says and the console's words.
    Problem titles are read from the error classes defined, so the caller imports the application first."""
    messages = {RULE_ERROR_ID: RULE_ERROR} | {value_id(word): word for word in MESSAGE_VALUES}
    for rule_class in load_rule_classes().values():
        messages.update({f"{rule_class.id}.{key}": text for key, text in rule_class.messages.items()})
    messages.update({problem_title_id(code): title for code, title in problem_titles().items()})
    messages.update(said_messages())
    messages.update(CONSOLE_WORDS)
    return messages


@dataclass(frozen=True)
class Said:
    """A `Message(...)` written in the source: its id, English template and the values it is given by name
    (None when some are given as `**values`)."""

    message_id: str
    template: str
    values: frozenset[str] | None
    where: str


def said_messages() -> dict[str, str]:
    """Message id -> English template of every `Message` in the service's source; one id says one template."""
    messages: dict[str, str] = {}
    for said in messages_said():
        if messages.setdefault(said.message_id, said.template) != said.template:
            raise ValueError(f"{said.where}: message {said.message_id} says another template elsewhere")
    return messages


def messages_said() -> list[Said]:
    """Every `Message(id, template, ...)` call in the service's source, whose id and template are literals."""
    found = []
    for path in sorted(SOURCE_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Call) and _called(node.func) == "Message":
                found.append(_said(node, f"{path.relative_to(SOURCE_DIR.parent)}:{node.lineno}"))
    return found


def _called(func: ast.expr) -> str | None:
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def _said(call: ast.Call, where: str) -> Said:
    literals = [arg.value for arg in call.args[:2] if isinstance(arg, ast.Constant) and isinstance(arg.value, str)]
    if len(call.args) != 2 or len(literals) != 2:
        raise ValueError(f"{where}: a Message's id and template are two string literals")
    names = [keyword.arg for keyword in call.keywords]
    values = None if None in names else frozenset(name for name in names if name is not None)
    return Said(literals[0], literals[1], values, where)


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
