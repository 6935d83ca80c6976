"""HTTP endpoints of the trade path: preview, orders and their transitions, administrators' decisions."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.openapi.spec import (
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Schema,
)
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Stream

from marketplace.accounts.models import Scope
from marketplace.accounts.principal import Principal
from marketplace.compliance.contract import Decision
from marketplace.compliance.schemas import VerdictBrief, VerdictRead
from marketplace.errors import Unprocessable
from marketplace.flows.disputes import Disputes
from marketplace.flows.payment import Payment
from marketplace.flows.refunds import Refunds
from marketplace.flows.trading import Trading
from marketplace.kit import clock
from marketplace.kit.i18n import Message
from marketplace.orders.models import Order, OrderStatus
from marketplace.orders.schemas import (
    AdminRefundRequest,
    CancelRequest,
    DisputeRequest,
    DisputeResolution,
    OrderDecision,
    OrderDetail,
    OrderEventRead,
    OrderPage,
    OrderPaid,
    OrderPlaced,
    OrderRead,
    OrderRefunded,
    PaymentRead,
    PaymentRequest,
    TradePage,
    TradeRead,
    TradeRequest,
)
from marketplace.orders.service import OrderService, Placement
from marketplace.orders.trades import TradeFilters
from marketplace.orders.transitions import OrderTransitions
from marketplace.web.dependencies import AUTOCOMMIT
from marketplace.web.idempotency import StoredAnswer, idempotent
from marketplace.web.language import RequestLanguage
from marketplace.web.pagination import PAGED, Paging
from marketplace.web.principal import ADMIN_ONLY, AUTHENTICATED, Access, Caller
from marketplace.web.problems import problem_of, problem_responses
from marketplace.web.query import Moment, parse_moment
from marketplace.wiring import Runtime

Orders = NamedDependency[OrderService]
Transitions = NamedDependency[OrderTransitions]
Trade = NamedDependency[Trading]


class TradeRejected(Unprocessable):
    code = "trade-rejected"
    title = "Trade rejected by the rulebook"


def order_read(order: Order) -> OrderRead:
    return OrderRead.model_validate(order)


class OrderController(Controller):
    path = "/api/v1/orders"
    tags = ["orders"]
    dependencies = {**AUTHENTICATED, **PAGED}

    @post(
        "/",
        status_code=201,
        responses=problem_responses(401, 403, 404, 409, 422),
        opt={"scope": Scope.ORDERS_WRITE, AUTOCOMMIT: True},  # its one write: the placement statement
    )
    @idempotent(with_work=True)
    async def place(
        self,
        request: Request[Any, Any, State],
        data: JSONBody[TradeRequest],
        principal: Caller,
        trading: Trade,
        language: RequestLanguage,
        stored_answer: StoredAnswer | None,
    ) -> Response[OrderPlaced]:
        """Place an order: the trade stage judges it first. Accepted: the licence is reserved and the amount
        fixed (201). Held for review: `pending_review` (201). Either answer carries the verdict's decision,
        rulebook fingerprint and the findings that failed or held it for review; the whole verdict is at
        `GET /api/v1/orders/{id}`. Rejected: 422 with the findings; the rejected attempt is kept for the
        auditors, and nothing is reserved."""

        def answer(placed: Placement) -> Response[OrderPlaced]:
            if placed.order.status == OrderStatus.REJECTED:
                checks = "; ".join(f.check for f in placed.verdict.failures())
                rejected = TradeRejected(
                    Message("orders.trade-rejected", "the trade stage rejected this order: {checks}", checks=checks),
                    order_id=str(placed.order.id),
                    findings=[f.as_json() for f in placed.verdict.findings],
                    rulebook_fingerprint=placed.verdict.rulebook_fingerprint,
                )
                return problem_of(rejected, request)  # type: ignore[return-value]  # answered, not raised: the attempt is kept
            verdict = VerdictBrief.of(placed.verdict, placed.verdict_id, language)
            return Response(OrderPlaced(**dict(placed.order), verdict=verdict), status_code=201)

        if stored_answer is None:
            return answer(await trading.place(principal, data))
        # the answer is stored under the key by the statement that places the order
        await trading.place(principal, data, also=lambda placed: stored_answer.row(answer(placed), 201))
        return stored_answer.response()

    @get("/", responses=problem_responses(401, 403), opt={"scope": Scope.ORDERS_READ})
    async def list_orders(
        self,
        principal: Caller,
        orders: Orders,
        page: Paging,
        status: Annotated[OrderStatus | None, QueryParameter()] = None,
    ) -> OrderPage:
        """Orders your organisations buy or provide, newest first."""
        items, total = await orders.list(principal, status=status, limit=page.limit, offset=page.offset)
        return OrderPage(items=[order_read(o) for o in items], total=total, limit=page.limit, offset=page.offset)

    @get("/{order_id:uuid}", responses=problem_responses(401, 403, 404), opt={"scope": Scope.ORDERS_READ})
    async def show(
        self, order_id: FromPath[uuid.UUID], principal: Caller, orders: Orders, language: RequestLanguage
    ) -> OrderDetail:
        """An order with its trade verdict and its status history."""
        view = await orders.view(principal, order_id)
        return OrderDetail(
            **order_read(view.order).model_dump(),
            verdict=VerdictRead.of_stored(view.verdict, language),
            history=[OrderEventRead.model_validate(e) for e in view.history],
        )

    @post(
        "/{order_id:uuid}/pay",
        status_code=200,
        responses=problem_responses(401, 403, 404, 409, 422, 502),
        opt={"scope": Scope.ORDERS_WRITE},
    )
    @idempotent
    async def pay(
        self,
        order_id: FromPath[uuid.UUID],
        principal: Caller,
        payment: NamedDependency[Payment],
        data: JSONBody[PaymentRequest | None] = None,
    ) -> OrderPaid:
        """Pay an accepted order (the buyer). With the local gateway the money is in escrow at once; with
        Stripe the order is paid when the PaymentIntent succeeds (its webhook)."""
        order, state = await payment.pay(principal, order_id, data.payment_method if data else None)
        paid = PaymentRead(
            gateway=order.payment_gateway or "",
            reference=state.reference,
            status=state.status,
            client_secret=state.client_secret,
        )
        return OrderPaid(id=order.id, status=order.status, payment=paid)

    @post(
        "/{order_id:uuid}/confirm",
        status_code=200,
        responses=problem_responses(401, 403, 404, 409),
        opt={"scope": Scope.ORDERS_WRITE},
    )
    async def confirm(self, order_id: FromPath[uuid.UUID], principal: Caller, transitions: Transitions) -> OrderRead:
        """The buyer accepts the delivery; the order completes and is settled in the next run."""
        return order_read(await transitions.confirm(principal, order_id))

    @post(
        "/{order_id:uuid}/dispute",
        status_code=200,
        responses=problem_responses(401, 403, 404, 409),
        opt={"scope": Scope.ORDERS_WRITE},
    )
    async def dispute(
        self,
        order_id: FromPath[uuid.UUID],
        data: JSONBody[DisputeRequest],
        principal: Caller,
        transitions: Transitions,
    ) -> OrderRead:
        """The buyer disputes a paid or delivered order; its settlement is frozen until an administrator
        resolves it."""
        return order_read(await transitions.dispute(principal, order_id, data.reason))

    @post(
        "/{order_id:uuid}/cancel",
        status_code=200,
        responses=problem_responses(401, 403, 404, 409),
        opt={"scope": Scope.ORDERS_WRITE},
    )
    async def cancel(
        self,
        order_id: FromPath[uuid.UUID],
        principal: Caller,
        trading: Trade,
        data: JSONBody[CancelRequest | None] = None,
    ) -> OrderRead:
        """The buyer cancels an order not yet paid; its licences are released."""
        return order_read(await trading.cancel(principal, order_id, data.reason if data else None))


class AdminOrderController(Controller):
    path = "/api/v1/admin/orders"
    tags = ["administration"]
    dependencies = ADMIN_ONLY

    @post(
        "/{order_id:uuid}/decision",
        status_code=200,
        responses=problem_responses(401, 403, 404, 409),
        opt={"scope": Access.ADMIN},
    )
    async def decide(
        self, order_id: FromPath[uuid.UUID], data: JSONBody[OrderDecision], admin: Caller, trading: Trade
    ) -> OrderRead:
        """Approve (the licence is reserved) or reject a trade the gate held for review."""
        return order_read(await trading.decide(admin, order_id, data.decision, data.reason))

    @post(
        "/{order_id:uuid}/resolve-dispute",
        status_code=200,
        responses=problem_responses(401, 403, 404, 409, 422, 502),
        opt={"scope": Access.ADMIN},
    )
    @idempotent
    async def resolve_dispute(
        self,
        order_id: FromPath[uuid.UUID],
        data: JSONBody[DisputeResolution],
        admin: Caller,
        disputes: NamedDependency[Disputes],
    ) -> OrderRead:
        """Refund the buyer (escrow back through the gateway, licence released) or release the order to
        settlement."""
        return order_read(await disputes.resolve_dispute(admin, order_id, data.outcome, data.reason))

    @post(
        "/{order_id:uuid}/refund",
        status_code=200,
        responses=problem_responses(401, 403, 404, 409, 422, 502),
        opt={"scope": Access.ADMIN},
    )
    @idempotent
    async def refund(
        self,
        order_id: FromPath[uuid.UUID],
        data: JSONBody[AdminRefundRequest],
        admin: Caller,
        refunds: NamedDependency[Refunds],
    ) -> OrderRefunded:
        """Refund a completed, settled or paid-out order in full through the gateway; its licences are
        released. The money comes back from escrow (completed), by reversing its settlement (settled), or
        from the provider as a debt its next payout repays first (paid out); `refund_path` says which."""
        order, path = await refunds.refund_after_settlement(admin, order_id, data.reason)
        return OrderRefunded(
            **order_read(order).model_dump(), refund_path=path, refund_reference=order.refund_reference
        )


# administrators' trade queries

# Trades read per query of an export, each query in its own short transaction: a slow download holds no
# connection and no transaction open between batches.
EXPORT_BATCH = 500
# Litestar adds the charset of text types itself (UTF-8).
EXPORT_MEDIA_TYPES = {"csv": "text/csv", "jsonl": "application/x-ndjson"}
TRADE_FIELDS = tuple(TradeRead.model_fields)
RuleId = Annotated[
    str | None,
    QueryParameter(
        min_length=1,
        max_length=40,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="a rule id (e.g. R3): trades whose verdict failed it or was held for review on it",
    ),
]
OrganizationId = Annotated[uuid.UUID | None, QueryParameter(description="an organisation id")]
ExportFormat = Annotated[
    Literal["csv", "jsonl"],
    QueryParameter(name="format", description="csv (a header row, flagged rules separated by spaces) or jsonl"),
]


def trade_filters(
    status: Annotated[OrderStatus | None, QueryParameter(description="the order's status")] = None,
    outcome: Annotated[Decision | None, QueryParameter(description="the trade stage's decision")] = None,
    rule_id: RuleId = None,
    provider: OrganizationId = None,
    buyer: OrganizationId = None,
    product: Annotated[uuid.UUID | None, QueryParameter(description="a product id")] = None,
    since: Moment = None,
    until: Moment = None,
) -> TradeFilters:
    """The administrators' trade query, the same for a page and for the export (placed in [since, until))."""
    return TradeFilters(
        status=status,
        decision=outcome,
        rule_id=rule_id,
        provider_id=provider,
        buyer_id=buyer,
        product_id=product,
        since=parse_moment("since", since),
        until=parse_moment("until", until),
    )


@dataclass
class TradesExportOperation(Operation):
    """The export answers a file, CSV or JSON lines by `format`: declared here so a generated client keeps
    the bytes instead of parsing them as JSON."""

    def __post_init__(self) -> None:
        text = Schema(type=OpenAPIType.STRING)
        self.responses = {
            **(self.responses or {}),
            "200": OpenAPIResponse(
                description="every matching trade, in id order, as a download",
                content={media_type: OpenAPIMediaType(schema=text) for media_type in EXPORT_MEDIA_TYPES.values()},
                headers={
                    "Content-Disposition": OpenAPIHeader(
                        schema=Schema(type=OpenAPIType.STRING), description="`attachment` with a file name"
                    )
                },
            ),
        }


def _export_row(row: dict[str, Any]) -> dict[str, Any]:
    return TradeRead.model_validate(row).model_dump(mode="json")


# A spreadsheet reads a cell starting with one of these as a formula (OWASP, CSV injection).
FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula, made inert by a leading apostrophe (what a buyer
    typed as a scenario, say); numbers and other cells are written as they are."""
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_LEADS) else value


def _csv_chunk(rows: Sequence[Sequence[Any]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows([[spreadsheet_safe(cell) for cell in row] for row in rows])
    return buffer.getvalue().encode()


def _encode(rows: Sequence[dict[str, Any]], export_format: str) -> bytes:
    exported = [_export_row(row) for row in rows]
    if export_format == "jsonl":
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in exported).encode()
    # one CSV cell per field; the flagged rule ids (letters, digits and ._-) separated by spaces
    return _csv_chunk(
        [[" ".join(v) if isinstance(v, list) else v for v in (row[f] for f in TRADE_FIELDS)] for row in exported]
    )


async def export_trades(
    runtime: Runtime, admin: Principal, filters: TradeFilters, export_format: str
) -> AsyncIterator[bytes]:
    """Every matching trade, in id order, a batch per query (keyset over the primary key)."""
    if export_format == "csv":
        yield _csv_chunk([TRADE_FIELDS])
    after: uuid.UUID | None = None
    while True:
        async with runtime.transaction() as services:
            batch = await services.orders.trades_after(admin, filters, after, EXPORT_BATCH)
        if batch:
            yield _encode(batch, export_format)
        if len(batch) < EXPORT_BATCH:
            return
        after = batch[-1]["id"]


class AdminTradesController(Controller):
    path = "/api/v1/admin/trades"
    tags = ["audit"]
    dependencies = {**ADMIN_ONLY, "filters": Provide(trade_filters, sync_to_thread=False)}

    @get("/", dependencies=PAGED, responses=problem_responses(401, 403), opt={"scope": Access.ADMIN})
    async def trades(
        self, admin: Caller, orders: Orders, page: Paging, filters: NamedDependency[TradeFilters]
    ) -> TradePage:
        """One page of trades, newest first, by status, trade-stage outcome, flagged rule, party, product and
        period (placed in [since, until)); `GET /api/v1/admin/trades/export` downloads every match."""
        items, total = await orders.trades(admin, filters, limit=page.limit, offset=page.offset)
        return TradePage(
            items=[TradeRead.model_validate(i) for i in items], total=total, limit=page.limit, offset=page.offset
        )

    @get(
        "/export",
        operation_class=TradesExportOperation,
        responses=problem_responses(401, 403),
        opt={"scope": Access.ADMIN},
    )
    async def export(
        self,
        admin: Caller,
        runtime: NamedDependency[Runtime],
        filters: NamedDependency[TradeFilters],
        export_format: ExportFormat = "csv",
    ) -> Stream:
        """Every trade matching the same query as the list, streamed as a download in a fixed column order:
        CSV (flagged rules separated by spaces; cells a spreadsheet would run as formulas made inert) or JSON
        lines. Each batch is read in its own short transaction, so a slow download holds nothing open."""
        name = f"trades-{clock.now():%Y%m%dT%H%M%SZ}.{export_format}"
        return Stream(
            export_trades(runtime, admin, filters, export_format),
            media_type=EXPORT_MEDIA_TYPES[export_format],
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
