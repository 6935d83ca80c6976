"""Outbound webhooks: organisations' endpoints and their signing secrets, the deliveries that carry each event
concerning an endpoint's organisation to it, in event order, signed as the Standard Webhooks specification says,
retried with growing waits and abandoned (the endpoint disabled) after about three days.

Sending happens outside any transaction (see marketplace/jobs.py): a transaction queues and claims deliveries
and signs their requests, the HTTP call follows, and another transaction records what came back."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.config import Settings
from marketplace.errors import Conflict, FieldsRequired, NotFound, Unprocessable
from marketplace.events.models import (
    DeliveryStatus,
    Event,
    EventType,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookSecret,
)
from marketplace.events.schemas import WebhookEndpointCreate, WebhookEndpointUpdate
from marketplace.events.service import EventService
from marketplace.events.webhook_repository import WebhookRepository
from marketplace.kit import clock, outbound
from marketplace.kit.canonical import canonical_json
from marketplace.kit.i18n import Message
from marketplace.kit.ids import new_id
from marketplace.kit.sealed import Sealer

SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, no secret
SECRET_BYTES = 32
SIGNATURE_VERSION = "v1"
# Events read per endpoint per transaction of the fan-out, and endpoints per round.
FAN_OUT_BATCH = 500
ENDPOINTS_PER_ROUND = 100
# A claim outlives the longest attempt (connect, send, read: each within the timeout, all within twice it).
CLAIM_MARGIN = timedelta(seconds=30)
# Up to this share of a retry's wait is added at random, so endpoints that failed together do not retry together.
JITTER = 0.2
RESPONSE_SNIPPET_CHARS = 1024
ERROR_CHARS = 300
KNOWN_TYPES = frozenset(t.value for t in EventType)
KNOWN_PREFIXES = frozenset(f"{t.value.split('.')[0]}." for t in EventType)


class WebhookUrlRefused(Unprocessable):
    """The URL is not one the exchange sends to: not https, no host, or a host that is not public."""

    code = "webhook-url-refused"
    title = "Webhook URL refused"

    def __init__(self, message: Message) -> None:
        super().__init__(message, field="url")


@dataclass(frozen=True)
class Claim:
    """A delivery this worker is sending: its signed request, ready to go."""

    delivery_id: uuid.UUID
    claim: int
    endpoint_id: uuid.UUID
    url: str
    body: bytes
    headers: dict[str, str]


def new_secret() -> tuple[str, bytes]:
    """A signing secret as shown once (`whsec_` + base64) and its bytes."""
    key = secrets.token_bytes(SECRET_BYTES)
    return SECRET_PREFIX + base64.b64encode(key).decode(), key


def signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """`v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")), the Standard Webhooks signature."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return f"{SIGNATURE_VERSION},{base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()}"


def event_body(event: Event) -> bytes:
    """The request body of an event: `{type, timestamp, data}`, data being the event's payload."""
    timestamp = event.created_at.isoformat().replace("+00:00", "Z")
    return canonical_json({"type": event.type, "timestamp": timestamp, "data": event.payload}).encode()


def matches(event_type: str, filters: Iterable[str]) -> bool:
    """Whether a type is one the filters name, exactly or by a prefix ending in a dot."""
    return any(event_type == f or (f.endswith(".") and event_type.startswith(f)) for f in filters)


class WebhookService:
    def __init__(self, session: AsyncSession, settings: Settings, sealer: Sealer, events: EventService) -> None:
        self.repository = WebhookRepository(session)
        self.settings = settings
        self.sealer = sealer
        self.events = events

    # endpoints

    async def endpoint(self, endpoint_id: uuid.UUID) -> WebhookEndpoint:
        endpoint = await self.repository.endpoint(endpoint_id)
        if endpoint is None:
            raise NotFound(Message("webhooks.endpoint-not-found", "webhook endpoint not found"))
        return endpoint

    async def endpoints_of(
        self, organization_ids: Sequence[uuid.UUID], *, limit: int, offset: int
    ) -> tuple[Sequence[WebhookEndpoint], int]:
        return await self.repository.endpoints_of(organization_ids, limit=limit, offset=offset)

    async def create(self, data: WebhookEndpointCreate) -> tuple[WebhookEndpoint, str]:
        """A new endpoint and its secret (shown once). It receives the events recorded from now on."""
        await self.check_url(data.url)
        now = clock.now()
        endpoint = WebhookEndpoint(
            organization_id=data.organization_id,
            url=data.url,
            event_types=_known_filters(data.event_types),
            enabled=data.enabled,
            cursor_seq=await self.events.last_seq(),
            created_at=now,
            updated_at=now,
        )
        self.repository.add(endpoint)
        await self.repository.flush()
        return endpoint, await self._add_secret(endpoint.id, now)

    async def update(self, endpoint: WebhookEndpoint, data: WebhookEndpointUpdate) -> WebhookEndpoint:
        """Change what is given. Enabled again, an endpoint receives the events recorded from then on; the
        deliveries it had queued resume."""
        changes = data.model_dump(exclude_unset=True)
        if removed := sorted(name for name, value in changes.items() if value is None):
            raise FieldsRequired(removed)
        if data.url is not None:
            await self.check_url(data.url)
            endpoint.url = data.url
        if data.event_types is not None:
            endpoint.event_types = _known_filters(data.event_types)
        if data.enabled is not None:
            if data.enabled and not endpoint.enabled:
                endpoint.cursor_seq = await self.events.last_seq()
            endpoint.enabled = data.enabled
        endpoint.updated_at = clock.now()
        await self.repository.flush()
        return endpoint

    async def delete(self, endpoint: WebhookEndpoint) -> None:
        await self.repository.delete_endpoint(endpoint.id)

    async def rotate_secret(self, endpoint: WebhookEndpoint) -> tuple[str, datetime]:
        """A new secret (shown once); the previous one still signs for WEBHOOK_SECRET_OVERLAP_SECONDS."""
        now = clock.now()
        until = now + timedelta(seconds=self.settings.webhook_secret_overlap_seconds)
        await self.repository.retire_secrets(endpoint.id, until)
        secret = await self._add_secret(endpoint.id, now)
        endpoint.updated_at = now
        await self.repository.flush()
        return secret, until

    async def check_url(self, url: str) -> None:
        """Refuse (422) a URL the exchange would not send to; resolving its host as a delivery would."""
        try:
            await outbound.resolve(url, self.settings.webhook_allowed_networks)
        except outbound.UnsafeTarget as refused:
            raise WebhookUrlRefused(refused.message) from None

    async def _add_secret(self, endpoint_id: uuid.UUID, now: datetime) -> str:
        shown, key = new_secret()
        secret_id = new_id()
        sealed = self.sealer.seal(key, _secret_context(endpoint_id, secret_id))
        self.repository.add(WebhookSecret(id=secret_id, endpoint_id=endpoint_id, sealed=sealed, created_at=now))
        await self.repository.flush()
        return shown

    # deliveries, as their endpoint's organisation reads them

    async def deliveries(
        self, endpoint: WebhookEndpoint, *, status: DeliveryStatus | None, limit: int, offset: int
    ) -> tuple[Sequence[tuple[WebhookDelivery, uuid.UUID, str]], int]:
        return await self.repository.deliveries(endpoint.id, status=status, limit=limit, offset=offset)

    async def delivery(self, endpoint: WebhookEndpoint, delivery_id: uuid.UUID) -> tuple[WebhookDelivery, Event]:
        found = await self.repository.delivery(endpoint.id, delivery_id)
        if found is None:
            raise NotFound(Message("webhooks.delivery-not-found", "webhook delivery not found"))
        return found

    async def attempts(
        self, endpoint: WebhookEndpoint, delivery_id: uuid.UUID, *, limit: int, offset: int
    ) -> tuple[Sequence[WebhookAttempt], int]:
        await self.delivery(endpoint, delivery_id)
        return await self.repository.attempts(delivery_id, limit=limit, offset=offset)

    async def replay(self, endpoint: WebhookEndpoint, delivery_id: uuid.UUID) -> tuple[WebhookDelivery, Event]:
        """Send a delivery again (a new attempt, at the endpoint's next run, in its event order); 409 while it
        is being sent."""
        delivery, event = await self.delivery(endpoint, delivery_id)
        if not await self.repository.requeue(delivery.id, clock.now()):
            raise Conflict(
                Message("webhooks.delivery-sending", "the delivery is being sent"), current_status=delivery.status.value
            )
        await self.repository.session.refresh(delivery)
        return delivery, event

    # the worker's side

    async def fan_out(self) -> int:
        """Queue a delivery for every event each enabled endpoint has not seen whose type it wants, in event
        order; returns how many. Two workers at once queue each once: an endpoint's cursor moves by a guarded
        update, and a delivery is unique per endpoint and event."""
        upto = await self.events.last_seq()
        queued = 0
        for endpoint_id, organization_id, cursor, filters in await self.repository.endpoints_behind(
            upto, ENDPOINTS_PER_ROUND
        ):
            events = await self.repository.events_of(organization_id, after=cursor, upto=upto, limit=FAN_OUT_BATCH)
            reached = events[-1][0] if len(events) == FAN_OUT_BATCH else upto
            if not await self.repository.advance_cursor(endpoint_id, seen=cursor, to=reached):
                continue
            now = clock.now()
            rows = [
                {
                    "id": uuid.uuid4(),
                    "endpoint_id": endpoint_id,
                    "event_seq": seq,
                    "status": DeliveryStatus.PENDING,
                    "attempts": 0,
                    "failures": 0,
                    "claims": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for seq, event_type in events
                if matches(event_type, filters)
            ]
            await self.repository.queue(rows)
            queued += len(rows)
        return queued

    async def claim_due(self, limit: int) -> list[Claim]:
        """Claim deliveries due now (one per endpoint, its earliest open one) and sign their requests."""
        now = clock.now()
        until = now + timedelta(seconds=2 * self.settings.webhook_timeout_seconds) + CLAIM_MARGIN
        claims = []
        for delivery in await self.repository.due(now, limit):
            claim = await self.repository.claim(delivery, until=until)
            if claim is not None:
                claims.append(await self._signed(delivery, claim, now))
        return claims

    async def _signed(self, delivery: WebhookDelivery, claim: int, now: datetime) -> Claim:
        endpoint = await self.endpoint(delivery.endpoint_id)
        event = await self.repository.event(delivery.event_seq)
        assert event is not None, "a delivery's event is never deleted"
        body, message_id, timestamp = event_body(event), str(event.id), int(now.timestamp())
        keys = [
            self.sealer.open(secret.sealed, _secret_context(endpoint.id, secret.id))
            for secret in await self.repository.live_secrets(endpoint.id, now)
        ]
        headers = {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": " ".join(signature(key, message_id, timestamp, body) for key in keys),
        }
        return Claim(delivery.id, claim, endpoint.id, endpoint.url, body, headers)

    async def finish(self, claim: Claim, outcome: outbound.Outcome, attempted_at: datetime) -> bool:
        """Record an attempt and what follows: done, a retry after the next wait, or (the waits used up) the
        delivery abandoned, the endpoint disabled and `webhook_endpoint.disabled` recorded. Whether the
        delivery was still this worker's to record."""
        found = await self.repository.delivery(claim.endpoint_id, claim.delivery_id)
        if found is None:  # the endpoint was deleted meanwhile
            return False
        delivery, _ = found
        now, failed_in_a_row = clock.now(), delivery.failures + 1
        changes: dict[str, Any] = {"last_attempt_at": attempted_at}
        waits = self.settings.webhook_retry_schedule
        abandoned = False
        if outcome.succeeded:
            changes |= {"status": DeliveryStatus.SUCCEEDED, "failures": 0}
        elif delivery.failures < len(waits):
            wait = waits[delivery.failures] * (1 + random.uniform(0, JITTER))  # noqa: S311 - jitter, not a secret
            changes |= {
                "status": DeliveryStatus.PENDING,
                "failures": delivery.failures + 1,
                "next_attempt_at": now + timedelta(seconds=wait),
            }
        else:
            changes |= {"status": DeliveryStatus.FAILED, "failures": delivery.failures + 1}
            abandoned = True
        attempt = {
            "id": uuid.uuid4(),
            "attempted_at": attempted_at,
            "status_code": outcome.status_code,
            "duration_ms": outcome.duration_ms,
            "succeeded": outcome.succeeded,
            "error": outcome.error[:ERROR_CHARS] if outcome.error else None,
            "response_snippet": _snippet(outcome.body),
        }
        if not await self.repository.finish_attempt(claim.delivery_id, claim.claim, attempt, changes):
            return False
        if abandoned:
            await self._disable(claim.endpoint_id, delivery.id, failed_in_a_row, now)
        return True

    async def _disable(self, endpoint_id: uuid.UUID, delivery_id: uuid.UUID, failed: int, now: datetime) -> None:
        endpoint = await self.endpoint(endpoint_id)
        if not await self.repository.disable(endpoint_id, now):
            return
        await self.events.record(
            EventType.WEBHOOK_ENDPOINT_DISABLED,
            subject_type="webhook_endpoint",
            subject_id=endpoint_id,
            parties=[endpoint.organization_id],
            payload={
                "endpoint_id": str(endpoint_id),
                "organization_id": str(endpoint.organization_id),
                "enabled": False,
                "delivery_id": str(delivery_id),
                "failed_attempts": failed,
            },
        )


def _known_filters(filters: Sequence[str]) -> list[str]:
    """The filters, each a known type or the prefix of one (422 naming the others), without repeats."""
    unknown = sorted({f for f in filters if f not in KNOWN_TYPES and f not in KNOWN_PREFIXES})
    if unknown:
        raise Unprocessable(
            Message("webhooks.unknown-event-types", "unknown event types: {types}", types=", ".join(unknown)),
            field="event_types",
        )
    return list(dict.fromkeys(filters))


def _secret_context(endpoint_id: uuid.UUID, secret_id: uuid.UUID) -> str:
    """What a sealed secret is bound to: it opens for its own endpoint and row only."""
    return f"webhook_secret:{endpoint_id}:{secret_id}"


def _snippet(body: bytes) -> str:
    """The start of an answer as text PostgreSQL can store (no NUL)."""
    return body.decode("utf-8", errors="replace").replace("\x00", "\ufffd")[:RESPONSE_SNIPPET_CHARS]
