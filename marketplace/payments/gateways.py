"""Which payment gateway the service uses: `PAYMENT_GATEWAY` chooses, the settings configure it."""

from __future__ import annotations

from marketplace.config import Settings
from marketplace.payments.gateway import PaymentGateway
from marketplace.payments.local import LocalGateway
from marketplace.payments.stripe_gateway import StripeGateway

GATEWAYS = ("local", "stripe")


def gateway_from_settings(settings: Settings) -> PaymentGateway:
    """A new gateway; raises ValueError, naming the setting, when it cannot be configured."""
    if settings.payment_gateway == "local":
        return LocalGateway()
    if settings.payment_gateway == "stripe":
        return StripeGateway(
            api_key=settings.stripe_api_key or "",
            webhook_secret=settings.stripe_webhook_secret or "",
            api_base=settings.stripe_api_base,
        )
    raise ValueError(f"PAYMENT_GATEWAY must be one of {', '.join(GATEWAYS)}, got {settings.payment_gateway!r}")
