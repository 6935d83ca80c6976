"""Hole 2, CSV injection: a buyer plants a spreadsheet formula as a rejected order's scenario (rejected orders
are kept for the auditors) and an administrator opens the trade export. Every formula-leading cell is made
inert in the CSV; the JSON formats stay exact."""

from __future__ import annotations

import csv
import io
import json

import pytest

from marketplace.api.orders import spreadsheet_safe
from tests.orders.conftest import Market

TRADES = "/api/v1/admin/trades"
EXPORT = "/api/v1/admin/trades/export"
PLANTED = ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(1,1)"]


async def test_a_planted_formula_is_inert_in_the_csv_export_and_exact_in_json(market: Market) -> None:
    for scenario in PLANTED:
        rejected = await market.place(scenario=scenario)
        assert rejected.status_code == 422, rejected.text  # not a permitted scenario: rejected, and kept
    response = await market.api.client.get(EXPORT, params={"format": "csv"}, headers=market.admin.headers)
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert sorted(row["scenario"] for row in rows) == sorted(f"'{planted}" for planted in PLANTED)
    assert all(int(row["amount_minor"]) >= 0 for row in rows)  # numbers are written as they are

    lines = await market.api.client.get(EXPORT, params={"format": "jsonl"}, headers=market.admin.headers)
    exact = sorted(json.loads(line)["scenario"] for line in lines.text.splitlines())
    assert exact == sorted(PLANTED)
    page = await market.api.client.get(TRADES, headers=market.admin.headers)
    assert sorted(item["scenario"] for item in page.json()["items"]) == sorted(PLANTED)


@pytest.mark.parametrize("lead", ["=", "+", "-", "@", "\t", "\r"])
def test_every_formula_lead_is_neutralised(lead: str) -> None:
    assert spreadsheet_safe(f"{lead}cmd") == f"'{lead}cmd"


@pytest.mark.parametrize("cell", ["traffic_planning", "", 5, -5, None, "a=b"])
def test_other_cells_are_left_as_they_are(cell: object) -> None:
    assert spreadsheet_safe(cell) == cell
