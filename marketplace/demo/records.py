"""The demonstration data as typed records, read once from the JSON files in marketplace/demo/data: the
organisations with their owners, and the catalog's products."""

from __future__ import annotations

from importlib import resources
from typing import Any, Final

from pydantic import ConfigDict, TypeAdapter
from pydantic.dataclasses import dataclass

# The actor the audit trail names for what the demo does on no signed-in person's behalf.
DEMO_ACTOR: Final = "demo"
# Owners' e-mails key the organisations; a product names its provider by its owner's e-mail.
TRAFFIC: Final = "provider@guiyang-traffic.example"
ASSESSOR: Final = "assessor@gz-datasec.example"

# A key the records do not know is a typo in a data file, not something to skip.
_STRICT = ConfigDict(extra="forbid", strict=True)


@dataclass(frozen=True, config=_STRICT)
class DemoOrganization:
    owner_email: str
    owner_name: str
    organization: dict[str, Any]  # its registration: fields of the organisation body that differ from the defaults


@dataclass(frozen=True, config=_STRICT)
class DemoProduct:
    provider: str
    title: str
    description: str
    tags: tuple[str, ...]
    category: str
    industry_code: str
    regions: tuple[str, ...]
    grade: str
    delivery_modes: tuple[str, ...]
    permitted_scenarios: tuple[str, ...]
    price_minor: int  # CNY; its plan's price and its declared cost are derived from it
    sample: str  # CSV
    plan_kind: str = "one_time"
    personal_fields: tuple[str, ...] = ()  # de-identified personal fields: the product holds PI
    cost_declared: bool = True
    update_frequency: str = "daily"
    computation: dict[str, Any] | None = None  # what privacy computing allows, and its privacy terms


def _read(filename: str) -> bytes:
    return resources.files("marketplace.demo.data").joinpath(filename).read_bytes()


ORGANIZATIONS: Final = TypeAdapter(tuple[DemoOrganization, ...]).validate_json(_read("organizations.json"))
PRODUCTS: Final = TypeAdapter(tuple[DemoProduct, ...]).validate_json(_read("products.json"))
