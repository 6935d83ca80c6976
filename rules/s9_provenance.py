"""S9 — GB/T 34945-2017 数据溯源描述模型 (data provenance description model).

The rule text is a reconstruction: neither the official Guizhou rule texts nor the text of
GB/T 34945-2017 was at hand. The standard describes provenance with entities, the
activities that used and produced them, the agents that performed those activities, their
times, and derivation between entities; the checks below ask a listed product for the
minimum of that model the platform records (``product.provenance``). A traceable source
is also what the laws ask of anyone selling data: DSL Art. 32 (data obtained by lawful
means), DSL Art. 33 (the intermediary has the provider state the data's source) and the
《数据二十条》 (data whose source can be confirmed may be traded).

Checks (listing stage)
  source-entity     provenance is recorded and names its source entity. No product or no
                    provenance -> fail.
  activities        at least one activity, each with a name and a performer (the start time
                    is required by the snapshot model). Evidence: the count and the
                    incomplete activities with what they lack.
  activity-times    no activity starts or ends after ``ctx.now``, and none ends before it
                    starts. Evidence: the count and the offending activity names. Times
                    without a time zone are read as UTC. No activities -> fail (the
                    timeline cannot be shown).
  derivation-chain  when the data source is one of ``derivation_required_for`` (purchased
                    data, authorised public data: the data came from someone else), the
                    provenance lists what the product is derived from (``derived_from``,
                    nearest first, no blank entries); missing -> fail. For other sources an
                    empty chain is not applicable and a recorded chain must be well formed.
  Activities are named in the evidence by their name, or ``#n`` (1-based) when unnamed;
  performers are never copied into the evidence.

Parameters
  derivation_required_for (list of str, default ["purchased", "authorized_public"]): the
    declared data sources for which a derivation chain is required. The default covers the
    two sources where the data was obtained from another party; an exchange may add
    "public_collection" to have scraped or collected public data traced to its origin.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, get_args

from marketplace.compliance.contract import Finding, Outcome, Rule, RuleContext, Severity, Stage, Text
from marketplace.compliance.snapshots import DataSource, ProductFacts, Provenance, ProvenanceActivity

_DATA_SOURCES: tuple[str, ...] = get_args(DataSource)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _label(index: int, activity: ProvenanceActivity) -> str:
    name = activity.name.strip()
    return name or f"#{index + 1}"


class ProvenanceStandard(Rule):
    id: ClassVar[str] = "S9"
    title_zh: ClassVar[str] = "数据溯源描述模型（GB/T 34945-2017）"
    title_en: ClassVar[str] = "GB/T 34945-2017 data provenance description model"
    version: ClassVar[str] = "1.0.0"
    basis: ClassVar[tuple[str, ...]] = (
        "GB/T 34945-2017",
        "DSL Art. 32",
        "DSL Art. 33",
        "《数据二十条》",
    )
    stages: ClassVar[frozenset[Stage]] = frozenset({Stage.LISTING})
    parameters: ClassVar[dict[str, Any]] = {"derivation_required_for": ["purchased", "authorized_public"]}
    default_severity: ClassVar[Severity] = Severity.BLOCK

    messages: ClassVar[dict[str, str]] = {
        "activity-times.future": "in the future: {activities}",
        "activity-times.reversed": "ending before they start: {activities}",
        "no-product-in-listing-snapshot": "no product in the listing snapshot: its provenance cannot be checked",
        "product-no-provenance-record": "the product has no provenance record",
        "provenance-does-not-name-source": "the provenance does not name its source entity",
        "provenance-names-source-entity": "the provenance names its source entity",
        "provenance-records-no-activity": "the provenance records no activity",
        "activities-lack-name-or-performer": "{incomplete} of {activities} activities lack a name or a performer",
        "activities-each-named-and-with": "{activities} activities, each named and with a performer",
        "provenance-no-activity-times-to": "the provenance has no activity times to check",
        "activity-times-impossible": "activity times are impossible ({problems})",
        "every-activity-time-in-past": "every activity time is in the past and in order",
        "data-from-source-needs-derivation": (
            "data from a {source} source needs a derivation chain (derived_from), and none is recorded"
        ),
        "no-derivation-chain-required-for": (
            "no derivation chain is required for data source {source!r} and none is recorded"
        ),
        "derivation-chain-blank-entries": "the derivation chain has blank entries",
        "derivation-chain-names-upstream-sources": "the derivation chain names {chain} upstream sources",
    }

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        required = self.params["derivation_required_for"]
        unknown = [source for source in required if source not in _DATA_SOURCES]
        if unknown:
            raise ValueError(
                f"S9 derivation_required_for has unknown data sources {unknown}; known: {list(_DATA_SOURCES)}"
            )
        self._chain_required_for: frozenset[str] = frozenset(required)

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        if ctx.stage is not Stage.LISTING:
            return []
        product = ctx.snapshot.product
        if product is None:
            message = self.text("no-product-in-listing-snapshot")
            evidence = {"product": False}
            return [
                self.failed("source-entity", message, evidence),
                self.failed("activities", message, evidence),
                self.failed("activity-times", message, evidence),
                self.failed("derivation-chain", message, evidence),
            ]
        provenance = product.provenance
        if provenance is None:
            message = self.text("product-no-provenance-record")
            cause = self.failed("source-entity", message, {"provenance": False})
            derivation = self._derivation(product, None)
            if derivation.outcome is Outcome.FAIL:  # the chain a source needs is missing with the record
                derivation = self.following("derivation-chain", cause, message)
            return [
                cause,
                self.following("activities", cause, message),
                self.following("activity-times", cause, message),
                derivation,
            ]
        return [
            self._source(provenance),
            self._activities(provenance),
            self._times(provenance, _aware(ctx.now)),
            self._derivation(product, provenance),
        ]

    def _source(self, provenance: Provenance) -> Finding:
        source = provenance.source_entity.strip()
        if not source:
            return self.failed("source-entity", self.text("provenance-does-not-name-source"), {"source_entity": None})
        return self.passed("source-entity", self.text("provenance-names-source-entity"), {"source_entity": source})

    def _activities(self, provenance: Provenance) -> Finding:
        activities = provenance.activities
        if not activities:
            return self.failed(
                "activities", self.text("provenance-records-no-activity"), {"activity_count": 0, "incomplete": []}
            )
        incomplete: list[dict[str, Any]] = []
        for index, activity in enumerate(activities):
            missing = [
                name
                for name, value in (("name", activity.name), ("performed_by", activity.performed_by))
                if not value.strip()
            ]
            if missing:
                incomplete.append({"activity": _label(index, activity), "missing": missing})
        evidence = {"activity_count": len(activities), "incomplete": incomplete}
        if incomplete:
            return self.failed(
                "activities",
                self.text("activities-lack-name-or-performer", incomplete=len(incomplete), activities=len(activities)),
                evidence,
            )
        return self.passed(
            "activities", self.text("activities-each-named-and-with", activities=len(activities)), evidence
        )

    def _times(self, provenance: Provenance, now: datetime) -> Finding:
        activities = provenance.activities
        in_future: list[str] = []
        ended_before_started: list[str] = []
        for index, activity in enumerate(activities):
            started = _aware(activity.started_at)
            ended = _aware(activity.ended_at) if activity.ended_at is not None else None
            if started > now or (ended is not None and ended > now):
                in_future.append(_label(index, activity))
            if ended is not None and ended < started:
                ended_before_started.append(_label(index, activity))
        evidence = {
            "activity_count": len(activities),
            "in_future": in_future,
            "ended_before_started": ended_before_started,
            "now": now.isoformat(),
        }
        if not activities:
            return self.failed("activity-times", self.text("provenance-no-activity-times-to"), evidence)
        if in_future or ended_before_started:
            problems: list[Text] = []
            if in_future:
                problems.append(self.text("activity-times.future", activities=", ".join(in_future)))
            if ended_before_started:
                problems.append(self.text("activity-times.reversed", activities=", ".join(ended_before_started)))
            return self.failed("activity-times", self.text("activity-times-impossible", problems=problems), evidence)
        return self.passed("activity-times", self.text("every-activity-time-in-past"), evidence)

    def _derivation(self, product: ProductFacts, provenance: Provenance | None) -> Finding:
        source = product.data_source
        required = source is not None and source in self._chain_required_for
        chain = list(provenance.derived_from) if provenance is not None else []
        blank = [index + 1 for index, entry in enumerate(chain) if not entry.strip()]
        evidence = {
            "data_source": source,
            "required": required,
            "derived_from": chain,
            "count": len(chain),
            "blank_entries": blank,
        }
        if not chain:
            if required:
                return self.failed(
                    "derivation-chain",
                    self.text("data-from-source-needs-derivation", source=source),
                    evidence,
                )
            return self.not_applicable(
                "derivation-chain",
                self.text("no-derivation-chain-required-for", source=source),
                evidence,
            )
        if blank:
            return self.failed("derivation-chain", self.text("derivation-chain-blank-entries"), evidence)
        return self.passed(
            "derivation-chain", self.text("derivation-chain-names-upstream-sources", chain=len(chain)), evidence
        )
