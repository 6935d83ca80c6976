"""R7 数据商准入及运行管理指引 - Data merchant admission and operation.

The rule text is a reconstruction: the official 2022 Guizhou guideline was not at hand, so
each check below is derived from the rulebook row for R7 and the law it rests on, and is
written so that a machine can decide it. The business identity (S1, GB 32100) and the
security maturity required per data grade (S10, GB/T 37988) are checked by those standards
and not repeated here.

Admission stage (``snapshot.organization`` is the applicant, of any kind)
  - ``penalties``: no data-trading penalty within the last 3 years: ``penalties_last_3y`` is
    at most ``max_penalties_last_3y``. A ``last_penalty_on`` date inside the 3 years counts
    as at least one penalty even if the count says 0, so inconsistent facts fail closed.
  - ``security-capability``: a provider applicant has a basic data security capability:
    GB/T 37988 level at least ``min_dsmm_level_provider`` (DSL Art. 27); not applicable to
    buyers and intermediaries.

Listing, trade and settlement stages
  - ``provider-status``: the provider is admitted and active (``admitted``); suspended,
    pending, under review or rejected fails.
  - ``buyer-status`` (trade only): the buyer is admitted; an organisation that is not
    admitted cannot buy.
  - ``operation-rate``: the provider's complaint-and-dispute rate over the operation window,
    ``(complaints_in_window + disputes_in_window) / trades_in_window``, once the provider
    has at least ``min_trades_for_rate`` trades in the window (fewer: not applicable, the
    rate means nothing yet). At or above ``complaint_rate_review`` a person reviews the
    merchant; at or above ``complaint_rate_suspension`` the merchant is treated as due for
    suspension and the act fails.

Parameters
  - ``max_penalties_last_3y`` (default 0): the guideline admits no merchant penalised for
    data trading in the last three years.
  - ``min_dsmm_level_provider`` (default 2): GB/T 37988 level 2 ("planned and tracked") is
    the lowest level at which security practice is repeatable; a stricter per-grade level is
    S10's parameter.
  - ``min_trades_for_rate`` (default 20): below 20 trades one complaint swings the rate by
    5 % or more, so the rate is not judged.
  - ``complaint_rate_review`` (default 0.05) and ``complaint_rate_suspension`` (default 0.15):
    one complaint or dispute in twenty trades calls for a look; three in twenty for
    suspension. These are judgements for this reconstruction, to be tuned by the operator.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any, ClassVar, Final

from marketplace.compliance.contract import Finding, Outcome, Rule, RuleContext, Stage, make_finding
from marketplace.compliance.snapshots import OrganizationFacts

_ADMISSION_CHECKS: Final = ("penalties", "security-capability")
_PENALTY_YEARS: Final = 3

PASS = Outcome.PASS
FAIL = Outcome.FAIL
REVIEW = Outcome.REVIEW
NA = Outcome.NOT_APPLICABLE
ADMISSION = Stage.ADMISSION
TRADE = Stage.TRADE


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February in a year that has none
        return day.replace(year=day.year - years, day=28)


class MerchantOperationRule(Rule):
    id = "R7"
    title_zh = "数据商准入及运行管理指引"
    title_en = "Data merchant admission and operation"
    version = "1.0.0"
    basis = (
        "DSL Art. 27 (data security management duties)",
        "DSL Art. 32 (lawful collection)",
        "DSL Art. 33 (verification of the parties, records kept)",
        "GB/T 37988-2019",
        "《数据二十条》 (cultivating data merchants; platform supervision of market participants)",
        "《贵州省数据流通交易管理办法（试行）》 (2022)",
    )
    stages = frozenset({Stage.ADMISSION, Stage.LISTING, Stage.TRADE, Stage.SETTLEMENT})
    parameters: ClassVar[Mapping[str, Any]] = {
        "max_penalties_last_3y": 0,
        "min_dsmm_level_provider": 2,
        "min_trades_for_rate": 20,
        "complaint_rate_review": 0.05,
        "complaint_rate_suspension": 0.15,
    }

    messages: ClassVar[dict[str, str]] = {
        "admission-snapshot-no-applicant": "the admission snapshot has no applicant",
        "data-trading-penalties-within-last": "data-trading penalties within the last 3 years",
        "no-disqualifying-penalty-within-last": "no disqualifying penalty within the last 3 years",
        "applicant-not-data-provider": "the applicant is not a data provider",
        "provider-data-security-maturity-level": "the provider's data security maturity level is below the minimum",
        "provider-data-security-maturity-adequate": "the provider's data security maturity is adequate",
        # by party (provider, buyer): status.<party>.<what>
        "status.provider.missing": "the snapshot has no provider",
        "status.provider.active": "the provider is admitted and active",
        "status.provider.suspended": "the provider is suspended",
        "status.provider.not-admitted": "the provider is not admitted",
        "status.buyer.missing": "the snapshot has no buyer",
        "status.buyer.active": "the buyer is admitted and active",
        "status.buyer.suspended": "the buyer is suspended",
        "status.buyer.not-admitted": "the buyer is not admitted",
        "snapshot-no-provider": "the snapshot has no provider",
        "too-few-trades-in-window": "too few trades in the window to judge the rate",
        "complaint-and-dispute-rate-reaches": "the complaint and dispute rate reaches the suspension threshold",
        "complaint-and-dispute-rate-reaches-2": "the complaint and dispute rate reaches the review threshold",
        "complaint-and-dispute-rate-below": "the complaint and dispute rate is below the thresholds",
    }

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        p = self.params
        for name in ("max_penalties_last_3y", "min_dsmm_level_provider", "min_trades_for_rate"):
            value = p[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"R7 {name} must be a non-negative integer, got {value!r}")
        review = float(p["complaint_rate_review"])
        suspension = float(p["complaint_rate_suspension"])
        if not 0.0 <= review <= suspension:
            raise ValueError(
                f"R7 needs 0 <= complaint_rate_review <= complaint_rate_suspension, got {review} and {suspension}"
            )
        self._max_penalties: int = p["max_penalties_last_3y"]
        self._min_dsmm: int = p["min_dsmm_level_provider"]
        self._min_trades: int = max(1, p["min_trades_for_rate"])
        self._review_rate = review
        self._suspension_rate = suspension
        rid = self.id
        self._c_provider_status = f"{rid}.provider-status"
        self._c_buyer_status = f"{rid}.buyer-status"
        self._c_operation_rate = f"{rid}.operation-rate"

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        stage = ctx.stage
        snapshot = ctx.snapshot
        if stage is ADMISSION:
            return self._admission(snapshot.organization, ctx.now.date())
        if stage not in self.stages:
            return []
        provider = snapshot.provider
        if stage is TRADE:
            return [
                self._status(self._c_provider_status, "provider", provider),
                self._status(self._c_buyer_status, "buyer", snapshot.buyer),
                self._operation(provider),
            ]
        return [self._status(self._c_provider_status, "provider", provider), self._operation(provider)]

    # --- admission -------------------------------------------------------------------------

    def _admission(self, org: OrganizationFacts | None, today: date) -> list[Finding]:
        if org is None:
            return [
                self.failed(code, self.text("admission-snapshot-no-applicant"), {"missing": ["organization"]})
                for code in _ADMISSION_CHECKS
            ]
        return [self._penalties(org, today), self._security(org)]

    def _penalties(self, org: OrganizationFacts, today: date) -> Finding:
        cutoff = _years_before(today, _PENALTY_YEARS)
        last = org.last_penalty_on
        recent = last is not None and last >= cutoff
        counted = max(org.penalties_last_3y, 1 if recent else 0)
        evidence = {
            "organization_id": org.id,
            "penalties_last_3y": org.penalties_last_3y,
            "last_penalty_on": last.isoformat() if last is not None else None,
            "window_starts_on": cutoff.isoformat(),
            "last_penalty_in_window": recent,
            "penalties_counted": counted,
            "max_penalties_last_3y": self._max_penalties,
        }
        if counted > self._max_penalties:
            return self.failed("penalties", self.text("data-trading-penalties-within-last"), evidence)
        return self.passed("penalties", self.text("no-disqualifying-penalty-within-last"), evidence)

    def _security(self, org: OrganizationFacts) -> Finding:
        evidence = {
            "organization_id": org.id,
            "kind": org.kind,
            "dsmm_level": org.dsmm_level,
            "min_dsmm_level_provider": self._min_dsmm,
        }
        if org.kind != "provider":
            return self.not_applicable("security-capability", self.text("applicant-not-data-provider"), evidence)
        if org.dsmm_level < self._min_dsmm:
            return self.failed("security-capability", self.text("provider-data-security-maturity-level"), evidence)
        return self.passed("security-capability", self.text("provider-data-security-maturity-adequate"), evidence)

    # --- listing, trade, settlement --------------------------------------------------------

    def _status(self, code: str, party: str, org: OrganizationFacts | None) -> Finding:
        rid, basis = self.id, self.basis
        if org is None:
            return make_finding(rid, code, FAIL, self.text(f"status.{party}.missing"), {"missing": [party]}, basis)
        status = org.status
        evidence = {"organization_id": org.id, "party": party, "status": status}
        if status == "admitted":
            return make_finding(rid, code, PASS, self.text(f"status.{party}.active"), evidence, basis)
        if status == "suspended":
            return make_finding(rid, code, FAIL, self.text(f"status.{party}.suspended"), evidence, basis)
        return make_finding(rid, code, FAIL, self.text(f"status.{party}.not-admitted"), evidence, basis)

    def _operation(self, provider: OrganizationFacts | None) -> Finding:
        rid, code, basis = self.id, self._c_operation_rate, self.basis
        if provider is None:
            return make_finding(rid, code, FAIL, self.text("snapshot-no-provider"), {"missing": ["provider"]}, basis)
        trades = provider.trades_in_window
        complaints = provider.complaints_in_window
        disputes = provider.disputes_in_window
        evidence: dict[str, Any] = {
            "organization_id": provider.id,
            "trades_in_window": trades,
            "complaints_in_window": complaints,
            "disputes_in_window": disputes,
            "min_trades_for_rate": self._min_trades,
            "review_rate": self._review_rate,
            "suspension_rate": self._suspension_rate,
        }
        if trades < self._min_trades:
            evidence["rate"] = None
            return make_finding(rid, code, NA, self.text("too-few-trades-in-window"), evidence, basis)
        rate = (complaints + disputes) / trades
        evidence["rate"] = round(rate, 4)
        if rate >= self._suspension_rate:
            return make_finding(rid, code, FAIL, self.text("complaint-and-dispute-rate-reaches"), evidence, basis)
        if rate >= self._review_rate:
            return make_finding(rid, code, REVIEW, self.text("complaint-and-dispute-rate-reaches-2"), evidence, basis)
        return make_finding(rid, code, PASS, self.text("complaint-and-dispute-rate-below"), evidence, basis)
