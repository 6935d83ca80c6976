"""R8 数据中介准入及运行管理指引 - Data intermediary admission and operation.

The rule text is a reconstruction: the official 2022 Guizhou guideline was not at hand, so
each check below is derived from the rulebook row for R8 and the law it rests on (chiefly
DSL Art. 33 on data-trading intermediary services), and is written so that a machine can
decide it.

Admission stage (``snapshot.organization``; all checks ``not_applicable`` unless its kind is
``intermediary``)
  - ``roles``: it declares at least one intermediary role: broker, assessor or delivery.
  - ``fee-disclosure``: it discloses its fee (a non-blank ``fee_disclosure``; marked prices,
    价格法 Art. 13).
  - ``no-data-retention``: it attests that it keeps no traded data
    (``retains_no_traded_data`` is true; an intermediary passes data on, it does not hold it).

Trade stage (all checks ``not_applicable`` when the trade has no intermediary)
  - ``admitted``: the intermediary is an admitted organisation of kind ``intermediary``.
  - ``trade-role``: it is admitted for a role allowed to take part in a trade
    (``trade_roles``); an assessor-only intermediary cannot broker or deliver.
  - ``fee-disclosure``: it discloses its fee.
  - ``related-parties``: it is not related to both sides: ``related_organization_ids`` (or
    its own id) containing both the buyer and the provider fails; one side only goes to
    review, since a related intermediary is not neutral; neither passes.
  - ``no-data-retention``: it attests that it keeps no traded data.

Parameters
  - ``trade_roles`` (default ["broker", "delivery"]): the roles in which an intermediary may
    take part in a trade. Assessors write reports (R2, R3, R6) and do not stand in a trade.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Final, get_args

from marketplace.compliance.contract import Finding, Outcome, Rule, RuleContext, Stage, make_finding
from marketplace.compliance.snapshots import IntermediaryRole, OrganizationFacts, Snapshot

PASS = Outcome.PASS
FAIL = Outcome.FAIL
REVIEW = Outcome.REVIEW
ADMISSION = Stage.ADMISSION
TRADE = Stage.TRADE

_ADMISSION_CHECKS: Final = ("roles", "fee-disclosure", "no-data-retention")
_TRADE_CHECKS: Final = ("admitted", "trade-role", "fee-disclosure", "related-parties", "no-data-retention")
_ROLES: Final = frozenset(get_args(IntermediaryRole))


class IntermediaryOperationRule(Rule):
    id = "R8"
    title_zh = "数据中介准入及运行管理指引"
    title_en = "Data intermediary admission and operation"
    version = "1.0.0"
    basis = (
        "DSL Art. 33 (intermediary: source explained, identities verified, records kept)",
        "DSL Art. 47",
        "价格法 Art. 13 (marked prices)",
        "《数据二十条》 (data brokerage and third-party professional service bodies)",
        "《贵州省数据流通交易管理办法（试行）》 (2022)",
    )
    stages = frozenset({Stage.ADMISSION, Stage.TRADE})
    parameters: ClassVar[Mapping[str, Any]] = {"trade_roles": ["broker", "delivery"]}

    messages: ClassVar[dict[str, str]] = {
        "no-intermediary-in-trade": "no intermediary in the trade",
        "admission-snapshot-no-applicant": "the admission snapshot has no applicant",
        "applicant-not-data-intermediary": "the applicant is not a data intermediary",
        "intermediary-declares-roles": "the intermediary declares its roles",
        "intermediary-declares-no-role": "the intermediary declares no role",
        "organisation-not-admitted-as-data": "the organisation is not admitted as a data intermediary",
        "intermediary-not-admitted": "the intermediary is not admitted",
        "intermediary-admitted": "the intermediary is admitted",
        "intermediary-admitted-for-trading-role": "the intermediary is admitted for a trading role",
        "intermediary-not-admitted-for-role": "the intermediary is not admitted for a role allowed in a trade",
        "intermediary-does-not-disclose-fee": "the intermediary does not disclose its fee",
        "intermediary-discloses-fee": "the intermediary discloses its fee",
        "trade-snapshot-lacks": "the trade snapshot lacks {missing}",
        "intermediary-related-to-both-sides": "the intermediary is related to both sides of the trade",
        "intermediary-related-to-one-side": "the intermediary is related to one side of the trade",
        "intermediary-related-to-neither-side": "the intermediary is related to neither side",
        "intermediary-does-not-attest-that": "the intermediary does not attest that it keeps no traded data",
        "intermediary-attests-that-keeps-no": "the intermediary attests that it keeps no traded data",
    }

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        roles = self.params["trade_roles"]
        if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
            raise ValueError(f"R8 trade_roles must be a list of role names, got {roles!r}")
        unknown = sorted(set(roles) - _ROLES)
        if unknown:
            raise ValueError(f"R8 trade_roles has unknown roles {unknown}; roles are {sorted(_ROLES)}")
        self._trade_roles: frozenset[str] = frozenset(roles)
        self._trade_roles_sorted: tuple[str, ...] = tuple(sorted(self._trade_roles))
        rid = self.id
        self._c_roles = f"{rid}.roles"
        self._c_admitted = f"{rid}.admitted"
        self._c_trade_role = f"{rid}.trade-role"
        self._c_fee = f"{rid}.fee-disclosure"
        self._c_related = f"{rid}.related-parties"
        self._c_retention = f"{rid}.no-data-retention"
        # Built once, shared by every verdict of a trade without an intermediary: read-only evidence.
        absent = MappingProxyType({"intermediary": False})
        self._no_intermediary: tuple[Finding, ...] = tuple(
            self.not_applicable(code, self.text("no-intermediary-in-trade"), absent) for code in _TRADE_CHECKS
        )

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        if ctx.stage is TRADE:
            return self._trade(ctx.snapshot)
        if ctx.stage is ADMISSION:
            return self._admission(ctx.snapshot.organization)
        return []

    # --- admission -------------------------------------------------------------------------

    def _admission(self, org: OrganizationFacts | None) -> list[Finding]:
        if org is None:
            return [
                self.failed(code, self.text("admission-snapshot-no-applicant"), {"missing": ["organization"]})
                for code in _ADMISSION_CHECKS
            ]
        if org.kind != "intermediary":
            kind = {"organization_id": org.id, "kind": org.kind}
            return [
                self.not_applicable(code, self.text("applicant-not-data-intermediary"), kind)
                for code in _ADMISSION_CHECKS
            ]
        roles = list(org.intermediary_roles)
        evidence: dict[str, Any] = {"organization_id": org.id, "roles": roles}
        if roles:
            role_finding = make_finding(
                self.id, self._c_roles, PASS, self.text("intermediary-declares-roles"), evidence, self.basis
            )
        else:
            role_finding = make_finding(
                self.id, self._c_roles, FAIL, self.text("intermediary-declares-no-role"), evidence, self.basis
            )
        return [role_finding, self._fee(org), self._retention(org)]

    # --- trade -----------------------------------------------------------------------------

    def _trade(self, snapshot: Snapshot) -> list[Finding]:
        org = snapshot.intermediary
        if org is None:
            return list(self._no_intermediary)
        return [
            self._admitted(org),
            self._trade_role(org),
            self._fee(org),
            self._related(org, snapshot),
            self._retention(org),
        ]

    def _admitted(self, org: OrganizationFacts) -> Finding:
        rid, code, basis = self.id, self._c_admitted, self.basis
        evidence = {"organization_id": org.id, "kind": org.kind, "status": org.status}
        if org.kind != "intermediary":
            return make_finding(rid, code, FAIL, self.text("organisation-not-admitted-as-data"), evidence, basis)
        if org.status != "admitted":
            return make_finding(rid, code, FAIL, self.text("intermediary-not-admitted"), evidence, basis)
        return make_finding(rid, code, PASS, self.text("intermediary-admitted"), evidence, basis)

    def _trade_role(self, org: OrganizationFacts) -> Finding:
        rid, code, basis = self.id, self._c_trade_role, self.basis
        allowed = self._trade_roles
        evidence = {
            "organization_id": org.id,
            "roles": list(org.intermediary_roles),
            "trade_roles": list(self._trade_roles_sorted),
        }
        for role in org.intermediary_roles:
            if role in allowed:
                return make_finding(
                    rid, code, PASS, self.text("intermediary-admitted-for-trading-role"), evidence, basis
                )
        return make_finding(rid, code, FAIL, self.text("intermediary-not-admitted-for-role"), evidence, basis)

    def _fee(self, org: OrganizationFacts) -> Finding:
        rid, code, basis = self.id, self._c_fee, self.basis
        fee = org.fee_disclosure
        disclosed = fee is not None and fee != "" and not fee.isspace()
        evidence = {"organization_id": org.id, "fee_disclosed": disclosed}
        if not disclosed:
            return make_finding(rid, code, FAIL, self.text("intermediary-does-not-disclose-fee"), evidence, basis)
        return make_finding(rid, code, PASS, self.text("intermediary-discloses-fee"), evidence, basis)

    def _related(self, org: OrganizationFacts, snapshot: Snapshot) -> Finding:
        rid, code, basis = self.id, self._c_related, self.basis
        buyer = snapshot.buyer
        provider = snapshot.provider
        if buyer is None or provider is None:
            missing = []
            if buyer is None:
                missing.append("buyer")
            if provider is None:
                missing.append("provider")
            return make_finding(
                rid,
                code,
                FAIL,
                self.text("trade-snapshot-lacks", missing=", ".join(missing)),
                {"missing": missing},
                basis,
            )
        related = org.related_organization_ids
        to_buyer = buyer.id == org.id or buyer.id in related
        to_provider = provider.id == org.id or provider.id in related
        evidence = {
            "organization_id": org.id,
            "buyer_id": buyer.id,
            "provider_id": provider.id,
            "related_to_buyer": to_buyer,
            "related_to_provider": to_provider,
        }
        if to_buyer and to_provider:
            return make_finding(rid, code, FAIL, self.text("intermediary-related-to-both-sides"), evidence, basis)
        if to_buyer or to_provider:
            return make_finding(rid, code, REVIEW, self.text("intermediary-related-to-one-side"), evidence, basis)
        return make_finding(rid, code, PASS, self.text("intermediary-related-to-neither-side"), evidence, basis)

    def _retention(self, org: OrganizationFacts) -> Finding:
        rid, code, basis = self.id, self._c_retention, self.basis
        attested = org.retains_no_traded_data
        evidence = {"organization_id": org.id, "retains_no_traded_data": attested}
        if attested is not True:
            return make_finding(rid, code, FAIL, self.text("intermediary-does-not-attest-that"), evidence, basis)
        return make_finding(rid, code, PASS, self.text("intermediary-attests-that-keeps-no"), evidence, basis)
