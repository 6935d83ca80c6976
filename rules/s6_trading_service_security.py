"""S6 — GB/T 37932-2019 数据交易服务安全要求 (data trading service security requirements).

The rule text is a reconstruction: neither the official Guizhou "eight rules and ten
standards" nor the text of GB/T 37932-2019 was at hand, so the checks below are our
machine-checkable reading of what the standard (its requirements on the data provider,
§5.1, the data demander, §5.2, and the data trading service agency, §5.3) and the laws it
implements ask of the exchange. (GB/T 37932-2025 replaces the 2019 edition from 2026-07-01;
the checks here are ones both editions share in substance.)

Checks, by stage
  trade, delivery
    provider-verified   the provider is in the snapshot and admitted (status ``admitted``):
                        the exchange has authenticated and verified it. Rests on DSL Art. 33
                        (a data trading intermediary verifies the identity of both sides) and
                        GB/T 37932-2019 §5.1/§5.3. Missing provider -> fail (fail closed).
    buyer-verified      the same for the buyer (DSL Art. 33; GB/T 37932-2019 §5.2/§5.3).
    record-retention    verification and trade records are kept for the configured period,
                        which may not be below the legal minimum of 3 years (DSL Art. 33:
                        keep verification and transaction records; PIPL Art. 56: records kept
                        at least 3 years). A lower configured value fails every trade and
                        delivery, with the configured value in the evidence.
  delivery
    delivery-integrity  the delivery record carries the sha256 of what was delivered (64 hex
                        digits, either case) and it equals the registered digest of the
                        product version (``product.content_sha256``). A missing or malformed
                        delivered digest, a product without a registered digest, or a
                        mismatch fails (GB/T 37932-2019 §5.3: integrity of the data delivered).
    licence-active      the licence under which the delivery happens is ``active``; a
                        suspended, revoked or expired licence fails (a licence granted under
                        an old verdict is not delivered).

Parameters
  retention_years (int, default 3): how long the exchange keeps trade and verification
    records. The default is the legal minimum (PIPL Art. 56; DSL Art. 33 names no period, so
    the PIPL floor is the one applied); an operator may raise it, never lower it below 3.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Final

from marketplace.compliance.contract import Finding, Outcome, Rule, RuleContext, Severity, Stage, make_finding
from marketplace.compliance.snapshots import OrganizationFacts

LEGAL_MINIMUM_RETENTION_YEARS: Final = 3
_HEX_DIGITS: Final = "0123456789abcdef"

PASS = Outcome.PASS
FAIL = Outcome.FAIL
TRADE = Stage.TRADE
DELIVERY = Stage.DELIVERY


def _is_sha256_hex(value: str) -> bool:
    # No regex: 64 characters, and nothing left once the hex digits are stripped.
    return len(value) == 64 and not value.lower().strip(_HEX_DIGITS)


class TradingServiceSecurityStandard(Rule):
    id: ClassVar[str] = "S6"
    title_zh: ClassVar[str] = "数据交易服务安全要求（GB/T 37932-2019）"
    title_en: ClassVar[str] = "GB/T 37932-2019 data trading service security requirements"
    version: ClassVar[str] = "1.0.0"
    basis: ClassVar[tuple[str, ...]] = (
        "GB/T 37932-2019 §5.1",
        "GB/T 37932-2019 §5.2",
        "GB/T 37932-2019 §5.3",
        "DSL Art. 33",
        "PIPL Art. 56",
    )
    stages: ClassVar[frozenset[Stage]] = frozenset({Stage.TRADE, Stage.DELIVERY})
    parameters: ClassVar[dict[str, Any]] = {"retention_years": LEGAL_MINIMUM_RETENTION_YEARS}
    default_severity: ClassVar[Severity] = Severity.BLOCK

    messages: ClassVar[dict[str, str]] = {
        "no-in-snapshot-cannot-verified": "no {role} in the snapshot: the {role} cannot be verified",
        "authenticated-and-admitted-to-exchange": "the {role} is authenticated and admitted to the exchange",
        "not-admitted-to-exchange-status": "the {role} is not admitted to the exchange (status {status})",
        "trade-records-kept-for-years": (
            "trade records are kept for {years} years (legal minimum {LEGAL_MINIMUM_RETENTION_YEARS})"
        ),
        "configured-record-retention-years-below": (
            "the configured record retention ({years!r} years) is below the legal minimum of "
            "{LEGAL_MINIMUM_RETENTION_YEARS} years"
        ),
        "no-delivery-record-in-snapshot": "no delivery record in the snapshot: integrity cannot be verified",
        "delivery-carries-no-content-sha256": "the delivery carries no content sha256",
        "delivered-content-hash-not-sha256": "the delivered content hash is not a sha256 (64 hex digits)",
        "product-no-registered-content-sha256": (
            "the product has no registered content sha256 to compare the delivery with"
        ),
        "delivered-content-hash-differs-from": (
            "the delivered content hash differs from the product's registered content hash"
        ),
        "delivered-content-matches-product-registered": (
            "the delivered content matches the product's registered sha256"
        ),
        "no-delivery-record-in-snapshot-2": "no delivery record in the snapshot: the licence status is unknown",
        "licence-active-at-delivery": "the licence is active at delivery",
        "licence-nothing-may-delivered-under": "the licence is {status}: nothing may be delivered under it",
    }

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        years = self.params["retention_years"]
        ok = isinstance(years, int) and not isinstance(years, bool) and years >= LEGAL_MINIMUM_RETENTION_YEARS
        # The retention finding depends only on the parameters: build it once, not per trade.
        self._retention_finding = self._retention(years, ok)
        self._c_provider_verified = f"{self.id}.provider-verified"
        self._c_buyer_verified = f"{self.id}.buyer-verified"

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        snapshot = ctx.snapshot
        if ctx.stage is TRADE:
            return [
                self._party(self._c_provider_verified, "provider", snapshot.provider),
                self._party(self._c_buyer_verified, "buyer", snapshot.buyer),
                self._retention_finding,
            ]
        if ctx.stage is DELIVERY:
            return [
                self._party(self._c_provider_verified, "provider", snapshot.provider),
                self._party(self._c_buyer_verified, "buyer", snapshot.buyer),
                self._integrity(ctx),
                self._licence(ctx),
                self._retention_finding,
            ]
        return []

    # --- trade and delivery -------------------------------------------------------------------

    def _party(self, code: str, role: str, org: OrganizationFacts | None) -> Finding:
        if org is None:
            return make_finding(
                self.id,
                code,
                FAIL,
                self.text("no-in-snapshot-cannot-verified", role=role),
                {"role": role, "present": False},
                self.basis,
            )
        status = org.status
        evidence = {"role": role, "present": True, "organization_id": org.id, "status": status}
        if status == "admitted":
            return make_finding(
                self.id,
                code,
                PASS,
                self.text("authenticated-and-admitted-to-exchange", role=role),
                evidence,
                self.basis,
            )
        return make_finding(
            self.id,
            code,
            FAIL,
            self.text("not-admitted-to-exchange-status", role=role, status=status),
            evidence,
            self.basis,
        )

    def _retention(self, years: Any, ok: bool) -> Finding:
        # Shared by every verdict: read-only.
        evidence = MappingProxyType({"retention_years": years, "legal_minimum_years": LEGAL_MINIMUM_RETENTION_YEARS})
        if ok:
            return self.passed(
                "record-retention",
                self.text(
                    "trade-records-kept-for-years",
                    years=years,
                    LEGAL_MINIMUM_RETENTION_YEARS=LEGAL_MINIMUM_RETENTION_YEARS,
                ),
                evidence,
            )
        return self.failed(
            "record-retention",
            self.text(
                "configured-record-retention-years-below",
                years=years,
                LEGAL_MINIMUM_RETENTION_YEARS=LEGAL_MINIMUM_RETENTION_YEARS,
            ),
            evidence,
        )

    # --- delivery -----------------------------------------------------------------------------

    def _integrity(self, ctx: RuleContext) -> Finding:
        delivery = ctx.snapshot.delivery
        product = ctx.snapshot.product
        expected = product.content_sha256 if product is not None else None
        if delivery is None:
            return self.failed(
                "delivery-integrity",
                self.text("no-delivery-record-in-snapshot"),
                {"problem": "no-delivery", "delivered_sha256": None, "expected_sha256": expected},
            )
        delivered = delivery.content_sha256
        evidence: dict[str, Any] = {"delivered_sha256": delivered, "expected_sha256": expected}
        if product is not None:
            evidence["product_id"] = product.id
            evidence["product_version"] = product.version
        if not delivered:
            evidence["problem"] = "delivered-hash-missing"
            return self.failed("delivery-integrity", self.text("delivery-carries-no-content-sha256"), evidence)
        if not _is_sha256_hex(delivered):
            evidence["problem"] = "delivered-hash-malformed"
            return self.failed("delivery-integrity", self.text("delivered-content-hash-not-sha256"), evidence)
        if not expected:
            evidence["problem"] = "product-hash-missing"
            return self.failed(
                "delivery-integrity",
                self.text("product-no-registered-content-sha256"),
                evidence,
            )
        if delivered.lower() != expected.lower():
            evidence["problem"] = "mismatch"
            return self.failed(
                "delivery-integrity",
                self.text("delivered-content-hash-differs-from"),
                evidence,
            )
        return self.passed("delivery-integrity", self.text("delivered-content-matches-product-registered"), evidence)

    def _licence(self, ctx: RuleContext) -> Finding:
        delivery = ctx.snapshot.delivery
        if delivery is None:
            return self.failed(
                "licence-active",
                self.text("no-delivery-record-in-snapshot-2"),
                {"licence_status": None},
            )
        status = delivery.licence_status
        evidence = {"licence_status": status}
        if status == "active":
            return self.passed("licence-active", self.text("licence-active-at-delivery"), evidence)
        return self.failed("licence-active", self.text("licence-nothing-may-delivered-under", status=status), evidence)
