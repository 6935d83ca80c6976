"""Identifier check algorithms and a direct-identifier scanner.

Pure functions, no I/O. Used by S1 (GB 32100-2015 unified social credit code) and
S4 (GB/T 37964-2019: samples must be free of direct identifiers).

Validators take the canonical form: no surrounding spaces, upper case. Callers that
accept user input normalise first (``normalize_uscc``).
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left
from dataclasses import dataclass
from datetime import date
from typing import Final, Literal

__all__ = [
    "USCC_ALPHABET",
    "IdentifierHit",
    "IdentifierKind",
    "UsccProblem",
    "find_direct_identifiers",
    "is_valid_resident_id",
    "is_valid_uscc",
    "luhn_check_digit",
    "luhn_valid",
    "mask_value",
    "normalize_uscc",
    "resident_id_check_char",
    "uscc_check_char",
    "uscc_problem",
]

# --- GB 32100-2015 unified social credit code -------------------------------------------

# 31 characters: digits and upper-case letters without I, O, Z, S, V (easily misread).
USCC_ALPHABET: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE: Final = {ch: i for i, ch in enumerate(USCC_ALPHABET)}
# 3**i mod 31 for positions 1..17.
_USCC_WEIGHTS: Final = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

UsccProblem = Literal["length", "alphabet", "check_character"]


def uscc_check_char(first17: str) -> str:
    """Check character (18th) for the first 17 characters of a USCC.

    Raises ValueError if ``first17`` is not 17 characters of the USCC alphabet.
    """
    if len(first17) != 17:
        raise ValueError("a USCC check character needs exactly 17 characters")
    total = 0
    for ch, weight in zip(first17, _USCC_WEIGHTS, strict=True):
        value = _USCC_VALUE.get(ch)
        if value is None:
            raise ValueError(f"character {ch!r} is not in the USCC alphabet")
        total += value * weight
    return USCC_ALPHABET[(31 - total % 31) % 31]


_USCC_CHARS = frozenset(USCC_ALPHABET)


def uscc_problem(code: str) -> UsccProblem | None:
    """Why ``code`` is not a valid USCC, as a stable reason code; None when it is valid."""
    if len(code) != 18:
        return "length"
    if not _USCC_CHARS.issuperset(code):
        return "alphabet"
    if uscc_check_char(code[:17]) != code[17]:
        return "check_character"
    return None


def is_valid_uscc(code: str) -> bool:
    return uscc_problem(code) is None


def normalize_uscc(code: str) -> str:
    """Canonical form of user input: spaces and hyphens removed, upper case."""
    return code.replace(" ", "").replace("-", "").strip().upper()


# --- GB 11643-1999 citizen identity number ----------------------------------------------

# 2**(17-i) mod 11 for positions 1..17 (ISO 7064 MOD 11-2).
_RID_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
# Check character indexed by (weighted sum mod 11): (12 - s) mod 11, 10 written as X.
_RID_CHECK: Final = "10X98765432"
_RID_SHAPE: Final = re.compile(r"[0-9]{17}[0-9X]")
# Nobody holding an 18-digit number was born before this; cuts scanner false positives.
_RID_MIN_YEAR: Final = 1800


def resident_id_check_char(first17: str) -> str:
    """Check character (18th) for the first 17 digits of a resident identity number."""
    if len(first17) != 17 or not all("0" <= ch <= "9" for ch in first17):
        raise ValueError("a resident ID check character needs exactly 17 ASCII digits")
    total = sum((ord(ch) - 48) * w for ch, w in zip(first17, _RID_WEIGHTS, strict=True))
    return _RID_CHECK[total % 11]


def _rid_birth_date_ok(number: str) -> bool:
    year, month, day = int(number[6:10]), int(number[10:12]), int(number[12:14])
    if year < _RID_MIN_YEAR:
        return False
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


def is_valid_resident_id(number: str) -> bool:
    """18-character resident identity number: shape, birth date and check character.

    The address code (first six digits) is not checked against GB/T 2260: numbers keep
    the code that was in force when they were issued, and many of those were retired.
    """
    if _RID_SHAPE.fullmatch(number) is None:
        return False
    return _rid_birth_date_ok(number) and resident_id_check_char(number[:17]) == number[17]


# --- Luhn (ISO/IEC 7812 bank card numbers) ----------------------------------------------

_LUHN_DOUBLED: Final = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)  # digit sum of 2*d


def _luhn_sum(digits: str, double_first: bool) -> int:
    total = 0
    double = double_first
    for ch in reversed(digits):
        d = ord(ch) - 48
        total += _LUHN_DOUBLED[d] if double else d
        double = not double
    return total


def _all_ascii_digits(s: str) -> bool:
    return bool(s) and s.isascii() and s.isdigit()


def luhn_valid(digits: str) -> bool:
    """True when ``digits`` (ASCII digits only, non-empty) passes the Luhn check."""
    if not _all_ascii_digits(digits):
        return False
    return _luhn_sum(digits, double_first=False) % 10 == 0


def luhn_check_digit(payload: str) -> str:
    """Digit to append to ``payload`` so that the result passes the Luhn check."""
    if not _all_ascii_digits(payload):
        raise ValueError("Luhn payload must be non-empty ASCII digits")
    return str((10 - _luhn_sum(payload, double_first=True) % 10) % 10)


# --- Direct-identifier scanner (S4) -------------------------------------------------------

IdentifierKind = Literal["resident_id", "mobile", "email", "bank_card"]


@dataclass(frozen=True, slots=True)
class IdentifierHit:
    """One direct identifier found in text. Never carries the raw value."""

    kind: IdentifierKind
    value_masked: str


def mask_value(value: str) -> str:
    """Keep the first 3 and last 2 characters; short values are masked whole."""
    if len(value) <= 5:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 5) + value[-2:]


# [0-9] rather than \d: \d also matches other scripts' digits, which NFKC has already
# folded where they have an ASCII equivalent. Every pattern refuses to start or end
# inside a longer digit run, so a run is judged whole.
_RID_SCAN: Final = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])")
_MOBILE_SCAN: Final = re.compile(r"(?<![0-9])(?:\+?86[- ]?)?(1[3-9][0-9])[- ]?([0-9]{4})[- ]?([0-9]{4})(?![0-9])")
# Either one digit run of 13-19 (not followed by the X of an ID-shaped token), or 4-digit
# groups joined by one consistent separator, as cards are printed; the grouped form must
# not continue a digit group on either side.
_CARD_SCAN: Final = re.compile(
    r"(?<![0-9])(?:"
    r"[0-9]{13,19}(?![0-9Xx])"
    r"|(?<![0-9][ -])[0-9]{4}([ -])[0-9]{4}(?:\1[0-9]{4}){1,2}(?:\1[0-9]{1,3})?(?!\1?[0-9])"
    r")"
)
# The lookbehind makes a match start only at the start of a local-part run, so a long
# run without '@' is scanned once, not once per position (no quadratic backtracking).
_EMAIL_SCAN: Final = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@"
    r"[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,63}(?![A-Za-z0-9-])"
)


class _Taken:
    """Disjoint spans already reported, kept sorted so an overlap test is a bisect."""

    __slots__ = ("_ends", "_starts")

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []

    def overlaps(self, start: int, end: int) -> bool:
        # Only the nearest span starting before `end` can overlap, as spans are disjoint.
        i = bisect_left(self._starts, end) - 1
        return i >= 0 and self._ends[i] > start

    def add(self, start: int, end: int) -> None:
        i = bisect_left(self._starts, start)
        self._starts.insert(i, start)
        self._ends.insert(i, end)


def find_direct_identifiers(text: str) -> list[IdentifierHit]:
    """Direct identifiers in free text, in order of appearance, values masked.

    Finds resident ID numbers with a valid GB 11643 check character, mainland mobile
    numbers, e-mail addresses, and bank card numbers (13-19 digits passing Luhn) that
    are not already an ID number or mobile number.
    """
    if not text.isascii():
        # Full-width digits and '＠' are common in Chinese text and would evade the scan.
        text = unicodedata.normalize("NFKC", text)

    found: list[tuple[int, IdentifierHit]] = []
    taken = _Taken()

    for m in _RID_SCAN.finditer(text):
        number = m.group().upper()
        if is_valid_resident_id(number):
            found.append((m.start(), IdentifierHit("resident_id", mask_value(number))))
            taken.add(*m.span())

    for m in _MOBILE_SCAN.finditer(text):
        if not taken.overlaps(*m.span()):
            number = m.group(1) + m.group(2) + m.group(3)
            found.append((m.start(), IdentifierHit("mobile", mask_value(number))))
            taken.add(*m.span())

    for m in _CARD_SCAN.finditer(text):
        digits = m.group().replace(" ", "").replace("-", "")
        if 13 <= len(digits) <= 19 and luhn_valid(digits) and not taken.overlaps(*m.span()):
            found.append((m.start(), IdentifierHit("bank_card", mask_value(digits))))

    for m in _EMAIL_SCAN.finditer(text):
        found.append((m.start(), IdentifierHit("email", mask_value(m.group()))))

    found.sort(key=lambda item: item[0])
    return [hit for _, hit in found]
