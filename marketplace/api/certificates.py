"""A completed trade's certificate, for its parties and administrators: JSON, or a printable bilingual page."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from litestar import Controller, Request, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, Schema
from litestar.params import FromPath, QueryParameter
from litestar.response import Template

from marketplace.accounts.models import Scope
from marketplace.certificates.page import PAGE_TEMPLATE, POLICY, STYLE
from marketplace.certificates.schemas import CertificateRead
from marketplace.certificates.service import CertificateService
from marketplace.web.principal import AUTHENTICATED, Caller
from marketplace.web.problems import problem_responses

HTML = "text/html"
PageFormat = Annotated[
    Literal["json", "html"] | None,
    QueryParameter(name="format", description="html: the printable page, whatever Accept says"),
]


@dataclass
class CertificateOperation(Operation):
    """The certificate answers JSON, or the page as HTML (`Accept: text/html` or `?format=html`)."""

    def __post_init__(self) -> None:
        answered = (self.responses or {}).get("200")
        if answered is not None and not isinstance(answered, dict) and hasattr(answered, "content"):
            page = OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))
            answered.content = {**(answered.content or {}), HTML: page}


class CertificateController(Controller):
    path = "/api/v1/orders"
    tags = ["orders"]
    dependencies = AUTHENTICATED

    @get(
        "/{order_id:uuid}/certificate",
        operation_class=CertificateOperation,
        responses=problem_responses(401, 403, 404, 409),
        opt={"scope": Scope.ORDERS_READ},
    )
    async def certificate(
        self,
        request: Request[Any, Any, State],
        order_id: FromPath[uuid.UUID],
        principal: Caller,
        certificates: NamedDependency[CertificateService],
        page_format: PageFormat = None,
    ) -> CertificateRead:
        """The trade certificate of a completed order (also once settled or paid out), for its buyer's and
        provider's members and administrators: a compact JWS the notary signs, which anyone verifies offline with
        /.well-known/jwks.json (`marketplace verify-certificate`). It names the parties with their USCC, the
        product version and its hosted data's digest, plan, amount, scenario, the trade verdict, the delivery
        receipts' digests, and the log entry of the order's completion with its inclusion proof against a signed
        tree head. The first certificate issued is kept: the same order answers the same document. JSON by
        default; `Accept: text/html` or `?format=html` gives a printable page, Chinese and English side by side.
        409 `certificate-unavailable`: the order has not completed, was refunded (a refunded trade has no
        certificate), or its completion is not yet in the log (retry after Retry-After seconds)."""
        issued = await certificates.certificate(principal, order_id)
        wanted = page_format or ("html" if request.accept.best_match(["application/json", HTML]) == HTML else "json")
        if wanted == "html":
            context = {"certificate": issued, "head": issued.head, "checked": issued.checked, "style": STYLE}
            return Template(  # type: ignore[return-value]
                PAGE_TEMPLATE, context=context, media_type=HTML, headers={"Content-Security-Policy": POLICY}
            )
        return CertificateRead(certificate=issued.signed, payload=issued.payload)
