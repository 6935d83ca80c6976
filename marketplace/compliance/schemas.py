"""Response shapes of the compliance API."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import Field

from marketplace.compliance.contract import Decision, Outcome, Severity, Stage
from marketplace.compliance.engine import Verdict
from marketplace.compliance.models import StoredVerdict
from marketplace.compliance.rulebook import ActiveRule, Rulebook
from marketplace.kit.i18n import Language, localize
from marketplace.kit.schemas import ResponseBody


class FindingRead(ResponseBody):
    rule_id: str
    check: str
    outcome: Outcome
    message: str = Field(description="in the response's language (its Content-Language), chosen by Accept-Language")
    message_id: str | None = Field(
        None, description="the message's stable id, the same in every language (none on findings stored before ids)"
    )
    evidence: dict[str, Any]
    basis: list[str]
    follows_from: str | None = Field(
        None, description="the failed check this one follows from (not made: one missing declaration fails once)"
    )

    @classmethod
    def of(cls, finding: Mapping[str, Any], language: Language) -> FindingRead:
        """A finding as stored (`Finding.as_json`), its message rendered in `language`."""
        message_id = finding.get("message_id")
        return cls(
            rule_id=finding["rule_id"],
            check=finding["check"],
            outcome=finding["outcome"],
            message=localize(language, message_id, finding["message"], finding.get("params")),
            message_id=message_id,
            evidence=finding["evidence"],
            basis=finding["basis"],
            follows_from=finding.get("follows_from"),
        )

    @classmethod
    def all_of(cls, findings: list[dict[str, Any]], language: Language) -> list[FindingRead]:
        return [cls.of(f, language) for f in findings]


class VerdictRead(ResponseBody):
    id: uuid.UUID | None = None
    stage: Stage
    decision: Decision
    findings: list[FindingRead]
    rulebook_fingerprint: str
    evaluated_at: datetime

    @classmethod
    def of_verdict(cls, verdict: Verdict, language: Language) -> VerdictRead:
        """A verdict not stored (a preview): no id."""
        return cls(
            stage=verdict.stage,
            decision=verdict.decision,
            findings=FindingRead.all_of([f.as_json() for f in verdict.findings], language),
            rulebook_fingerprint=verdict.rulebook_fingerprint,
            evaluated_at=verdict.evaluated_at,
        )

    @classmethod
    def of_stored(cls, stored: StoredVerdict, language: Language) -> VerdictRead:
        return cls(
            id=stored.id,
            stage=stored.stage,
            decision=stored.decision,
            findings=FindingRead.all_of(stored.findings, language),
            rulebook_fingerprint=stored.rulebook_fingerprint,
            evaluated_at=stored.created_at,
        )


class VerdictBrief(ResponseBody):
    """What an order's answer says of its verdict: the decision, the rulebook that made it and the findings
    that failed or held it for review; the whole verdict is the order's (`GET /api/v1/orders/{id}`)."""

    id: uuid.UUID
    decision: Decision
    findings: list[FindingRead] = Field(description="the findings that failed or held the trade for review")
    rulebook_fingerprint: str

    @classmethod
    def of(cls, verdict: Verdict, verdict_id: uuid.UUID, language: Language) -> VerdictBrief:
        return cls(
            id=verdict_id,
            decision=verdict.decision,
            findings=FindingRead.all_of([f.as_json() for f in verdict.failures()], language),
            rulebook_fingerprint=verdict.rulebook_fingerprint,
        )


class RuleRead(ResponseBody):
    id: str
    title: str = Field(description="in the response's language (its Content-Language), chosen by Accept-Language")
    version: str
    stages: list[Stage]
    severity: Severity
    basis: list[str]
    parameters: dict[str, Any]
    source: str

    @classmethod
    def of(cls, active: ActiveRule, language: Language) -> RuleRead:
        rule = active.rule
        return cls(
            id=rule.id,
            # a rule declares its title in both languages (the plugin contract)
            title=rule.title_zh if language is Language.ZH_CN else rule.title_en,
            version=rule.version,
            stages=sorted(rule.stages, key=list(Stage).index),
            severity=active.severity,
            basis=list(rule.basis),
            parameters=rule.params,
            source=type(rule).__module__,
        )


class RulebookRead(ResponseBody):
    items: list[RuleRead]
    disabled: list[str]
    fingerprint: str

    @classmethod
    def of(cls, rulebook: Rulebook, language: Language) -> RulebookRead:
        return cls(
            items=[RuleRead.of(a, language) for a in rulebook.rules],
            disabled=list(rulebook.disabled),
            fingerprint=rulebook.fingerprint,
        )
