"""HTTP endpoints of the payments domain: a provider's payout account, a buyer's payment method for recurring
charges, and the Stripe webhook."""

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
from marketplace.payments.gateway import SetupState
from marketplace.payments.schemas import (
    PaymentAccountRead,
    PaymentAccountUpdate,
    PaymentMethodConfirm,
    PaymentMethodRead,
    PaymentMethodSetupRead,
    WebhookReceipt,
)
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


class PaymentMethodController(Controller):
    path = "/api/v1/organizations"
    tags = ["billing"]
    dependencies = AUTHENTICATED

    @get(
        "/{organization_id:uuid}/payment-method",
        responses=problem_responses(401, 403, 404),
        opt={"scope": Scope.BILLING_READ},
    )
    async def payment_method(
        self, organization_id: FromPath[uuid.UUID], principal: Caller, payments: NamedDependency[PaymentsService]
    ) -> PaymentMethodRead:
        """Whether the organisation saved a payment method for its usage statements and subscription renewals (the
        local gateway needs none)."""
        saved = await payments.visible_saved_method(principal, organization_id)
        return PaymentMethodRead(
            organization_id=organization_id,
            gateway=payments.gateway.name,
            saved=bool(saved and saved.payment_method),
        )

    @post(
        "/{organization_id:uuid}/payment-method/setup",
        status_code=201,
        responses={**problem_responses(401, 403, 404), **GATEWAY_ERROR},
        opt={"scope": Access.PERSON},
    )
    async def setup(
        self, organization_id: FromPath[uuid.UUID], principal: Caller, payments: NamedDependency[PaymentsService]
    ) -> PaymentMethodSetupRead:
        """Start saving the organisation's payment method for the charges it is not present for: with Stripe, a
        SetupIntent on its Customer (created once) whose `client_secret` the buyer's client confirms with Stripe;
        the method is saved when Stripe reports the setup succeeded (its webhook, or `.../payment-method/confirm`).
        With the local gateway it is saved at once. Owners and admins of the organisation only."""
        setup = await payments.setup_payment_method(principal, organization_id)
        return _setup_read(organization_id, payments.gateway.name, setup)

    @post(
        "/{organization_id:uuid}/payment-method/confirm",
        status_code=200,
        responses={**problem_responses(400, 401, 403, 404, 409), **GATEWAY_ERROR},
        opt={"scope": Access.PERSON},
    )
    async def confirm(
        self,
        organization_id: FromPath[uuid.UUID],
        data: JSONBody[PaymentMethodConfirm],
        principal: Caller,
        payments: NamedDependency[PaymentsService],
    ) -> PaymentMethodSetupRead:
        """The setup the buyer's client confirmed: fetched from the gateway and, if it succeeded for this
        organisation, its payment method saved (409 while it has not succeeded; 404 for another's)."""
        setup = await payments.confirm_setup(principal, organization_id, data.setup_reference)
        return _setup_read(organization_id, payments.gateway.name, setup)


def _setup_read(organization_id: uuid.UUID, gateway: str, setup: SetupState) -> PaymentMethodSetupRead:
    return PaymentMethodSetupRead(
        organization_id=organization_id,
        gateway=gateway,
        setup_reference=setup.reference,
        client_secret=None if setup.succeeded else setup.client_secret,
        saved=bool(setup.succeeded and setup.payment_method),
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
