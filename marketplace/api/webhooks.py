"""HTTP endpoints of outbound webhooks: an organisation's endpoints, their secrets, deliveries and attempts."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from marketplace.accounts.models import Scope
from marketplace.events.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from marketplace.events.schemas import (
    WebhookAttemptRead,
    WebhookDeliveryRead,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointRead,
    WebhookEndpointUpdate,
    WebhookSecretRotated,
)
from marketplace.flows.webhook_endpoints import WebhookEndpoints
from marketplace.web.pagination import PAGED, Page, Paging
from marketplace.web.principal import AUTHENTICATED, Caller
from marketplace.web.problems import NO_STORE, problem_responses

Endpoints = NamedDependency[WebhookEndpoints]
MANAGE = {"scope": Scope.WEBHOOKS_MANAGE}


def endpoint_read(endpoint: WebhookEndpoint) -> WebhookEndpointRead:
    return WebhookEndpointRead.model_validate(endpoint)


def delivery_read(delivery: WebhookDelivery, event_id: uuid.UUID, event_type: str) -> WebhookDeliveryRead:
    return WebhookDeliveryRead.model_validate({**delivery.model_dump(), "event_id": event_id, "event_type": event_type})


class WebhookEndpointController(Controller):
    path = "/api/v1/webhook-endpoints"
    tags = ["webhooks"]
    dependencies = {**AUTHENTICATED, **PAGED}

    @post("/", cache_control=NO_STORE, responses=problem_responses(401, 403, 404, 422), opt=MANAGE)
    async def create(
        self, data: JSONBody[WebhookEndpointCreate], principal: Caller, webhook_endpoints: Endpoints
    ) -> WebhookEndpointCreated:
        """Create an endpoint for an organisation: it receives the events concerning it recorded from now on,
        of the types it names (`order.paid`, or a prefix ending in a dot, `order.`). Its signing secret is
        shown only in this response. A URL that is not https, or whose host is not a public address (unless
        WEBHOOK_ALLOWED_NETWORKS names it), answers 422 `webhook-url-refused`."""
        endpoint, secret = await webhook_endpoints.create(principal, data)
        return WebhookEndpointCreated.model_validate({**endpoint.model_dump(), "secret": secret})

    @get("/", responses=problem_responses(401, 403), opt=MANAGE)
    async def list_endpoints(
        self, principal: Caller, webhook_endpoints: Endpoints, page: Paging
    ) -> Page[WebhookEndpointRead]:
        """The endpoints of the organisations the caller manages (an API key: its own); never a secret."""
        rows, total = await webhook_endpoints.managed(principal, limit=page.limit, offset=page.offset)
        return Page(items=[endpoint_read(r) for r in rows], total=total, limit=page.limit, offset=page.offset)

    @get("/{endpoint_id:uuid}", responses=problem_responses(401, 403, 404), opt=MANAGE)
    async def read(
        self, endpoint_id: FromPath[uuid.UUID], principal: Caller, webhook_endpoints: Endpoints
    ) -> WebhookEndpointRead:
        """An endpoint of an organisation the caller manages; to others it does not exist."""
        return endpoint_read(await webhook_endpoints.read(principal, endpoint_id))

    @patch("/{endpoint_id:uuid}", responses=problem_responses(401, 403, 404, 422), opt=MANAGE)
    async def update(
        self,
        endpoint_id: FromPath[uuid.UUID],
        data: JSONBody[WebhookEndpointUpdate],
        principal: Caller,
        webhook_endpoints: Endpoints,
    ) -> WebhookEndpointRead:
        """Change the URL (checked as at creation), the event types, or turn it off and on. Turned on again,
        it receives the events recorded from then on, and the deliveries it had queued resume."""
        return endpoint_read(await webhook_endpoints.update(principal, endpoint_id, data))

    @delete("/{endpoint_id:uuid}", responses=problem_responses(401, 403, 404), opt=MANAGE)
    async def remove(self, endpoint_id: FromPath[uuid.UUID], principal: Caller, webhook_endpoints: Endpoints) -> None:
        """Delete an endpoint with its secrets, deliveries and attempts."""
        await webhook_endpoints.delete(principal, endpoint_id)

    @post(
        "/{endpoint_id:uuid}/rotate-secret",
        status_code=200,
        cache_control=NO_STORE,
        responses=problem_responses(401, 403, 404),
        opt=MANAGE,
    )
    async def rotate_secret(
        self, endpoint_id: FromPath[uuid.UUID], principal: Caller, webhook_endpoints: Endpoints
    ) -> WebhookSecretRotated:
        """A new signing secret, shown only in this response. The previous one goes on signing beside it for
        WEBHOOK_SECRET_OVERLAP_SECONDS: deliveries meanwhile carry both signatures."""
        secret, until = await webhook_endpoints.rotate_secret(principal, endpoint_id)
        return WebhookSecretRotated(endpoint_id=endpoint_id, secret=secret, previous_secret_expires_at=until)

    @get("/{endpoint_id:uuid}/deliveries", responses=problem_responses(401, 403, 404), opt=MANAGE)
    async def deliveries(
        self,
        endpoint_id: FromPath[uuid.UUID],
        principal: Caller,
        webhook_endpoints: Endpoints,
        page: Paging,
        status: Annotated[DeliveryStatus | None, QueryParameter()] = None,
    ) -> Page[WebhookDeliveryRead]:
        """The endpoint's deliveries, the latest event first."""
        rows, total = await webhook_endpoints.deliveries(
            principal, endpoint_id, status=status, limit=page.limit, offset=page.offset
        )
        return Page(items=[delivery_read(*row) for row in rows], total=total, limit=page.limit, offset=page.offset)

    @get(
        "/{endpoint_id:uuid}/deliveries/{delivery_id:uuid}/attempts",
        responses=problem_responses(401, 403, 404),
        opt=MANAGE,
    )
    async def attempts(
        self,
        endpoint_id: FromPath[uuid.UUID],
        delivery_id: FromPath[uuid.UUID],
        principal: Caller,
        webhook_endpoints: Endpoints,
        page: Paging,
    ) -> Page[WebhookAttemptRead]:
        """Every attempt at sending the delivery, oldest first: when, the status code, how long, the error, the
        start of the answer."""
        rows, total = await webhook_endpoints.attempts(
            principal, endpoint_id, delivery_id, limit=page.limit, offset=page.offset
        )
        return Page(
            items=[WebhookAttemptRead.model_validate(r) for r in rows],
            total=total,
            limit=page.limit,
            offset=page.offset,
        )

    @post(
        "/{endpoint_id:uuid}/deliveries/{delivery_id:uuid}/replay",
        status_code=202,
        responses=problem_responses(401, 403, 404, 409),
        opt=MANAGE,
    )
    async def replay(
        self,
        endpoint_id: FromPath[uuid.UUID],
        delivery_id: FromPath[uuid.UUID],
        principal: Caller,
        webhook_endpoints: Endpoints,
    ) -> WebhookDeliveryRead:
        """Send the delivery again: a new attempt at the next run of the webhook job (within
        WEBHOOK_INTERVAL_SECONDS, after the endpoint's earlier open deliveries), with the same `webhook-id`.
        409 while it is being sent."""
        delivery, event = await webhook_endpoints.replay(principal, endpoint_id, delivery_id)
        return delivery_read(delivery, event.id, event.type)
