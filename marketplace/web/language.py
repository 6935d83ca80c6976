"""The language of a response: chosen once per request from its `Accept-Language` (the configured default when it
names no language the service speaks), used for every word of the answer, and stated in `Content-Language`."""

from __future__ import annotations

from typing import Annotated

from litestar.datastructures import Headers
from litestar.di import NamedDependency
from litestar.params import HeaderParameter
from litestar.types import Message, Scope

from marketplace.config import Settings
from marketplace.kit.i18n import Language, negotiate

# A handler whose answer has words in it asks for `language: RequestLanguage`.
RequestLanguage = NamedDependency[Language]

ACCEPT_LANGUAGE_DESCRIPTION = (
    "The language of finding messages, rule titles and problems: en or zh-CN (any zh tag), weighted by q; "
    "the service's DEFAULT_LANGUAGE otherwise. The answer's Content-Language names the one used."
)


def provide_language(
    settings: NamedDependency[Settings],
    accept_language: Annotated[
        str | None, HeaderParameter(name="Accept-Language", required=False, description=ACCEPT_LANGUAGE_DESCRIPTION)
    ] = None,
) -> Language:
    """The request's language, for a handler whose answer has words in it (it documents the header)."""
    return negotiate(accept_language, settings.default_language)


def language_of(scope: Scope) -> Language:
    """The request's language, where no dependency reaches: problem details and the response's headers. The same
    choice as `provide_language`: the same header and the same default."""
    settings: Settings = scope["litestar_app"].state.runtime.settings
    return negotiate(Headers.from_scope(scope).get("accept-language"), settings.default_language)


async def content_language(message: Message, scope: Scope) -> None:
    """Every response, errors included, says the language its words are in (unless it said so itself: a console
    page, in the language its administrator chose)."""
    if message["type"] == "http.response.start":
        headers = list(message.get("headers", []))
        if not any(bytes(name).lower() == b"content-language" for name, _ in headers):
            headers.append((b"content-language", language_of(scope).value.encode("ascii")))
        message["headers"] = headers
