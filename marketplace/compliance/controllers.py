"""The rulebook as the public sees it."""

from typing import Any

from litestar import Controller, Request, get
from litestar.datastructures import State

from marketplace.compliance.schemas import RulebookRead
from marketplace.errors import problem_responses


class RulesController(Controller):
    path = "/api/v1/rules"
    tags = ["compliance"]

    @get("/", responses=problem_responses())
    async def list_rules(self, request: Request[Any, Any, State]) -> RulebookRead:
        """Every enabled rule in evaluation order, with its severity and parameters, and the
        fingerprint stored with every verdict."""
        return RulebookRead.of(request.app.state.rulebook)
