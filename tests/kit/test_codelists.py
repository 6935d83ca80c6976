"""Tests for marketplace.kit.codelists and the shipped CSV data (S7, S8)."""

from __future__ import annotations

import csv
import io
from collections import Counter
from importlib import resources

import pytest

from marketplace.kit import codelists
from marketplace.kit.codelists import (
    country_name,
    currency_minor_units,
    division_level,
    division_name,
    industry_level,
    industry_name,
    is_country_code,
    is_currency,
    is_division_code,
    is_domestic_jurisdiction,
    is_foreign_jurisdiction,
    is_industry_code,
    jurisdiction_scope,
    normalize_industry_code,
)


def read_csv(name: str) -> list[dict[str, str]]:
    text = resources.files("marketplace.kit.data").joinpath(name).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text, newline="")))


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("gbt4754_2017.csv", ["code", "level", "name_zh"]),
        ("gbt2260.csv", ["code", "name_zh", "level"]),
        ("iso3166.csv", ["alpha2", "alpha3", "numeric", "name_en"]),
        ("iso4217.csv", ["code", "numeric", "minor_units", "name"]),
    ],
)
def test_data_files_have_expected_header_and_unique_codes(name: str, header: list[str]) -> None:
    rows = read_csv(name)
    assert rows
    assert list(rows[0]) == header
    keys = [row[header[0]] for row in rows]
    assert len(keys) == len(set(keys))
    for row in rows:
        assert all(value == value.strip() for value in row.values())


# --- GB/T 4754-2017 -------------------------------------------------------------------------


def test_industry_structure_counts() -> None:
    # GB/T 4754-2017: 20 sections, 97 divisions, 473 groups, 1381 classes.
    counts = Counter(entry.level for entry in codelists.industries().values())
    assert counts == {"section": 20, "division": 97, "group": 473, "class": 1381}


def test_industry_hierarchy_is_consistent() -> None:
    table = codelists.industries()
    sections = [code for code, entry in table.items() if entry.level == "section"]
    assert sections == list("ABCDEFGHIJKLMNOPQRST")
    for code, entry in table.items():
        if entry.level == "section":
            assert entry.section == code
        elif entry.level == "division":
            assert len(code) == 2
            assert code.isdigit()
        elif entry.level == "group":
            assert table[code[:2]].section == entry.section
        else:
            assert table[code[:3]].level == "group"
            assert table[code[:3]].section == entry.section
    # Every group has at least one class.
    groups = {code for code, entry in table.items() if entry.level == "group"}
    assert groups == {code[:3] for code, entry in table.items() if entry.level == "class"}


@pytest.mark.parametrize(
    ("code", "name", "level"),
    [
        ("A", "农、林、牧、渔业", "section"),
        ("I", "信息传输、软件和信息技术服务业", "section"),
        ("01", "农业", "division"),
        ("65", "软件和信息技术服务业", "division"),
        ("655", "信息处理和存储支持服务", "group"),
        ("0111", "稻谷种植", "class"),
        ("6550", "信息处理和存储支持服务", "class"),
        ("6513", "应用软件开发", "class"),
        ("3741", "飞机制造", "class"),
        ("7517", "三维（3D）打印技术推广服务", "class"),
        ("9700", "国际组织", "class"),
    ],
)
def test_known_industry_codes(code: str, name: str, level: str) -> None:
    assert is_industry_code(code)
    assert industry_name(code) == name
    assert industry_level(code) == level


@pytest.mark.parametrize("code", ["", "U", "a", "00", "98", "0110", "6530", "65500", "I6550", " 6550"])
def test_unknown_industry_codes(code: str) -> None:
    assert not is_industry_code(code)
    assert industry_name(code) is None
    assert industry_level(code) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("6550", "6550"), (" i6550 ", "6550"), ("I65", "65"), ("A0111", "0111"), ("C6550", None), ("X", None)],
)
def test_normalize_industry_code(raw: str, expected: str | None) -> None:
    assert normalize_industry_code(raw) == expected


# --- GB/T 2260 -----------------------------------------------------------------------------


def test_every_province_level_division_is_present() -> None:
    provinces = {code for code, entry in codelists.divisions().items() if entry.level == "province"}
    assert len(provinces) == 34
    assert {"110000", "520000", "650000", "710000", "810000", "820000"} <= provinces
    assert division_name("520000") == "贵州省"
    assert division_name("810000") == "香港特别行政区"


def test_division_levels_follow_code_shape() -> None:
    counts: Counter[str] = Counter()
    table = codelists.divisions()
    for code, entry in table.items():
        assert len(code) == 6
        assert code.isdigit()
        expected = "province" if code.endswith("0000") else "prefecture" if code.endswith("00") else "county"
        assert entry.level == expected
        counts[entry.level] += 1
        assert code[:2] + "0000" in table  # every division sits under a known province
    assert counts["prefecture"] == 333


def test_guizhou_is_complete() -> None:
    table = codelists.divisions()
    guizhou = {code: entry for code, entry in table.items() if code.startswith("52")}
    prefectures = sorted(code for code, entry in guizhou.items() if entry.level == "prefecture")
    assert prefectures == [
        "520100",
        "520200",
        "520300",
        "520400",
        "520500",
        "520600",
        "522300",
        "522600",
        "522700",
    ]
    counties = [code for code, entry in guizhou.items() if entry.level == "county"]
    assert len(counties) == 88
    for code in counties:
        assert code[:4] + "00" in guizhou


@pytest.mark.parametrize(
    ("code", "name", "level"),
    [
        ("520100", "贵阳市", "prefecture"),
        ("520115", "观山湖区", "county"),
        ("520204", "水城区", "county"),
        ("520581", "黔西市", "county"),
        ("522301", "兴义市", "county"),
        ("522732", "三都水族自治县", "county"),
        ("110105", "朝阳区", "county"),
    ],
)
def test_known_divisions(code: str, name: str, level: str) -> None:
    assert is_division_code(code)
    assert division_name(code) == name
    assert division_level(code) == level


@pytest.mark.parametrize("code", ["", "52", "5201", "520199", "529900", "990000", "52010", "5201000"])
def test_unknown_divisions_are_rejected(code: str) -> None:
    # Exact list membership only: a known prefix does not make a code valid.
    assert not is_division_code(code)
    assert division_name(code) is None
    assert division_level(code) is None


# --- ISO 3166-1 / ISO 4217 ----------------------------------------------------------------


def test_country_list_is_complete() -> None:
    table = codelists.countries()
    assert len(table) == 249
    for code, entry in table.items():
        assert len(code) == 2
        assert code.isupper()
        assert len(entry.alpha3) == 3
        assert len(entry.numeric) == 3
        assert entry.numeric.isdigit()
    assert table["CN"].alpha3 == "CHN"
    assert table["CN"].numeric == "156"
    assert country_name("GB") == "United Kingdom"


@pytest.mark.parametrize("code", ["CN", "US", "HK", "MO", "TW", "AQ"])
def test_known_countries(code: str) -> None:
    assert is_country_code(code)


@pytest.mark.parametrize("code", ["", "cn", "CHN", "UK", "XK", "ZZ"])
def test_unknown_countries(code: str) -> None:
    assert not is_country_code(code)
    assert country_name(code) is None


@pytest.mark.parametrize(
    ("code", "units"),
    [("CNY", 2), ("JPY", 0), ("BHD", 3), ("KWD", 3), ("USD", 2), ("EUR", 2), ("CLF", 4), ("XAU", None)],
)
def test_currency_minor_units(code: str, units: int | None) -> None:
    assert is_currency(code)
    assert currency_minor_units(code) == units


@pytest.mark.parametrize("code", ["", "cny", "RMB", "CNH", "XYZ"])
def test_unknown_currencies(code: str) -> None:
    assert not is_currency(code)
    assert currency_minor_units(code) is None


def test_currency_numeric_codes_are_three_digits() -> None:
    for entry in codelists.currencies().values():
        assert len(entry.numeric) == 3
        assert entry.numeric.isdigit()


# --- Jurisdiction ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "scope"),
    [
        ("520000", "domestic"),
        ("520115", "domestic"),
        ("110000", "domestic"),
        ("CN", "domestic"),
        ("US", "foreign"),
        ("SG", "foreign"),
        # Outside the mainland for outbound data transfer purposes.
        ("HK", "foreign"),
        ("MO", "foreign"),
        ("TW", "foreign"),
        ("810000", "foreign"),
        ("820000", "foreign"),
        ("710000", "foreign"),
        ("", None),
        ("cn", None),
        ("520199", None),
        ("ZZ", None),
    ],
)
def test_jurisdiction_scope(code: str, scope: str | None) -> None:
    assert jurisdiction_scope(code) == scope
    assert is_domestic_jurisdiction(code) is (scope == "domestic")
    assert is_foreign_jurisdiction(code) is (scope == "foreign")


def test_tables_are_loaded_once_and_read_only() -> None:
    assert codelists.industries() is codelists.industries()
    assert codelists.divisions() is codelists.divisions()
    table = codelists.countries()
    with pytest.raises(TypeError):
        table["XX"] = table["CN"]  # type: ignore[index]
