"""The exchange's books: the audit chain (browse its entries, verify it), the ledger check with the balances of
every kind of account, and the rulebook in force with the impact analysis of a candidate uploaded here (the
same analysis as `marketplace rules impact`)."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.exceptions import ValidationException
from litestar.params import Body, QueryParameter
from litestar.response import Template

from marketplace.audit.service import AuditService
from marketplace.audit.transparency import TransparencyLog
from marketplace.compliance.errors import RulebookError, RuleLoadError
from marketplace.compliance.registry import load_rule_classes
from marketplace.compliance.rulebook import Rulebook, build_rulebook
from marketplace.compliance.schemas import RulebookRead
from marketplace.console.pages import PREFIX, SIGNED_IN, Admin, PageLanguage, Queries, page
from marketplace.console.verdicts import pretty
from marketplace.flows.books import Books
from marketplace.flows.rules_impact import RulesImpact
from marketplace.web.principal import Access
from marketplace.web.query import Text

AUDIT_PAGE = 50
# The ledger page lists this many problems of each kind at most, and says how many more there are.
PROBLEMS_SHOWN = 50
# A rulebook is a short TOML file; anything larger is not one.
MAX_RULEBOOK_BYTES = 65_536


def candidate_rulebook(content: bytes) -> Rulebook:
    """The installed rules under the uploaded configuration; refused (400) as `marketplace rules impact` would
    refuse the file, with the reason."""
    if len(content) > MAX_RULEBOOK_BYTES:
        raise ValidationException(detail="the rulebook file is too large")
    try:
        config = tomllib.loads(content.decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ValidationException(detail=f"the rulebook file is not valid TOML: {error}") from None
    try:
        return build_rulebook(load_rule_classes(), config)
    except (RulebookError, RuleLoadError) as error:
        raise ValidationException(detail=str(error)) from None


def capped(items: Sequence[Any]) -> tuple[Sequence[Any], int]:
    """The first PROBLEMS_SHOWN items, and how many more there are."""
    return items[:PROBLEMS_SHOWN], max(0, len(items) - PROBLEMS_SHOWN)


@dataclass
class RulebookUpload:
    rulebook: UploadFile


class BooksController(Controller):
    path = PREFIX
    include_in_schema = False
    dependencies = SIGNED_IN

    @get("/audit", opt={"scope": Access.ADMIN})
    async def audit(
        self,
        request: Request[Any, Any, Any],
        admin: Admin,
        page_language: PageLanguage,
        audit: NamedDependency[AuditService],
        queries: Queries,
        object_type: Text = None,
        object_id: Text = None,
        actor: Text = None,
        action: Text = None,
        offset: Annotated[int, QueryParameter(ge=0, le=10_000_000)] = 0,
    ) -> Template:
        """The entries, newest first, by object, actor and action."""
        chosen = {"object_type": object_type, "object_id": object_id, "actor": actor, "action": action}
        given = {name: value for name, value in chosen.items() if value}
        entries, total = await audit.search(
            object_type=object_type or None,
            object_id=object_id or None,
            actor=actor or None,
            action=action or None,
            limit=AUDIT_PAGE,
            offset=offset,
        )
        return page(
            request,
            "audit.html",
            page_language,
            entries=[(entry, pretty(entry.payload)) for entry in entries],
            total=total,
            offset=offset,
            page_size=AUDIT_PAGE,
            chosen={name: value or "" for name, value in chosen.items()},
            filter_query="&".join(f"{name}={value}" for name, value in given.items()),
            head=await queries.audit_head(),
            report=None,
        )

    @post("/audit/verify", opt={"scope": Access.ADMIN})
    async def verify(
        self,
        request: Request[Any, Any, Any],
        admin: Admin,
        page_language: PageLanguage,
        transparency: NamedDependency[TransparencyLog],
    ) -> Template:
        """Recompute the transparency log and check its signed heads (a read, but long: a button, not a link)."""
        return page(request, "chain.html", page_language, report=await transparency.verify())

    @get("/ledger", opt={"scope": Access.ADMIN})
    async def ledger(
        self,
        request: Request[Any, Any, Any],
        admin: Admin,
        page_language: PageLanguage,
        books: NamedDependency[Books],
        queries: Queries,
    ) -> Template:
        check = await books.check()
        problems = {
            "negative": capped(check.negative_accounts),
            "mismatched": capped(check.mismatched_accounts),
            "escrow": capped(check.escrow_mismatches),
        }
        return page(
            request, "ledger.html", page_language, check=check, problems=problems, balances=await queries.balances()
        )

    @get("/rules", opt={"scope": Access.ADMIN})
    async def rules(
        self,
        request: Request[Any, Any, Any],
        admin: Admin,
        page_language: PageLanguage,
        rulebook: NamedDependency[Rulebook],
    ) -> Template:
        return page(request, "rules.html", page_language, rulebook=_described(rulebook, page_language), report=None)

    @post("/rules/impact", opt={"scope": Access.ADMIN})
    async def impact(
        self,
        request: Request[Any, Any, Any],
        admin: Admin,
        page_language: PageLanguage,
        rulebook: NamedDependency[Rulebook],
        rules_impact: NamedDependency[RulesImpact],
        data: Annotated[RulebookUpload, Body(media_type=RequestEncodingType.MULTI_PART)],
    ) -> Template:
        """What the uploaded candidate would decide for every active subject; nothing is written."""
        candidate = candidate_rulebook(await data.rulebook.read())
        report = await rules_impact.report(candidate)
        return page(request, "rules.html", page_language, rulebook=_described(rulebook, page_language), report=report)


def _described(rulebook: Rulebook, language: Any) -> dict[str, Any]:
    described = RulebookRead.of(rulebook, language)
    return {
        "fingerprint": described.fingerprint,
        "disabled": described.disabled,
        "rules": [(rule, pretty(rule.parameters)) for rule in described.items],
    }
