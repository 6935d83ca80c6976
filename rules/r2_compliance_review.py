"""R2 数据交易合规性审查指南 — Compliance review guidelines.

The rule text is a reconstruction: the official 2022 Guizhou guideline was not at hand, so the
checks below are derived from the rulebook table (RULEBOOK.md, row R2) and the articles it
rests on. The *mechanism* is exact; the wording of the rule is ours.

The same checks run at listing and again at trade, because what they judge can change in
between: an authorisation or a compliance report expires, a reviewer flags prohibited content.

  - ``data-source``            the product declares where its data comes from (self-generated,
                               public collection, authorised public data, purchased) — DSL
                               Arts. 32 and 33 (lawful collection; the exchange must have the
                               provider explain the source).
  - ``lawful-source``          the provider's commitment that the source is lawful is on file —
                               DSL Arts. 32 and 33.
  - ``authorisation-chain``    for the sources in ``authorisation_required_sources`` (purchased
                               data, authorised public data) an authorisation chain is present,
                               every link is in force at ``ctx.now``, each link's grantee is the
                               next link's grantor, and the last grantee is the provider (its id
                               or its unified social credit code) — 《数据二十条》 items 4-5
                               (authorised operation of public data; authorisation of enterprise
                               data), DSL Art. 33.
  - ``pi-legal-basis``         personal information is processed on one of the PIPL Art. 13
                               legal bases listed in ``allowed_legal_bases``.
  - ``pi-separate-consent``    providing personal information to another processor needs the
                               individuals' separate consent (PIPL Art. 23); a legal basis listed
                               in ``separate_consent_exempt_bases`` (PIPL Art. 13 para. 2 lets
                               items 2-7 dispense with consent) makes it not applicable. The
                               default exempts nothing: the exchange asks for separate consent
                               for every product with personal information.
  - ``pi-impact-assessment``   a personal information protection impact assessment (PIPL Arts.
                               55-56) is dated, not in the future, and no older than
                               ``impact_assessment_max_age_months``.
  - ``prohibited-content``     no prohibited-content flag is raised (data endangering national
                               security or the public interest, infringing others' rights,
                               collected without consent, or barred by law or contract) — DSL
                               Art. 8, PIPL Art. 10. Every flag is listed in the evidence.
  - ``compliance-report``      products with personal information, or graded important or core
                               (or not graded at all: fail closed), carry a compliance report by
                               an admitted assessor, issued by now and still valid; a report
                               without an expiry date is valid for
                               ``report_default_validity_months`` after issue — DSL Art. 33,
                               《数据二十条》 item 10 (third-party compliance services).

Missing facts the stage needs (no product; no provider for a chain that must end at it) fail
the checks that need them.

Parameters (defaults):
  - ``allowed_legal_bases`` = the seven PIPL Art. 13 bases: consent, contract (incl. HR
    management), legal_duty, public_health, news_reporting, public_disclosed, other_legal.
  - ``separate_consent_exempt_bases`` = [] (strictest reading: separate consent always).
  - ``impact_assessment_max_age_months`` = 12: PIPL prescribes no refresh period; a yearly
    assessment matches the yearly cycle of important-data risk assessments.
  - ``report_default_validity_months`` = 12: a compliance report without a stated expiry is
    taken to cover one year of trading.
  - ``authorisation_required_sources`` = ["purchased", "authorized_public"].
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from datetime import date
from typing import Any, ClassVar

from marketplace.compliance.contract import Finding, Outcome, Rule, RuleContext, Stage, Text, make_finding
from marketplace.compliance.snapshots import Assessment, OrganizationFacts, ProductFacts

PASS = Outcome.PASS
FAIL = Outcome.FAIL
NA = Outcome.NOT_APPLICABLE
LISTING = Stage.LISTING
TRADE = Stage.TRADE

_SOURCE_BASIS = ("DSL Art. 32", "DSL Art. 33")
_CHAIN_BASIS = ("DSL Art. 33", "《数据二十条》 (2022) item 4", "《数据二十条》 (2022) item 5")
_LEGAL_BASIS_BASIS = ("PIPL Art. 13",)
_SEPARATE_CONSENT_BASIS = ("PIPL Art. 23", "PIPL Art. 13")
_IMPACT_BASIS = ("PIPL Art. 55", "PIPL Art. 56")
_PROHIBITED_BASIS = ("DSL Art. 8", "PIPL Art. 10")
_REPORT_BASIS = ("DSL Art. 33", "《数据二十条》 (2022) item 10")

# PIPL Art. 13 para. 1, items 1-7, in order.
DEFAULT_LEGAL_BASES = (
    "consent",
    "contract",
    "legal_duty",
    "public_health",
    "news_reporting",
    "public_disclosed",
    "other_legal",
)
_REPORT_GRADES = frozenset({"important", "core"})


def months_before(day: date, months: int) -> date:
    """The same day `months` calendar months earlier (clamped to the month's last day)."""
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def months_after(day: date, months: int) -> date:
    return months_before(day, -months)


class ComplianceReviewRule(Rule):
    id: ClassVar[str] = "R2"
    title_zh: ClassVar[str] = "数据交易合规性审查指南"
    title_en: ClassVar[str] = "Compliance review guidelines"
    version: ClassVar[str] = "1.0.0"
    basis: ClassVar[tuple[str, ...]] = (
        "DSL Art. 8",
        "DSL Art. 32",
        "DSL Art. 33",
        "PIPL Art. 10",
        "PIPL Art. 13",
        "PIPL Art. 23",
        "PIPL Art. 55",
        "PIPL Art. 56",
        "《数据二十条》 (2022)",
    )
    stages: ClassVar[frozenset[Stage]] = frozenset({Stage.LISTING, Stage.TRADE})
    parameters: ClassVar[dict[str, Any]] = {
        "allowed_legal_bases": list(DEFAULT_LEGAL_BASES),
        "separate_consent_exempt_bases": [],
        "impact_assessment_max_age_months": 12,
        "report_default_validity_months": 12,
        "authorisation_required_sources": ["purchased", "authorized_public"],
    }

    messages: ClassVar[dict[str, str]] = {
        "report.not-admitted": "the compliance report is not by an admitted assessor",
        "report.future": "the compliance report is dated in the future",
        "report.expired": "the compliance report has expired",
        "report.valid": "a valid compliance report by an admitted assessor is on file",
        "chain.expired": "an authorisation has expired",
        "chain.broken": "the chain is broken (a grantee is not the next grantor)",
        "chain.no-provider": "the snapshot has no provider to end the chain at",
        "chain.not-at-provider": "the chain does not end at the provider",
        "chain.invalid": "the authorisation chain does not hold: {problems}",
        "data-source-declared": "the data source is declared ({source})",
        "product-does-not-declare-data": "the product does not declare its data source",
        "lawful-source-commitment-on-file": "the lawful-source commitment is on file",
        "provider-not-committed-that-source": "the provider has not committed that the source is lawful",
        "product-flagged-for-prohibited-content": "the product is flagged for prohibited content: {flags}",
        "no-prohibited-content-flag-raised": "no prohibited-content flag is raised",
        "no-product-in-snapshot-cannot": "no product in the snapshot; cannot review",
        "no-data-source-declared-no": (
            "no data source is declared, so no authorisation chain can be required (see data-source)"
        ),
        "data-needs-no-authorisation-chain": "{source} data needs no authorisation chain",
        "data-needs-authorisation-chain-and": "{source} data needs an authorisation chain and none is on file",
        "authorisation-chain-complete-in-force": (
            "the authorisation chain is complete, in force and ends at the provider"
        ),
        "product-contains-no-personal-information": "the product contains no personal information",
        "product-contains-personal-information-but": (
            "the product contains personal information but states no legal basis (PIPL Art. 13)"
        ),
        "personal-information-processed-on-basis": "personal information is processed on the basis of {legal_basis}",
        "not-accepted-pipl-art-13": "{legal_basis} is not an accepted PIPL Art. 13 legal basis",
        "separate-consent-not-required-under": "separate consent is not required under the {legal_basis} basis",
        "individuals-gave-separate-consent-to": "individuals gave separate consent to provision to others",
        "providing-personal-information-to-buyer": (
            "providing personal information to a buyer needs the individuals' separate consent (PIPL Art. 23)"
        ),
        "no-personal-information-protection-impact": (
            "no personal information protection impact assessment is on file"
        ),
        "impact-assessment-dated-in-future": "the impact assessment is dated in the future",
        "impact-assessment-older-than-months": ("the impact assessment is older than {impact_months} months; renew it"),
        "impact-assessment-recent-enough": "the impact assessment is recent enough",
        "general-grade-data-without-personal": (
            "general-grade data without personal information needs no compliance report"
        ),
        "compliance-report-by-admitted-assessor": (
            "a compliance report by an admitted assessor is required and none is on file"
        ),
    }

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        p = self.params
        self._legal_bases = frozenset(str(b) for b in p["allowed_legal_bases"])
        self._legal_bases_list = sorted(self._legal_bases)
        self._consent_exempt = frozenset(str(b) for b in p["separate_consent_exempt_bases"])
        self._impact_months = int(p["impact_assessment_max_age_months"])
        self._report_months = int(p["report_default_validity_months"])
        self._chain_sources = frozenset(str(s) for s in p["authorisation_required_sources"])
        rid = self.id
        self._c_source = f"{rid}.data-source"
        self._c_lawful = f"{rid}.lawful-source"
        self._c_chain = f"{rid}.authorisation-chain"
        self._c_legal_basis = f"{rid}.pi-legal-basis"
        self._c_separate = f"{rid}.pi-separate-consent"
        self._c_impact = f"{rid}.pi-impact-assessment"
        self._c_prohibited = f"{rid}.prohibited-content"
        self._c_report = f"{rid}.compliance-report"

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        if ctx.stage is not LISTING and ctx.stage is not TRADE:
            return []
        snapshot = ctx.snapshot
        product = snapshot.product
        if product is None:
            return self._no_product()
        return self._judge(product, snapshot.provider, ctx.now.date())

    def _judge(self, product: ProductFacts, provider: OrganizationFacts | None, today: date) -> list[Finding]:
        rid = self.id
        source = product.data_source
        findings = [
            make_finding(
                rid,
                self._c_source,
                PASS,
                self.text("data-source-declared", source=source),
                {"data_source": source},
                _SOURCE_BASIS,
            )
            if source is not None
            else make_finding(
                rid,
                self._c_source,
                FAIL,
                self.text("product-does-not-declare-data"),
                {"data_source": None},
                _SOURCE_BASIS,
            ),
            make_finding(
                rid,
                self._c_lawful,
                PASS,
                self.text("lawful-source-commitment-on-file"),
                {"lawful_source_commitment": True},
                _SOURCE_BASIS,
            )
            if product.lawful_source_commitment
            else make_finding(
                rid,
                self._c_lawful,
                FAIL,
                self.text("provider-not-committed-that-source"),
                {"lawful_source_commitment": False},
                _SOURCE_BASIS,
            ),
            self._chain(product, provider, today),
        ]
        findings.extend(self._personal_information(product, today))
        flags = product.prohibited_content
        findings.append(
            make_finding(
                rid,
                self._c_prohibited,
                FAIL,
                self.text("product-flagged-for-prohibited-content", flags=", ".join(flags)),
                {"flags": list(flags)},
                _PROHIBITED_BASIS,
            )
            if flags
            else make_finding(
                rid,
                self._c_prohibited,
                PASS,
                self.text("no-prohibited-content-flag-raised"),
                {"flags": []},
                _PROHIBITED_BASIS,
            )
        )
        findings.append(self._report(product, today))
        return findings

    def _no_product(self) -> list[Finding]:
        message = self.text("no-product-in-snapshot-cannot")
        missing = {"product": None}
        rid = self.id
        return [
            make_finding(rid, self._c_source, FAIL, message, missing, _SOURCE_BASIS),
            make_finding(rid, self._c_lawful, FAIL, message, missing, _SOURCE_BASIS),
            make_finding(rid, self._c_chain, FAIL, message, missing, _CHAIN_BASIS),
            make_finding(rid, self._c_legal_basis, FAIL, message, missing, _LEGAL_BASIS_BASIS),
            make_finding(rid, self._c_separate, FAIL, message, missing, _SEPARATE_CONSENT_BASIS),
            make_finding(rid, self._c_impact, FAIL, message, missing, _IMPACT_BASIS),
            make_finding(rid, self._c_prohibited, FAIL, message, missing, _PROHIBITED_BASIS),
            make_finding(rid, self._c_report, FAIL, message, missing, _REPORT_BASIS),
        ]

    # --- authorisation chain ------------------------------------------------------------------

    def _chain(self, product: ProductFacts, provider: OrganizationFacts | None, today: date) -> Finding:
        rid, code = self.id, self._c_chain
        source = product.data_source
        chain = product.authorisation_chain
        if source is None:
            return make_finding(
                rid,
                code,
                NA,
                self.text("no-data-source-declared-no"),
                {"data_source": None, "links": len(chain)},
                _CHAIN_BASIS,
            )
        if source not in self._chain_sources:
            return make_finding(
                rid,
                code,
                NA,
                self.text("data-needs-no-authorisation-chain", source=source),
                {"data_source": source, "links": len(chain)},
                _CHAIN_BASIS,
            )
        if not chain:
            return make_finding(
                rid,
                code,
                FAIL,
                self.text("data-needs-authorisation-chain-and", source=source),
                {"data_source": source, "links": 0},
                _CHAIN_BASIS,
            )
        problems: list[Text] = []
        expired = [
            {"document": link.document, "valid_until": link.valid_until.isoformat()}
            for link in chain
            if link.valid_until is not None and link.valid_until < today
        ]
        if expired:
            problems.append(self.text("chain.expired"))
        breaks = [i for i in range(1, len(chain)) if chain[i - 1].grantee != chain[i].grantor]
        if breaks:
            problems.append(self.text("chain.broken"))
        final_grantee = chain[-1].grantee
        if provider is None:
            ends_at_provider = False
            problems.append(self.text("chain.no-provider"))
        else:
            ends_at_provider = final_grantee in (provider.id, provider.uscc)
            if not ends_at_provider:
                problems.append(self.text("chain.not-at-provider"))
        evidence = {
            "data_source": source,
            "links": len(chain),
            "final_grantee": final_grantee,
            "provider_id": None if provider is None else provider.id,
            "ends_at_provider": ends_at_provider,
            "expired": expired,
            "breaks_before_link": breaks,
            "checked_on": today.isoformat(),
        }
        if problems:
            return make_finding(rid, code, FAIL, self.text("chain.invalid", problems=problems), evidence, _CHAIN_BASIS)
        return make_finding(
            rid,
            code,
            PASS,
            self.text("authorisation-chain-complete-in-force"),
            evidence,
            _CHAIN_BASIS,
        )

    # --- personal information --------------------------------------------------------------

    def _personal_information(self, product: ProductFacts, today: date) -> list[Finding]:
        rid = self.id
        if not (product.contains_personal_info or product.contains_sensitive_personal_info):
            none = {"contains_personal_info": False}
            message = self.text("product-contains-no-personal-information")
            return [
                make_finding(rid, self._c_legal_basis, NA, message, none, _LEGAL_BASIS_BASIS),
                make_finding(rid, self._c_separate, NA, message, none, _SEPARATE_CONSENT_BASIS),
                make_finding(rid, self._c_impact, NA, message, none, _IMPACT_BASIS),
            ]
        legal_basis = product.pi_legal_basis
        if legal_basis is None:
            basis_finding = make_finding(
                rid,
                self._c_legal_basis,
                FAIL,
                self.text("product-contains-personal-information-but"),
                {"pi_legal_basis": None, "allowed": list(self._legal_bases_list)},
                _LEGAL_BASIS_BASIS,
            )
        elif legal_basis in self._legal_bases:
            basis_finding = make_finding(
                rid,
                self._c_legal_basis,
                PASS,
                self.text("personal-information-processed-on-basis", legal_basis=legal_basis),
                {"pi_legal_basis": legal_basis, "allowed": list(self._legal_bases_list)},
                _LEGAL_BASIS_BASIS,
            )
        else:
            basis_finding = make_finding(
                rid,
                self._c_legal_basis,
                FAIL,
                self.text("not-accepted-pipl-art-13", legal_basis=legal_basis),
                {"pi_legal_basis": legal_basis, "allowed": list(self._legal_bases_list)},
                _LEGAL_BASIS_BASIS,
            )

        separate = product.separate_consent_for_provision
        separate_evidence = {"pi_legal_basis": legal_basis, "separate_consent_for_provision": separate}
        if legal_basis is not None and legal_basis in self._consent_exempt:
            separate_finding = make_finding(
                rid,
                self._c_separate,
                NA,
                self.text("separate-consent-not-required-under", legal_basis=legal_basis),
                separate_evidence,
                _SEPARATE_CONSENT_BASIS,
            )
        elif separate:
            separate_finding = make_finding(
                rid,
                self._c_separate,
                PASS,
                self.text("individuals-gave-separate-consent-to"),
                separate_evidence,
                _SEPARATE_CONSENT_BASIS,
            )
        else:
            separate_finding = make_finding(
                rid,
                self._c_separate,
                FAIL,
                self.text("providing-personal-information-to-buyer"),
                separate_evidence,
                _SEPARATE_CONSENT_BASIS,
            )

        return [basis_finding, separate_finding, self._impact(product.pi_impact_assessment_on, today)]

    def _impact(self, assessed_on: date | None, today: date) -> Finding:
        rid, code = self.id, self._c_impact
        oldest = months_before(today, self._impact_months)
        evidence = {
            "assessed_on": None if assessed_on is None else assessed_on.isoformat(),
            "oldest_acceptable": oldest.isoformat(),
            "max_age_months": self._impact_months,
        }
        if assessed_on is None:
            return make_finding(
                rid,
                code,
                FAIL,
                self.text("no-personal-information-protection-impact"),
                evidence,
                _IMPACT_BASIS,
            )
        if assessed_on > today:
            return make_finding(
                rid, code, FAIL, self.text("impact-assessment-dated-in-future"), evidence, _IMPACT_BASIS
            )
        if assessed_on < oldest:
            return make_finding(
                rid,
                code,
                FAIL,
                self.text("impact-assessment-older-than-months", impact_months=self._impact_months),
                evidence,
                _IMPACT_BASIS,
            )
        return make_finding(rid, code, PASS, self.text("impact-assessment-recent-enough"), evidence, _IMPACT_BASIS)

    # --- compliance report -------------------------------------------------------------------

    def _report(self, product: ProductFacts, today: date) -> Finding:
        rid, code = self.id, self._c_report
        grade = product.known_grade  # a grade outside the vocabulary is no grade: fail closed (S2 names it)
        reasons: list[str] = []
        if product.contains_personal_info or product.contains_sensitive_personal_info:
            reasons.append("personal_information")
        if grade is None:
            reasons.append("grade_not_set")
        elif grade in _REPORT_GRADES:
            reasons.append(f"grade_{grade}")
        if not reasons:
            return make_finding(
                rid,
                code,
                NA,
                self.text("general-grade-data-without-personal"),
                {"grade": grade, "contains_personal_info": False},
                _REPORT_BASIS,
            )
        report = product.compliance_report
        if report is None:
            return make_finding(
                rid,
                code,
                FAIL,
                self.text("compliance-report-by-admitted-assessor"),
                {"required_because": reasons, "report": None},
                _REPORT_BASIS,
            )
        return _judge_report(self, code, report, today, self._report_months, reasons, _REPORT_BASIS)


def _judge_report(
    rule: Rule,
    code: str,
    report: Assessment,
    today: date,
    default_months: int,
    reasons: list[str],
    basis: tuple[str, ...],
) -> Finding:
    valid_until = report.valid_until or months_after(report.issued_on, default_months)
    evidence = {
        "required_because": reasons,
        "assessor_id": report.assessor_id,
        "assessor_admitted": report.assessor_admitted,
        "reference": report.reference,
        "issued_on": report.issued_on.isoformat(),
        "valid_until": valid_until.isoformat(),
        "expiry_stated": report.valid_until is not None,
        "checked_on": today.isoformat(),
    }
    if not report.assessor_admitted:
        return make_finding(rule.id, code, FAIL, rule.text("report.not-admitted"), evidence, basis)
    if report.issued_on > today:
        return make_finding(rule.id, code, FAIL, rule.text("report.future"), evidence, basis)
    if valid_until < today:
        return make_finding(rule.id, code, FAIL, rule.text("report.expired"), evidence, basis)
    return make_finding(rule.id, code, PASS, rule.text("report.valid"), evidence, basis)
