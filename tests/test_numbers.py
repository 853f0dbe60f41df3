import pickle

import pytest

from campaigns.numbers import (
    MOBILE_PREFIXES,
    OLD_PREFIXES,
    NumberRejected,
    Rejection,
    mask,
    normalise_msisdn,
    try_normalise,
)

# Decision 798/QĐ-BTTTT (2018), written out independently of the module's table.
RENUMBERING = [
    ("0162", "032", "Viettel"),
    ("0163", "033", "Viettel"),
    ("0164", "034", "Viettel"),
    ("0165", "035", "Viettel"),
    ("0166", "036", "Viettel"),
    ("0167", "037", "Viettel"),
    ("0168", "038", "Viettel"),
    ("0169", "039", "Viettel"),
    ("0120", "070", "MobiFone"),
    ("0121", "079", "MobiFone"),
    ("0122", "077", "MobiFone"),
    ("0126", "076", "MobiFone"),
    ("0128", "078", "MobiFone"),
    ("0123", "083", "VinaPhone"),
    ("0124", "084", "VinaPhone"),
    ("0125", "085", "VinaPhone"),
    ("0127", "081", "VinaPhone"),
    ("0129", "082", "VinaPhone"),
    ("0186", "056", "Vietnamobile"),
    ("0188", "058", "Vietnamobile"),
    ("0199", "059", "Gmobile"),
]

# Every current prefix with a subscriber number in it that phonenumbers accepts.
CURRENT = [
    *[(f"03{d}", "Viettel", f"03{d}1234567") for d in "23456789"],
    ("086", "Viettel", "0861234567"),
    ("096", "Viettel", "0961234567"),
    ("097", "Viettel", "0971234567"),
    ("098", "Viettel", "0981234567"),
    ("070", "MobiFone", "0701234567"),
    ("076", "MobiFone", "0761234567"),
    ("077", "MobiFone", "0771234567"),
    ("078", "MobiFone", "0781234567"),
    ("079", "MobiFone", "0791234567"),
    ("089", "MobiFone", "0896123456"),
    ("090", "MobiFone", "0901234567"),
    ("093", "MobiFone", "0931234567"),
    ("081", "VinaPhone", "0811234567"),
    ("082", "VinaPhone", "0821234567"),
    ("083", "VinaPhone", "0831234567"),
    ("084", "VinaPhone", "0841234567"),
    ("085", "VinaPhone", "0851234567"),
    ("088", "VinaPhone", "0881234567"),
    ("091", "VinaPhone", "0911234567"),
    ("094", "VinaPhone", "0941234567"),
    ("052", "Vietnamobile", "0522123456"),
    ("056", "Vietnamobile", "0561234567"),
    ("058", "Vietnamobile", "0581234567"),
    ("092", "Vietnamobile", "0921234567"),
    ("059", "Gmobile", "0591234567"),
    ("099", "Gmobile", "0993123456"),
    ("087", "Itelecom", "0871234567"),
    ("055", "Reddi", "0559123456"),
]

OLD_FORMS = [
    "{old}3456789",
    "{old} 345 6789",
    "+84{short}3456789",
    "+84 {short} 345 6789",
    "84{short}3456789",
    "0084{short}3456789",
    "+84 (0) {short} 345 6789",
]


def test_old_prefix_table_is_the_2018_renumbering() -> None:
    assert dict(OLD_PREFIXES) == {old: new for old, new, _ in RENUMBERING}


@pytest.mark.parametrize("form", OLD_FORMS)
@pytest.mark.parametrize(("old", "new", "operator"), RENUMBERING)
def test_old_prefix_converted(form: str, old: str, new: str, operator: str) -> None:
    raw = form.format(old=old, short=old[1:])
    assert normalise_msisdn(raw) == f"+84{new[1:]}3456789"
    assert MOBILE_PREFIXES[new] == operator


def test_mobile_prefix_table_is_complete() -> None:
    assert dict(MOBILE_PREFIXES) == {prefix: operator for prefix, operator, _ in CURRENT}


@pytest.mark.parametrize(("prefix", "operator", "number"), CURRENT)
def test_current_prefix_accepted(prefix: str, operator: str, number: str) -> None:
    assert number.startswith(prefix)
    assert normalise_msisdn(number) == "+84" + number[1:]
    assert try_normalise("+84" + number[1:]) == ("+84" + number[1:], None)


@pytest.mark.parametrize(
    "raw",
    [
        "0912345678",
        "+84912345678",
        "+84 91 234 5678",
        "84912345678",
        "0084912345678",
        "0084 91 234 5678",
        "091 234 5678",
        "091.234.5678",
        "091-234-5678",
        "(091) 234 5678",
        "(+84) 91-234-5678",
        "+84 (0) 91 234 5678",
        " 0912345678\t",
        "0912\u00a0345\u00a0678",
        "912345678",
    ],
)
def test_written_forms_accepted(raw: str) -> None:
    assert normalise_msisdn(raw) == "+84912345678"
    assert try_normalise(raw) == ("+84912345678", None)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", Rejection.EMPTY),
        ("   ", Rejection.EMPTY),
        ("\t\n", Rejection.EMPTY),
        ("-", Rejection.EMPTY),
        ("abc", Rejection.INVALID),
        ("n/a", Rejection.INVALID),
        ("09l2345678", Rejection.INVALID),
        ("0912345678 ext 1", Rejection.INVALID),
        ("0912\uff13345678", Rejection.INVALID),  # a full-width digit
        ("0912", Rejection.INVALID),
        ("091234567", Rejection.INVALID),
        ("09123456789", Rejection.INVALID),
        ("091234567890", Rejection.INVALID),
        ("1" * 5000, Rejection.INVALID),
        ("+", Rejection.INVALID),
        ("+84", Rejection.INVALID),
        ("0084", Rejection.INVALID),
        ("+84+912345678", Rejection.INVALID),
        ("+8400912345678", Rejection.INVALID),
        ("+999123456789", Rejection.INVALID),
        ("+1 202 555", Rejection.INVALID),
        # 11 digits with an old-looking prefix that was never a mobile one: not "fixed".
        ("01301234567", Rejection.INVALID),
        ("01611234567", Rejection.INVALID),
        ("01871234567", Rejection.INVALID),
        ("+84 130 123 4567", Rejection.INVALID),
        ("02438251234", Rejection.NOT_MOBILE),  # Hanoi fixed line
        ("024 3825 1234", Rejection.NOT_MOBILE),
        ("+84 24 3825 1234", Rejection.NOT_MOBILE),
        ("1800 1234", Rejection.NOT_MOBILE),  # toll-free
        ("+1 202 555 0123", Rejection.FOREIGN),  # United States
        ("+856 20 2312 3456", Rejection.FOREIGN),  # Laos
        ("00856 20 2312 3456", Rejection.FOREIGN),
    ],
)
def test_rejected_with_reason(raw: str, reason: Rejection) -> None:
    assert try_normalise(raw) == (None, reason)
    with pytest.raises(NumberRejected) as caught:
        normalise_msisdn(raw)
    assert caught.value.reason is reason
    assert caught.value.raw == raw
    assert str(reason) in str(caught.value)


def test_rejection_message_masks_the_number_and_survives_pickling() -> None:
    with pytest.raises(NumberRejected) as caught:
        normalise_msisdn("+856 20 2312 3456")
    assert "2312" not in str(caught.value)
    copy = pickle.loads(pickle.dumps(caught.value))
    assert (copy.raw, copy.reason, str(copy)) == (
        caught.value.raw,
        caught.value.reason,
        str(caught.value),
    )


@pytest.mark.parametrize(
    ("msisdn", "masked"),
    [
        ("+84912345678", "+84******678"),
        ("+84323456789", "+84******789"),
        ("+12025550123", "+1*******123"),
        ("+8562023123456", "+856*******456"),
        ("0912345678", "*******678"),
        ("+84123", "+84***"),
        ("+84", "+84"),
        ("+", "+"),
        ("+8", "+*"),
        ("12", "**"),
        ("", ""),
    ],
)
def test_mask(msisdn: str, masked: str) -> None:
    assert mask(msisdn) == masked


def test_ten_thousand_numbers() -> None:
    olds = [old for old, _, _ in RENUMBERING]
    raws = [f"{olds[i % len(olds)]}{i:07d}" for i in range(10_000)]
    results = [try_normalise(raw) for raw in raws]
    assert all(reason is None for _, reason in results)
    assert len({msisdn for msisdn, _ in results}) == 10_000
