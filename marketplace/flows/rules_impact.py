"""Impact analysis: what a candidate rulebook would change for every currently active subject.

Each active subject's latest stored snapshot is replayed under the candidate; nothing is
written. Active subjects come from their owning domains: admitted organisations (admission
stage) and open orders (trade stage: pending review, accepted, paid, delivered, completed or
disputed), each order replayed from the snapshot its trade verdict was given on."""

from __future__ import annotations

from typing import Any

from marketplace.accounts.service import AccountService
from marketplace.compliance.contract import Stage
from marketplace.compliance.rulebook import Rulebook
from marketplace.compliance.service import ComplianceService, ImpactRow
from marketplace.kit.progress import Progress, unreported
from marketplace.orders.service import OrderService

# Orders replayed per query: a bounded IN list, whatever the number of open orders.
ORDER_BATCH = 1000


class RulesImpact:
    def __init__(self, accounts: AccountService, orders: OrderService, compliance: ComplianceService) -> None:
        self.accounts = accounts
        self.orders = orders
        self.compliance = compliance

    async def report(self, candidate: Rulebook, progress: Progress = unreported) -> dict[str, Any]:
        """What `candidate` would decide, for every active subject, against the rulebook in force."""
        compliance, current = self.compliance, self.compliance.rulebook
        admitted = [str(i) for i in await self.accounts.admitted_organization_ids()]
        progress("organisations", 0, len(admitted))
        rows = await compliance.impact(candidate, "organization", admitted, Stage.ADMISSION)
        progress("organisations", len(admitted), len(admitted))
        checked = {"organization": len(rows), "order": 0}
        changed = [row for row in rows if row.changed]
        statuses = await self.orders.open_orders()
        order_ids = sorted(str(order_id) for order_id in statuses)
        progress("orders", 0, len(order_ids))
        for start in range(0, len(order_ids), ORDER_BATCH):
            batch = order_ids[start : start + ORDER_BATCH]
            replayed = await compliance.impact(candidate, "order", batch, Stage.TRADE)
            progress("orders", start + len(batch), len(order_ids))
            checked["order"] += len(replayed)
            changed.extend(row for row in replayed if row.changed)
        status_of = {str(order_id): status.value for order_id, status in statuses.items()}
        return _report(current, candidate, checked, changed, status_of)


def _report(
    current: Rulebook,
    candidate: Rulebook,
    checked: dict[str, int],
    changed: list[ImpactRow],
    status_of: dict[str, str],
) -> dict[str, Any]:
    def change(row: ImpactRow) -> dict[str, Any]:
        described: dict[str, Any] = {
            "subject_type": row.subject_type,
            "subject_id": row.subject_id,
            "stage": row.stage.value,
            "current_decision": row.current_decision.value,
            "candidate_decision": row.candidate_decision.value,
            "decision_changed": row.current_decision != row.candidate_decision,
            "newly_failing": list(row.newly_failing),
            "no_longer_failing": list(row.no_longer_failing),
        }
        if row.subject_type == "order":
            described["order_status"] = status_of.get(row.subject_id)
        return described

    return {
        "current_fingerprint": current.fingerprint,
        "candidate_fingerprint": candidate.fingerprint,
        "subjects_checked": sum(checked.values()),
        "subjects_checked_by_type": checked,
        "subjects_changed": len(changed),
        "would_now_fail": sum(1 for row in changed if row.candidate_decision.value == "rejected"),
        "changes": [change(row) for row in changed],
    }
