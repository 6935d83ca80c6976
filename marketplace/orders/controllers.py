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
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIHeader, OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter
from litestar.response import Stream

from marketplace.accounts.guards import ADMIN_ONLY, AUTHENTICATED, SECURITY, Caller
from marketplace.accounts.principal import Principal
from marketplace.audit.controllers import Moment, parse_moment
from marketplace.compliance.contract import Decision
from marketplace.compliance.guards import CurrentRulebook
from marketplace.compliance.schemas import VerdictRead
from marketplace.db import DbSession, SessionMaker
from marketplace.errors import PROBLEM_TYPE_PREFIX, problem_responses
from marketplace.kit import clock
from marketplace.kit.pagination import PAGED, Paging
from marketplace.orders.idempotency import IDEMPOTENCY_HEADER, request_fingerprint, run_idempotently
from marketplace.orders.models import Order, OrderStatus
from marketplace.orders.repository import TradeFilters
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
    PreviewRead,
    TradePage,
    TradeRead,
    TradeRequest,
)
from marketplace.orders.service import OrderService
from marketplace.payments.gateways import app_gateway

IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name=IDEMPOTENCY_HEADER,
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="replaying the same key with the same request returns the first response",
    ),
]


def provide_orders(request: Request[Any, Any, State], db_session: DbSession, rulebook: CurrentRulebook) -> OrderService:
    state = request.app.state
    return OrderService(db_session, state.settings, rulebook, app_gateway(state))


Orders = NamedDependency[OrderService]
ORDERS = {"orders": Provide(provide_orders, sync_to_thread=False)}


def order_read(order: Order) -> OrderRead:
    return OrderRead.model_validate(order)


async def _idempotent(
    request: Request[Any, Any, State],
    principal: Caller,
    db_session: DbSession,
    key: str | None,
    body: Any,
    action: Any,
) -> Response[Any]:
    return await run_idempotently(
        db_session,
        actor=principal.actor,
        key=key,
        fingerprint=request_fingerprint(request.method, request.url.path, body),
        lock_seconds=request.app.state.settings.idempotency_lock_seconds,
        action=action,
    )


class TradePreviewController(Controller):
    path = "/api/v1/compliance"
    tags = ["compliance"]
    dependencies = {**AUTHENTICATED, **ORDERS}
    security = SECURITY

    @post("/preview", status_code=200, responses=problem_responses(401, 403, 404, 422))
    async def preview(self, data: JSONBody[TradeRequest], principal: Caller, orders: Orders) -> PreviewRead:
        """The verdict the trade stage would give this order now, exactly as placing it would; writes nothing."""
        trade, verdict = await orders.preview(principal, data)
        return PreviewRead(
            decision=verdict.decision,
            findings=[f.as_json() for f in verdict.findings],
            rulebook_fingerprint=verdict.rulebook_fingerprint,
            amount_minor=trade.amount_minor,
            currency=trade.currency,
        )


class OrderController(Controller):
    path = "/api/v1/orders"
    tags = ["orders"]
    dependencies = {**AUTHENTICATED, **PAGED, **ORDERS}
    security = SECURITY

    @post("/", status_code=201, responses=problem_responses(401, 403, 404, 409, 422))
    async def place(
        self,
        request: Request[Any, Any, State],
        data: JSONBody[TradeRequest],
        principal: Caller,
        db_session: DbSession,
        orders: Orders,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[OrderPlaced]:
        """Place an order: the trade stage judges it first. Accepted: the licence is reserved and the amount
        fixed (201). Held for review: `pending_review` (201). Rejected: 422 with the findings; the rejected
        attempt is kept for the auditors, and nothing is reserved."""

        async def action() -> tuple[int, Any]:
            placed = await orders.place(principal, data)
            verdict = VerdictRead.of(placed.verdict, placed.stored_verdict)
            if placed.order.status == OrderStatus.REJECTED:
                return 422, {
                    "type": PROBLEM_TYPE_PREFIX + "trade-rejected",
                    "title": "Trade rejected by the rulebook",
                    "status": 422,
                    "detail": "the trade stage rejected this order: "
                    + "; ".join(f.check for f in placed.verdict.failures()),
                    "instance": request.url.path,
                    "order_id": str(placed.order.id),
                    "findings": [f.as_json() for f in placed.verdict.findings],
                    "rulebook_fingerprint": placed.verdict.rulebook_fingerprint,
                }
            body = OrderPlaced(**order_read(placed.order).model_dump(), verdict=verdict)
            return 201, body.model_dump(mode="json")

        body = data.model_dump(mode="json")
        return await _idempotent(request, principal, db_session, idempotency_key, body, action)

    @get("/", responses=problem_responses(401, 403))
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

    @get("/{order_id:uuid}", responses=problem_responses(401, 403, 404))
    async def show(self, order_id: FromPath[uuid.UUID], principal: Caller, orders: Orders) -> OrderDetail:
        """An order with its trade verdict and its status history."""
        view = await orders.view(principal, order_id)
        return OrderDetail(
            **order_read(view.order).model_dump(),
            verdict=VerdictRead.of_stored(view.verdict),
            history=[OrderEventRead.model_validate(e) for e in view.history],
        )

    @post("/{order_id:uuid}/pay", status_code=200, responses=problem_responses(401, 403, 404, 409, 422, 502))
    async def pay(
        self,
        request: Request[Any, Any, State],
        order_id: FromPath[uuid.UUID],
        principal: Caller,
        db_session: DbSession,
        orders: Orders,
        data: JSONBody[PaymentRequest | None] = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[OrderPaid]:
        """Pay an accepted order (the buyer). With the local gateway the money is in escrow at once; with
        Stripe the order is paid when the PaymentIntent succeeds (its webhook)."""
        payment_method = data.payment_method if data else None

        async def action() -> tuple[int, Any]:
            order, state = await orders.pay(principal, order_id, payment_method)
            payment = PaymentRead(
                gateway=order.payment_gateway or "",
                reference=state.reference,
                status=state.status,
                client_secret=state.client_secret,
            )
            return 200, OrderPaid(id=order.id, status=order.status, payment=payment).model_dump(mode="json")

        body = data.model_dump(mode="json") if data else None
        return await _idempotent(request, principal, db_session, idempotency_key, body, action)

    @post("/{order_id:uuid}/confirm", status_code=200, responses=problem_responses(401, 403, 404, 409))
    async def confirm(self, order_id: FromPath[uuid.UUID], principal: Caller, orders: Orders) -> OrderRead:
        """The buyer accepts the delivery; the order completes and is settled in the next run."""
        return order_read(await orders.confirm(principal, order_id))

    @post("/{order_id:uuid}/dispute", status_code=200, responses=problem_responses(401, 403, 404, 409))
    async def dispute(
        self, order_id: FromPath[uuid.UUID], data: JSONBody[DisputeRequest], principal: Caller, orders: Orders
    ) -> OrderRead:
        """The buyer disputes a paid or delivered order; its settlement is frozen until an administrator
        resolves it."""
        return order_read(await orders.dispute(principal, order_id, data.reason))

    @post("/{order_id:uuid}/cancel", status_code=200, responses=problem_responses(401, 403, 404, 409))
    async def cancel(
        self,
        order_id: FromPath[uuid.UUID],
        principal: Caller,
        orders: Orders,
        data: JSONBody[CancelRequest | None] = None,
    ) -> OrderRead:
        """The buyer cancels an order not yet paid; its licences are released."""
        return order_read(await orders.cancel(principal, order_id, data.reason if data else None))


class AdminOrderController(Controller):
    path = "/api/v1/admin/orders"
    tags = ["administration"]
    dependencies = {**ADMIN_ONLY, **ORDERS}
    security = SECURITY

    @post("/{order_id:uuid}/decision", status_code=200, responses=problem_responses(401, 403, 404, 409))
    async def decide(
        self, order_id: FromPath[uuid.UUID], data: JSONBody[OrderDecision], admin: Caller, orders: Orders
    ) -> OrderRead:
        """Approve (the licence is reserved) or reject a trade the gate held for review."""
        return order_read(await orders.decide(admin, order_id, data.decision, data.reason))

    @post(
        "/{order_id:uuid}/resolve-dispute", status_code=200, responses=problem_responses(401, 403, 404, 409, 422, 502)
    )
    async def resolve_dispute(
        self,
        request: Request[Any, Any, State],
        order_id: FromPath[uuid.UUID],
        data: JSONBody[DisputeResolution],
        admin: Caller,
        db_session: DbSession,
        orders: Orders,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[OrderRead]:
        """Refund the buyer (escrow back through the gateway, licence released) or release the order to
        settlement."""

        async def action() -> tuple[int, Any]:
            order = await orders.resolve_dispute(admin, order_id, data.outcome, data.reason)
            return 200, order_read(order).model_dump(mode="json")

        return await _idempotent(request, admin, db_session, idempotency_key, data.model_dump(mode="json"), action)

    @post(
        "/{order_id:uuid}/refund",
        status_code=200,
        responses=problem_responses(401, 403, 404, 409, 422, 502),
    )
    async def refund(
        self,
        request: Request[Any, Any, State],
        order_id: FromPath[uuid.UUID],
        data: JSONBody[AdminRefundRequest],
        admin: Caller,
        db_session: DbSession,
        orders: Orders,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[OrderRefunded]:
        """Refund a completed, settled or paid-out order in full through the gateway; its licences are
        released. The money comes back from escrow (completed), by reversing its settlement (settled), or
        from the provider as a debt its next payout repays first (paid out); `refund_path` says which."""

        async def action() -> tuple[int, Any]:
            order, path = await orders.refund_after_settlement(admin, order_id, data.reason)
            body = OrderRefunded(
                **order_read(order).model_dump(), refund_path=path, refund_reference=order.refund_reference
            )
            return 200, body.model_dump(mode="json")

        return await _idempotent(request, admin, db_session, idempotency_key, data.model_dump(mode="json"), action)


# administrators' trade queries

# Trades read per query of an export, each query in its own short transaction: a slow download holds no
# connection and no transaction open between batches.
EXPORT_BATCH = 500
EXPORT_MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}
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
    Literal["json", "csv", "jsonl"],
    QueryParameter(
        name="format",
        description="json: one page; csv or jsonl: every matching trade, streamed as a download",
    ),
]


@dataclass
class TradesOperation(Operation):
    """The trades query answers 200 as JSON (one page), CSV or JSON lines (every match), by `format`."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if not isinstance(ok, OpenAPIResponse) or ok.content is None:
            return
        text = Schema(type=OpenAPIType.STRING)
        ok.content["text/csv"] = OpenAPIMediaType(schema=text)
        ok.content["application/x-ndjson"] = OpenAPIMediaType(schema=text)
        ok.headers = {
            **(ok.headers or {}),
            "Content-Disposition": OpenAPIHeader(
                schema=text, required=False, description="csv and jsonl: `attachment` with a file name"
            ),
        }


def _export_row(row: dict[str, Any]) -> dict[str, Any]:
    return TradeRead.model_validate(row).model_dump(mode="json")


def _csv_chunk(rows: Sequence[Sequence[Any]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode()


def _encode(rows: Sequence[dict[str, Any]], export_format: str) -> bytes:
    exported = [_export_row(row) for row in rows]
    if export_format == "jsonl":
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in exported).encode()
    # one CSV cell per field; the flagged rule ids (letters, digits and ._-) separated by spaces
    return _csv_chunk(
        [[" ".join(v) if isinstance(v, list) else v for v in (row[f] for f in TRADE_FIELDS)] for row in exported]
    )


async def _export(
    sessions: SessionMaker, orders: OrderService, admin: Principal, filters: TradeFilters, export_format: str
) -> AsyncIterator[bytes]:
    """Every matching trade, in id order, a batch per query (keyset over the primary key)."""
    if export_format == "csv":
        yield _csv_chunk([TRADE_FIELDS])
    after: uuid.UUID | None = None
    while True:
        async with sessions() as session:
            reader = OrderService(session, orders.settings, orders.rulebook, orders.gateway)
            batch = await reader.trades_after(admin, filters, after, EXPORT_BATCH)
        if batch:
            yield _encode(batch, export_format)
        if len(batch) < EXPORT_BATCH:
            return
        after = batch[-1]["id"]


class AdminTradesController(Controller):
    path = "/api/v1/admin/trades"
    tags = ["audit"]
    dependencies = {**ADMIN_ONLY, **PAGED, **ORDERS}
    security = SECURITY

    @get(
        "/",
        operation_class=TradesOperation,
        responses={
            200: ResponseSpec(
                data_container=TradePage,
                description="json: one page of trades, newest first; csv or jsonl: every matching trade",
            ),
            **problem_responses(401, 403),
        },
    )
    async def trades(
        self,
        request: Request[Any, Any, State],
        admin: Caller,
        orders: Orders,
        page: Paging,
        status: Annotated[OrderStatus | None, QueryParameter(description="the order's status")] = None,
        outcome: Annotated[Decision | None, QueryParameter(description="the trade stage's decision")] = None,
        rule_id: RuleId = None,
        provider: OrganizationId = None,
        buyer: OrganizationId = None,
        product: Annotated[uuid.UUID | None, QueryParameter(description="a product id")] = None,
        since: Moment = None,
        until: Moment = None,
        export_format: ExportFormat = "json",
    ) -> Response[Any]:
        """Trades by status, trade-stage outcome, flagged rule, party, product and period (placed in
        [since, until)). `format=json` answers one page; `csv` and `jsonl` stream every matching trade as
        a download, in a fixed column order (CSV: flagged rules separated by spaces)."""
        filters = TradeFilters(
            status=status,
            decision=outcome,
            rule_id=rule_id,
            provider_id=provider,
            buyer_id=buyer,
            product_id=product,
            since=parse_moment("since", since),
            until=parse_moment("until", until),
        )
        if export_format == "json":
            items, total = await orders.trades(admin, filters, limit=page.limit, offset=page.offset)
            body = TradePage(
                items=[TradeRead.model_validate(i) for i in items], total=total, limit=page.limit, offset=page.offset
            )
            return Response(body)
        name = f"trades-{clock.now():%Y%m%dT%H%M%SZ}.{export_format}"
        return Stream(
            _export(request.app.state.db_sessions, orders, admin, filters, export_format),
            media_type=EXPORT_MEDIA_TYPES[export_format],
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
