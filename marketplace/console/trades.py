"""Trades: the administrators' trade query (status, rule, outcome, parties, product, dates) a page at a time and
as the API's CSV export; a trade's page with its verdict, history, ledger movements, licence, delivery receipts
and audit entries; and the decisions on a held or disputed trade."""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.exceptions import ValidationException
from litestar.params import Body, FromPath, QueryParameter
from litestar.response import Redirect, Stream, Template

from marketplace.api.orders import EXPORT_MEDIA_TYPES, export_trades, trade_filters
from marketplace.audit.service import AuditService
from marketplace.compliance.contract import Decision
from marketplace.compliance.rulebook import Rulebook
from marketplace.compliance.service import ComplianceService
from marketplace.console.pages import PREFIX, SIGNED_IN, Admin, PageLanguage, Queries, form_of, page
from marketplace.console.verdicts import pretty, shown_verdict
from marketplace.flows.disputes import Disputes
from marketplace.flows.trading import Trading
from marketplace.kit import clock
from marketplace.orders.models import OrderStatus
from marketplace.orders.schemas import DisputeResolution, OrderDecision
from marketplace.orders.service import OrderService
from marketplace.orders.trades import TradeFilters
from marketplace.web.principal import Access
from marketplace.wiring import Runtime

Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]
# A filter as a form sends it: empty when unset.
Field = Annotated[str, QueryParameter(max_length=80)]
TRADES_PAGE = 50
# Audit entries a trade's page shows, newest first.
AUDIT_SHOWN = 100
# As the API's `rule_id` query parameter.
RULE_ID = re.compile(r"[A-Za-z0-9_.-]{1,40}")
FILTER_NAMES = ("status", "outcome", "rule_id", "buyer", "provider", "product", "since", "until")


def _uuid(name: str, value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        raise ValidationException(detail=f"{name} is not an id") from None


def _day(name: str, value: str, *, after: bool = False) -> str | None:
    """A form's day (YYYY-MM-DD) as the moment it starts (`after`: the moment it ends), UTC, in the API's query
    form."""
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise ValidationException(detail=f"{name} is not a day (YYYY-MM-DD)") from None
    return f"{(day + timedelta(days=1) if after else day).isoformat()}T00:00:00Z"


def console_filters(
    status: Field = "",
    outcome: Field = "",
    rule_id: Field = "",
    buyer: Field = "",
    provider: Field = "",
    product: Field = "",
    since: Field = "",
    until: Field = "",
) -> TradeFilters:
    """The filter form's fields, empty meaning any, read as the API's trade query (`trade_filters`); `until`
    is the last day included."""
    try:
        status_value = OrderStatus(status) if status else None
        outcome_value = Decision(outcome) if outcome else None
    except ValueError:
        raise ValidationException(detail="unknown status or outcome") from None
    rule_id = rule_id.strip()
    if rule_id and not RULE_ID.fullmatch(rule_id):
        raise ValidationException(detail="rule_id is not a rule id")
    return trade_filters(
        status=status_value,
        outcome=outcome_value,
        rule_id=rule_id or None,
        provider=_uuid("provider", provider),
        buyer=_uuid("buyer", buyer),
        product=_uuid("product", product),
        since=_day("since", since),
        until=_day("until", until, after=True),
    )


class TradesController(Controller):
    path = PREFIX
    include_in_schema = False
    dependencies = {**SIGNED_IN, "filters": Provide(console_filters, sync_to_thread=False)}

    @get("/trades", opt={"scope": Access.ADMIN})
    async def trades(
        self,
        request: Request[Any, Any, Any],
        admin: Admin,
        page_language: PageLanguage,
        orders: NamedDependency[OrderService],
        filters: NamedDependency[TradeFilters],
        offset: Annotated[int, QueryParameter(ge=0, le=10_000_000)] = 0,
    ) -> Template:
        """Without scripts the filter form loads the page anew; with htmx a change swaps the table in place and
        the address bar keeps the query (`HX-Push-Url`), so a filtered list can be bookmarked and shared."""
        rows, total = await orders.trades(admin, filters, limit=TRADES_PAGE, offset=offset)
        chosen = {name: request.query_params.get(name, "") for name in FILTER_NAMES}
        query = "&".join(f"{name}={value}" for name, value in chosen.items() if value)
        address = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        pushed = {"HX-Push-Url": address} if request.headers.get("hx-request") == "true" else None
        return page(
            request,
            "trades.html",
            page_language,
            headers=pushed,
            rows=rows,
            total=total,
            offset=offset,
            page_size=TRADES_PAGE,
            chosen=chosen,
            filter_query=query,
            statuses=[s.value for s in OrderStatus],
            outcomes=[d.value for d in Decision],
        )

    @get("/trades/export", opt={"scope": Access.ADMIN})
    async def export(
        self, admin: Admin, runtime: NamedDependency[Runtime], filters: NamedDependency[TradeFilters]
    ) -> Stream:
        """The API's CSV export of the same query."""
        name = f"trades-{clock.now():%Y%m%dT%H%M%SZ}.csv"
        return Stream(
            export_trades(runtime, admin, filters, "csv"),
            media_type=EXPORT_MEDIA_TYPES["csv"],
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    @get("/trades/{order_id:uuid}", opt={"scope": Access.ADMIN})
    async def trade(
        self,
        request: Request[Any, Any, Any],
        order_id: FromPath[uuid.UUID],
        admin: Admin,
        page_language: PageLanguage,
        queries: Queries,
        orders: NamedDependency[OrderService],
        compliance: NamedDependency[ComplianceService],
        rulebook: NamedDependency[Rulebook],
        audit: NamedDependency[AuditService],
    ) -> Template:
        view = await orders.view(admin, order_id)
        entries, _ = await audit.search(object_type="order", object_id=str(order_id), limit=AUDIT_SHOWN, offset=0)
        status = view.order.status
        return page(
            request,
            "trade.html",
            page_language,
            order=view.order,
            verdict=await shown_verdict(compliance, rulebook, view.verdict, page_language),
            history=view.history,
            movements=await queries.movements(order_id),
            licence=await queries.licence_of_order(order_id),
            receipts=await queries.receipts(order_id),
            entries=[(entry, pretty(entry.payload)) for entry in entries],
            decision_url=f"{request.url.path}/decision" if status == OrderStatus.PENDING_REVIEW else None,
            resolution_url=f"{request.url.path}/resolution" if status == OrderStatus.DISPUTED else None,
        )

    @post("/trades/{order_id:uuid}/decision", opt={"scope": Access.ADMIN})
    async def decide(
        self, order_id: FromPath[uuid.UUID], data: Form, admin: Admin, trading: NamedDependency[Trading]
    ) -> Redirect:
        form = form_of(OrderDecision, data)
        await trading.decide(admin, order_id, form.decision, form.reason)
        return Redirect(f"{PREFIX}/trades/{order_id}", status_code=303)

    @post("/trades/{order_id:uuid}/resolution", opt={"scope": Access.ADMIN})
    async def resolve(
        self, order_id: FromPath[uuid.UUID], data: Form, admin: Admin, disputes: NamedDependency[Disputes]
    ) -> Redirect:
        form = form_of(DisputeResolution, data)
        await disputes.resolve_dispute(admin, order_id, form.outcome, form.reason)
        return Redirect(f"{PREFIX}/trades/{order_id}", status_code=303)
