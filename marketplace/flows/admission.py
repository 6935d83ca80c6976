"""Admission: an organisation asks to be admitted and the rulebook's admission stage decides first:
admitted, rejected with findings, or held for an administrator."""

from __future__ import annotations

import uuid

from marketplace.accounts.models import Organization, OrganizationStatus
from marketplace.accounts.principal import Principal
from marketplace.accounts.service import AccountService
from marketplace.compliance.contract import Decision, Stage
from marketplace.compliance.models import StoredVerdict
from marketplace.compliance.service import ComplianceService
from marketplace.compliance.snapshots import Snapshot
from marketplace.flows.facts import organization_facts

ADMISSION_STATUS = {
    Decision.ACCEPTED: OrganizationStatus.ADMITTED,
    Decision.REVIEW: OrganizationStatus.UNDER_REVIEW,
    Decision.REJECTED: OrganizationStatus.REJECTED,
}


class Admission:
    def __init__(self, accounts: AccountService, compliance: ComplianceService) -> None:
        self.accounts = accounts
        self.compliance = compliance

    async def request(self, principal: Principal, organization_id: uuid.UUID) -> tuple[Organization, StoredVerdict]:
        organization = await self.accounts.admission_candidate(principal, organization_id)
        stored, verdict = await self.compliance.judge(
            stage=Stage.ADMISSION,
            subject_type="organization",
            subject_id=organization.id,
            snapshot=Snapshot(organization=organization_facts(organization)),
            actor=principal.actor,
        )
        reason = "; ".join(f.check for f in verdict.failures()) or None
        await self.accounts.record_admission(organization, ADMISSION_STATUS[verdict.decision], principal.actor, reason)
        return organization, stored
