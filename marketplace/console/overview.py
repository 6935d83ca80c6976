"""The overview: trades and amounts per day, verdicts per stage and decision, the checks that fail most, the
queues, the audit log's signed tree size, whether the ledger's debits equal its credits and the worker's backlog, on one
page; each an aggregate query answered from an index or a small table."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from litestar import Controller, Request, get
from litestar.response import Template
from sqlalchemy import RowMapping

from marketplace.compliance.contract import Decision, Stage
from marketplace.console.pages import PREFIX, SIGNED_IN, Admin, PageLanguage, Queries, page
from marketplace.console.queries import CHART_DAYS, chart_start
from marketplace.kit import clock
from marketplace.kit.codelists import currency_minor_units
from marketplace.web.principal import Access


def trade_series(rows: Sequence[RowMapping], days: list[str]) -> dict[str, Any]:
    """Trades per day (all currencies) and the amount per day of each currency (minor units, and its decimal
    places for the chart), every day of the period."""
    trades = dict.fromkeys(days, 0)
    amounts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(days, 0))
    for row in rows:
        day = str(row["day"])[:10]
        trades[day] = trades.get(day, 0) + int(row["trades"])
        amounts[row["currency"]][day] = int(row["amount_minor"] or 0)
    return {
        "days": days,
        "trades": [trades[d] for d in days],
        "amounts": {currency: [by_day[d] for d in days] for currency, by_day in sorted(amounts.items())},
        "places": {currency: currency_minor_units(currency) or 0 for currency in amounts},
    }


def posted_imbalance(balances: Sequence[RowMapping]) -> int:
    """Per currency |debits - credits| over every account's running totals, summed: 0 when the books balance.
    The cheap half of the ledger check (one aggregate over the accounts); the ledger page runs the whole of it."""
    debits: dict[str, int] = defaultdict(int)
    for row in balances:
        debits[row["currency"]] += int(row["debits_minor"] or 0) - int(row["credits_minor"] or 0)
    return sum(abs(difference) for difference in debits.values())


def verdict_series(rows: Sequence[RowMapping]) -> dict[str, Any]:
    """Verdicts per stage (in the trade path's order), one stacked series per decision."""
    counts = {(Stage(r["stage"]), Decision(r["decision"])): int(r["verdicts"]) for r in rows}
    stages = [stage.value for stage in Stage]
    return {
        "stages": stages,
        "decisions": {d.value: [counts.get((Stage(s), d), 0) for s in stages] for d in Decision},
    }


class OverviewController(Controller):
    path = PREFIX
    include_in_schema = False
    dependencies = SIGNED_IN

    @get("/", opt={"scope": Access.ADMIN})
    async def overview(
        self,
        request: Request[Any, Any, Any],
        admin: Admin,
        page_language: PageLanguage,
        queries: Queries,
    ) -> Template:
        now = clock.now()
        since = chart_start(now)
        days = [str((since + timedelta(days=n)).date()) for n in range(CHART_DAYS)]
        trades = trade_series(await queries.trades_per_day(since), days)
        verdicts = verdict_series(await queries.verdicts_by_stage(since))
        failing = [dict(r) for r in await queries.failing_checks(since)]
        charts = {"trades": trades, "verdicts": verdicts, "failing": failing}
        return page(
            request,
            "overview.html",
            page_language,
            charts=charts,
            queues=await queries.queue_sizes(),
            backlog=await queries.backlog(now),
            audit_head=await queries.audit_head(),
            ledger_imbalance=posted_imbalance(await queries.balances()),
        )
