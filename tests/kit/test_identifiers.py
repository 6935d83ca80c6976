"""Tests for marketplace.kit.identifiers (S1 and S4 building blocks)."""

from __future__ import annotations

import time
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketplace.kit.identifiers import (
    USCC_ALPHABET,
    IdentifierHit,
    find_direct_identifiers,
    is_valid_resident_id,
    is_valid_uscc,
    luhn_check_digit,
    luhn_valid,
    mask_value,
    normalize_uscc,
    resident_id_check_char,
    uscc_check_char,
    uscc_problem,
)

# Published-format codes whose check characters were also verified with python-stdnum.
VALID_USCCS = [
    "91110000600037341L",
    "914403001922038216",
    "91440300708461136T",
    "91330100799655058B",
    "91520000214434146R",
    "91110108551385082Q",
]

uscc_prefixes = st.text(alphabet=USCC_ALPHABET, min_size=17, max_size=17)


def make_resident_id(prefix6: str, birth: date, seq3: str) -> str:
    first17 = f"{prefix6}{birth:%Y%m%d}{seq3}"
    return first17 + resident_id_check_char(first17)


# --- USCC ---------------------------------------------------------------------------------


@pytest.mark.parametrize("code", VALID_USCCS)
def test_known_uscc_valid(code: str) -> None:
    assert is_valid_uscc(code)
    assert uscc_problem(code) is None
    assert uscc_check_char(code[:17]) == code[17]


def test_uscc_check_char_example_from_brief() -> None:
    # The brief's candidate 91520100MA6DKX1B5D does not verify: the check character is H.
    assert uscc_check_char("91520100MA6DKX1B5") == "H"
    assert uscc_problem("91520100MA6DKX1B5D") == "check_character"
    assert is_valid_uscc("91520100MA6DKX1B5H")


@pytest.mark.parametrize(
    ("code", "problem"),
    [
        ("", "length"),
        ("91110000600037341", "length"),
        ("91110000600037341LL", "length"),
        ("91110000600037341I", "alphabet"),  # I is excluded
        ("9111000060003734OL", "alphabet"),  # O is excluded
        ("91110000600037341l", "alphabet"),  # lower case is not canonical
        ("91110000600037341M", "check_character"),
    ],
)
def test_uscc_problem_reasons(code: str, problem: str) -> None:
    assert uscc_problem(code) == problem
    assert not is_valid_uscc(code)


@pytest.mark.parametrize("bad", ["", "123", "9111000060003734I", "91110000600037341L"])
def test_uscc_check_char_rejects_bad_input(bad: str) -> None:
    with pytest.raises(ValueError, match=r"USCC|17"):
        uscc_check_char(bad)


def test_normalize_uscc() -> None:
    assert normalize_uscc(" 9111 0000-600037341l ") == "91110000600037341L"


def test_uscc_alphabet_excludes_confusable_letters() -> None:
    assert len(USCC_ALPHABET) == 31
    assert not set("IOZSV") & set(USCC_ALPHABET)


@given(uscc_prefixes)
def test_uscc_computed_check_char_validates(prefix: str) -> None:
    assert is_valid_uscc(prefix + uscc_check_char(prefix))


@given(uscc_prefixes, st.integers(min_value=0, max_value=17), st.sampled_from(USCC_ALPHABET))
def test_uscc_any_single_substitution_is_invalid(prefix: str, pos: int, replacement: str) -> None:
    code = prefix + uscc_check_char(prefix)
    if code[pos] == replacement:
        return
    changed = code[:pos] + replacement + code[pos + 1 :]
    assert not is_valid_uscc(changed)


# --- Resident identity number -------------------------------------------------------------


def test_known_resident_id_valid() -> None:
    # The worked example printed in GB 11643-1999.
    assert is_valid_resident_id("11010519491231002X")


@pytest.mark.parametrize(
    "number",
    [
        "11010519491231002",  # too short
        "11010519491231002XX",  # too long
        "11010519491231002x",  # lower-case x is not canonical
        "110105194912310021",  # wrong check digit
        "1101051949123100 X",
        "１１０１０５１９４９１２３１００２X",  # full-width digits
    ],
)
def test_resident_id_invalid_shapes(number: str) -> None:
    assert not is_valid_resident_id(number)


@pytest.mark.parametrize("birth", ["19490230", "19491301", "19490000", "17991231"])
def test_resident_id_birth_date_must_be_real(birth: str) -> None:
    first17 = f"110105{birth}002"
    assert not is_valid_resident_id(first17 + resident_id_check_char(first17))


def test_resident_id_leap_day() -> None:
    assert is_valid_resident_id(make_resident_id("520102", date(2000, 2, 29), "123"))
    first17 = "520102" + "19000229" + "123"  # 1900 was not a leap year
    assert not is_valid_resident_id(first17 + resident_id_check_char(first17))


def test_resident_id_check_char_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="17 ASCII digits"):
        resident_id_check_char("1101051949123100X")


birth_dates = st.dates(min_value=date(1900, 1, 1), max_value=date(2030, 12, 31))
digit_strings = st.text(alphabet="0123456789", min_size=6, max_size=6)
seq3 = st.text(alphabet="0123456789", min_size=3, max_size=3)


@given(digit_strings, birth_dates, seq3)
def test_resident_id_computed_check_validates(prefix: str, birth: date, seq: str) -> None:
    assert is_valid_resident_id(make_resident_id(prefix, birth, seq))


@given(
    digit_strings,
    birth_dates,
    seq3,
    st.integers(min_value=0, max_value=17),
    st.sampled_from("0123456789X"),
)
def test_resident_id_single_substitution_is_invalid(
    prefix: str, birth: date, seq: str, pos: int, replacement: str
) -> None:
    number = make_resident_id(prefix, birth, seq)
    if number[pos] == replacement:
        return
    assert not is_valid_resident_id(number[:pos] + replacement + number[pos + 1 :])


# --- Luhn -----------------------------------------------------------------------------------


@pytest.mark.parametrize("number", ["79927398713", "4111111111111111", "6222021234567890128", "0"])
def test_luhn_known_valid(number: str) -> None:
    assert luhn_valid(number)


@pytest.mark.parametrize("number", ["79927398710", "4111111111111112", "", "4111 1111", "１２", "²"])
def test_luhn_invalid(number: str) -> None:
    assert not luhn_valid(number)


@given(st.text(alphabet="0123456789", min_size=1, max_size=30))
def test_luhn_check_digit_roundtrip(payload: str) -> None:
    assert luhn_valid(payload + luhn_check_digit(payload))


@given(
    st.text(alphabet="0123456789", min_size=12, max_size=18),
    st.data(),
)
def test_luhn_detects_any_single_digit_error(payload: str, data: st.DataObject) -> None:
    number = payload + luhn_check_digit(payload)
    pos = data.draw(st.integers(min_value=0, max_value=len(number) - 1))
    digit = data.draw(st.sampled_from("0123456789").filter(lambda d: d != number[pos]))
    assert not luhn_valid(number[:pos] + digit + number[pos + 1 :])


def test_luhn_check_digit_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="ASCII digits"):
        luhn_check_digit("12a")


# --- Scanner --------------------------------------------------------------------------------

RID = "11010519491231002X"
CARD = "6222021234567890128"  # 19 digits, passes Luhn


def kinds(text: str) -> list[str]:
    return [hit.kind for hit in find_direct_identifiers(text)]


def test_mask_value() -> None:
    assert mask_value("13812345678") == "138******78"
    assert mask_value("abcde") == "*****"
    assert mask_value("") == ""


def test_scan_finds_each_kind_in_order() -> None:
    text = f"联系人：张三，身份证{RID}，手机13812345678，邮箱zhang.san@example.com.cn，卡号{CARD}。"
    hits = find_direct_identifiers(text)
    assert [h.kind for h in hits] == ["resident_id", "mobile", "email", "bank_card"]
    assert hits[0] == IdentifierHit("resident_id", "110*************2X")
    assert hits[1] == IdentifierHit("mobile", "138******78")
    assert hits[3] == IdentifierHit("bank_card", "622**************28")


def test_scan_never_returns_raw_values() -> None:
    text = f"{RID} 13812345678 someone@example.org {CARD}"
    for hit in find_direct_identifiers(text):
        for raw in (RID, "13812345678", "someone@example.org", CARD):
            assert raw not in hit.value_masked


def test_scan_resident_id_needs_valid_check_digit() -> None:
    # Same shape with a wrong check digit (and failing Luhn): nothing to report.
    wrong = RID[:17] + "1"
    assert not luhn_valid(wrong)
    assert kinds(f"身份证号 {wrong}") == []


def test_scan_lower_case_x_and_full_width_digits() -> None:
    assert kinds(f"id {RID.lower()}") == ["resident_id"]
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in "13812345678")
    assert kinds(f"电话：{full_width}") == ["mobile"]
    assert kinds("邮箱：user＠example.com") == ["email"]


def test_scan_resident_id_passing_luhn_is_not_also_a_card() -> None:
    # Find an ID that also passes Luhn; it must be reported once, as an ID.
    for seq in range(1000):
        number = make_resident_id("520102", date(1990, 1, 1), f"{seq:03d}")
        if number[-1] != "X" and luhn_valid(number):
            break
    else:
        pytest.fail("no Luhn-valid ID found")
    assert kinds(f"号码：{number}") == ["resident_id"]


def test_scan_digit_runs_inside_longer_runs_are_ignored() -> None:
    assert kinds(f"9{RID}") == []
    assert kinds("流水号 9138123456789") == []  # 13 digits, not a mobile; fails Luhn
    assert not luhn_valid("9138123456789")
    assert kinds("订单 213812345678") == []  # 12 digits: neither mobile nor card
    assert kinds(f"{CARD}1") == []  # 20 digits: too long for a card


@pytest.mark.parametrize(
    "text",
    [
        "手机：13812345678。",
        "tel 138-1234-5678",
        "tel 138 1234 5678",
        "+8613812345678",
        "+86 138 1234 5678",
        "mobile:19912345678abc",
    ],
)
def test_scan_mobile_forms(text: str) -> None:
    hits = find_direct_identifiers(text)
    assert [h.kind for h in hits] == ["mobile"]
    assert hits[0].value_masked.startswith("1")
    assert len(hits[0].value_masked) == 11


@pytest.mark.parametrize("text", ["12812345678", "10012345678", "138123456789"])
def test_scan_not_mobile(text: str) -> None:
    assert "mobile" not in kinds(text)


def test_scan_grouped_card_number() -> None:
    grouped = " ".join(CARD[i : i + 4] for i in range(0, len(CARD), 4))
    assert kinds(f"卡号：{grouped}。") == ["bank_card"]
    hyphenated = "4111-1111-1111-1111"
    assert find_direct_identifiers(hyphenated) == [IdentifierHit("bank_card", "411***********11")]
    assert kinds("4111 1111-1111 1111") == []  # mixed separators are not a printed card


def test_scan_card_must_pass_luhn() -> None:
    assert kinds("4111111111111112") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("请联系 a.b-c+d@mail.example.co.uk 谢谢", 1),
        ("邮箱zhang@example.com谢谢", 1),
        ("no address here @ all", 0),
        ("user@localhost", 0),
        ("x@y.c", 0),
    ],
)
def test_scan_email(text: str, expected: int) -> None:
    assert kinds(text).count("email") == expected


@given(st.text(max_size=300))
def test_scan_arbitrary_text_never_fails(text: str) -> None:
    for hit in find_direct_identifiers(text):
        assert hit.kind in {"resident_id", "mobile", "email", "bank_card"}
        assert "*" in hit.value_masked


@given(digit_strings, birth_dates, seq3, st.sampled_from(["，", " ", "：", "a", "\n"]))
def test_scan_finds_every_generated_id(prefix: str, birth: date, seq: str, sep: str) -> None:
    number = make_resident_id(prefix, birth, seq)
    assert "resident_id" in kinds(f"前缀{sep}{number}{sep}后缀")


def test_scan_is_fast_on_large_and_adversarial_text() -> None:
    sample = f"用户张三，手机13812345678，邮箱a.b@example.com，身份证{RID}，订单20240101000123。"
    texts = [
        sample * 5_000,
        "a" * 500_000,
        "1" * 500_000,
        "a@" + "b." * 200_000,
        "1234 " * 100_000,
    ]
    started = time.perf_counter()
    hits = [len(find_direct_identifiers(t)) for t in texts]
    elapsed = time.perf_counter() - started
    assert hits == [15_000, 0, 0, 0, 0]
    # Linear-time scanning: ~2.5 MB in well under the bound on a 2-core CI machine.
    assert elapsed < 10, elapsed
