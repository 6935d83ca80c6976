"""R1 数据要素流通交易规则 — Data element circulation and trading rules.

The rule text is a reconstruction: the official 2022 Guizhou text was not at hand, so the
checks below are derived from the rulebook table (RULEBOOK.md, row R1) and the laws and
policy it rests on. The *mechanism* is exact; the wording of the rule is ours.

Listing stage (the provider puts a product on the exchange):
  - ``registered``          the product is registered (数据产品登记) and carries its
                            registration number — DSL Art. 19 (a data trading management
                            system), 《数据二十条》 item 9 (trading venues and their rules).
  - ``scenarios-declared``  the product declares the application scenarios it may be used for
                            — 《数据二十条》 item 8 (authorised use by scenario and purpose).
  - ``delivery-modes``      the product offers at least one delivery mode.
  - ``dataset-hosted``      what it offers can be delivered: every delivery mode delivers from
                            the version's hosted dataset (file: a signed download of it; API:
                            its rows; privacy computing: aggregates over it), so a version
                            offering any lists only once its dataset is hosted, its digest
                            registered (``content_sha256``) — Civil Code Art. 509 (perform as
                            agreed), DSL Art. 19. Not applicable when no mode is offered.
  - ``licence-terms``       licence terms with a non-empty scope are published — 《数据二十条》
                            item 3 (separate rights to hold, process/use and operate data: the
                            buyer acquires a right of use, on stated terms), Civil Code Art. 470.
  - ``dispute-route``       the product names a dispute route among
                            ``accepted_dispute_routes`` (negotiation, mediation, arbitration) —
                            Civil Code Art. 470 (a contract states how disputes are resolved).

Trade stage (a buyer orders a licence):
  - ``scenario``            the buyer declares an application scenario and it is among the
                            product's permitted scenarios: no scenario, no trade.
  - ``licence-accepted``    the product has licence terms and the buyer accepted them.
  - ``delivery-mode``       the mode ordered is one the product offers.
  - ``dataset-hosted``      the version traded has its dataset hosted, so the mode ordered can be
                            delivered: a version listed without it (under a rulebook that did not
                            ask, or before this check) is not sold, and the buyer is told why.
  - ``self-dealing``        buyer and provider are different organisations: different ids and
                            different unified social credit codes (a wash trade fakes price and
                            volume) — DSL Arts. 19 and 33, Civil Code Art. 146 (sham acts).
  - ``dispute-route``       the contract (the trade's route, else the product's) names a
                            dispute route among ``accepted_dispute_routes`` — Civil Code
                            Art. 470.
  - ``licences-available``  when the trade reports how many licences are left, they cover the
                            quantity ordered; when the product caps its licences
                            (``licence.max_licences``) but the count left is unknown, the check
                            fails closed; not applicable when neither limits the sale.

A part of the snapshot the stage needs (product at listing; product, trade, buyer, provider at
trade) that is missing fails the checks that need it: the rule fails closed.

Parameters (defaults):
  - ``accepted_dispute_routes`` = [negotiation, mediation, arbitration]: the three routes the
    rulebook names. An operator who wants a binding route may drop ``negotiation``, which
    leaves a dispute unresolved when talks fail.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from marketplace.compliance.contract import Finding, Message, Outcome, Rule, RuleContext, Stage, make_finding
from marketplace.compliance.snapshots import OrganizationFacts, ProductFacts, Snapshot, TradeFacts
from marketplace.kit.identifiers import normalize_uscc

PASS = Outcome.PASS
FAIL = Outcome.FAIL
NA = Outcome.NOT_APPLICABLE
LISTING = Stage.LISTING
TRADE = Stage.TRADE

_REGISTRATION_BASIS = ("DSL Art. 19", "《数据二十条》 (2022) item 9")
_SCENARIO_BASIS = ("《数据二十条》 (2022) item 8",)
_LICENCE_BASIS = ("《数据二十条》 (2022) item 3", "Civil Code Art. 470")
_DELIVERY_BASIS = ("DSL Art. 19", "Civil Code Art. 470")
_DISPUTE_BASIS = ("Civil Code Art. 470",)
_HOSTED_BASIS = ("Civil Code Art. 509", "DSL Art. 19")
_SELF_DEALING_BASIS = ("DSL Art. 19", "DSL Art. 33", "Civil Code Art. 146")


class CirculationRule(Rule):
    id: ClassVar[str] = "R1"
    title_zh: ClassVar[str] = "数据要素流通交易规则"
    title_en: ClassVar[str] = "Data element circulation and trading rules"
    version: ClassVar[str] = "1.1.0"
    basis: ClassVar[tuple[str, ...]] = (
        "DSL Art. 19",
        "DSL Art. 33",
        "Civil Code Art. 470",
        "《数据二十条》 (2022)",
    )
    stages: ClassVar[frozenset[Stage]] = frozenset({Stage.LISTING, Stage.TRADE})
    parameters: ClassVar[dict[str, Any]] = {
        "accepted_dispute_routes": ["negotiation", "mediation", "arbitration"],
    }

    messages: ClassVar[dict[str, str]] = {
        "no-product-in-snapshot-cannot": "no product in the snapshot; cannot list",
        "product-registered": "the product is registered",
        "product-no-registration-number-register": (
            "the product has no registration number: register it before listing"
        ),
        "permitted-application-scenarios-declared": "permitted application scenarios are declared",
        "product-declares-no-permitted-application": "the product declares no permitted application scenario",
        "delivery-modes-offered": "delivery modes are offered",
        "product-offers-no-delivery-mode": "the product offers no delivery mode",
        "product-publishes-no-licence-terms": "the product publishes no licence terms",
        "licence-terms-published": "licence terms are published",
        "licence-terms-state-no-scope": "the licence terms state no scope of use",
        "no-dispute-route-named-negotiation": "no dispute route is named (negotiation, mediation or arbitration)",
        "not-accepted-dispute-route-here": "{route} is not an accepted dispute route here",
        "disputes-go-to": "disputes go to {route}",
        "trade-snapshot-lacks-product-or": "the trade snapshot lacks the product or the trade; cannot check",
        "buyer-declared-no-application-scenario": ("the buyer declared no application scenario: no scenario, no trade"),
        "buyer-scenario-not-among-product": "the buyer's scenario is not among the product's permitted scenarios",
        "buyer-scenario-permitted": "the buyer's scenario is permitted",
        "product-no-licence-terms-for": "the product has no licence terms for the buyer to accept",
        "buyer-not-accepted-licence-terms": "the buyer has not accepted the licence terms",
        "buyer-accepted-licence-terms": "the buyer accepted the licence terms",
        "delivery-mode-offered": "the delivery mode is offered",
        "product-does-not-offer-delivery": "the product does not offer delivery by {mode}",
        "no-delivery-mode-nothing-to": "no delivery mode, nothing to deliver",
        "dataset-that-delivery-serves-hosted": "the dataset that {modes} delivery serves is hosted",
        "version-offers-delivery-but-dataset": (
            "version {version} offers {modes} delivery but its dataset is not hosted: nothing could be "
            "delivered until the provider uploads it"
        ),
        "trade-snapshot-lacks-buyer-or": "the trade snapshot lacks the buyer or the provider; cannot check",
        "buyer-provider-itself-self-dealing": "the buyer is the provider itself: self-dealing is not allowed",
        "buyer-and-provider-different-organisations": "buyer and provider are different organisations",
        "product-limits-licences-but-count": (
            "the product limits its licences but the count still available is unknown"
        ),
        "product-does-not-limit-number": "the product does not limit the number of licences",
        "not-enough-licences-left-for": "not enough licences are left for the quantity ordered",
        "enough-licences-left": "enough licences are left",
    }

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        self._routes = frozenset(str(r) for r in self.params["accepted_dispute_routes"])
        self._routes_sorted = tuple(sorted(self._routes))
        rid = self.id
        self._c_registered = f"{rid}.registered"
        self._c_scenarios_declared = f"{rid}.scenarios-declared"
        self._c_delivery_modes = f"{rid}.delivery-modes"
        self._c_dataset_hosted = f"{rid}.dataset-hosted"
        self._c_licence_terms = f"{rid}.licence-terms"
        self._c_dispute_route = f"{rid}.dispute-route"
        self._c_scenario = f"{rid}.scenario"
        self._c_licence_accepted = f"{rid}.licence-accepted"
        self._c_delivery_mode = f"{rid}.delivery-mode"
        self._c_self_dealing = f"{rid}.self-dealing"
        self._c_licences_available = f"{rid}.licences-available"

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        if ctx.stage is LISTING:
            return self._listing(ctx.snapshot.product)
        if ctx.stage is TRADE:
            return self._trade(ctx.snapshot)
        return []

    def _f(
        self, code: str, outcome: Outcome, message: Message, evidence: Mapping[str, Any], basis: tuple[str, ...]
    ) -> Finding:
        return make_finding(self.id, code, outcome, message, evidence, basis)

    # --- listing -------------------------------------------------------------------------

    def _listing(self, product: ProductFacts | None) -> list[Finding]:
        f = self._f
        if product is None:
            missing = {"product": None}
            message = self.text("no-product-in-snapshot-cannot")
            return [
                f(self._c_registered, FAIL, message, missing, _REGISTRATION_BASIS),
                f(self._c_scenarios_declared, FAIL, message, missing, _SCENARIO_BASIS),
                f(self._c_delivery_modes, FAIL, message, missing, _DELIVERY_BASIS),
                f(self._c_dataset_hosted, FAIL, message, missing, _HOSTED_BASIS),
                f(self._c_licence_terms, FAIL, message, missing, _LICENCE_BASIS),
                f(self._c_dispute_route, FAIL, message, missing, _DISPUTE_BASIS),
            ]
        findings: list[Finding] = []

        number = (product.registration_number or "").strip()
        if number:
            findings.append(
                f(
                    self._c_registered,
                    PASS,
                    self.text("product-registered"),
                    {"registration_number": number},
                    _REGISTRATION_BASIS,
                )
            )
        else:
            findings.append(
                f(
                    self._c_registered,
                    FAIL,
                    self.text("product-no-registration-number-register"),
                    {"registration_number": product.registration_number},
                    _REGISTRATION_BASIS,
                )
            )

        scenarios = [s for s in product.permitted_scenarios if s.strip()]
        findings.append(
            f(
                self._c_scenarios_declared,
                PASS,
                self.text("permitted-application-scenarios-declared"),
                {"permitted_scenarios": scenarios},
                _SCENARIO_BASIS,
            )
            if scenarios
            else f(
                self._c_scenarios_declared,
                FAIL,
                self.text("product-declares-no-permitted-application"),
                {"permitted_scenarios": list(product.permitted_scenarios)},
                _SCENARIO_BASIS,
            )
        )

        modes = list(product.delivery_modes)
        findings.append(
            f(
                self._c_delivery_modes,
                PASS,
                self.text("delivery-modes-offered"),
                {"delivery_modes": modes},
                _DELIVERY_BASIS,
            )
            if modes
            else f(
                self._c_delivery_modes,
                FAIL,
                self.text("product-offers-no-delivery-mode"),
                {"delivery_modes": modes},
                _DELIVERY_BASIS,
            )
        )
        findings.append(self._dataset_hosted(product, modes))

        licence = product.licence
        if licence is None:
            findings.append(
                f(
                    self._c_licence_terms,
                    FAIL,
                    self.text("product-publishes-no-licence-terms"),
                    {"licence": None},
                    _LICENCE_BASIS,
                )
            )
        else:
            evidence = {
                "scope": licence.scope,
                "term_days": licence.term_days,
                "exclusive": licence.exclusive,
                "resale_allowed": licence.resale_allowed,
                "sublicensing_allowed": licence.sublicensing_allowed,
                "max_licences": licence.max_licences,
            }
            findings.append(
                f(self._c_licence_terms, PASS, self.text("licence-terms-published"), evidence, _LICENCE_BASIS)
                if licence.scope.strip()
                else f(self._c_licence_terms, FAIL, self.text("licence-terms-state-no-scope"), evidence, _LICENCE_BASIS)
            )

        findings.append(self._route(self._c_dispute_route, product.dispute_route, None, product.dispute_route))
        return findings

    def _route(self, code: str, route: str | None, trade_route: str | None, product_route: str | None) -> Finding:
        evidence = {
            "dispute_route": route,
            "trade_route": trade_route,
            "product_route": product_route,
            "accepted": list(self._routes_sorted),
        }
        if route is None:
            return make_finding(
                self.id,
                code,
                FAIL,
                self.text("no-dispute-route-named-negotiation"),
                evidence,
                _DISPUTE_BASIS,
            )
        if route not in self._routes:
            return make_finding(
                self.id, code, FAIL, self.text("not-accepted-dispute-route-here", route=route), evidence, _DISPUTE_BASIS
            )
        return make_finding(self.id, code, PASS, self.text("disputes-go-to", route=route), evidence, _DISPUTE_BASIS)

    # --- trade ---------------------------------------------------------------------------

    def _trade(self, snapshot: Snapshot) -> list[Finding]:
        product = snapshot.product
        trade = snapshot.trade
        return [
            self._scenario(product, trade),
            self._licence_accepted(product, trade),
            self._delivery_mode(product, trade),
            self._trade_dataset_hosted(product, trade),
            self._self_dealing(snapshot.buyer, snapshot.provider),
            self._trade_dispute_route(product, trade),
            self._licences_available(product, trade),
        ]

    def _missing(
        self, code: str, basis: tuple[str, ...], product: ProductFacts | None, trade: TradeFacts | None
    ) -> Finding:
        evidence = {"product_present": product is not None, "trade_present": trade is not None}
        return make_finding(self.id, code, FAIL, self.text("trade-snapshot-lacks-product-or"), evidence, basis)

    def _scenario(self, product: ProductFacts | None, trade: TradeFacts | None) -> Finding:
        code = self._c_scenario
        if product is None or trade is None:
            return self._missing(code, _SCENARIO_BASIS, product, trade)
        scenario = trade.scenario
        permitted = product.permitted_scenarios
        evidence = {"scenario": scenario, "permitted_scenarios": list(permitted)}
        if not scenario:
            return make_finding(
                self.id,
                code,
                FAIL,
                self.text("buyer-declared-no-application-scenario"),
                evidence,
                _SCENARIO_BASIS,
            )
        if scenario not in permitted:
            return make_finding(
                self.id,
                code,
                FAIL,
                self.text("buyer-scenario-not-among-product"),
                evidence,
                _SCENARIO_BASIS,
            )
        return make_finding(self.id, code, PASS, self.text("buyer-scenario-permitted"), evidence, _SCENARIO_BASIS)

    def _licence_accepted(self, product: ProductFacts | None, trade: TradeFacts | None) -> Finding:
        code = self._c_licence_accepted
        if product is None or trade is None:
            return self._missing(code, _LICENCE_BASIS, product, trade)
        has_terms = product.licence is not None
        accepted = trade.licence_terms_accepted
        evidence = {"licence_terms_accepted": accepted, "product_has_licence_terms": has_terms}
        if not has_terms:
            return make_finding(
                self.id,
                code,
                FAIL,
                self.text("product-no-licence-terms-for"),
                evidence,
                _LICENCE_BASIS,
            )
        if not accepted:
            return make_finding(
                self.id, code, FAIL, self.text("buyer-not-accepted-licence-terms"), evidence, _LICENCE_BASIS
            )
        return make_finding(self.id, code, PASS, self.text("buyer-accepted-licence-terms"), evidence, _LICENCE_BASIS)

    def _delivery_mode(self, product: ProductFacts | None, trade: TradeFacts | None) -> Finding:
        code = self._c_delivery_mode
        if product is None or trade is None:
            return self._missing(code, _DELIVERY_BASIS, product, trade)
        mode = trade.delivery_mode
        offered = product.delivery_modes
        evidence = {"delivery_mode": mode, "offered_modes": list(offered)}
        if mode in offered:
            return make_finding(self.id, code, PASS, self.text("delivery-mode-offered"), evidence, _DELIVERY_BASIS)
        return make_finding(
            self.id, code, FAIL, self.text("product-does-not-offer-delivery", mode=mode), evidence, _DELIVERY_BASIS
        )

    def _trade_dataset_hosted(self, product: ProductFacts | None, trade: TradeFacts | None) -> Finding:
        if product is None or trade is None:
            return self._missing(self._c_dataset_hosted, _HOSTED_BASIS, product, trade)
        return self._dataset_hosted(product, (trade.delivery_mode,))

    def _dataset_hosted(self, product: ProductFacts, modes: Sequence[str]) -> Finding:
        """Listing: the modes offered; trade: the mode ordered. Each delivers from the hosted dataset."""
        code, digest = self._c_dataset_hosted, product.content_sha256
        evidence = {"delivery_modes": list(modes), "content_sha256": digest}
        if not modes:
            return make_finding(self.id, code, NA, self.text("no-delivery-mode-nothing-to"), evidence, _HOSTED_BASIS)
        if digest:
            message = self.text("dataset-that-delivery-serves-hosted", modes=", ".join(modes))
            return make_finding(self.id, code, PASS, message, evidence, _HOSTED_BASIS)
        message = self.text("version-offers-delivery-but-dataset", version=product.version, modes=", ".join(modes))
        return make_finding(self.id, code, FAIL, message, evidence, _HOSTED_BASIS)

    def _self_dealing(self, buyer: OrganizationFacts | None, provider: OrganizationFacts | None) -> Finding:
        code = self._c_self_dealing
        if buyer is None or provider is None:
            return make_finding(
                self.id,
                code,
                FAIL,
                self.text("trade-snapshot-lacks-buyer-or"),
                {
                    "buyer_id": None if buyer is None else buyer.id,
                    "provider_id": None if provider is None else provider.id,
                },
                _SELF_DEALING_BASIS,
            )
        same_id = buyer.id == provider.id
        same_uscc = _same_uscc(buyer.uscc, provider.uscc)
        evidence = {
            "buyer_id": buyer.id,
            "provider_id": provider.id,
            "same_organization_id": same_id,
            "same_uscc": same_uscc,
        }
        if same_id or same_uscc:
            return make_finding(
                self.id,
                code,
                FAIL,
                self.text("buyer-provider-itself-self-dealing"),
                evidence,
                _SELF_DEALING_BASIS,
            )
        return make_finding(
            self.id, code, PASS, self.text("buyer-and-provider-different-organisations"), evidence, _SELF_DEALING_BASIS
        )

    def _trade_dispute_route(self, product: ProductFacts | None, trade: TradeFacts | None) -> Finding:
        code = self._c_dispute_route
        if product is None or trade is None:
            return self._missing(code, _DISPUTE_BASIS, product, trade)
        trade_route = trade.dispute_route
        product_route = product.dispute_route
        return self._route(code, trade_route or product_route, trade_route, product_route)

    def _licences_available(self, product: ProductFacts | None, trade: TradeFacts | None) -> Finding:
        code = self._c_licences_available
        if product is None or trade is None:
            return self._missing(code, _LICENCE_BASIS, product, trade)
        available = trade.licences_available
        licence = product.licence
        max_licences = None if licence is None else licence.max_licences
        evidence = {"licences_available": available, "quantity": trade.quantity, "max_licences": max_licences}
        if available is None:
            if max_licences is not None:
                # The product limits licences but the trade does not say how many are left.
                return make_finding(
                    self.id,
                    code,
                    FAIL,
                    self.text("product-limits-licences-but-count"),
                    evidence,
                    _LICENCE_BASIS,
                )
            return make_finding(self.id, code, NA, self.text("product-does-not-limit-number"), evidence, _LICENCE_BASIS)
        if available < trade.quantity:
            return make_finding(
                self.id,
                code,
                FAIL,
                self.text("not-enough-licences-left-for"),
                evidence,
                _LICENCE_BASIS,
            )
        return make_finding(self.id, code, PASS, self.text("enough-licences-left"), evidence, _LICENCE_BASIS)


def _same_uscc(a: str, b: str) -> bool:
    """Equal codes, tolerating case and the spaces or hyphens people type (GB 32100)."""
    if a == b:
        return bool(a)
    return bool(a) and normalize_uscc(a) == normalize_uscc(b)
