"""HTTP endpoints of the payments domain: a provider's payout account, and the Stripe webhook."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody

from marketplace.accounts.models import Scope
from marketplace.flows.payment import Payment
from marketplace.payments.schemas import PaymentAccountRead, PaymentAccountUpdate, WebhookReceipt
from marketplace.payments.service import PaymentsService
from marketplace.web.principal import AUTHENTICATED, Access, Caller
from marketplace.web.problems import PROBLEM_MEDIA_TYPE, ProblemDetails, problem_responses

GATEWAY_ERROR = {
    502: ResponseSpec(
        data_container=ProblemDetails,
        description="The payment gateway failed or refused the call; nothing was changed",
        media_type=PROBLEM_MEDIA_TYPE,
        generate_examples=False,
    )
}


class PaymentAccountController(Controller):
    path = "/api/v1/organizations"
    tags = ["money"]
    dependencies = AUTHENTICATED

    @get(
        "/{organization_id:uuid}/payment-account",
        responses=problem_responses(401, 403, 404),
        opt={"scope": Scope.PAYOUTS_READ},
    )
    async def payment_account(
        self,
        organization_id: FromPath[uuid.UUID],
        principal: Caller,
        payments: NamedDependency[PaymentsService],
    ) -> PaymentAccountRead:
        """Where the organisation's payouts go, and whether the gateway lets them through."""
        account_id, enabled = await payments.payment_account(principal, organization_id)
        return PaymentAccountRead(
            organization_id=organization_id,
            gateway=payments.gateway.name,
            account_id=account_id,
            payouts_enabled=enabled,
        )

    @put(
        "/{organization_id:uuid}/payment-account",
        responses={**problem_responses(401, 403, 404, 409, 422), **GATEWAY_ERROR},
        opt={"scope": Access.PERSON},
    )
    async def set_payment_account(
        self,
        organization_id: FromPath[uuid.UUID],
        data: JSONBody[PaymentAccountUpdate],
        principal: Caller,
        payments: NamedDependency[PaymentsService],
    ) -> PaymentAccountRead:
        """Set a provider's payout account: with Stripe, a Connect account id (`acct_...`) that the
        gateway confirms is connected to the platform; with the local gateway, any id. Owners and
        admins of the provider only."""
        account = await payments.set_payment_account(principal, organization_id, data.account_id)
        return PaymentAccountRead(
            organization_id=organization_id,
            gateway=payments.gateway.name,
            account_id=account.id,
            payouts_enabled=account.payouts_enabled,
        )


class WebhookController(Controller):
    """Gateways call these without credentials: the signature on the body is the authentication."""

    path = "/api/v1/webhooks"
    tags = ["money"]

    @post(
        "/stripe", status_code=200, responses={**problem_responses(404), **GATEWAY_ERROR}, opt={"scope": Access.PUBLIC}
    )
    async def stripe(
        self,
        request: Request[Any, Any, State],
        payments: NamedDependency[PaymentsService],
        payment: NamedDependency[Payment],
    ) -> WebhookReceipt:
        """Receive a Stripe event: verified on the raw body with the endpoint secret (`Stripe-Signature`),
        recorded once by its id, and taken as a prompt to fetch the PaymentIntent again. 400 when it
        does not verify (nothing is recorded); 404 when the service does not use Stripe."""
        payments.require_gateway("stripe")
        body = await request.body()
        status = await payment.receive_webhook(body, request.headers.get("stripe-signature", ""))
        return WebhookReceipt.model_validate({"status": status})
