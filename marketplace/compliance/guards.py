"""The rulebook in force, as handlers declare it."""

from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from marketplace.compliance.rulebook import Rulebook


def provide_rulebook(request: Request[Any, Any, State]) -> Rulebook:
    rulebook: Rulebook = request.app.state.rulebook
    return rulebook


CurrentRulebook = NamedDependency[Rulebook]
RULEBOOK = {"rulebook": Provide(provide_rulebook, sync_to_thread=False)}
