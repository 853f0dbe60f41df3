"""Vietnamese mobile numbers: any written form to E.164, old 11-digit numbers converted."""

import re
from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final

import phonenumbers
from phonenumbers import PhoneNumber, PhoneNumberType


class Rejection(StrEnum):
    """Why an input is not accepted as a Vietnamese mobile number."""

    EMPTY = "empty"
    INVALID = "invalid"
    NOT_MOBILE = "not_mobile"
    FOREIGN = "foreign"


_EXPLANATIONS: Final[Mapping[Rejection, str]] = MappingProxyType(
    {
        Rejection.EMPTY: "no number given",
        Rejection.INVALID: "not a valid phone number",
        Rejection.NOT_MOBILE: "a Vietnamese number, but not a mobile one",
        Rejection.FOREIGN: "a number of another country",
    }
)


class NumberRejected(ValueError):
    """An input that is not a valid Vietnamese mobile number; the message masks the input."""

    def __init__(self, raw: str, reason: Rejection) -> None:
        shown = "" if reason is Rejection.EMPTY else f" {mask(raw.strip())!r}"
        super().__init__(f"phone number{shown} rejected ({reason}): {_EXPLANATIONS[reason]}")
        self.raw = raw
        self.reason = reason

    def __reduce__(self) -> tuple[type["NumberRejected"], tuple[str, Rejection]]:
        return type(self), (self.raw, self.reason)


# The 2018 conversion of 11-digit mobile numbers to 10 digits: Decision 798/QĐ-BTTTT (2018) of the
# Ministry of Information and Communications, section II.2.1; switched over from 15 September 2018,
# old numbers dialable in parallel until 14 November 2018. Only the prefix changes.
OLD_PREFIXES: Final[Mapping[str, str]] = MappingProxyType(
    {
        # Viettel
        "0162": "032",
        "0163": "033",
        "0164": "034",
        "0165": "035",
        "0166": "036",
        "0167": "037",
        "0168": "038",
        "0169": "039",
        # MobiFone
        "0120": "070",
        "0121": "079",
        "0122": "077",
        "0126": "076",
        "0128": "078",
        # VinaPhone
        "0123": "083",
        "0124": "084",
        "0125": "085",
        "0127": "081",
        "0129": "082",
        # Vietnamobile
        "0186": "056",
        "0188": "058",
        # Gmobile
        "0199": "059",
    }
)

# Current mobile prefixes and the operator holding each block (operator allocations as published
# by the Ministry; all are classified MOBILE by phonenumbers 9.x). phonenumbers accepts only part
# of some blocks (052: 0522/0523/0528, 055: 0559, 089: 0896-0899, 099: not 0992), so anything
# generated from this table must still go through normalise_msisdn. phonenumbers also accepts
# 030, 031, 051 and short 012/014/016 forms as mobile; they are not listed here, as their holders
# are not established, but normalise_msisdn accepts them because phonenumbers decides.
MOBILE_PREFIXES: Final[Mapping[str, str]] = MappingProxyType(
    {
        **{f"03{d}": "Viettel" for d in "23456789"},
        "086": "Viettel",
        "096": "Viettel",
        "097": "Viettel",
        "098": "Viettel",
        "070": "MobiFone",
        "076": "MobiFone",
        "077": "MobiFone",
        "078": "MobiFone",
        "079": "MobiFone",
        "089": "MobiFone",
        "090": "MobiFone",
        "093": "MobiFone",
        "081": "VinaPhone",
        "082": "VinaPhone",
        "083": "VinaPhone",
        "084": "VinaPhone",
        "085": "VinaPhone",
        "088": "VinaPhone",
        "091": "VinaPhone",
        "094": "VinaPhone",
        "052": "Vietnamobile",
        "056": "Vietnamobile",
        "058": "Vietnamobile",
        "092": "Vietnamobile",
        "059": "Gmobile",
        "099": "Gmobile",
        "087": "Itelecom",
        "055": "Reddi",
    }
)

# Old national significant number prefix (no trunk 0) -> new one: "162" -> "32".
_OLD_NSN_PREFIXES: Final[dict[str, str]] = {old[1:]: new[1:] for old, new in OLD_PREFIXES.items()}
_OLD_NSN_LENGTH: Final = 10
# The longest national significant number in Vietnam (fixed lines, old mobiles): 10 digits.
_LONGEST_NSN: Final = 10
# Characters people put between digits; removed before anything else is looked at.
_SEPARATORS: Final = str.maketrans("", "", " \t\r\n\u00a0\u202f.-()")
# phonenumbers' own upper bound on a national significant number; also keeps int() bounded.
_MAX_NSN_LENGTH: Final = 17
_VN_CODE: Final = 84
_COUNTRY_CODES: Final = phonenumbers.COUNTRY_CODE_TO_REGION_CODE
_MOBILE: Final = PhoneNumberType.MOBILE
_UNKNOWN: Final = PhoneNumberType.UNKNOWN


def try_normalise(raw: str) -> tuple[str | None, Rejection | None]:
    """Return (E.164, None) for a Vietnamese mobile number, else (None, reason); never raises."""
    result = _normalise(raw)
    if isinstance(result, Rejection):
        return None, result
    return result, None


def normalise_msisdn(raw: str) -> str:
    """Return the E.164 form of a Vietnamese mobile number, or raise NumberRejected."""
    result = _normalise(raw)
    if isinstance(result, Rejection):
        raise NumberRejected(raw, result)
    return result


def mask(msisdn: str) -> str:
    """Mask a number for logs, keeping the country code and the last 3 characters."""
    if msisdn.startswith("+84"):
        head = 3
    elif msisdn.startswith("+"):
        head = 1 + _country_code_length(msisdn)
    else:
        head = 0
    body = len(msisdn) - head
    if body < 7:  # too short to hide anything while showing 3 characters
        return msisdn[:head] + "*" * body
    return msisdn[:head] + "*" * (body - 3) + msisdn[-3:]


def _normalise(raw: str) -> str | Rejection:
    # The E.164 form, or why there is none. Rejection is a str too: check it first.
    digits = raw.translate(_SEPARATORS)
    if not digits:
        return Rejection.EMPTY
    if digits[0] == "+":
        if not digits.startswith("+84"):
            return _classify_international(digits[1:])
        nsn = _drop_trunk_zero(digits[3:])
    elif digits[0] == "0":
        if digits.startswith("00"):
            if not digits.startswith("0084"):
                return _classify_international(digits[2:])
            nsn = _drop_trunk_zero(digits[4:])
        else:
            nsn = digits[1:]
    elif digits.startswith("84") and len(digits) > _LONGEST_NSN:
        # Too long to be a national number, so this is the country code written without "+".
        nsn = _drop_trunk_zero(digits[2:])
    else:
        # A national number whose leading 0 was lost, e.g. by a spreadsheet.
        nsn = digits
    return _classify_national(nsn)


def _drop_trunk_zero(nsn: str) -> str:
    # "+84 (0)91 234 5678": the trunk 0 written after the country code, as phonenumbers accepts.
    return nsn[1:] if nsn[:1] == "0" else nsn


def _classify_national(nsn: str) -> str | Rejection:
    # A leading 0 here would be silently lost by int(), so it is rejected instead.
    if (
        not nsn
        or not nsn.isdigit()
        or not nsn.isascii()
        or nsn[0] == "0"
        or len(nsn) > _MAX_NSN_LENGTH
    ):
        return Rejection.INVALID
    if len(nsn) == _OLD_NSN_LENGTH:
        new_prefix = _OLD_NSN_PREFIXES.get(nsn[:3])
        if new_prefix is not None:
            nsn = new_prefix + nsn[3:]
    kind = phonenumbers.number_type(PhoneNumber(country_code=_VN_CODE, national_number=int(nsn)))
    if kind == _MOBILE:
        return "+84" + nsn
    if kind == _UNKNOWN:
        return Rejection.INVALID
    return Rejection.NOT_MOBILE


def _classify_international(number: str) -> Rejection:
    # Digits after "+" or "00" with a country code other than 84.
    if not number.isdigit() or not number.isascii():
        return Rejection.INVALID
    try:
        parsed = phonenumbers.parse("+" + number, None)
    except phonenumbers.NumberParseException:
        return Rejection.INVALID
    return Rejection.FOREIGN if phonenumbers.is_valid_number(parsed) else Rejection.INVALID


def _country_code_length(msisdn: str) -> int:
    # Country codes are prefix-free, so the first known one is the only one.
    for length in (1, 2, 3):
        code = msisdn[1 : 1 + length]
        if code.isdigit() and code.isascii() and int(code) in _COUNTRY_CODES:
            return length
    return 0


# A run of 8 to 15 digits, perhaps after "+", perhaps with spaces, dots, dashes or brackets
# between them, standing alone (not inside a word or a longer number).
_PHONE_LIKE: Final = re.compile(r"(?<![\w+])\+?\d(?:[ .\-()\u00a0]{0,2}\d){7,14}(?!\w)")
_NOT_DIGITS: Final = re.compile(r"\D")


def mask_in_text(text: str) -> str:
    """`text` with every phone number in it masked (for logs, audit details, exports)."""
    return _PHONE_LIKE.sub(_mask_match, text)


def _mask_match(match: re.Match[str]) -> str:
    found = match.group()
    msisdn, _ = try_normalise(found)
    if msisdn is not None:
        return mask(msisdn)
    if found.startswith("+"):  # any E.164 number, of whatever country
        return mask("+" + _NOT_DIGITS.sub("", found))
    # Two numbers side by side read as one run: look at each part on its own.
    parts = found.split()
    if len(parts) > 1:
        return " ".join(_PHONE_LIKE.sub(_mask_match, part) for part in parts)
    return found
