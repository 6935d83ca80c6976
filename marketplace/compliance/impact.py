"""Impact analysis: what a candidate rulebook would change for every currently active subject.

Each active subject's latest stored snapshot is replayed under the candidate; nothing is
written. Active subjects come from their owning domains."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.service import AccountService
from marketplace.compliance.contract import Stage
from marketplace.compliance.rulebook import Rulebook
from marketplace.compliance.service import ComplianceService


async def impact_report(session: AsyncSession, current: Rulebook, candidate: Rulebook) -> dict[str, Any]:
    compliance = ComplianceService(session, current)
    admitted = [str(i) for i in await AccountService(session).admitted_organization_ids()]
    rows = await compliance.impact(candidate, "organization", admitted, Stage.ADMISSION)
    changed = [row for row in rows if row.changed]
    return {
        "current_fingerprint": current.fingerprint,
        "candidate_fingerprint": candidate.fingerprint,
        "subjects_checked": len(rows),
        "subjects_changed": len(changed),
        "would_now_fail": sum(1 for row in changed if row.candidate_decision.value == "rejected"),
        "changes": [
            {
                "subject_type": row.subject_type,
                "subject_id": row.subject_id,
                "stage": row.stage.value,
                "current_decision": row.current_decision.value,
                "candidate_decision": row.candidate_decision.value,
                "newly_failing": list(row.newly_failing),
                "no_longer_failing": list(row.no_longer_failing),
            }
            for row in changed
        ],
    }
