"""A stored verdict as the console shows it: every finding with its rule's title in both languages, the check,
the outcome and the evidence; the snapshot that was judged; the rulebook's fingerprint, and whether it is the
rulebook in force."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from marketplace.compliance.models import StoredVerdict
from marketplace.compliance.rulebook import Rulebook
from marketplace.compliance.schemas import FindingRead, VerdictRead
from marketplace.compliance.service import ComplianceService
from marketplace.kit.i18n import Language


@dataclass(frozen=True)
class ShownFinding:
    finding: FindingRead
    title_en: str
    title_zh: str
    evidence: str


@dataclass(frozen=True)
class ShownVerdict:
    verdict: VerdictRead
    findings: list[ShownFinding]
    snapshot: str
    current_rulebook: bool


def pretty(document: Any) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True, default=str)


async def shown_verdict(
    compliance: ComplianceService, rulebook: Rulebook, stored: StoredVerdict | None, language: Language
) -> ShownVerdict | None:
    if stored is None:
        return None
    verdict = VerdictRead.of_stored(stored, language)
    snapshot = await compliance.snapshot(stored)
    findings = []
    for finding in verdict.findings:
        active = rulebook.get(finding.rule_id)
        # a rule since disabled or uninstalled is named by its id
        title_en = active.rule.title_en if active else finding.rule_id
        title_zh = active.rule.title_zh if active else finding.rule_id
        findings.append(ShownFinding(finding, title_en, title_zh, pretty(finding.evidence)))
    return ShownVerdict(
        verdict=verdict,
        findings=findings,
        snapshot=pretty(snapshot.model_dump(mode="json", exclude_none=True)),
        current_rulebook=stored.rulebook_fingerprint == rulebook.fingerprint,
    )
