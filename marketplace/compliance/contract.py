"""The rule contract: what a rule declares, what it returns, and the words of a verdict.

A rule is a class with the declarations below and a pure `evaluate(ctx)`: no database, no
network, no clock except `ctx.now`. Rules are found through the entry-point group
`marketplace.rules`; a third-party package adds one the same way the built-in ones are added.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

from marketplace.compliance.snapshots import Snapshot

ENTRY_POINT_GROUP = "marketplace.rules"
EMPTY_EVIDENCE: Mapping[str, Any] = MappingProxyType({})


class Stage(enum.StrEnum):
    ADMISSION = "admission"
    LISTING = "listing"
    TRADE = "trade"
    DELIVERY = "delivery"
    SETTLEMENT = "settlement"


class Outcome(enum.StrEnum):
    PASS = "pass"  # noqa: S105 - an outcome, not a password
    FAIL = "fail"
    REVIEW = "review"
    NOT_APPLICABLE = "not_applicable"


class Severity(enum.StrEnum):
    """What a rule's failure does: block the act, hold it for review, or only warn."""

    BLOCK = "block"
    REVIEW = "review"
    WARN = "warn"


class Decision(enum.StrEnum):
    ACCEPTED = "accepted"
    REVIEW = "review"
    REJECTED = "rejected"


class Text(NamedTuple):
    """A message before it is rendered: a stable id (`R4.cost-declared.missing`), its English template with
    `{name}` placeholders, and the values they name. The English rendering is the finding's `message`; the
    message catalogs (`marketplace.kit.i18n`) render the same id and values in another language."""

    id: str
    template: str
    params: Mapping[str, Any] = EMPTY_EVIDENCE

    def render(self) -> str:
        return self.template.format_map(english_values(self.params))


def text(message_id: str, template: str, **params: Any) -> Text:
    """A message whose values are kept as JSON: a verdict is stored as JSON and rendered again, in any
    language, long after the objects that made it are gone. A value may be a list of messages (the several
    problems one finding names): each is kept with its id and values, to be rendered in the same language."""
    return Text(message_id, template, {name: _json_value(value) for name, value in params.items()})


def _json_value(value: Any) -> Any:
    if isinstance(value, list) and value and all(isinstance(part, Text) for part in value):
        return [{"message_id": part.id, "params": dict(part.params), "message": part.render()} for part in value]
    return value if value is None or isinstance(value, str | int | float) else str(value)


def english_values(params: Mapping[str, Any]) -> Mapping[str, Any]:
    """The values as the English template reads them: a list of messages joined by semicolons."""
    if not any(isinstance(value, list) for value in params.values()):
        return params
    return {
        name: "; ".join(part["message"] for part in value) if isinstance(value, list) else value
        for name, value in params.items()
    }


class Finding(NamedTuple):
    """One check's result. A named tuple: immutable, and cheap to make (a verdict holds dozens).

    `message` is the English rendering; `message_id` and `params` let it be rendered in another language
    (a finding made from plain text, such as a third-party rule's, has no id and is shown as it is).
    `follows_from` names the check whose failure decided this one (one missing declaration fails once: the
    checks that depend on it are `not_applicable`, following from it, and still listed)."""

    rule_id: str
    check: str
    outcome: Outcome
    message: str
    evidence: Mapping[str, Any] = EMPTY_EVIDENCE
    basis: tuple[str, ...] = ()
    message_id: str | None = None
    params: Mapping[str, Any] = EMPTY_EVIDENCE
    follows_from: str | None = None

    def as_json(self) -> dict[str, Any]:
        described = {
            "rule_id": self.rule_id,
            "check": self.check,
            "outcome": self.outcome.value,
            "message": self.message,
            "message_id": self.message_id,
            "params": dict(self.params),
            "evidence": dict(self.evidence),
            "basis": list(self.basis),
        }
        if self.follows_from is not None:
            described["follows_from"] = self.follows_from
        return described


# What a rule says: a catalogued message, or plain text (shown as it is, in every language).
Message = Text | str


def make_finding(
    rule_id: str,
    check: str,
    outcome: Outcome,
    message: Message,
    evidence: Mapping[str, Any] = EMPTY_EVIDENCE,
    basis: tuple[str, ...] = (),
) -> Finding:
    """A finding whose message is rendered in English now and keeps its id and values for other languages."""
    if isinstance(message, str):
        return Finding(rule_id, check, outcome, message, evidence, basis)
    return Finding(rule_id, check, outcome, message.render(), evidence, basis, message.id, message.params)


@dataclass(frozen=True, slots=True)
class RuleContext:
    """What a rule may look at: the frozen snapshot, the stage, and the time of evaluation."""

    stage: Stage
    now: datetime
    snapshot: Snapshot


class Rule:
    """Base class of every rule. Subclasses set the class attributes and implement `evaluate`.

    `parameters` holds the defaults; the rulebook may override them, and the engine makes one
    instance per rulebook with the merged values in `self.params`. `messages` holds the English template
    of every message the rule says, by key; `self.text(key, ...)` names one, as `<rule id>.<key>`, and the
    message catalogs translate each (a test walks them all)."""

    id: ClassVar[str]
    title_zh: ClassVar[str]
    title_en: ClassVar[str]
    version: ClassVar[str]
    basis: ClassVar[tuple[str, ...]]
    stages: ClassVar[frozenset[Stage]]
    parameters: ClassVar[Mapping[str, Any]] = {}
    messages: ClassVar[Mapping[str, str]] = {}
    default_severity: ClassVar[Severity] = Severity.BLOCK

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        self.params: dict[str, Any] = {**self.parameters, **(params or {})}

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        raise NotImplementedError

    # Helpers for subclasses: every finding carries the rule's id and basis.

    def text(self, key: str, **params: Any) -> Text:
        """The rule's message `key` (declared in `messages`) with the values its placeholders name."""
        return text(f"{self.id}.{key}", self.messages[key], **params)

    def finding(
        self,
        check: str,
        outcome: Outcome,
        message: Message,
        evidence: Mapping[str, Any] | None = None,
        basis: tuple[str, ...] | None = None,
    ) -> Finding:
        return make_finding(
            self.id,
            f"{self.id}.{check}",
            outcome,
            message,
            evidence or EMPTY_EVIDENCE,
            self.basis if basis is None else basis,
        )

    def passed(self, check: str, message: Message, evidence: Mapping[str, Any] | None = None) -> Finding:
        return self.finding(check, Outcome.PASS, message, evidence)

    def failed(self, check: str, message: Message, evidence: Mapping[str, Any] | None = None) -> Finding:
        return self.finding(check, Outcome.FAIL, message, evidence)

    def review(self, check: str, message: Message, evidence: Mapping[str, Any] | None = None) -> Finding:
        return self.finding(check, Outcome.REVIEW, message, evidence)

    def not_applicable(self, check: str, message: Message, evidence: Mapping[str, Any] | None = None) -> Finding:
        return self.finding(check, Outcome.NOT_APPLICABLE, message, evidence)

    def following(self, check: str, cause: Finding, message: Message) -> Finding:
        """A check that cannot be made because `cause` (this rule's failed check) failed: not applicable,
        following from it, with the cause's evidence, so one missing declaration is one failure."""
        finding = self.finding(check, Outcome.NOT_APPLICABLE, message, cause.evidence)
        return finding._replace(follows_from=cause.check)

    def check(
        self,
        check: str,
        ok: bool,
        passed: Message,
        failed: Message,
        evidence: Mapping[str, Any] | None = None,
        *,
        outcome_if_not: Outcome = Outcome.FAIL,
    ) -> Finding:
        """One finding for a yes/no check: `passed` when ok, else `failed` with `outcome_if_not`."""
        if ok:
            return self.finding(check, Outcome.PASS, passed, evidence)
        return self.finding(check, outcome_if_not, failed, evidence)
