"""Response shapes of the compliance API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from marketplace.compliance.contract import Decision, Outcome, Severity, Stage
from marketplace.compliance.engine import Verdict
from marketplace.compliance.models import StoredVerdict
from marketplace.compliance.rulebook import ActiveRule, Rulebook
from marketplace.kit.schemas import ResponseBody


class FindingRead(ResponseBody):
    rule_id: str
    check: str
    outcome: Outcome
    message: str
    evidence: dict[str, Any]
    basis: list[str]


class VerdictRead(ResponseBody):
    id: uuid.UUID | None = None
    stage: Stage
    decision: Decision
    findings: list[FindingRead]
    rulebook_fingerprint: str
    evaluated_at: datetime

    @classmethod
    def of_verdict(cls, verdict: Verdict) -> VerdictRead:
        """A verdict not stored (a preview): no id."""
        return cls(
            stage=verdict.stage,
            decision=verdict.decision,
            findings=[FindingRead.model_validate(f.as_json()) for f in verdict.findings],
            rulebook_fingerprint=verdict.rulebook_fingerprint,
            evaluated_at=verdict.evaluated_at,
        )

    @classmethod
    def of_stored(cls, stored: StoredVerdict) -> VerdictRead:
        return cls(
            id=stored.id,
            stage=stored.stage,
            decision=stored.decision,
            findings=[FindingRead.model_validate(f) for f in stored.findings],
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
    def of(cls, verdict: Verdict, verdict_id: uuid.UUID) -> VerdictBrief:
        return cls.model_validate(
            {
                "id": verdict_id,
                "decision": verdict.decision,
                "findings": [f.as_json() for f in verdict.failures()],
                "rulebook_fingerprint": verdict.rulebook_fingerprint,
            }
        )


class RuleRead(ResponseBody):
    id: str
    title: dict[str, str]
    version: str
    stages: list[Stage]
    severity: Severity
    basis: list[str]
    parameters: dict[str, Any]
    source: str

    @classmethod
    def of(cls, active: ActiveRule) -> RuleRead:
        rule = active.rule
        return cls(
            id=rule.id,
            title={"zh": rule.title_zh, "en": rule.title_en},
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
    def of(cls, rulebook: Rulebook) -> RulebookRead:
        return cls(
            items=[RuleRead.of(a) for a in rulebook.rules],
            disabled=list(rulebook.disabled),
            fingerprint=rulebook.fingerprint,
        )
