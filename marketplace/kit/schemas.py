"""Base classes for request and response bodies.

Request bodies forbid unknown fields; numbers and booleans use pydantic's Strict types so
"5", 5.5 or true never pass as an integer (a test walks every request schema to check)."""

from collections.abc import Callable
from typing import Annotated, Any

from litestar._signature.types import ExtendedMsgSpecValidationError
from litestar.plugins.pydantic import PydanticInitPlugin
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$"

Email = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, max_length=254, pattern=EMAIL_PATTERN)
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class RequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class ResponseBody(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _is_request_body(target: Any) -> bool:
    return isinstance(target, type) and issubclass(target, RequestBody)


def _decode_request_body(model: type[RequestBody], value: Any) -> RequestBody:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise ExtendedMsgSpecValidationError(errors=[dict(e) for e in exc.errors(include_input=False)]) from exc


class RequestBodyPlugin(PydanticInitPlugin):
    """Litestar validates pydantic models with an explicit strict=False, which would override
    the Strict field types; request bodies are validated with their own rules instead."""

    @classmethod
    def decoders(cls, validate_strict: bool = False) -> list[tuple[Callable[[Any], bool], Callable[[Any, Any], Any]]]:
        return [(_is_request_body, _decode_request_body), *super().decoders(validate_strict)]


__all__ = ["Email", "Field", "Name", "Reason", "RequestBody", "RequestBodyPlugin", "ResponseBody"]
