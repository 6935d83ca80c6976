"""Base classes for request and response bodies.

Request bodies forbid unknown fields; numbers and booleans use pydantic's Strict types so
"5", 5.5 or true never pass as an integer (a test walks every request schema to check).
Integers also take `WHOLE_NUMBER` (`WholeInt`): JSON has one number type, and 5.0 is the
integer 5 to JSON Schema and so to the OpenAPI document."""

import functools
import re
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from litestar._openapi.schema_generation import SchemaCreator
from litestar._signature.types import ExtendedMsgSpecValidationError
from litestar.openapi.spec import OpenAPIType, Reference, Schema
from litestar.plugins.pydantic import PydanticInitPlugin, PydanticSchemaPlugin
from litestar.typing import FieldDefinition
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)

# What `str.strip()` removes, spelled out: the regex dialects that read a pattern (ECMA-262 in the
# OpenAPI document, Python's in client tooling, Rust's in pydantic) disagree on what `\s` means.
_SPACE = r"\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# PostgreSQL cannot store NUL in text, so text that is stored refuses it (and the schema says so).
NO_NUL_PATTERN = r"^[^\x00]*$"
# A single word: no NUL, no white space of any kind.
TOKEN_PATTERN = rf"^[^\x00{_SPACE}]+$"
# Not blank either: some character that stripping keeps.
TEXT_PATTERN = rf"^[^\x00]*[^\x00{_SPACE}][^\x00]*$"
EMAIL_PATTERN = rf"^[{_SPACE}]*[^@\x00{_SPACE}]{{1,64}}@[^@\x00{_SPACE}]+\.[^@\x00{_SPACE}]+[{_SPACE}]*$"

# Text is checked as sent, then stripped (and e-mail addresses lower-cased): constraints on the
# stripped value would not be the ones the OpenAPI document shows.
STRIP = AfterValidator(str.strip)
LOWER = AfterValidator(str.lower)
Email = Annotated[str, StringConstraints(max_length=254, pattern=EMAIL_PATTERN), STRIP, LOWER]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=TEXT_PATTERN), STRIP]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=TEXT_PATTERN), STRIP]


# Beyond 2**53 a float no longer says which integer was meant.
_EXACT_FLOAT_INTEGERS = 2**53


def _whole_number(value: Any) -> Any:
    """5.0 is the integer 5 (JSON Schema agrees, and so does the API's OpenAPI 3.1 document);
    5.5, "5" and true are left for the strict integer check to refuse."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= _EXACT_FLOAT_INTEGERS:
        return int(value)
    return value


# Bounds go before it, `Annotated[StrictInt, Field(ge=0, le=5), WHOLE_NUMBER]`, or pydantic's JSON
# schema (and so the OpenAPI document) loses them.
WHOLE_NUMBER = BeforeValidator(_whole_number)
WholeInt = Annotated[StrictInt, WHOLE_NUMBER]


# RFC 3339, what `format: date` and `format: date-time` mean; date-times carry their offset.
_FULL_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


class RequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    @field_validator("*", mode="before")
    @classmethod
    def _times_as_rfc3339_text(cls, value: Any, info: ValidationInfo) -> Any:
        """Pydantic also takes a number (seconds since 1970), a numeric string or a date-time for a
        date; the OpenAPI document promises RFC 3339 text, so only that is taken."""
        kind = _temporal_fields(cls).get(info.field_name or "")
        if kind is None or value is None:
            return value
        if kind is datetime:
            if isinstance(value, str) and _DATE_TIME.fullmatch(value):
                return value
            raise ValueError("expected an RFC 3339 date-time with an offset, e.g. 2025-01-31T08:00:00Z")
        if kind is date:
            if isinstance(value, str) and _FULL_DATE.fullmatch(value):
                return value
            raise ValueError("expected an RFC 3339 date, e.g. 2025-01-31")
        if not isinstance(value, str):
            raise ValueError("expected ISO 8601 text")
        return value


@functools.cache
def _temporal_fields(model: type[BaseModel]) -> dict[str, type]:
    """The fields of a model that hold a date, date-time, time or duration (or None), by kind."""
    found = {}
    for name, field in model.model_fields.items():
        kind = _temporal_kind(field.annotation)
        if kind is not None:
            found[name] = kind
    return found


def _temporal_kind(annotation: Any) -> type | None:
    for kind in (datetime, date, time, timedelta):  # datetime before date: it is one
        if isinstance(annotation, type) and issubclass(annotation, kind):
            return kind
    if get_origin(annotation) in (Union, UnionType, Annotated):
        kinds = {_temporal_kind(arg) for arg in get_args(annotation)} - {None}
        return kinds.pop() if len(kinds) == 1 else None
    return None


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


# JSON Schema keywords a validator enforces on a value, by the names Litestar's `Schema` gives them.
_CONSTRAINTS = {
    "pattern": "pattern",
    "minLength": "min_length",
    "maxLength": "max_length",
    "minimum": "minimum",
    "maximum": "maximum",
    "exclusiveMinimum": "exclusive_minimum",
    "exclusiveMaximum": "exclusive_maximum",
    "multipleOf": "multiple_of",
    "minItems": "min_items",
    "maxItems": "max_items",
    "minProperties": "min_properties",
    "maxProperties": "max_properties",
}


def _document_constraints(documented: Schema, enforced: dict[str, Any]) -> None:
    """Copy into Litestar's schema of a field the constraints pydantic enforces on it.

    Litestar drops constraints inside `X | None` (patterns, bounds, item counts), drops a bound of 0
    and writes integer bounds as floats; pydantic's own JSON schema has them right."""
    branches = enforced.get("anyOf") or enforced.get("oneOf")
    if documented.one_of and branches:
        for option in documented.one_of:
            if isinstance(option, Schema):
                same_type = [b for b in branches if isinstance(b, dict) and b.get("type") == _type_name(option)]
                if len(same_type) == 1:
                    _document_constraints(option, same_type[0])
        for attribute in _CONSTRAINTS.values():  # they belong to the branches
            setattr(documented, attribute, None)
        return
    for keyword, attribute in _CONSTRAINTS.items():
        if keyword in enforced:
            setattr(documented, attribute, enforced[keyword])
    if isinstance(documented.items, Schema) and isinstance(enforced.get("items"), dict):
        _document_constraints(documented.items, enforced["items"])
    if isinstance(enforced.get("propertyNames"), dict):  # a dict's keys: Litestar leaves them out
        documented.property_names = Schema(type=OpenAPIType.STRING)
        _document_constraints(documented.property_names, enforced["propertyNames"])


def _type_name(schema: Schema) -> str | None:
    return schema.type.value if isinstance(schema.type, OpenAPIType) else None


class DocumentedAs:
    """A response field answered as it is stored (a dict, byte for byte what was hashed or signed), documented
    as one of `shapes` (TypedDicts, each described by its docstring and refusing other keys):
    `payload: Annotated[dict[str, Any], DocumentedAs(shapes)]`. A test checks what is stored against them."""

    def __init__(self, shapes: Sequence[Any]) -> None:
        self.shapes = tuple(shapes)

    def schema(self, description: str | None, schema_creator: SchemaCreator) -> Schema:
        """`anyOf` the shapes, not `oneOf`: shapes may overlap (one with optional keys only matches many)."""
        references = []
        for shape in self.shapes:
            reference = schema_creator.for_field_definition(FieldDefinition.from_annotation(shape))
            assert isinstance(reference, Reference), f"{shape} is documented as a component"
            component = schema_creator.schema_registry.from_reference(reference).schema
            component.description = " ".join((shape.__doc__ or "").split())
            component.additional_properties = False
            references.append(reference)
        return Schema(any_of=references, description=description)


class RequestBodySchemaPlugin(PydanticSchemaPlugin):
    """Request bodies are validated by pydantic (`RequestBodyPlugin`): document what it enforces.

    Unknown fields are refused (`additionalProperties: false`), and every field carries the
    constraints pydantic checks, which Litestar's own translation partly loses. A field marked
    `DocumentedAs` is documented with its shape."""

    @classmethod
    def for_pydantic_model(cls, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        schema = super().for_pydantic_model(field_definition, schema_creator)
        model = field_definition.annotation
        for name, field in model.model_fields.items():
            shapes = next((m for m in field.metadata if isinstance(m, DocumentedAs)), None)
            if shapes is not None and schema.properties and name in schema.properties:
                schema.properties[name] = shapes.schema(field.description, schema_creator)
        if _is_request_body(model):
            schema.additional_properties = False
            enforced = model.model_json_schema(mode="validation").get("properties", {})
            for name, documented in (schema.properties or {}).items():
                if isinstance(documented, Schema) and name in enforced:
                    _document_constraints(documented, enforced[name])
        extra = model.model_config.get("json_schema_extra")
        if isinstance(extra, dict) and extra.get("examples"):
            # a body's own examples: realistic requests, each one valid (a test sends them through the model)
            schema.examples = list(extra["examples"])
        return schema


__all__ = [
    "LOWER",
    "NO_NUL_PATTERN",
    "STRIP",
    "TEXT_PATTERN",
    "TOKEN_PATTERN",
    "WHOLE_NUMBER",
    "DocumentedAs",
    "Email",
    "Field",
    "Name",
    "Reason",
    "RequestBody",
    "RequestBodyPlugin",
    "RequestBodySchemaPlugin",
    "ResponseBody",
    "WholeInt",
]
