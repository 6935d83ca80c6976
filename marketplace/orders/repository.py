"""Every query on the orders tables. Status changes are guarded UPDATE statements: the row moves
only from the statuses the transition allows, so a replayed or concurrent request changes nothing."""

from __future__ import annotations

import enum
import functools
import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, func, insert, or_, update
from sqlalchemy import select as core_select
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from marketplace.audit.repository import AuditRepository, appended_entry
from marketplace.catalog.repository import LISTING_UNCHANGED, RESERVE_LICENCES
from marketplace.compliance.models import SnapshotPart, StoredVerdict
from marketplace.compliance.repository import VerdictRepository
from marketplace.db import DriverStatement, TableRow, refused_null, table_of
from marketplace.events.repository import WRITE_PENDING, pending_rows, write
from marketplace.kit import clock
from marketplace.kit.memo import StampedMemo
from marketplace.orders.models import ESCROW_STATUSES, Order, OrderEvent, OrderStatus

_INSERT_ORDER = insert(table_of(Order))
_INSERT_EVENT = insert(table_of(OrderEvent))
_ORDERS = table_of(Order)
_STATUS = select(_ORDERS.c.status).where(_ORDERS.c.id == bindparam("order_id", type_=_ORDERS.c.id.type))
_PLACEMENT_TABLES = {
    "part": table_of(SnapshotPart),
    "verdict": table_of(StoredVerdict),
    "order": _ORDERS,
    "event": table_of(OrderEvent),
}


# Snapshot parts this process knows are stored (committed), by digest: a placement sends only the others.
# Safe because a part is keyed by its content's hash and never deleted.
StoredParts = StampedMemo[str, bool]
STORED_PARTS_KEPT = 100_000


class Placed(enum.Enum):
    """What an order's placement statement did."""

    WRITTEN = "written"
    SOLD_OUT = "sold_out"  # fewer licences were left than it takes: nothing written
    LISTING_CHANGED = "listing_changed"  # the kept listing it judged is not the listing now: nothing written


@functools.cache
def _placement_statement(
    columns: tuple[tuple[str, tuple[str, ...]], ...],
    parts: int,
    also: Table | None,
    reserving: bool,
    checking_listing: bool,
) -> DriverStatement:
    """WITH [reserved AS (UPDATE product ... RETURNING id),] [listing AS (SELECT <the product if its listing is
    unchanged>),] part<i> AS (INSERT ... ON CONFLICT DO NOTHING RETURNING digest)..., verdict AS (INSERT ...),
    order AS (INSERT ...), audit AS (INSERT ...), events AS (INSERT INTO pending_event ...)[, also AS (INSERT
    INTO <also> ...)] INSERT INTO order_event ... RETURNING <how many of each part it inserted>: built once per
    set of columns (the row `also`'s among them), number of snapshot parts, table `also` and guards, each value
    a parameter named `<row>_<column>` (`part<i>_<column>` for the i-th part, which has every column) typed as
    its column; the audit entry's `audit_<parameter>`, the events' `events`, the reservation's
    `reserve_product_id` and `reserve_quantity`, the listing's `listing_product_id` and `listing_stamp`.
    A guarded statement takes a NOT NULL column of the order from its guard's row, `licences_reserved` from the
    reservation's, `product_version_id` from the unchanged listing's: when the guard finds no row, the
    constraint aborts the whole statement."""

    def values(table: Table, keys: tuple[str, ...], row: str) -> dict[str, Any]:
        return {key: bindparam(f"{row}_{key}", type_=table.c[key].type) for key in keys}

    keys = dict(columns)
    part_table, verdict_table = _PLACEMENT_TABLES["part"], _PLACEMENT_TABLES["verdict"]
    order_table = _PLACEMENT_TABLES["order"]
    verdict = (
        insert(verdict_table).values(values(verdict_table, keys["verdict"], "verdict")).returning(verdict_table.c.id)
    )
    order_values = values(order_table, keys["order"], "order")
    guards = []
    for guarding, guard, column in (
        (reserving, RESERVE_LICENCES.statement, "licences_reserved"),
        (checking_listing, LISTING_UNCHANGED, "product_version_id"),
    ):
        if guarding:
            found = guard.cte(f"placed_{column}_guard")  # type: ignore[attr-defined]
            order_values[column] = core_select(order_values[column]).select_from(found).scalar_subquery()
            guards.append(found)
    order = insert(order_table).values(order_values).returning(order_table.c.id)
    ctes = [
        *guards,
        verdict.cte("placed_verdict"),
        order.cte("placed_order"),
        appended_entry("audit_").cte("placed_audit"),
    ]
    ctes.append(WRITE_PENDING.columns().cte("placed_events"))
    if also is not None:
        # no ON CONFLICT: a concurrent request writing the same row waits on its unique index, then fails
        ctes.append(insert(also).values(values(also, keys["also"], "also")).cte("placed_also"))
    # One single-row insert per part: SQLAlchemy gives a multi-row VALUES no cache key, so the statement
    # would be compiled again for every order (about a third of an order's CPU).
    part_columns = tuple(part_table.c.keys())
    part_ctes = [
        postgresql.insert(part_table)
        .values(values(part_table, part_columns, f"part{i}"))
        .on_conflict_do_nothing()
        .returning(part_table.c.digest)
        .cte(f"part{i}")
        for i in range(parts)
    ]
    event_table = _PLACEMENT_TABLES["event"]
    inserted = [select(func.count()).select_from(part).scalar_subquery() for part in part_ctes]
    statement = insert(event_table).values(values(event_table, keys["event"], "event")).add_cte(*ctes, *part_ctes)
    return DriverStatement(statement.returning(*inserted) if inserted else statement)


def _guards(order: dict[str, Any], listing_stamp: str | None) -> dict[str, Any]:
    """The parameters of a placement's guards: the reservation of its licences, the check of its listing."""
    guards: dict[str, Any] = {}
    if order["licences_reserved"] > 0:
        guards |= {"reserve_product_id": order["product_id"], "reserve_quantity": order["licences_reserved"]}
    if listing_stamp is not None:
        guards |= {"listing_product_id": order["product_id"], "listing_stamp": listing_stamp}
    return guards


class OrderRepository:
    def __init__(self, session: AsyncSession, stored_parts: StoredParts | None = None) -> None:
        self.session = session
        self.stored_parts = stored_parts

    async def insert(self, values: dict[str, Any]) -> None:
        """One INSERT, no ORM unit of work: order placement is the hot path. The table's plain INSERT with
        the row as parameters: inlining the values costs about a millisecond of CPU to build and key."""
        await self.session.execute(_INSERT_ORDER, values)

    async def insert_placed(
        self,
        verdict: dict[str, Any],
        parts: list[dict[str, Any]],
        order: dict[str, Any],
        actor: str,
        entry: dict[str, Any],
        events: list[dict[str, Any]],
        also: TableRow | None = None,
        listing_stamp: str | None = None,
    ) -> Placed:
        """A placed order with its trade verdict and the snapshot parts the verdict names (rows of the
        compliance domain's tables, built by ComplianceService.assess), its first history event, its audit entry
        (`AuditService.entry`), the transaction's recorded events (`EventService.take_recorded`) and the row
        `also` (of a table the caller names); first, the order's `licences_reserved` taken from its product.
        Nothing is written when the product has fewer licences left, or (PostgreSQL) when `listing_stamp`, the
        stamp of the kept listing the order was judged on, is no longer its product's. On PostgreSQL one
        statement (which needs no transaction around it): the guards, the parts (those not known to be stored),
        the verdict, the order, the audit entry, the pending events and `also` written by data-modifying CTEs
        (the order's foreign key to the verdict is checked at the end of the statement), the history event by
        the statement itself. Elsewhere one statement each."""
        reserving = order["licences_reserved"] > 0
        guards = _guards(order, listing_stamp)
        event = {
            "id": uuid.uuid4(),
            "order_id": order["id"],
            "from_status": None,
            "to_status": order["status"],
            "actor": actor,
            "reason": None,
            "at": order["created_at"],
        }
        if self.session.get_bind().dialect.name != "postgresql":
            assert listing_stamp is None, "listings are stamped on PostgreSQL only"
            if reserving and not (await RESERVE_LICENCES.execute(self.session, guards)).rows:
                return Placed.SOLD_OUT
            await VerdictRepository(self.session).add(verdict, parts)
            await self.session.execute(_INSERT_ORDER, order)
            await self.session.execute(_INSERT_EVENT, event)
            await AuditRepository(self.session).append(entry)
            await self.session.run_sync(write, events)
            if also is not None:
                await self.session.execute(insert(also.table), also.values)
            return Placed.WRITTEN
        stored = self.stored_parts
        unknown = [part for part in parts if stored is None or stored.get(part["digest"], None) is None]
        rows = {"verdict": verdict, "order": order, "event": event} | ({"also": also.values} if also else {})
        columns = tuple((name, tuple(row)) for name, row in rows.items())
        statement = _placement_statement(
            columns, len(unknown), also.table if also else None, reserving, listing_stamp is not None
        )
        rows |= {f"part{i}": part for i, part in enumerate(unknown)} | {"audit": entry}
        parameters = {f"{name}_{key}": value for name, row in rows.items() for key, value in row.items()}
        try:
            result = await statement.execute(self.session, parameters | {"events": pending_rows(events)} | guards)
        except Exception as error:
            if reserving and refused_null(error, _ORDERS.name, "licences_reserved"):
                return Placed.SOLD_OUT
            if listing_stamp is not None and refused_null(error, _ORDERS.name, "product_version_id"):
                return Placed.LISTING_CHANGED
            raise
        if stored is not None and unknown:
            # a part the statement did not insert was there, committed: ON CONFLICT waits for its inserter
            for part, inserted in zip(unknown, result.rows[0], strict=True):
                if not inserted:
                    stored.put(part["digest"], None, True)
        return Placed.WRITTEN

    async def add_event(
        self,
        order_id: uuid.UUID,
        from_status: OrderStatus | None,
        to_status: OrderStatus,
        actor: str,
        reason: str | None,
    ) -> None:
        await self.session.execute(
            _INSERT_EVENT,
            {
                "id": uuid.uuid4(),
                "order_id": order_id,
                "from_status": from_status,
                "to_status": to_status,
                "actor": actor,
                "reason": reason,
                "at": clock.now(),
            },
        )

    async def get(self, order_id: uuid.UUID) -> Order | None:
        query = select(Order).where(col(Order.id) == order_id).execution_options(populate_existing=True)
        return (await self.session.scalars(query)).first()

    async def status(self, order_id: uuid.UUID) -> OrderStatus | None:
        """The order's status alone: what every delivery checks, without loading the whole order."""
        return (await self.session.execute(_STATUS, {"order_id": order_id})).scalar_one_or_none()

    async def by_payment_reference(self, reference: str) -> Order | None:
        query = select(Order).where(col(Order.payment_reference) == reference).execution_options(populate_existing=True)
        return (await self.session.scalars(query)).first()

    async def move(self, order_id: uuid.UUID, from_status: OrderStatus, to: OrderStatus, **values: Any) -> bool:
        """Move the order from `from_status` to `to`; False (nothing changed) when it is no longer in
        `from_status`: another request moved it first."""
        statement = (
            update(Order)
            .where(col(Order.id) == order_id, col(Order.status) == from_status)
            .values(status=to, status_changed_at=clock.now(), **values)
        )
        return bool((await self.session.execute(statement)).rowcount)  # type: ignore[attr-defined]

    async def set_values(self, order_id: uuid.UUID, status: OrderStatus, **values: Any) -> bool:
        """Change fields of an order while it is in `status`."""
        statement = update(Order).where(col(Order.id) == order_id, col(Order.status) == status).values(**values)
        return bool((await self.session.execute(statement)).rowcount)  # type: ignore[attr-defined]

    async def events(self, order_id: uuid.UUID) -> Sequence[OrderEvent]:
        query = select(OrderEvent).where(col(OrderEvent.order_id) == order_id).order_by(col(OrderEvent.at))
        return (await self.session.scalars(query)).all()

    # lists

    async def visible_to(
        self,
        organization_ids: Collection[uuid.UUID] | None,
        *,
        status: OrderStatus | None,
        limit: int,
        offset: int,
    ) -> tuple[Sequence[Order], int]:
        """Orders where one of `organization_ids` buys or provides (None: every order, for administrators)."""
        conditions: list[Any] = []
        if organization_ids is not None:
            ids = list(organization_ids)
            conditions.append(
                or_(col(Order.buyer_organization_id).in_(ids), col(Order.provider_organization_id).in_(ids))
            )
        if status is not None:
            conditions.append(col(Order.status) == status)
        total = (await self.session.execute(select(func.count()).select_from(Order).where(*conditions))).scalar_one()
        query = (
            select(Order)
            .where(*conditions)
            .order_by(col(Order.created_at).desc(), col(Order.id))
            .limit(limit)
            .offset(offset)
        )
        return (await self.session.scalars(query)).all(), total

    async def due(self, status: OrderStatus, changed_before: datetime, limit: int) -> Sequence[uuid.UUID]:
        """Orders in `status` since before `changed_before`, oldest first."""
        query = (
            select(col(Order.id))
            .where(col(Order.status) == status, col(Order.status_changed_at) < changed_before)
            .order_by(col(Order.status_changed_at))
            .limit(limit)
        )
        return (await self.session.scalars(query)).all()

    async def escrow_held(self) -> dict[tuple[uuid.UUID, str], int]:
        """What each order holding its buyer's money should have in escrow."""
        query = select(col(Order.id), col(Order.currency), col(Order.amount_minor)).where(
            col(Order.status).in_(list(ESCROW_STATUSES)), col(Order.amount_minor) > 0
        )
        return {(row[0], row[1]): row[2] for row in (await self.session.execute(query)).all()}

    async def open_statuses(self, statuses: Collection[OrderStatus]) -> dict[uuid.UUID, OrderStatus]:
        """Every order in one of `statuses`, with its status."""
        query = select(col(Order.id), col(Order.status)).where(col(Order.status).in_(list(statuses)))
        return {row[0]: row[1] for row in (await self.session.execute(query)).all()}

    # settlement (flows.settlement and flows.payouts)

    async def lock(self, order_id: uuid.UUID) -> Order | None:
        """The order as it is now, its row locked until the transaction ends: whoever locks it next reads
        what this transaction leaves. SQLite has no row locks: an update that changes nothing takes the
        database's write lock instead, which other writers wait for in the same way."""
        if self.session.get_bind().dialect.name == "sqlite":
            await self.session.execute(update(Order).where(col(Order.id) == order_id).values(status=col(Order.status)))
        query = (
            select(Order).where(col(Order.id) == order_id).with_for_update().execution_options(populate_existing=True)
        )
        return (await self.session.scalars(query)).first()

    async def lock_completed(self, limit: int) -> Sequence[Order]:
        """Up to `limit` completed orders, oldest first, locked; orders another transaction holds (a
        refund, a concurrent settlement run) are skipped, never waited for."""
        query = (
            select(Order)
            .where(col(Order.status) == OrderStatus.COMPLETED)
            .order_by(col(Order.status_changed_at), col(Order.id))
            .limit(limit)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
        return (await self.session.scalars(query)).all()

    async def move_many(
        self, order_ids: Collection[uuid.UUID], from_status: OrderStatus, to: OrderStatus, **values: Any
    ) -> set[uuid.UUID]:
        """`move` for several orders in one statement; returns the ids that moved."""
        if not order_ids:
            return set()
        statement = (
            update(Order)
            .where(col(Order.id).in_(list(order_ids)), col(Order.status) == from_status)
            .values(status=to, status_changed_at=clock.now(), **values)
            .returning(col(Order.id))
            .execution_options(synchronize_session=False)
        )
        return set((await self.session.scalars(statement)).all())

    async def add_events(self, events: Sequence[dict[str, Any]]) -> None:
        """Several `add_event`s in one statement; each dict has the same keys as `add_event`'s arguments."""
        if events:
            now = clock.now()
            await self.session.execute(insert(OrderEvent), [{"id": uuid.uuid4(), "at": now, **e} for e in events])

    async def settled_unpaid(self) -> set[tuple[uuid.UUID, str]]:
        """(provider, currency) of every settled order no payout has claimed yet."""
        query = (
            select(col(Order.provider_organization_id), col(Order.currency))
            .where(col(Order.status) == OrderStatus.SETTLED, col(Order.payout_id).is_(None))
            .distinct()
        )
        return {(row[0], row[1]) for row in (await self.session.execute(query)).all()}

    async def settled_unpaid_of(self, provider_id: uuid.UUID, currency: str) -> Sequence[tuple[uuid.UUID, int, int]]:
        """(id, amount_minor, fee_bps) of the provider's settled orders no payout has claimed yet."""
        query = select(col(Order.id), col(Order.amount_minor), col(Order.fee_bps)).where(
            col(Order.provider_organization_id) == provider_id,
            col(Order.currency) == currency,
            col(Order.status) == OrderStatus.SETTLED,
            col(Order.payout_id).is_(None),
        )
        return [(row[0], row[1], row[2]) for row in (await self.session.execute(query)).all()]

    async def claim_for_payout(
        self, provider_id: uuid.UUID, currency: str, payout_id: uuid.UUID, limit: int
    ) -> Sequence[Order]:
        """Mark up to `limit` of the provider's unclaimed settled orders as the payout's (they stay
        settled until the gateway confirms it); orders another transaction holds are skipped."""
        query = (
            select(Order)
            .where(
                col(Order.provider_organization_id) == provider_id,
                col(Order.currency) == currency,
                col(Order.status) == OrderStatus.SETTLED,
                col(Order.payout_id).is_(None),
            )
            .order_by(col(Order.id))
            .limit(limit)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
        orders = (await self.session.scalars(query)).all()
        if orders:
            await self.session.execute(
                update(Order)
                .where(col(Order.id).in_([o.id for o in orders]))
                .values(payout_id=payout_id)
                .execution_options(synchronize_session=False)
            )
            for order in orders:
                order.payout_id = payout_id
        return orders

    async def move_claimed(self, claimed_by: uuid.UUID, to: OrderStatus, **values: Any) -> Sequence[Order]:
        """Move the settled orders the payout claimed to `to`; returns those moved, as they were."""
        query = (
            select(Order)
            .where(col(Order.payout_id) == claimed_by, col(Order.status) == OrderStatus.SETTLED)
            .order_by(col(Order.id))
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        orders = (await self.session.scalars(query)).all()
        moved = await self.move_many([o.id for o in orders], OrderStatus.SETTLED, to, **values)
        return [o for o in orders if o.id in moved]

    async def release_claim(self, payout_id: uuid.UUID) -> int:
        """The payout's settled orders are no longer claimed (it failed): the next payout takes them."""
        statement = (
            update(Order)
            .where(col(Order.payout_id) == payout_id, col(Order.status) == OrderStatus.SETTLED)
            .values(payout_id=None)
            .execution_options(synchronize_session=False)
        )
        return int((await self.session.execute(statement)).rowcount)  # type: ignore[attr-defined]
