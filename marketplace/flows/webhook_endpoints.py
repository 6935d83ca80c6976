"""Webhook endpoints, as an organisation manages them: its owners and admins (or its API keys holding
`webhooks:manage`) create, read, change, delete endpoints and rotate their secrets, read the deliveries and
replay one. To everyone else an organisation's endpoints do not exist (404)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from marketplace.accounts.models import MANAGING_ROLES
from marketplace.accounts.principal import Principal
from marketplace.accounts.service import AccountService
from marketplace.audit.service import AuditService
from marketplace.errors import Forbidden, NotFound
from marketplace.events.models import DeliveryStatus, Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from marketplace.events.schemas import WebhookEndpointCreate, WebhookEndpointUpdate
from marketplace.events.webhooks import WebhookService
from marketplace.kit.i18n import Message

OBJECT_TYPE = "webhook_endpoint"


class WebhookEndpoints:
    def __init__(self, accounts: AccountService, webhooks: WebhookService, audit: AuditService) -> None:
        self.accounts = accounts
        self.webhooks = webhooks
        self.audit = audit

    async def create(self, principal: Principal, data: WebhookEndpointCreate) -> tuple[WebhookEndpoint, str]:
        await self._require_manager(principal, data.organization_id)
        endpoint, secret = await self.webhooks.create(data)
        await self._audit(principal, "webhook_endpoint.created", endpoint)
        return endpoint, secret

    async def managed(self, principal: Principal, *, limit: int, offset: int) -> tuple[Sequence[WebhookEndpoint], int]:
        """The endpoints of every organisation the caller manages."""
        managed = [
            organization_id
            for organization_id in await self.accounts.member_organization_ids(principal)
            if await self._manages(principal, organization_id)
        ]
        return await self.webhooks.endpoints_of(managed, limit=limit, offset=offset)

    async def read(self, principal: Principal, endpoint_id: uuid.UUID) -> WebhookEndpoint:
        return await self._managed(principal, endpoint_id)

    async def update(
        self, principal: Principal, endpoint_id: uuid.UUID, data: WebhookEndpointUpdate
    ) -> WebhookEndpoint:
        endpoint = await self.webhooks.update(await self._managed(principal, endpoint_id), data)
        await self._audit(principal, "webhook_endpoint.updated", endpoint)
        return endpoint

    async def delete(self, principal: Principal, endpoint_id: uuid.UUID) -> None:
        endpoint = await self._managed(principal, endpoint_id)
        await self.webhooks.delete(endpoint)
        await self._audit(principal, "webhook_endpoint.deleted", endpoint)

    async def rotate_secret(self, principal: Principal, endpoint_id: uuid.UUID) -> tuple[str, datetime]:
        endpoint = await self._managed(principal, endpoint_id)
        rotated = await self.webhooks.rotate_secret(endpoint)
        await self._audit(principal, "webhook_endpoint.secret_rotated", endpoint)
        return rotated

    async def deliveries(
        self,
        principal: Principal,
        endpoint_id: uuid.UUID,
        *,
        status: DeliveryStatus | None,
        limit: int,
        offset: int,
    ) -> tuple[Sequence[tuple[WebhookDelivery, uuid.UUID, str]], int]:
        endpoint = await self._managed(principal, endpoint_id)
        return await self.webhooks.deliveries(endpoint, status=status, limit=limit, offset=offset)

    async def attempts(
        self, principal: Principal, endpoint_id: uuid.UUID, delivery_id: uuid.UUID, *, limit: int, offset: int
    ) -> tuple[Sequence[WebhookAttempt], int]:
        endpoint = await self._managed(principal, endpoint_id)
        return await self.webhooks.attempts(endpoint, delivery_id, limit=limit, offset=offset)

    async def replay(
        self, principal: Principal, endpoint_id: uuid.UUID, delivery_id: uuid.UUID
    ) -> tuple[WebhookDelivery, Event]:
        endpoint = await self._managed(principal, endpoint_id)
        replayed = await self.webhooks.replay(endpoint, delivery_id)
        await self._audit(principal, "webhook_endpoint.delivery_replayed", endpoint, delivery_id=str(delivery_id))
        return replayed

    async def _managed(self, principal: Principal, endpoint_id: uuid.UUID) -> WebhookEndpoint:
        """The endpoint, if the caller manages its organisation; 404 to a caller outside it."""
        endpoint = await self.webhooks.endpoint(endpoint_id)
        try:
            await self._require_manager(principal, endpoint.organization_id)
        except NotFound:
            raise NotFound(Message("webhooks.endpoint-not-found", "webhook endpoint not found")) from None
        return endpoint

    async def _require_manager(self, principal: Principal, organization_id: uuid.UUID) -> None:
        """An API key of the organisation (its scope was checked by the route), or one of its owners and
        admins; 404 to outsiders, 403 to its other members."""
        await self.accounts.acting_for(principal, organization_id)
        if not await self._manages(principal, organization_id):
            raise Forbidden(
                Message(
                    "webhooks.managers-only", "only the organisation's owners and admins manage its webhook endpoints"
                )
            )

    async def _manages(self, principal: Principal, organization_id: uuid.UUID) -> bool:
        if principal.is_api_key:
            return principal.key_organization_id == organization_id
        return await self.accounts.member_role(principal, organization_id) in MANAGING_ROLES

    async def _audit(self, principal: Principal, action: str, endpoint: WebhookEndpoint, **extra: str) -> None:
        """An entry naming the endpoint, its organisation and what it receives; never its URL (which may carry
        a token) or a secret."""
        await self.audit.record(
            actor=principal.actor,
            action=action,
            object_type=OBJECT_TYPE,
            object_id=endpoint.id,
            payload={
                "organization_id": str(endpoint.organization_id),
                "event_types": list(endpoint.event_types),
                "enabled": endpoint.enabled,
                **extra,
            },
        )
