"""Judging subjects with the rulebook, storing verdicts, previewing and impact analysis."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import msgspec
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.audit.service import AuditService
from marketplace.compliance.contract import Decision, Finding, Outcome, Stage
from marketplace.compliance.engine import RULE_ERROR_ID, Verdict, evaluate
from marketplace.compliance.models import StoredVerdict
from marketplace.compliance.parts import KINDS, Part, assemble, split
from marketplace.compliance.repository import VerdictRepository
from marketplace.compliance.rulebook import Rulebook
from marketplace.compliance.snapshots import Snapshot
from marketplace.kit import clock
from marketplace.kit.canonical import canonical_json
from marketplace.kit.ids import new_id
from marketplace.kit.memo import StampedMemo


@dataclass(frozen=True)
class ImpactRow:
    subject_type: str
    subject_id: str
    stage: Stage
    current_decision: Decision
    candidate_decision: Decision
    newly_failing: tuple[str, ...]
    no_longer_failing: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return self.current_decision != self.candidate_decision or bool(self.newly_failing or self.no_longer_failing)


@dataclass(frozen=True)
class VerdictRows:
    """A verdict's row and the rows of the snapshot parts it names, as `judge` stores them."""

    verdict: dict[str, Any]
    parts: list[dict[str, Any]]
    findings_document: msgspec.Raw | None = None  # the verdict's findings encoded once, if they were

    @property
    def id(self) -> uuid.UUID:
        verdict_id = self.verdict["id"]
        assert isinstance(verdict_id, uuid.UUID)
        return verdict_id

    def written(self) -> dict[str, Any]:
        """The verdict's row as a statement writes it: its findings as the JSON they were encoded to once."""
        if self.findings_document is None:
            return self.verdict
        return {**self.verdict, "findings": self.findings_document}


NO_PARTS: Mapping[str, Part] = MappingProxyType({})


def stored_form(snapshot: Snapshot, known: Mapping[str, Part] = NO_PARTS) -> tuple[dict[str, Any], dict[str, Part]]:
    """The snapshot as it is stored: its inline facts and its parts by role, in the snapshot's order. The parts
    in `known` (each `part_of` the snapshot's facts in that role, digested once by their keeper) are taken as
    they are; the rest are dumped and digested here."""
    inline, parts = split(snapshot.model_dump(mode="json", exclude=set(known)))
    return inline, {role: known.get(role) or parts[role] for role in KINDS if role in known or role in parts}


def verdict_rows(
    values: dict[str, Any],
    inline: dict[str, Any],
    parts: Mapping[str, Part],
    findings_document: msgspec.Raw | None = None,
) -> VerdictRows:
    """The rows that store a verdict (`values`, without its snapshot) and the snapshot it judged, in its
    stored form. The parts come in digest order, so that two transactions inserting the same new parts take
    their locks in one order (PostgreSQL) and cannot deadlock."""
    verdict = {**values, "snapshot": inline, "parts": {role: part.digest for role, part in parts.items()}}
    unique = {part.digest: part.row() for part in parts.values()}  # one organisation may play two roles
    return VerdictRows(verdict, [unique[digest] for digest in sorted(unique)], findings_document)


def verdict_audit_facts(verdict_id: uuid.UUID, verdict: Verdict) -> dict[str, Any]:
    """What the audit log keeps of a stored verdict."""
    return {
        "verdict_id": str(verdict_id),
        "stage": verdict.stage.value,
        "decision": verdict.decision.value,
        "rulebook_fingerprint": verdict.rulebook_fingerprint,
        "failed_checks": [f.check for f in verdict.failures()],
    }


MAX_HISTORY = 200
# The checks verdicts fail or hold for review, by stage, rule and outcome, counted as verdicts are given (for
# `GET /metrics`: which rules bite). A rejected trade's verdict is kept, so nearly every count is a stored one.
FINDINGS = Counter(
    "marketplace_verdict_findings", "Failed and held checks of verdicts given", ["stage", "rule", "outcome"]
)


def failed_checks(verdict: Verdict) -> list[dict[str, str]]:
    """The rule and check of each failed finding (not those held for review), stored beside the findings."""
    return [{"rule_id": f.rule_id, "check": f.check} for f in verdict.findings if f.outcome is Outcome.FAIL]


@dataclass(frozen=True, slots=True)
class Judged:
    """What the rulebook found on some facts, in the forms a verdict is answered and stored in."""

    decision: Decision
    findings: tuple[Finding, ...]
    findings_json: list[dict[str, Any]]  # as stored; shared by every verdict that reuses it, never changed
    failed_checks: list[dict[str, str]]
    findings_document: msgspec.Raw  # `findings_json` encoded, written as it is by every verdict that reuses it


# The judgements a process made, by stage, rulebook (its fingerprint) and facts (the parts' digests and the
# inline facts' canonical JSON), under the stamp of the day (UTC) they were made: rules are pure functions of
# the snapshot and read the clock by its date (as the delivery stage's kept acceptances rely on too), so the
# same facts under the same rulebook the same day get the same findings. An edited organisation, a new
# product version, another plan or rulebook are other facts: another key.
Judgements = StampedMemo[tuple[Any, ...], Judged]
JUDGEMENTS_KEPT = 2_000  # a trade's findings are ~10 kB of JSON: ~20 MB at most
JUDGEMENT_REUSE_SECONDS = 86_400.0


def count_findings(verdict: Verdict) -> None:
    """Count a stored verdict's failed and held checks: once it is written, so that a verdict made and then not
    stored (an order judged again on a changed listing, or sold out) is not counted."""
    for finding in verdict.findings:
        if finding.outcome in (Outcome.FAIL, Outcome.REVIEW):
            FINDINGS.labels(verdict.stage.value, finding.rule_id, finding.outcome.value).inc()


class ComplianceService:
    def __init__(
        self, session: AsyncSession, rulebook: Rulebook, audit: AuditService, judgements: Judgements | None = None
    ) -> None:
        """`judgements`: the process's (`marketplace.wiring.Runtime`); without it, this service's own."""
        self.repository = VerdictRepository(session)
        self.audit = audit
        self.rulebook = rulebook
        self.judgements = StampedMemo(JUDGEMENTS_KEPT, JUDGEMENT_REUSE_SECONDS) if judgements is None else judgements

    def preview(self, stage: Stage, snapshot: Snapshot) -> Verdict:
        """The verdict the rulebook gives now; writes nothing."""
        return evaluate(self.rulebook, stage, snapshot, clock.now())

    def assess(
        self,
        *,
        stage: Stage,
        subject_type: str,
        subject_id: object,
        snapshot: Snapshot,
        parts: Mapping[str, Part] = NO_PARTS,
    ) -> tuple[VerdictRows, Verdict]:
        """Evaluate, and the verdict's rows as `judge` stores them; writes nothing. For a caller that stores
        the rows with its own in one statement (order placement), records it in its own audit entry and counts
        its findings (`count_findings`) once they are written.
        `parts`: the snapshot's parts its caller keeps digested (see `stored_form`). Facts judged already today
        under this rulebook get the findings they got then, which are the ones evaluating them now gives."""
        inline, stored_parts = stored_form(snapshot, parts)
        now = clock.now()
        digests = tuple((role, part.digest) for role, part in stored_parts.items())
        key = (stage, self.rulebook.fingerprint, digests, canonical_json(inline))
        judged = self.judgements.get(key, now.date())
        if judged is None:
            verdict = evaluate(self.rulebook, stage, snapshot, now)
            findings_json = [f.as_json() for f in verdict.findings]
            judged = Judged(
                verdict.decision,
                verdict.findings,
                findings_json,
                failed_checks(verdict),
                msgspec.Raw(msgspec.json.encode(findings_json)),
            )
            # a rule that raised is logged each time it is evaluated: its verdict is not kept
            if all(f.message_id != RULE_ERROR_ID for f in verdict.findings):
                self.judgements.put(key, now.date(), judged)
        else:
            verdict = Verdict(stage, judged.decision, judged.findings, self.rulebook.fingerprint, now)
        values: dict[str, Any] = {
            "id": new_id(),
            "stage": stage,
            "subject_type": subject_type,
            "subject_id": str(subject_id),
            "decision": verdict.decision,
            "findings": judged.findings_json,
            "failed_checks": judged.failed_checks,
            "rulebook_fingerprint": verdict.rulebook_fingerprint,
            "created_at": verdict.evaluated_at,
        }
        return verdict_rows(values, inline, stored_parts, judged.findings_document), verdict

    async def judge(
        self, *, stage: Stage, subject_type: str, subject_id: object, snapshot: Snapshot, actor: str
    ) -> tuple[StoredVerdict, Verdict]:
        """Evaluate, store the verdict with its snapshot, and audit it, in the caller's transaction."""
        rows, verdict = self.assess(stage=stage, subject_type=subject_type, subject_id=subject_id, snapshot=snapshot)
        stored = StoredVerdict(**rows.verdict)
        await self.repository.add(rows.verdict, rows.parts)
        count_findings(verdict)
        await self.audit.record(
            actor=actor,
            action="verdict.recorded",
            object_type=subject_type,
            object_id=subject_id,
            payload=verdict_audit_facts(stored.id, verdict),
        )
        return stored, verdict

    async def verdict(self, verdict_id: uuid.UUID) -> StoredVerdict | None:
        return await self.repository.get(verdict_id)

    async def snapshots(self, verdicts: Sequence[StoredVerdict]) -> list[Snapshot]:
        """The snapshots these verdicts judged, reassembled from their inline facts and their parts (one query
        for the parts of all of them)."""
        documents = await self.repository.documents({digest for v in verdicts for digest in v.parts.values()})
        return [Snapshot.model_validate(assemble(v.snapshot, v.parts, documents)) for v in verdicts]

    async def snapshot(self, verdict: StoredVerdict) -> Snapshot:
        """The snapshot the verdict judged."""
        (snapshot,) = await self.snapshots([verdict])
        return snapshot

    async def latest(self, subject_type: str, subject_id: object, stage: Stage) -> StoredVerdict | None:
        return await self.repository.latest(subject_type, str(subject_id), stage)

    async def history(self, subject_type: str, subject_id: object) -> Sequence[StoredVerdict]:
        """Every verdict on a subject, newest first (a subject is judged once per submission or request: an
        organisation's admissions, a product's listings), up to MAX_HISTORY."""
        return await self.repository.of_subject(subject_type, str(subject_id), limit=MAX_HISTORY)

    async def impact(
        self, candidate: Rulebook, subject_type: str, subject_ids: Sequence[str], stage: Stage
    ) -> list[ImpactRow]:
        """Replay each active subject's latest stored snapshot under a candidate rulebook."""
        now = clock.now()
        rows: list[ImpactRow] = []
        latest = await self.repository.latest_for_subjects(subject_type, subject_ids, stage)
        for stored, snapshot in zip(latest, await self.snapshots(latest), strict=True):
            replayed = evaluate(candidate, stage, snapshot, now)
            before = {f["check"] for f in stored.findings if f["outcome"] in ("fail", "review")}
            after = {f.check for f in replayed.failures()}
            rows.append(
                ImpactRow(
                    subject_type=subject_type,
                    subject_id=stored.subject_id,
                    stage=stage,
                    current_decision=stored.decision,
                    candidate_decision=replayed.decision,
                    newly_failing=tuple(sorted(after - before)),
                    no_longer_failing=tuple(sorted(before - after)),
                )
            )
        return rows
