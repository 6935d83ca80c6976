"""S1 — GB 32100-2015 统一社会信用代码 (unified social credit code).

The rule text is a reconstruction: the official texts of the exchange's "eight rules and ten
standards" were not at hand. The checks below rest on GB 32100-2015 itself (the code's
structure and its check character) and on GB/T 2260 (administrative division codes); the
exchange needs a verifiable business identity for every party (R7, R8, S6).

Stages: `admission` (the applicant, `snapshot.organization`, must be present and valid) and
`trade` (provider and buyer must be present; every organisation in the snapshot is checked,
including the intermediary when there is one).

Checks, one finding per organisation and check (evidence names the party's role):
  - `length` / `alphabet` / `check-character`: GB 32100-2015 (code structure) — 18
    characters, drawn from the 31-character alphabet (digits and upper-case letters without
    I, O, S, V, Z), the 18th the check character computed per GB/T 17710 (ISO 7064, weights
    3**i mod 31). The reason comes from `kit.identifiers.uscc_problem`; a failure carries the
    code of its reason, a valid code passes under `check-character` (the last of the three,
    implying the first two).
  - `registration-authority`: character 1 is a registration-authority code (登记管理部门代码)
    and character 2 one of that authority's organisation-category codes (机构类别代码), per
    the code table of GB 32100-2015 as amended (XG1-2016 and later additions); unknown ->
    fail. The table is the parameter `registration_authorities`, so an amendment is a
    configuration change.
  - `division-code`: characters 3-8 are the GB/T 2260 code of the registering authority's
    division (登记管理机关行政区划码), checked with `kit.codelists.is_division_code`. Division
    codes are retired and re-issued over time and a USCC keeps the code in force when it was
    issued, so an unknown code goes to review by default, not to rejection.
  - `applicant` (admission) / `parties` (trade): the organisations the stage needs are in the
    snapshot; missing -> fail (fail closed).
When a code is too malformed to be split (wrong length or alphabet), `registration-authority`
and `division-code` are `not_applicable` for it; the structural failure already blocks.

Parameters:
  - `registration_authorities` (dict of authority code -> list of category codes): the
    GB 32100-2015 code table, including the categories and authorities added since 2015.
  - `check_division_code` (bool, default true): false disables the division check (its
    finding becomes `not_applicable`).
  - `unknown_division_fails` (bool, default false): true turns an unknown division from
    `review` into `fail`.
  - `extra_division_codes` (list, default ["100000"]): codes accepted besides the GB/T 2260
    list; 100000 (全国) is used by authorities registering at national level.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final

from marketplace.compliance.contract import Finding, Outcome, Rule, RuleContext, Severity, Stage, make_finding
from marketplace.kit.codelists import divisions
from marketplace.kit.identifiers import USCC_ALPHABET, uscc_check_char, uscc_problem

# The GB 32100-2015 code table (登记管理部门代码 / 机构类别代码), with the authorities and
# categories added by later amendments (public security G, housing J, overseas Chinese Q, ...).
REGISTRATION_AUTHORITIES: Final[dict[str, list[str]]] = {
    "1": ["1", "2", "3", "9"],  # 机构编制: 机关, 事业单位, 编办管理的群众团体, 其他
    "2": ["1", "9"],  # 外交: 外国常驻新闻机构, 其他
    # 司法行政: 律师执业机构, 公证处, 基层法律服务所, 司法鉴定机构, 仲裁委员会, 商事调解组织, 其他
    "3": ["1", "2", "3", "4", "5", "6", "9"],
    "4": ["1", "9"],  # 文化: 外国在华文化中心, 其他
    "5": ["1", "2", "3", "4", "5", "9"],  # 民政: 社会团体, 民办非企业单位, 基金会, 村委会, 居委会, 其他
    "6": ["1", "2", "9"],  # 旅游: 外国/港澳台旅游部门常驻代表机构, 其他
    "7": ["1", "2", "9"],  # 宗教: 宗教活动场所, 宗教院校, 其他
    "8": ["1", "2", "9"],  # 工会: 基层工会, 非法人工会组织, 其他
    "9": ["1", "2", "3", "9"],  # 工商 / 市场监管: 企业, 个体工商户, 农民专业合作社, 其他
    "A": ["1", "9"],  # 中央军委改革和编制办公室: 军队事业单位, 其他
    "G": ["1", "9"],  # 公安: 境外非政府组织代表机构, 其他
    "J": ["1", "9"],  # 住房和城乡建设: 业主大会, 其他
    "N": ["1", "2", "3", "9"],  # 农业农村: 组级, 村级, 乡镇级集体经济组织, 其他
    "Q": ["1", "2", "3", "9"],  # 侨联: 区县级, 乡镇级, 村级侨联组织, 其他
    "Y": ["1"],  # 其他
}

AUTHORITY_NAMES: Final[Mapping[str, str]] = {
    "1": "机构编制 institutional establishment",
    "2": "外交 foreign affairs",
    "3": "司法行政 judicial administration",
    "4": "文化 culture",
    "5": "民政 civil affairs",
    "6": "旅游 tourism",
    "7": "宗教 religious affairs",
    "8": "工会 trade unions",
    "9": "工商 market regulation",
    "A": "中央军委改革和编制办公室 CMC reform and establishment office",
    "G": "公安 public security",
    "J": "住房和城乡建设 housing and urban-rural development",
    "N": "农业农村 agriculture and rural affairs",
    "Q": "侨联 federation of returned overseas Chinese",
    "Y": "其他 other",
}

_REQUIRED_AT_TRADE: Final = ("provider", "buyer")

PASS = Outcome.PASS
FAIL = Outcome.FAIL
REVIEW = Outcome.REVIEW
NA = Outcome.NOT_APPLICABLE
ADMISSION = Stage.ADMISSION
TRADE = Stage.TRADE


class UnifiedSocialCreditCodeStandard(Rule):
    id: ClassVar[str] = "S1"
    title_zh: ClassVar[str] = "统一社会信用代码（GB 32100-2015）"
    title_en: ClassVar[str] = "GB 32100-2015 unified social credit code"
    version: ClassVar[str] = "1.0.0"
    basis: ClassVar[tuple[str, ...]] = (
        "GB 32100-2015 (code structure, registration-authority and category codes)",
        "GB 32100-2015/XG1-2016 (amendment No. 1)",
        "GB/T 17710 (ISO 7064 check character)",
        "GB/T 2260 (administrative division codes)",
        "DSL Art. 33",
    )
    stages: ClassVar[frozenset[Stage]] = frozenset({Stage.ADMISSION, Stage.TRADE})
    parameters: ClassVar[Mapping[str, Any]] = {
        "registration_authorities": REGISTRATION_AUTHORITIES,
        "check_division_code": True,
        "unknown_division_fails": False,
        "extra_division_codes": ["100000"],
    }
    default_severity: ClassVar[Severity] = Severity.BLOCK

    messages: ClassVar[dict[str, str]] = {
        "admission-snapshot-no-applicant-organisation": (
            "the admission snapshot has no applicant organisation; its USCC cannot be verified"
        ),
        "applicant-organisation-in-snapshot": "the applicant organisation is in the snapshot",
        "provider-and-buyer-in-snapshot": "provider and buyer are in the snapshot",
        "trade-snapshot-lacks-their-uscc": "the trade snapshot lacks {missing}; their USCC cannot be verified",
        "uscc-18-characters-gb-32100": (
            "the {role}'s USCC has 18 characters of the GB 32100 alphabet and a correct check character"
        ),
        "uscc-check-character-gb-32100": "the {role}'s USCC check character is {code}, GB 32100 gives {expected}",
        "uscc-characters-gb-32100-codes": "the {role}'s USCC has {code} characters; GB 32100 codes have 18",
        "uscc-contains-characters-outside-gb": (
            "the {role}'s USCC contains characters outside the GB 32100 alphabet (digits and upper-case "
            "letters except I, O, S, V, Z)"
        ),
        "uscc-malformed-parts-cannot-read": "the {role}'s USCC is malformed ({problem}); its parts cannot be read",
        "uscc-starts-with-which-not": (
            "the {role}'s USCC starts with {authority}, which is not a GB 32100 registration-authority code"
        ),
        "uscc-organisation-category-which-registration": (
            "the {role}'s USCC has organisation category {category}, which registration authority "
            "{authority} does not issue"
        ),
        "uscc-names-known-registration-authority": (
            "the {role}'s USCC names a known registration authority and organisation category"
        ),
        "division-code-check-disabled-by": "the division-code check is disabled by the rulebook",
        "uscc-carries-division-accepted-by": (
            "the {role}'s USCC carries division {division}, accepted by the rulebook"
        ),
        "uscc-carries-known-gb-t": "the {role}'s USCC carries a known GB/T 2260 division",
        "uscc-carries-which-not-known": (
            "the {role}'s USCC carries {division}, which is not a known GB/T 2260 division code"
        ),
        "uscc-carries-which-not-in": (
            "the {role}'s USCC carries {division}, which is not in the current GB/T 2260 list; it may be a "
            "retired code still valid in old registrations, so an administrator decides"
        ),
    }

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        self._authorities: dict[str, frozenset[str]] = {
            str(authority): frozenset(str(c) for c in categories)
            for authority, categories in self.params["registration_authorities"].items()
        }
        self._known_authorities = sorted(self._authorities)
        self._check_division = bool(self.params["check_division_code"])
        self._unknown_division_fails = bool(self.params["unknown_division_fails"])
        self._extra_divisions = frozenset(str(c) for c in self.params["extra_division_codes"])
        rid = self.id
        self._c_applicant = f"{rid}.applicant"
        self._c_parties = f"{rid}.parties"
        self._c_length = f"{rid}.length"
        self._c_alphabet = f"{rid}.alphabet"
        self._c_check_character = f"{rid}.check-character"
        self._c_authority = f"{rid}.registration-authority"
        self._c_division = f"{rid}.division-code"

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        snapshot = ctx.snapshot
        rid, basis = self.id, self.basis
        findings: list[Finding] = []
        if ctx.stage is ADMISSION:
            if snapshot.organization is None:
                findings.append(
                    make_finding(
                        rid,
                        self._c_applicant,
                        FAIL,
                        self.text("admission-snapshot-no-applicant-organisation"),
                        {"party": "organization"},
                        basis,
                    )
                )
            else:
                findings.append(
                    make_finding(
                        rid,
                        self._c_applicant,
                        PASS,
                        self.text("applicant-organisation-in-snapshot"),
                        {"party": "organization"},
                        basis,
                    )
                )
        elif ctx.stage is TRADE:
            if snapshot.provider is not None and snapshot.buyer is not None:
                findings.append(
                    make_finding(
                        rid,
                        self._c_parties,
                        PASS,
                        self.text("provider-and-buyer-in-snapshot"),
                        {"required": list(_REQUIRED_AT_TRADE), "missing": []},
                        basis,
                    )
                )
            else:
                missing = [role for role in _REQUIRED_AT_TRADE if getattr(snapshot, role) is None]
                findings.append(
                    make_finding(
                        rid,
                        self._c_parties,
                        FAIL,
                        self.text("trade-snapshot-lacks-their-uscc", missing=" and ".join(missing)),
                        {"required": list(_REQUIRED_AT_TRADE), "missing": missing},
                        basis,
                    )
                )
        else:
            return findings
        for role, org in snapshot.parties():
            findings.extend(self._judge(role, org.id, org.uscc))
        return findings

    # --- one organisation -----------------------------------------------------------------

    def _judge(self, role: str, org_id: str, code: str) -> tuple[Finding, Finding, Finding]:
        rid, basis = self.id, self.basis
        problem = uscc_problem(code)
        if problem is None:
            structure = make_finding(
                rid,
                self._c_check_character,
                PASS,
                self.text("uscc-18-characters-gb-32100", role=role),
                {"party": role, "organization_id": org_id, "uscc": code},
                basis,
            )
        elif problem == "check_character":
            expected = uscc_check_char(code[:17])
            structure = make_finding(
                rid,
                self._c_check_character,
                FAIL,
                self.text("uscc-check-character-gb-32100", role=role, code=code[17], expected=expected),
                {
                    "party": role,
                    "organization_id": org_id,
                    "problem": problem,
                    "uscc": code,
                    "expected": expected,
                    "found": code[17],
                },
                basis,
            )
        else:
            # Too malformed to be split: the parts cannot be read, the structural failure blocks.
            if problem == "length":
                structure = make_finding(
                    rid,
                    self._c_length,
                    FAIL,
                    self.text("uscc-characters-gb-32100-codes", role=role, code=len(code)),
                    {
                        "party": role,
                        "organization_id": org_id,
                        "problem": problem,
                        "uscc": code,
                        "expected": 18,
                        "found": len(code),
                    },
                    basis,
                )
            else:
                invalid = [{"position": i + 1, "character": ch} for i, ch in enumerate(code) if ch not in USCC_ALPHABET]
                structure = make_finding(
                    rid,
                    self._c_alphabet,
                    FAIL,
                    self.text("uscc-contains-characters-outside-gb", role=role),
                    {"party": role, "organization_id": org_id, "problem": problem, "uscc": code, "invalid": invalid},
                    basis,
                )
            reason = self.text("uscc-malformed-parts-cannot-read", role=role, problem=problem)
            return (
                structure,
                make_finding(
                    rid,
                    self._c_authority,
                    NA,
                    reason,
                    {"party": role, "organization_id": org_id, "problem": problem},
                    basis,
                ),
                make_finding(
                    rid,
                    self._c_division,
                    NA,
                    reason,
                    {"party": role, "organization_id": org_id, "problem": problem},
                    basis,
                ),
            )
        return structure, self._authority(role, org_id, code), self._division(role, org_id, code)

    def _authority(self, role: str, org_id: str, code: str) -> Finding:
        rid, check, basis = self.id, self._c_authority, self.basis
        authority, category = code[0], code[1]
        categories = self._authorities.get(authority)
        if categories is None:
            return make_finding(
                rid,
                check,
                FAIL,
                self.text("uscc-starts-with-which-not", role=role, authority=authority),
                {
                    "party": role,
                    "organization_id": org_id,
                    "authority": authority,
                    "category": category,
                    "known_authorities": list(self._known_authorities),
                },
                basis,
            )
        evidence: dict[str, Any] = {
            "party": role,
            "organization_id": org_id,
            "authority": authority,
            "category": category,
            "authority_name": AUTHORITY_NAMES.get(authority, authority),
        }
        if category not in categories:
            evidence["known_categories"] = sorted(categories)
            return make_finding(
                rid,
                check,
                FAIL,
                self.text(
                    "uscc-organisation-category-which-registration", role=role, category=category, authority=authority
                ),
                evidence,
                basis,
            )
        return make_finding(
            rid,
            check,
            PASS,
            self.text("uscc-names-known-registration-authority", role=role),
            evidence,
            basis,
        )

    def _division(self, role: str, org_id: str, code: str) -> Finding:
        rid, check, basis = self.id, self._c_division, self.basis
        division = code[2:8]
        if not self._check_division:
            return make_finding(
                rid,
                check,
                NA,
                self.text("division-code-check-disabled-by"),
                {"party": role, "organization_id": org_id, "division": division, "check_division_code": False},
                basis,
            )
        if division in self._extra_divisions:
            return make_finding(
                rid,
                check,
                PASS,
                self.text("uscc-carries-division-accepted-by", role=role, division=division),
                {
                    "party": role,
                    "organization_id": org_id,
                    "division": division,
                    "known": True,
                    "source": "extra_division_codes",
                },
                basis,
            )
        entry = divisions().get(division)
        if entry is not None:
            return make_finding(
                rid,
                check,
                PASS,
                self.text("uscc-carries-known-gb-t", role=role),
                {
                    "party": role,
                    "organization_id": org_id,
                    "division": division,
                    "known": True,
                    "division_name": entry.name_zh,
                },
                basis,
            )
        evidence = {"party": role, "organization_id": org_id, "division": division, "known": False}
        if self._unknown_division_fails:
            return make_finding(
                rid,
                check,
                FAIL,
                self.text("uscc-carries-which-not-known", role=role, division=division),
                evidence,
                basis,
            )
        return make_finding(
            rid,
            check,
            REVIEW,
            self.text("uscc-carries-which-not-in", role=role, division=division),
            evidence,
            basis,
        )
