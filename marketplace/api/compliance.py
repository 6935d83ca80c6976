"""The rulebook as the public sees it."""

from litestar import Controller, get
from litestar.di import NamedDependency

from marketplace.compliance.rulebook import Rulebook
from marketplace.compliance.schemas import RulebookRead
from marketplace.web.problems import problem_responses


class RulesController(Controller):
    path = "/api/v1/rules"
    tags = ["compliance"]

    @get("/", responses=problem_responses())
    async def list_rules(self, rulebook: NamedDependency[Rulebook]) -> RulebookRead:
        """Every enabled rule in evaluation order, with its severity and parameters, and the
        fingerprint stored with every verdict."""
        return RulebookRead.of(rulebook)
