"""R5 数据产品交易价格评估指引 - Data product trading price evaluation.

The rule text is a reconstruction: the official 2022 Guizhou guideline was not at hand, so
each check below is derived from the rulebook row for R5 and the law it rests on, and is
written so that a machine can decide it.

Listing stage
  - ``plan-price``: the product has at least one price plan, and every plan has a price in
    integer minor units that is non-negative; a ``free`` plan is priced at exactly 0, every
    other plan above 0, and a ``metered`` plan also names its per-call ``unit_price_minor``
    (above 0). Rests on the Price Law's marked-price duty (价格法 Art. 13) and the
    guideline's "every plan has a price".
  - ``plan-currency``: every plan's currency is an ISO 4217 code with a minor unit (money is
    kept in minor units, so gold, SDR and the like are refused).
  - ``pricing-basis``: every plan names how its price was set: ``cost``, ``market`` or
    ``income`` (the three bases of the guideline).
  - ``reference-deviation``: when an assessed reference price is on file, each one-time or
    subscription plan's price lies within ``price_deviation_band_bps`` of it, else a human
    reviews the price. Free and metered plans are not compared (a free plan is 0 by
    definition; a metered plan's price is a per-call rate, not a licence price).
  - ``public-data-cap``: a product of public data (authorised operation of public data) is
    priced at or under its government-guided cap; above the cap fails; public data with no
    cap on file goes to review.

Trade stage
  - ``plan-listed``: the plan traded is one of the product's listed plans, unchanged (kind,
    price, unit price, currency).
  - ``private-offer``: a private offer, if any, was approved by the exchange; an
    unapproved private offer fails.
  - ``trade-amount``: the trade amount is the agreed unit price times the quantity: the
    approved private offer's price if there is one, else the plan price (one-time and
    subscription plans); 0 for a free plan; for a metered plan the calls are billed later,
    so the plan's ``unit_price_minor`` must be present instead. The quantity is at least 1.
  - ``trade-currency``: the trade is in the plan's currency.
  - ``reference-deviation``: the agreed unit price lies within the band of the assessed
    reference price, else review (not applicable without a reference or for metered and
    free plans without a private offer).
  - ``public-data-cap``: the agreed unit price of a public-data product is within the cap,
    so a private offer cannot get round it (no cap on file -> review).

Deviation is ``ceil(|price - reference| * 10000 / reference)`` basis points, computed in
integers; it is within the band exactly when that figure is at most the band. A reference
price that is not positive cannot anchor a deviation and goes to review.

Parameters
  - ``price_deviation_band_bps`` (default 3000, i.e. 30 %): the widest accepted deviation of
    a price from the assessed reference price, in basis points. The figure is a judgement,
    not a quoted norm: wide enough for ordinary negotiation and volume terms around an
    appraised price, narrow enough that transfer pricing, dumping (价格法 Art. 14) or an
    error of a factor of ten reaches a person. Operators should tune it to their market.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final

from marketplace.compliance.contract import Finding, Outcome, Rule, RuleContext, Stage, make_finding
from marketplace.compliance.snapshots import PlanFacts, ProductFacts, Snapshot, TradeFacts
from marketplace.kit.codelists import currency_minor_units, is_currency

_LISTING_CHECKS: Final = ("plan-price", "plan-currency", "pricing-basis", "reference-deviation", "public-data-cap")
_TRADE_CHECKS: Final = (
    "plan-listed",
    "private-offer",
    "trade-amount",
    "trade-currency",
    "reference-deviation",
    "public-data-cap",
)
_PRICED_KINDS: Final = frozenset({"one_time", "subscription"})
_BASES: Final = frozenset({"cost", "market", "income"})

PASS = Outcome.PASS
FAIL = Outcome.FAIL
REVIEW = Outcome.REVIEW
NA = Outcome.NOT_APPLICABLE
LISTING = Stage.LISTING
TRADE = Stage.TRADE


def _deviation_bps(price: int, reference: int) -> int:
    """ceil(|price - reference| / reference * 10000), in integers (reference > 0)."""
    return -(-abs(price - reference) * 10_000 // reference)


class PriceEvaluationRule(Rule):
    id = "R5"
    title_zh = "数据产品交易价格评估指引"
    title_en = "Data product trading price evaluation"
    version = "1.0.0"
    basis = (
        "价格法 Art. 7 (fair, lawful pricing)",
        "价格法 Art. 12 (government-guided prices observed)",
        "价格法 Art. 13 (marked prices)",
        "价格法 Art. 14 (unfair pricing prohibited)",
        "DSL Art. 19",
        "《数据二十条》 (public data for industry use: conditional paid use; market-based pricing)",
        "《贵州省数据流通交易管理办法（试行）》 (2022)",
    )
    stages = frozenset({Stage.LISTING, Stage.TRADE})
    parameters: ClassVar[Mapping[str, Any]] = {"price_deviation_band_bps": 3000}

    messages: ClassVar[dict[str, str]] = {
        "no-product-in-listing-snapshot": "no product in the listing snapshot",
        "product-no-price-plan": "the product has no price plan",
        "no-price-plan-to-check": "no price plan to check",
        "no-price-plan-to-compare": "no price plan to compare",
        "price-plan-no-valid-price": "a price plan has no valid price",
        "every-plan-valid-price": "every plan has a valid price",
        "plan-currency-not-iso-4217": "a plan's currency is not an ISO 4217 currency with a minor unit",
        "every-plan-priced-in-iso": "every plan is priced in an ISO 4217 currency",
        "plan-does-not-say-whether": "a plan does not say whether its price is cost-, market- or income-based",
        "every-plan-names-pricing-basis": "every plan names its pricing basis",
        "no-assessed-reference-price-on": "no assessed reference price on file",
        "no-one-time-or-subscription": "no one-time or subscription plan to compare with the reference price",
        "reference-price-not-positive-deviation": (
            "the reference price is not positive, so deviation cannot be measured"
        ),
        "plan-price-deviates-from-reference": "a plan's price deviates from the reference price beyond the band",
        "plan-prices-within-band-reference": "plan prices are within the band of the reference price",
        "not-public-data-product": "not a public-data product",
        "public-data-product-without-government": ("public-data product without a government-guided price cap on file"),
        "plan-priced-above-government-guided": "a plan is priced above the government-guided cap",
        "every-plan-within-government-guided": "every plan is within the government-guided cap",
        "trade-snapshot-lacks": "the trade snapshot lacks {missing}",
        "plan-traded-differs-from-listed": "the plan traded differs from the listed plan",
        "plan-traded-listed-plan": "the plan traded is a listed plan",
        "plan-traded-not-one-product": "the plan traded is not one of the product's plans",
        "no-private-offer": "no private offer",
        "private-offer-not-approved": "the private offer was not approved",
        "private-offer-price-negative": "the private offer's price is negative",
        "private-offer-approved": "the private offer was approved",
        "quantity-must-at-least-1": "the quantity must be at least 1",
        "metered-plan-no-per-call": "the metered plan has no per-call unit price",
        "metered-plan-calls-billed-at": "metered plan: calls are billed at the listed unit price",
        "trade-amount-not-agreed-price": "the trade amount is not the agreed price times the quantity",
        "trade-amount-agreed-price-times": "the trade amount is the agreed price times the quantity",
        "trade-not-in-plan-currency": "the trade is not in the plan's currency",
        "trade-in-plan-currency": "the trade is in the plan's currency",
        "metered-or-free-plan-no": "metered or free plan: no licence price to compare",
        "agreed-price-deviates-from-reference": "the agreed price deviates from the reference price beyond the band",
        "agreed-price-within-band-reference": "the agreed price is within the band of the reference",
        "agreed-price-above-government-guided": "the agreed price is above the government-guided cap",
        "agreed-price-within-government-guided": "the agreed price is within the government-guided cap",
    }

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        band = self.params["price_deviation_band_bps"]
        if isinstance(band, bool) or not isinstance(band, int) or band < 0:
            raise ValueError(f"R5 price_deviation_band_bps must be a non-negative integer, got {band!r}")
        self._band: int = band
        rid = self.id
        self._c_plan_listed = f"{rid}.plan-listed"
        self._c_private_offer = f"{rid}.private-offer"
        self._c_trade_amount = f"{rid}.trade-amount"
        self._c_trade_currency = f"{rid}.trade-currency"
        self._c_reference_deviation = f"{rid}.reference-deviation"
        self._c_public_data_cap = f"{rid}.public-data-cap"

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        if ctx.stage is TRADE:
            return self._trade(ctx.snapshot)
        if ctx.stage is LISTING:
            return self._listing(ctx.snapshot)
        return []

    # --- listing ---------------------------------------------------------------------------

    def _listing(self, snapshot: Snapshot) -> list[Finding]:
        product = snapshot.product
        if product is None:
            return [
                self.failed(code, self.text("no-product-in-listing-snapshot"), {"missing": ["product"]})
                for code in _LISTING_CHECKS
            ]
        plans = product.plans
        if not plans:
            none = {"plans": 0}
            return [
                self.failed("plan-price", self.text("product-no-price-plan"), none),
                self.not_applicable("plan-currency", self.text("no-price-plan-to-check"), none),
                self.not_applicable("pricing-basis", self.text("no-price-plan-to-check"), none),
                self.not_applicable("reference-deviation", self.text("no-price-plan-to-compare"), none),
                self.not_applicable("public-data-cap", self.text("no-price-plan-to-compare"), none),
            ]
        return [
            self._plan_prices(plans),
            self._plan_currencies(plans),
            self._pricing_bases(plans),
            self._listing_deviation(product),
            self._listing_cap(product),
        ]

    def _plan_prices(self, plans: tuple[PlanFacts, ...]) -> Finding:
        problems: list[dict[str, Any]] = []
        for plan in plans:
            problem = _price_problem(plan)
            if problem is not None:
                problems.append(
                    {
                        "plan_id": plan.id,
                        "kind": plan.kind,
                        "price_minor": plan.price_minor,
                        "unit_price_minor": plan.unit_price_minor,
                        "problem": problem,
                    }
                )
        evidence = {"plans_checked": len(plans), "problems": problems}
        if problems:
            return self.failed("plan-price", self.text("price-plan-no-valid-price"), evidence)
        return self.passed("plan-price", self.text("every-plan-valid-price"), evidence)

    def _plan_currencies(self, plans: tuple[PlanFacts, ...]) -> Finding:
        problems = [
            {"plan_id": plan.id, "currency": plan.currency}
            for plan in plans
            if not is_currency(plan.currency) or currency_minor_units(plan.currency) is None
        ]
        evidence = {"currencies": sorted({plan.currency for plan in plans}), "problems": problems}
        if problems:
            return self.failed("plan-currency", self.text("plan-currency-not-iso-4217"), evidence)
        return self.passed("plan-currency", self.text("every-plan-priced-in-iso"), evidence)

    def _pricing_bases(self, plans: tuple[PlanFacts, ...]) -> Finding:
        missing = [plan.id for plan in plans if plan.pricing_basis not in _BASES]
        evidence = {
            "bases": {plan.id: plan.pricing_basis for plan in plans},
            "allowed": sorted(_BASES),
            "missing": missing,
        }
        if missing:
            return self.failed("pricing-basis", self.text("plan-does-not-say-whether"), evidence)
        return self.passed("pricing-basis", self.text("every-plan-names-pricing-basis"), evidence)

    def _listing_deviation(self, product: ProductFacts) -> Finding:
        reference = product.reference_price_minor
        compared = [plan for plan in product.plans if plan.kind in _PRICED_KINDS]
        skipped = [plan.id for plan in product.plans if plan.kind not in _PRICED_KINDS]
        if reference is None:
            return self.not_applicable(
                "reference-deviation", self.text("no-assessed-reference-price-on"), {"reference_price_minor": None}
            )
        if not compared:
            return self.not_applicable(
                "reference-deviation",
                self.text("no-one-time-or-subscription"),
                {"reference_price_minor": reference, "not_compared": skipped},
            )
        if reference <= 0:
            return self.review(
                "reference-deviation",
                self.text("reference-price-not-positive-deviation"),
                {"reference_price_minor": reference},
            )
        rows: list[dict[str, Any]] = []
        outside: list[str] = []
        for plan in compared:
            deviation = _deviation_bps(plan.price_minor, reference)
            rows.append({"plan_id": plan.id, "price_minor": plan.price_minor, "deviation_bps": deviation})
            if deviation > self._band:
                outside.append(plan.id)
        evidence = {
            "reference_price_minor": reference,
            "band_bps": self._band,
            "plans": rows,
            "outside_band": outside,
            "not_compared": skipped,
        }
        if outside:
            return self.review("reference-deviation", self.text("plan-price-deviates-from-reference"), evidence)
        return self.passed("reference-deviation", self.text("plan-prices-within-band-reference"), evidence)

    def _listing_cap(self, product: ProductFacts) -> Finding:
        if not product.public_data:
            return self.not_applicable("public-data-cap", self.text("not-public-data-product"), {"public_data": False})
        cap = product.government_price_cap_minor
        if cap is None:
            return self.review(
                "public-data-cap",
                self.text("public-data-product-without-government"),
                {"public_data": True, "government_price_cap_minor": None},
            )
        above = [
            {"plan_id": plan.id, "price_minor": plan.price_minor} for plan in product.plans if plan.price_minor > cap
        ]
        evidence = {"public_data": True, "government_price_cap_minor": cap, "above_cap": above}
        if above:
            return self.failed("public-data-cap", self.text("plan-priced-above-government-guided"), evidence)
        return self.passed("public-data-cap", self.text("every-plan-within-government-guided"), evidence)

    # --- trade -----------------------------------------------------------------------------

    def _trade(self, snapshot: Snapshot) -> list[Finding]:
        product = snapshot.product
        plan = snapshot.plan
        trade = snapshot.trade
        if product is None or plan is None or trade is None:
            missing = [name for name, part in (("product", product), ("plan", plan), ("trade", trade)) if part is None]
            return [
                self.failed(code, self.text("trade-snapshot-lacks", missing=", ".join(missing)), {"missing": missing})
                for code in _TRADE_CHECKS
            ]
        offer = trade.private_offer
        if offer is not None:
            unit_price: int | None = offer.price_minor
        elif plan.kind in _PRICED_KINDS:
            unit_price = plan.price_minor
        else:
            unit_price = None
        return [
            self._plan_listed(product, plan),
            self._private_offer(trade),
            self._trade_amount(plan, trade),
            self._trade_currency(plan, trade),
            self._trade_deviation(product, unit_price, offer is not None),
            self._trade_cap(product, unit_price),
        ]

    def _plan_listed(self, product: ProductFacts, plan: PlanFacts) -> Finding:
        rid, code, basis = self.id, self._c_plan_listed, self.basis
        for listed in product.plans:
            if listed.id == plan.id:
                changed: list[str] = []
                if listed.kind != plan.kind:
                    changed.append("kind")
                if listed.price_minor != plan.price_minor:
                    changed.append("price_minor")
                if listed.unit_price_minor != plan.unit_price_minor:
                    changed.append("unit_price_minor")
                if listed.currency != plan.currency:
                    changed.append("currency")
                if changed:
                    return make_finding(
                        rid,
                        code,
                        FAIL,
                        self.text("plan-traded-differs-from-listed"),
                        {"plan_id": plan.id, "changed": changed},
                        basis,
                    )
                return make_finding(rid, code, PASS, self.text("plan-traded-listed-plan"), {"plan_id": plan.id}, basis)
        return make_finding(
            rid,
            code,
            FAIL,
            self.text("plan-traded-not-one-product"),
            {"plan_id": plan.id, "listed_plan_ids": [listed.id for listed in product.plans]},
            basis,
        )

    def _private_offer(self, trade: TradeFacts) -> Finding:
        rid, code, basis = self.id, self._c_private_offer, self.basis
        offer = trade.private_offer
        if offer is None:
            return make_finding(rid, code, NA, self.text("no-private-offer"), {"private_offer": False}, basis)
        evidence = {"private_offer": True, "approved": offer.approved, "price_minor": offer.price_minor}
        if not offer.approved:
            return make_finding(rid, code, FAIL, self.text("private-offer-not-approved"), evidence, basis)
        if offer.price_minor < 0:
            return make_finding(rid, code, FAIL, self.text("private-offer-price-negative"), evidence, basis)
        return make_finding(rid, code, PASS, self.text("private-offer-approved"), evidence, basis)

    def _trade_amount(self, plan: PlanFacts, trade: TradeFacts) -> Finding:
        rid, code, basis = self.id, self._c_trade_amount, self.basis
        quantity = trade.quantity
        amount = trade.amount_minor
        offer = trade.private_offer
        if quantity < 1:
            return make_finding(
                rid,
                code,
                FAIL,
                self.text("quantity-must-at-least-1"),
                {"quantity": quantity, "amount_minor": amount},
                basis,
            )
        if offer is not None:
            priced_by = "private_offer"
            expected = offer.price_minor * quantity
        elif plan.kind == "metered":
            unit = plan.unit_price_minor
            evidence: dict[str, Any] = {
                "priced_by": "metered",
                "unit_price_minor": unit,
                "quantity": quantity,
                "amount_minor": amount,
            }
            if unit is None or unit <= 0:
                return make_finding(rid, code, FAIL, self.text("metered-plan-no-per-call"), evidence, basis)
            return make_finding(rid, code, PASS, self.text("metered-plan-calls-billed-at"), evidence, basis)
        elif plan.kind == "free":
            priced_by = "free"
            expected = 0
        else:
            priced_by = "plan"
            expected = plan.price_minor * quantity
        evidence = {"priced_by": priced_by, "expected_minor": expected, "amount_minor": amount, "quantity": quantity}
        if amount != expected:
            return make_finding(rid, code, FAIL, self.text("trade-amount-not-agreed-price"), evidence, basis)
        return make_finding(rid, code, PASS, self.text("trade-amount-agreed-price-times"), evidence, basis)

    def _trade_currency(self, plan: PlanFacts, trade: TradeFacts) -> Finding:
        rid, code, basis = self.id, self._c_trade_currency, self.basis
        evidence = {"trade_currency": trade.currency, "plan_currency": plan.currency}
        if trade.currency != plan.currency:
            return make_finding(rid, code, FAIL, self.text("trade-not-in-plan-currency"), evidence, basis)
        return make_finding(rid, code, PASS, self.text("trade-in-plan-currency"), evidence, basis)

    def _trade_deviation(self, product: ProductFacts, unit_price: int | None, by_offer: bool) -> Finding:
        rid, code, basis = self.id, self._c_reference_deviation, self.basis
        reference = product.reference_price_minor
        if reference is None:
            return make_finding(
                rid, code, NA, self.text("no-assessed-reference-price-on"), {"reference_price_minor": None}, basis
            )
        if unit_price is None:
            return make_finding(
                rid,
                code,
                NA,
                self.text("metered-or-free-plan-no"),
                {"reference_price_minor": reference},
                basis,
            )
        if reference <= 0:
            return make_finding(
                rid,
                code,
                REVIEW,
                self.text("reference-price-not-positive-deviation"),
                {"reference_price_minor": reference, "unit_price_minor": unit_price},
                basis,
            )
        deviation = _deviation_bps(unit_price, reference)
        evidence = {
            "reference_price_minor": reference,
            "unit_price_minor": unit_price,
            "priced_by": "private_offer" if by_offer else "plan",
            "deviation_bps": deviation,
            "band_bps": self._band,
        }
        if deviation > self._band:
            return make_finding(
                rid,
                code,
                REVIEW,
                self.text("agreed-price-deviates-from-reference"),
                evidence,
                basis,
            )
        return make_finding(rid, code, PASS, self.text("agreed-price-within-band-reference"), evidence, basis)

    def _trade_cap(self, product: ProductFacts, unit_price: int | None) -> Finding:
        rid, code, basis = self.id, self._c_public_data_cap, self.basis
        if not product.public_data:
            return make_finding(rid, code, NA, self.text("not-public-data-product"), {"public_data": False}, basis)
        cap = product.government_price_cap_minor
        if unit_price is None:
            return make_finding(
                rid,
                code,
                NA,
                self.text("metered-or-free-plan-no"),
                {"public_data": True, "government_price_cap_minor": cap},
                basis,
            )
        if cap is None:
            return make_finding(
                rid,
                code,
                REVIEW,
                self.text("public-data-product-without-government"),
                {"public_data": True, "government_price_cap_minor": None, "unit_price_minor": unit_price},
                basis,
            )
        evidence = {"public_data": True, "government_price_cap_minor": cap, "unit_price_minor": unit_price}
        if unit_price > cap:
            return make_finding(rid, code, FAIL, self.text("agreed-price-above-government-guided"), evidence, basis)
        return make_finding(rid, code, PASS, self.text("agreed-price-within-government-guided"), evidence, basis)


def _price_problem(plan: PlanFacts) -> str | None:
    price = plan.price_minor
    if type(price) is not int:
        return "price is not an integer amount in minor units"
    if price < 0:
        return "price is negative"
    if plan.kind == "free":
        return None if price == 0 else "a free plan must be priced at 0"
    if price == 0:
        return "only a free plan may be priced at 0"
    if plan.kind == "metered":
        unit = plan.unit_price_minor
        if type(unit) is not int or unit <= 0:
            return "a metered plan needs a positive per-call unit price"
    return None
