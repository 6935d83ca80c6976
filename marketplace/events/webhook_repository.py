"""Every query on the webhook tables: endpoints, their secrets, deliveries and attempts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import and_, delete, func, insert, or_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col, select

from marketplace.db import table_of, upsert_insert
from marketplace.events.models import (
    OPEN_DELIVERY_STATUSES,
    DeliveryStatus,
    Event,
    EventParty,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookSecret,
)

RowT = TypeVar("RowT", WebhookEndpoint, WebhookAttempt)
_DELIVERIES = table_of(WebhookDelivery)
_INSERT_ATTEMPT = insert(table_of(WebhookAttempt))


class WebhookRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def flush(self) -> None:
        await self.session.flush()

    # endpoints

    def add(self, row: WebhookEndpoint | WebhookSecret) -> None:
        self.session.add(row)

    async def endpoint(self, endpoint_id: uuid.UUID) -> WebhookEndpoint | None:
        return await self.session.get(WebhookEndpoint, endpoint_id)

    async def endpoints_of(
        self, organization_ids: Sequence[uuid.UUID], *, limit: int, offset: int
    ) -> tuple[Sequence[WebhookEndpoint], int]:
        mine = col(WebhookEndpoint.organization_id).in_(organization_ids)
        order = (col(WebhookEndpoint.created_at), col(WebhookEndpoint.id))
        return await self._page(WebhookEndpoint, mine, order, limit=limit, offset=offset)

    async def delete_endpoint(self, endpoint_id: uuid.UUID) -> None:
        """The endpoint with its secrets, deliveries and their attempts."""
        deliveries = select(col(WebhookDelivery.id)).where(col(WebhookDelivery.endpoint_id) == endpoint_id)
        await self.session.execute(delete(WebhookAttempt).where(col(WebhookAttempt.delivery_id).in_(deliveries)))
        await self.session.execute(delete(WebhookDelivery).where(col(WebhookDelivery.endpoint_id) == endpoint_id))
        await self.session.execute(delete(WebhookSecret).where(col(WebhookSecret.endpoint_id) == endpoint_id))
        await self.session.execute(delete(WebhookEndpoint).where(col(WebhookEndpoint.id) == endpoint_id))

    async def disable(self, endpoint_id: uuid.UUID, now: datetime) -> bool:
        """Disable an enabled endpoint; whether this call did."""
        result = await self.session.execute(
            update(WebhookEndpoint)
            .where(col(WebhookEndpoint.id) == endpoint_id, col(WebhookEndpoint.enabled))
            .values(enabled=False, updated_at=now)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    # secrets

    async def live_secrets(self, endpoint_id: uuid.UUID, now: datetime) -> Sequence[WebhookSecret]:
        """The secrets that sign now, the newest first."""
        rows = await self.session.scalars(
            select(WebhookSecret)
            .where(
                col(WebhookSecret.endpoint_id) == endpoint_id,
                or_(col(WebhookSecret.expires_at).is_(None), col(WebhookSecret.expires_at) > now),
            )
            .order_by(col(WebhookSecret.created_at).desc())
        )
        return rows.all()

    async def retire_secrets(self, endpoint_id: uuid.UUID, until: datetime) -> None:
        """The current secret signs until `until`; one already retiring keeps its own end, if sooner."""
        await self.session.execute(
            update(WebhookSecret)
            .where(col(WebhookSecret.endpoint_id) == endpoint_id, col(WebhookSecret.expires_at).is_(None))
            .values(expires_at=until)
        )
        await self.session.execute(
            update(WebhookSecret)
            .where(col(WebhookSecret.endpoint_id) == endpoint_id, col(WebhookSecret.expires_at) > until)
            .values(expires_at=until)
        )

    # fan-out

    async def endpoints_behind(self, seq: int, limit: int) -> Sequence[tuple[uuid.UUID, uuid.UUID, int, list[str]]]:
        """Enabled endpoints whose cursor is before `seq`: (id, organisation, cursor, event types)."""
        rows = await self.session.execute(
            select(
                col(WebhookEndpoint.id),
                col(WebhookEndpoint.organization_id),
                col(WebhookEndpoint.cursor_seq),
                col(WebhookEndpoint.event_types),
            )
            .where(col(WebhookEndpoint.enabled), col(WebhookEndpoint.cursor_seq) < seq)
            .order_by(col(WebhookEndpoint.id))
            .limit(limit)
        )
        return [(row[0], row[1], int(row[2]), list(row[3])) for row in rows]

    async def events_of(
        self, organization_id: uuid.UUID, *, after: int, upto: int, limit: int
    ) -> Sequence[tuple[int, str]]:
        """(number, type) of the events concerning the organisation in (after, upto], in order."""
        rows = await self.session.execute(
            select(col(Event.seq), col(Event.type))
            .join(EventParty, col(EventParty.event_seq) == col(Event.seq))
            .where(
                col(EventParty.organization_id) == organization_id,
                col(Event.seq) > after,
                col(Event.seq) <= upto,
            )
            .order_by(col(Event.seq))
            .limit(limit)
        )
        return [(int(seq), str(type_)) for seq, type_ in rows]

    async def advance_cursor(self, endpoint_id: uuid.UUID, *, seen: int, to: int) -> bool:
        """Move the endpoint's cursor from `seen` to `to`; False when it had moved already (another worker)."""
        result = await self.session.execute(
            update(WebhookEndpoint)
            .where(col(WebhookEndpoint.id) == endpoint_id, col(WebhookEndpoint.cursor_seq) == seen)
            .values(cursor_seq=to)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def queue(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert deliveries, skipping those already there."""
        if rows:
            statement = upsert_insert(self.session)(_DELIVERIES).on_conflict_do_nothing(
                index_elements=[_DELIVERIES.c.endpoint_id, _DELIVERIES.c.event_seq]
            )
            await self.session.execute(statement, list(rows))

    # sending

    async def due(self, now: datetime, limit: int) -> Sequence[WebhookDelivery]:
        """Deliveries to send now, at most one per endpoint: each enabled endpoint's earliest open delivery, when
        its time has come (or its claim lapsed). On PostgreSQL rows another worker holds are skipped."""
        earlier = aliased(WebhookDelivery)
        query = (
            select(WebhookDelivery)
            .join(WebhookEndpoint, col(WebhookEndpoint.id) == col(WebhookDelivery.endpoint_id))
            .where(
                col(WebhookEndpoint.enabled),
                or_(
                    and_(
                        col(WebhookDelivery.status) == DeliveryStatus.PENDING,
                        col(WebhookDelivery.next_attempt_at) <= now,
                    ),
                    and_(
                        col(WebhookDelivery.status) == DeliveryStatus.SENDING,
                        col(WebhookDelivery.claimed_until) < now,
                    ),
                ),
                ~select(col(earlier.id))
                .where(
                    col(earlier.endpoint_id) == col(WebhookDelivery.endpoint_id),
                    col(earlier.status).in_(OPEN_DELIVERY_STATUSES),
                    col(earlier.event_seq) < col(WebhookDelivery.event_seq),
                )
                .exists(),
            )
            .order_by(col(WebhookDelivery.next_attempt_at))
            .limit(limit)
            .with_for_update(skip_locked=True, of=WebhookDelivery)
        )
        return (await self.session.scalars(query)).all()

    async def claim(self, delivery: WebhookDelivery, *, until: datetime) -> int | None:
        """Mark a due delivery as being sent until `until`: the claim's number, or None when another worker
        claimed it first (the guard is the claim count it was read with)."""
        claim = delivery.claims + 1
        result = await self.session.execute(
            update(WebhookDelivery)
            .where(
                col(WebhookDelivery.id) == delivery.id,
                col(WebhookDelivery.claims) == delivery.claims,
                col(WebhookDelivery.status).in_(OPEN_DELIVERY_STATUSES),
            )
            .values(status=DeliveryStatus.SENDING, claims=claim, claimed_until=until)
        )
        return claim if result.rowcount else None  # type: ignore[attr-defined]

    async def event(self, seq: int) -> Event | None:
        return await self.session.get(Event, seq)

    async def finish_attempt(
        self, delivery_id: uuid.UUID, claim: int, attempt: dict[str, Any], changes: dict[str, Any]
    ) -> bool:
        """Record an attempt and its delivery's new state, if the delivery is still under this claim."""
        result = await self.session.execute(
            update(WebhookDelivery)
            .where(
                col(WebhookDelivery.id) == delivery_id,
                col(WebhookDelivery.claims) == claim,
                col(WebhookDelivery.status) == DeliveryStatus.SENDING,
            )
            .values(attempts=col(WebhookDelivery.attempts) + 1, claimed_until=None, **changes)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            return False
        await self.session.execute(_INSERT_ATTEMPT, {"delivery_id": delivery_id, **attempt})
        return True

    # reading and replaying

    async def deliveries(
        self, endpoint_id: uuid.UUID, *, status: DeliveryStatus | None, limit: int, offset: int
    ) -> tuple[Sequence[tuple[WebhookDelivery, uuid.UUID, str]], int]:
        """The endpoint's deliveries, newest event first, each with its event's id and type."""
        where = [col(WebhookDelivery.endpoint_id) == endpoint_id]
        if status is not None:
            where.append(col(WebhookDelivery.status) == status)
        rows = await self.session.execute(
            select(WebhookDelivery, col(Event.id), col(Event.type))
            .join(Event, col(Event.seq) == col(WebhookDelivery.event_seq))
            .where(*where)
            .order_by(col(WebhookDelivery.event_seq).desc())
            .limit(limit)
            .offset(offset)
        )
        total = await self.session.scalar(select(func.count()).select_from(WebhookDelivery).where(*where))
        return [(row[0], row[1], row[2]) for row in rows], int(total or 0)

    async def delivery(self, endpoint_id: uuid.UUID, delivery_id: uuid.UUID) -> tuple[WebhookDelivery, Event] | None:
        row = (
            await self.session.execute(
                select(WebhookDelivery, Event)
                .join(Event, col(Event.seq) == col(WebhookDelivery.event_seq))
                .where(col(WebhookDelivery.id) == delivery_id, col(WebhookDelivery.endpoint_id) == endpoint_id)
            )
        ).first()
        return (row[0], row[1]) if row else None

    async def attempts(
        self, delivery_id: uuid.UUID, *, limit: int, offset: int
    ) -> tuple[Sequence[WebhookAttempt], int]:
        mine = col(WebhookAttempt.delivery_id) == delivery_id
        order = (col(WebhookAttempt.attempted_at), col(WebhookAttempt.id))
        return await self._page(WebhookAttempt, mine, order, limit=limit, offset=offset)

    async def _page(
        self, model: type[RowT], where: Any, order: tuple[Any, ...], *, limit: int, offset: int
    ) -> tuple[Sequence[RowT], int]:
        """A page of `model`'s rows matching `where`, and how many match in all."""
        rows = await self.session.scalars(select(model).where(where).order_by(*order).limit(limit).offset(offset))
        total = await self.session.scalar(select(func.count()).select_from(model).where(where))
        return rows.all(), int(total or 0)

    async def requeue(self, delivery_id: uuid.UUID, now: datetime) -> bool:
        """Queue a delivery that is not being sent to be sent again now; False when it is being sent."""
        result = await self.session.execute(
            update(WebhookDelivery)
            .where(col(WebhookDelivery.id) == delivery_id, col(WebhookDelivery.status) != DeliveryStatus.SENDING)
            .values(status=DeliveryStatus.PENDING, next_attempt_at=now, failures=0)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]
