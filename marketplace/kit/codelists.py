"""Reference code lists shipped as data: GB/T 4754-2017, GB/T 2260, ISO 3166-1, ISO 4217.

Each CSV under ``marketplace/kit/data`` is read once, on first use, through
importlib.resources so it also works from an installed wheel. Lookups are exact: a
code is valid only if it is in the list (S7, S8).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Final, Literal

__all__ = [
    "Country",
    "Currency",
    "Division",
    "DivisionLevel",
    "Industry",
    "IndustryLevel",
    "JurisdictionScope",
    "countries",
    "country_name",
    "currencies",
    "currency_minor_units",
    "division_level",
    "division_name",
    "divisions",
    "industries",
    "industry_level",
    "industry_name",
    "is_country_code",
    "is_currency",
    "is_division_code",
    "is_domestic_jurisdiction",
    "is_foreign_jurisdiction",
    "is_industry_code",
    "jurisdiction_scope",
    "normalize_industry_code",
]

_DATA_PACKAGE: Final = "marketplace.kit.data"

IndustryLevel = Literal["section", "division", "group", "class"]
DivisionLevel = Literal["province", "prefecture", "county"]
JurisdictionScope = Literal["domestic", "foreign"]


@dataclass(frozen=True, slots=True)
class Industry:
    code: str
    level: IndustryLevel
    name_zh: str
    section: str  # the section letter (A..T) the code belongs to


@dataclass(frozen=True, slots=True)
class Division:
    code: str
    name_zh: str
    level: DivisionLevel


@dataclass(frozen=True, slots=True)
class Country:
    alpha2: str
    alpha3: str
    numeric: str
    name_en: str


@dataclass(frozen=True, slots=True)
class Currency:
    code: str
    numeric: str
    minor_units: int | None  # None where ISO 4217 says N.A. (gold, SDR, test code...)
    name: str


def _rows(filename: str) -> list[dict[str, str]]:
    text = resources.files(_DATA_PACKAGE).joinpath(filename).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text, newline="")))


# --- GB/T 4754-2017 industrial classification ---------------------------------------------


def _industry_level(value: str) -> IndustryLevel:
    if value == "section":
        return "section"
    if value == "division":
        return "division"
    if value == "group":
        return "group"
    if value == "class":
        return "class"
    raise ValueError(f"unknown industry level {value!r}")


@cache
def industries() -> Mapping[str, Industry]:
    """Every section, division, group and class, keyed by code."""
    table: dict[str, Industry] = {}
    section = ""
    # Rows are in the standard's order: a section row precedes its divisions.
    for row in _rows("gbt4754_2017.csv"):
        level = _industry_level(row["level"])
        if level == "section":
            section = row["code"]
        table[row["code"]] = Industry(row["code"], level, row["name_zh"], section)
    return MappingProxyType(table)


def is_industry_code(code: str) -> bool:
    """Any level: section letter, 2-digit division, 3-digit group or 4-digit class."""
    return code in industries()


def industry_name(code: str) -> str | None:
    entry = industries().get(code)
    return entry.name_zh if entry else None


def industry_level(code: str) -> IndustryLevel | None:
    entry = industries().get(code)
    return entry.level if entry else None


def normalize_industry_code(code: str) -> str | None:
    """Canonical code for input such as ``" I6513 "``, or None if it is not a known code.

    Many systems write a class with its section letter in front; accepted only when the
    letter is that code's own section.
    """
    code = code.strip().upper()
    table = industries()
    if code in table:
        return code
    if len(code) >= 3 and code[0].isalpha() and code[1:].isdigit():
        entry = table.get(code[1:])
        if entry is not None and entry.section == code[0]:
            return entry.code
    return None


# --- GB/T 2260 administrative divisions -------------------------------------------------


def _division_level(value: str) -> DivisionLevel:
    if value == "province":
        return "province"
    if value == "prefecture":
        return "prefecture"
    if value == "county":
        return "county"
    raise ValueError(f"unknown division level {value!r}")


@cache
def divisions() -> Mapping[str, Division]:
    """Known 6-digit division codes: provinces, prefectures, counties."""
    return MappingProxyType(
        {
            row["code"]: Division(row["code"], row["name_zh"], _division_level(row["level"]))
            for row in _rows("gbt2260.csv")
        }
    )


def is_division_code(code: str) -> bool:
    """True only for a code in the list; no inference from a known prefix."""
    return code in divisions()


def division_name(code: str) -> str | None:
    entry = divisions().get(code)
    return entry.name_zh if entry else None


def division_level(code: str) -> DivisionLevel | None:
    entry = divisions().get(code)
    return entry.level if entry else None


# --- ISO 3166-1 and ISO 4217 ----------------------------------------------------------------


@cache
def countries() -> Mapping[str, Country]:
    """ISO 3166-1 entries keyed by alpha-2 code."""
    return MappingProxyType(
        {
            row["alpha2"]: Country(row["alpha2"], row["alpha3"], row["numeric"], row["name_en"])
            for row in _rows("iso3166.csv")
        }
    )


def is_country_code(alpha2: str) -> bool:
    """Upper-case ISO 3166-1 alpha-2 code, exactly as assigned."""
    return alpha2 in countries()


def country_name(alpha2: str) -> str | None:
    entry = countries().get(alpha2)
    return entry.name_en if entry else None


@cache
def currencies() -> Mapping[str, Currency]:
    """ISO 4217 list one (current currencies and funds) keyed by alphabetic code."""
    return MappingProxyType(
        {
            row["code"]: Currency(
                row["code"],
                row["numeric"],
                int(row["minor_units"]) if row["minor_units"] else None,
                row["name"],
            )
            for row in _rows("iso4217.csv")
        }
    )


def is_currency(code: str) -> bool:
    return code in currencies()


def currency_minor_units(code: str) -> int | None:
    """Decimal places of the minor unit (JPY 0, CNY 2, BHD 3); None if unknown or N.A."""
    entry = currencies().get(code)
    return entry.minor_units if entry else None


# --- Jurisdiction -----------------------------------------------------------------------------

# GB/T 2260 lists Taiwan (71), Hong Kong (81) and Macao (82), but transfers there are
# handled under the outbound data transfer rules, so for DSL/PIPL purposes they are
# outside the mainland. "Domestic" here means mainland China (境内).
_OUTSIDE_MAINLAND_PROVINCES: Final[frozenset[str]] = frozenset({"71", "81", "82"})


def jurisdiction_scope(code: str) -> JurisdictionScope | None:
    """Classify a jurisdiction code; None when it is not a known code.

    Domestic: a known GB/T 2260 code of a mainland division, or ``CN``.
    Foreign: any other ISO 3166-1 alpha-2 code (including HK, MO, TW), or the GB/T 2260
    code of a division in Taiwan, Hong Kong or Macao.
    """
    if code in divisions():
        return "foreign" if code[:2] in _OUTSIDE_MAINLAND_PROVINCES else "domestic"
    if code in countries():
        return "domestic" if code == "CN" else "foreign"
    return None


def is_domestic_jurisdiction(code: str) -> bool:
    return jurisdiction_scope(code) == "domestic"


def is_foreign_jurisdiction(code: str) -> bool:
    return jurisdiction_scope(code) == "foreign"
