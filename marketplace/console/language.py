"""The console's language: the one the administrator chose (a cookie, remembered), else the one the browser's
Accept-Language asks for, else the service's default; and the words of its pages in that language."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Request

from marketplace.config import Settings
from marketplace.kit.i18n import Language, localize, negotiate
from marketplace.web.console_words import WORDS

LANGUAGE_COOKIE = "console_language"
# How long the choice is remembered: a year.
LANGUAGE_COOKIE_SECONDS = 365 * 86_400

Translate = Callable[..., str]


def console_language(request: Request[Any, Any, Any]) -> Language:
    settings: Settings = request.app.state.runtime.settings
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen in set(Language):
        return Language(chosen)
    return negotiate(request.headers.get("accept-language"), settings.default_language)


def translator(language: Language) -> Translate:
    """`t("nav.trades")` in a template: the console's word `console.nav.trades` in `language`, with values."""

    def translate(word: str, **values: Any) -> str:
        message_id = f"console.{word}"
        english = WORDS[message_id].format_map(values)
        return localize(language, message_id, english, values)

    return translate
