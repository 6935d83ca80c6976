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
from typing import Any, ClassVar, Final, get_args

from marketplace.compliance.contract import Finding, Rule, RuleContext, Stage
from marketplace.compliance.snapshots import IntermediaryRole, OrganizationFacts, Snapshot

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

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        roles = self.params["trade_roles"]
        if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
            raise ValueError(f"R8 trade_roles must be a list of role names, got {roles!r}")
        unknown = sorted(set(roles) - _ROLES)
        if unknown:
            raise ValueError(f"R8 trade_roles has unknown roles {unknown}; roles are {sorted(_ROLES)}")
        self._trade_roles: frozenset[str] = frozenset(roles)
        self._trade_roles_list: list[str] = sorted(self._trade_roles)
        absent = {"intermediary": False}
        self._no_intermediary: tuple[Finding, ...] = tuple(
            self.not_applicable(code, "no intermediary in the trade", absent) for code in _TRADE_CHECKS
        )

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        if ctx.stage is Stage.TRADE:
            return self._trade(ctx.snapshot)
        if ctx.stage is Stage.ADMISSION:
            return self._admission(ctx.snapshot.organization)
        return []

    # --- admission -------------------------------------------------------------------------

    def _admission(self, org: OrganizationFacts | None) -> list[Finding]:
        if org is None:
            return [
                self.failed(code, "the admission snapshot has no applicant", {"missing": ["organization"]})
                for code in _ADMISSION_CHECKS
            ]
        if org.kind != "intermediary":
            kind = {"organization_id": org.id, "kind": org.kind}
            return [
                self.not_applicable(code, "the applicant is not a data intermediary", kind)
                for code in _ADMISSION_CHECKS
            ]
        roles = list(org.intermediary_roles)
        evidence: dict[str, Any] = {"organization_id": org.id, "roles": roles}
        if roles:
            role_finding = self.passed("roles", "the intermediary declares its roles", evidence)
        else:
            role_finding = self.failed("roles", "the intermediary declares no role", evidence)
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
        evidence = {"organization_id": org.id, "kind": org.kind, "status": org.status}
        if org.kind != "intermediary":
            return self.failed("admitted", "the organisation is not admitted as a data intermediary", evidence)
        if org.status != "admitted":
            return self.failed("admitted", "the intermediary is not admitted", evidence)
        return self.passed("admitted", "the intermediary is admitted", evidence)

    def _trade_role(self, org: OrganizationFacts) -> Finding:
        allowed = self._trade_roles
        evidence = {
            "organization_id": org.id,
            "roles": list(org.intermediary_roles),
            "trade_roles": self._trade_roles_list,
        }
        for role in org.intermediary_roles:
            if role in allowed:
                return self.passed("trade-role", "the intermediary is admitted for a trading role", evidence)
        return self.failed("trade-role", "the intermediary is not admitted for a role allowed in a trade", evidence)

    def _fee(self, org: OrganizationFacts) -> Finding:
        fee = org.fee_disclosure
        disclosed = fee is not None and fee != "" and not fee.isspace()
        evidence = {"organization_id": org.id, "fee_disclosed": disclosed}
        if not disclosed:
            return self.failed("fee-disclosure", "the intermediary does not disclose its fee", evidence)
        return self.passed("fee-disclosure", "the intermediary discloses its fee", evidence)

    def _related(self, org: OrganizationFacts, snapshot: Snapshot) -> Finding:
        buyer = snapshot.buyer
        provider = snapshot.provider
        if buyer is None or provider is None:
            missing = [name for name, part in (("buyer", buyer), ("provider", provider)) if part is None]
            return self.failed(
                "related-parties", "the trade snapshot lacks " + ", ".join(missing), {"missing": missing}
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
            return self.failed("related-parties", "the intermediary is related to both sides of the trade", evidence)
        if to_buyer or to_provider:
            return self.review("related-parties", "the intermediary is related to one side of the trade", evidence)
        return self.passed("related-parties", "the intermediary is related to neither side", evidence)

    def _retention(self, org: OrganizationFacts) -> Finding:
        attested = org.retains_no_traded_data
        evidence = {"organization_id": org.id, "retains_no_traded_data": attested}
        if attested is not True:
            return self.failed(
                "no-data-retention", "the intermediary does not attest that it keeps no traded data", evidence
            )
        return self.passed("no-data-retention", "the intermediary attests that it keeps no traded data", evidence)
