"""The rulebook as the public sees it, and the preview of the verdict a trade would get."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from marketplace.accounts.models import Scope
from marketplace.compliance.rulebook import Rulebook
from marketplace.compliance.schemas import FindingRead, RulebookRead
from marketplace.flows.trading import Trading
from marketplace.orders.schemas import PreviewRead, TradeRequest
from marketplace.web.language import RequestLanguage
from marketplace.web.principal import AUTHENTICATED, Access, Caller
from marketplace.web.problems import problem_responses


class RulesController(Controller):
    path = "/api/v1/rules"
    tags = ["compliance"]

    @get("/", responses=problem_responses(), opt={"scope": Access.PUBLIC})
    async def list_rules(self, rulebook: NamedDependency[Rulebook], language: RequestLanguage) -> RulebookRead:
        """Every enabled rule in evaluation order, with its severity and parameters, and the
        fingerprint stored with every verdict."""
        return RulebookRead.of(rulebook, language)


class TradePreviewController(Controller):
    path = "/api/v1/compliance"
    tags = ["compliance"]
    dependencies = AUTHENTICATED

    @post(
        "/preview", status_code=200, responses=problem_responses(401, 403, 404, 422), opt={"scope": Scope.ORDERS_WRITE}
    )
    async def preview(
        self,
        data: JSONBody[TradeRequest],
        principal: Caller,
        trading: NamedDependency[Trading],
        language: RequestLanguage,
    ) -> PreviewRead:
        """The verdict the trade stage would give this order now, exactly as placing it would; writes nothing."""
        trade, verdict = await trading.preview(principal, data)
        return PreviewRead(
            decision=verdict.decision,
            findings=FindingRead.all_of([f.as_json() for f in verdict.findings], language),
            rulebook_fingerprint=verdict.rulebook_fingerprint,
            amount_minor=trade.amount_minor,
            currency=trade.currency,
        )
