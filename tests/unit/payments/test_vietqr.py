"""VietQR payloads: the NAPAS specification examples, CRC, ASCII notes, limits and every malformed-TLV case."""

from __future__ import annotations

import random
from typing import Any

import pytest

from payment_service.domain.vietqr import (
    Service,
    VietQr,
    build_payload,
    crc16_ccitt_false,
    parse_payload,
    payment_qr,
    to_ascii_note,
)
from servicekit.errors import InvalidArgument

# Copied from /work/shared/reference/vietqr.md (NAPAS specification 6.1.2, 6.1.3, 6.1.4).
STATIC_TO_CARD = (
    "00020101021138600010A00000072701300006970403011697040311012345670208QRIBFTTC53037045802VN63044F52"
)
DYNAMIC_TO_ACCOUNT = (
    "00020101021238570010A00000072701270006970403011300110123456780208QRIBFTTA530370454061800005802VN"
    "62340107NPS68690819thanh toan don hang63042E2E"
)
DYNAMIC_TO_CARD = (
    "00020101021238600010A00000072701300006970403011697040311012345670208QRIBFTTC530370454061800005802VN"
    "62340107NPS68690819thanh toan don hang6304A203"
)

# The fields of the examples, read off the payloads by hand.
SPEC_EXAMPLES = [
    (STATIC_TO_CARD, VietQr(bank_bin="970403", account="9704031101234567", service=Service.TO_CARD)),
    (
        DYNAMIC_TO_ACCOUNT,
        VietQr(
            bank_bin="970403",
            account="0011012345678",
            service=Service.TO_ACCOUNT,
            dynamic=True,
            amount=180000,
            bill_number="NPS6869",
            purpose="thanh toan don hang",
        ),
    ),
    (
        DYNAMIC_TO_CARD,
        VietQr(
            bank_bin="970403",
            account="9704031101234567",
            service=Service.TO_CARD,
            dynamic=True,
            amount=180000,
            bill_number="NPS6869",
            purpose="thanh toan don hang",
        ),
    ),
]


def bitwise_crc(data: bytes) -> int:
    """CRC-16/CCITT-FALSE straight from its definition, one bit at a time, as an independent oracle."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def tlv(tag: str, value: str) -> str:
    return f"{tag}{len(value):02d}{value}"


def with_crc(body: str) -> str:
    covered = body + "6304"
    return covered + f"{bitwise_crc(covered.encode('utf-8')):04X}"


def account_info(bank_bin: str = "970403", account: str = "0011012345678", service: str = "QRIBFTTA") -> str:
    return tlv("38", tlv("00", "A000000727") + tlv("01", tlv("00", bank_bin) + tlv("01", account)) + tlv("02", service))


def dynamic_body(amount: str = "180000", extra: str = "") -> str:
    """A dynamic to-account body (no CRC) with a chosen amount text and extra fields before the CRC."""
    return tlv("00", "01") + tlv("01", "12") + account_info() + tlv("53", "704") + tlv("54", amount) + tlv(
        "58", "VN"
    ) + extra


def violations_of(payload: str) -> dict[str, str]:
    with pytest.raises(InvalidArgument) as caught:
        parse_payload(payload)
    assert caught.value.violations, "an InvalidArgument must name the bad fields"
    return {violation.field: violation.description for violation in caught.value.violations}


# --- CRC -------------------------------------------------------------------------------------------------------


def test_crc_check_value_from_the_specification() -> None:
    assert crc16_ccitt_false(b"123456789") == 0x29B1


def test_crc_matches_a_bitwise_implementation_on_random_data() -> None:
    generator = random.Random(7)
    for length in [0, 1, 2, 31, 255, 1000]:
        data = bytes(generator.randrange(256) for _ in range(length))
        assert crc16_ccitt_false(data) == bitwise_crc(data)


def test_a_crc_with_a_leading_zero_keeps_four_digits() -> None:
    for counter in range(5000):
        payload = payment_qr("970436", "0011001234567", 50000, f"DVC{counter}", "le phi")
        expected = bitwise_crc(payload[:-4].encode("ascii"))
        if expected < 0x1000:
            break
    else:
        pytest.fail("no payload with a CRC below 0x1000 in 5000 tries")
    assert payload[-8:-4] == "6304"
    assert payload[-4:] == f"{expected:04X}"
    assert payload[-4] == "0"
    assert parse_payload(payload).bill_number == f"DVC{counter}"


# --- the specification examples --------------------------------------------------------------------------------


@pytest.mark.parametrize(("payload", "fields"), SPEC_EXAMPLES, ids=["6.1.2", "6.1.3", "6.1.4"])
def test_specification_examples_parse_with_a_valid_crc(payload: str, fields: VietQr) -> None:
    assert parse_payload(payload) == fields


@pytest.mark.parametrize(("payload", "fields"), SPEC_EXAMPLES, ids=["6.1.2", "6.1.3", "6.1.4"])
def test_building_the_example_fields_reproduces_the_examples_byte_for_byte(payload: str, fields: VietQr) -> None:
    assert build_payload(fields) == payload


@pytest.mark.parametrize(("payload", "fields"), SPEC_EXAMPLES, ids=["6.1.2", "6.1.3", "6.1.4"])
def test_a_lowercase_crc_is_accepted(payload: str, fields: VietQr) -> None:
    lowered = payload[:-4] + payload[-4:].lower()
    assert lowered != payload  # each example CRC has a hex letter
    assert parse_payload(lowered) == fields


def test_the_builder_writes_an_uppercase_crc() -> None:
    payload = build_payload(SPEC_EXAMPLES[1][1])
    assert payload[-4:] == "2E2E"


def test_a_wrong_crc_is_rejected_with_expected_and_found() -> None:
    problems = violations_of(DYNAMIC_TO_ACCOUNT[:-4] + "2E2F")
    assert set(problems) == {"tag 63 (crc)"}
    assert "expected 2E2E" in problems["tag 63 (crc)"]
    assert "found 2E2F" in problems["tag 63 (crc)"]


def test_a_changed_field_under_the_old_crc_is_rejected() -> None:
    tampered = DYNAMIC_TO_ACCOUNT.replace("5406180000", "5406980000")
    problems = violations_of(tampered)
    assert "tag 63 (crc)" in problems


def test_surrounding_whitespace_from_a_scanner_is_ignored() -> None:
    assert parse_payload(f"  {DYNAMIC_TO_ACCOUNT}\n") == SPEC_EXAMPLES[1][1]


def test_the_crc_covers_utf8_bytes_and_lengths_count_characters() -> None:
    purpose = "Lệ phí cấp Đổi GPLX"
    payload = with_crc(dynamic_body(extra=tlv("62", tlv("08", purpose))))
    parsed = parse_payload(payload)
    assert parsed.purpose == purpose
    rebuilt = build_payload(parsed)
    assert rebuilt.isascii()
    assert tlv("08", "Le phi cap Doi GPLX") in rebuilt


# --- ASCII notes -----------------------------------------------------------------------------------------------


def test_diacritics_are_stripped_and_d_with_stroke_becomes_d() -> None:
    assert to_ascii_note("Lệ phí cấp Đổi GPLX") == "Le phi cap Doi GPLX"


def test_every_vietnamese_vowel_with_every_tone_maps_to_its_base_letter() -> None:
    families = {
        "a": "aàáảãạăằắẳẵặâầấẩẫậ",
        "e": "eèéẻẽẹêềếểễệ",
        "i": "iìíỉĩị",
        "o": "oòóỏõọôồốổỗộơờớởỡợ",
        "u": "uùúủũụưừứửữự",
        "y": "yỳýỷỹỵ",
        "d": "dđ",
    }
    for base, letters in families.items():
        assert to_ascii_note(letters) == base * len(letters)
        assert to_ascii_note(letters.upper()) == base.upper() * len(letters)


def test_symbols_bank_apps_mangle_are_dropped_and_spaces_collapsed() -> None:
    assert to_ascii_note("  Phí #1:\t50%  & VAT_2 ") == "Phi 1 50 VAT 2"
    assert to_ascii_note("Hồ sơ 000.00.17.H56-240101-0001, lần 2") == "Ho so 000.00.17.H56-240101-0001, lan 2"
    assert to_ascii_note("đơn hàng 😀 “mới”") == "don hang moi"


def test_the_builder_writes_notes_in_plain_ascii() -> None:
    code = VietQr(
        bank_bin="970436",
        account="0011001234567",
        dynamic=True,
        amount=200000,
        merchant_name="Sở Tư pháp",
        merchant_city="Hà Nội",
        purpose="Lệ phí cấp Đổi GPLX",
    )
    payload = build_payload(code)
    assert payload.isascii()
    assert tlv("59", "So Tu phap") in payload
    assert tlv("60", "Ha Noi") in payload
    assert tlv("62", tlv("08", "Le phi cap Doi GPLX")) in payload


def test_a_note_with_nothing_ascii_left_is_rejected_rather_than_dropped() -> None:
    with pytest.raises(InvalidArgument) as caught:
        build_payload(VietQr(bank_bin="970436", account="123", bill_number="###"))
    assert caught.value.violations[0].field == "tag 62/01 (bill_number)"


# --- amounts and limits ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", ["180000.0", "180000.00", "180.000", "180,000", "1e5", "-5", "0", "0180000", " 180"])
def test_amounts_that_are_not_plain_positive_integers_are_rejected(amount: str) -> None:
    problems = violations_of(with_crc(dynamic_body(amount=amount)))
    assert set(problems) == {"tag 54 (amount)"}


def test_thirteen_digit_amounts_are_the_limit() -> None:
    assert parse_payload(with_crc(dynamic_body(amount="9" * 13))).amount == 10**13 - 1
    assert set(violations_of(with_crc(dynamic_body(amount="1" * 14)))) == {"tag 54 (amount)"}
    with pytest.raises(InvalidArgument):
        VietQr(bank_bin="970436", account="1", dynamic=True, amount=10**13)


@pytest.mark.parametrize("amount", [180000.0, True, 0, -1, "180000"])
def test_a_code_amount_must_be_a_positive_integer_of_dong(amount: object) -> None:
    with pytest.raises(InvalidArgument) as caught:
        VietQr(bank_bin="970436", account="1", dynamic=True, amount=amount)  # type: ignore[arg-type]
    assert [v.field for v in caught.value.violations] == ["tag 54 (amount)"]


def test_a_dynamic_code_needs_an_amount_and_a_static_one_may_carry_one() -> None:
    with pytest.raises(InvalidArgument) as caught:
        VietQr(bank_bin="970436", account="1", dynamic=True)
    assert [v.field for v in caught.value.violations] == ["tag 54 (amount)"]
    body = tlv("00", "01") + tlv("01", "12") + account_info() + tlv("53", "704") + tlv("58", "VN")
    assert set(violations_of(with_crc(body))) == {"tag 54 (amount)"}
    static_with_amount = VietQr(bank_bin="970436", account="1", amount=50000)
    assert parse_payload(build_payload(static_with_amount)) == static_with_amount


@pytest.mark.parametrize(
    ("field", "longest"),
    [("bill_number", 25), ("reference_label", 25), ("terminal", 25), ("purpose", 25), ("merchant_name", 25),
     ("merchant_city", 15)],
)
def test_text_field_length_limits(field: str, longest: int) -> None:
    longest_text: dict[str, Any] = {field: "A" * longest}
    accepted = VietQr(bank_bin="970436", account="1", **longest_text)
    assert getattr(parse_payload(build_payload(accepted)), field) == "A" * longest
    too_long: dict[str, Any] = {field: "A" * (longest + 1)}
    with pytest.raises(InvalidArgument) as caught:
        VietQr(bank_bin="970436", account="1", **too_long)
    assert caught.value.violations[0].field.endswith(f"({field})")


def test_additional_data_must_fit_in_one_tlv_field() -> None:
    # Four sub-fields of 25 characters would need 4 * (4 + 25) = 116 > 99 characters.
    with pytest.raises(InvalidArgument) as caught:
        VietQr(bank_bin="970436", account="1", bill_number="B" * 25, reference_label="R" * 25, terminal="T" * 25,
               purpose="P" * 25)
    assert [v.field for v in caught.value.violations] == ["tag 62 (additional_data)"]
    # Three full sub-fields take 3 * 29 = 87 characters, leaving 99 - 87 - 4 = 8 for the purpose.
    fits = VietQr(bank_bin="970436", account="1", bill_number="B" * 25, reference_label="R" * 25,
                  terminal="T" * 25, purpose="P" * 8)
    assert parse_payload(build_payload(fits)) == fits
    with pytest.raises(InvalidArgument):
        VietQr(bank_bin="970436", account="1", bill_number="B" * 25, reference_label="R" * 25, terminal="T" * 25,
               purpose="P" * 9)


def test_account_limits() -> None:
    assert parse_payload(build_payload(VietQr(bank_bin="970436", account="A1" * 9 + "Z"))).account == "A1" * 9 + "Z"
    for account in ["1" * 20, "", "0011-0012", "tài khoản"]:
        with pytest.raises(InvalidArgument) as caught:
            VietQr(bank_bin="970436", account=account)
        assert [v.field for v in caught.value.violations] == ["tag 38/01/01 (account)"]
    with pytest.raises(InvalidArgument) as caught:
        VietQr(bank_bin="970436", account="CARD1234", service=Service.TO_CARD)
    assert [v.field for v in caught.value.violations] == ["tag 38/01/01 (account)"]


@pytest.mark.parametrize("bank_bin", ["97043", "9704366", "97O436", "", "٩٧٠٤٣٦"])
def test_bank_bin_must_be_six_ascii_digits(bank_bin: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        VietQr(bank_bin=bank_bin, account="1")
    assert [v.field for v in caught.value.violations] == ["tag 38/01/00 (bank_bin)"]
    if bank_bin:  # an empty value cannot be written as TLV at all
        payload = with_crc(HEAD + account_info(bank_bin=bank_bin) + TAIL)
        assert set(violations_of(payload)) == {"tag 38/01/00 (bank_bin)"}


def test_all_bad_fields_of_a_code_are_reported_at_once() -> None:
    with pytest.raises(InvalidArgument) as caught:
        VietQr(bank_bin="1", account="", dynamic=True, amount=1.5)  # type: ignore[arg-type]
    assert {v.field for v in caught.value.violations} == {
        "tag 38/01/00 (bank_bin)",
        "tag 38/01/01 (account)",
        "tag 54 (amount)",
    }


# --- malformed payloads ----------------------------------------------------------------------------------------

HEAD = tlv("00", "01") + tlv("01", "12")
TAIL = tlv("53", "704") + tlv("54", "180000") + tlv("58", "VN")

MALFORMED = {
    "non-digit tag": (with_crc(HEAD + "AB02xx" + account_info() + TAIL), "tag ? (tlv)"),
    "non-digit length": (with_crc(HEAD + "52x1" + account_info() + TAIL), "tag 52 (tlv)"),
    "zero length": (with_crc(HEAD + "5200" + account_info() + TAIL), "tag 52 (tlv)"),
    "value past the end": (HEAD + account_info() + TAIL + "6210" + "0103abc", "tag 62 (tlv)"),
    "header cut short": (with_crc(HEAD + account_info() + TAIL) + "62", "tag 62 (tlv)"),
    "duplicate tag": (with_crc(HEAD + account_info() + TAIL + tlv("58", "VN")), "tag 58 (tlv)"),
    "missing crc": (HEAD + account_info() + TAIL, "tag 63 (crc)"),
    "crc not last": (with_crc(HEAD + account_info() + TAIL) + tlv("64", "x"), "tag 63 (crc)"),
    "crc not four hex digits": (HEAD + account_info() + TAIL + "6304ZZZZ", "tag 63 (crc)"),
    "crc too long": (HEAD + account_info() + TAIL + "630512345", "tag 63 (crc)"),
    "payload format missing": (with_crc(tlv("01", "12") + account_info() + TAIL), "tag 00 (payload_format)"),
    "payload format not first": (with_crc(tlv("01", "12") + tlv("00", "01") + account_info() + TAIL),
                                 "tag 00 (payload_format)"),
    "payload format wrong": (with_crc(tlv("00", "02") + tlv("01", "12") + account_info() + TAIL),
                             "tag 00 (payload_format)"),
    "point of initiation wrong": (with_crc(tlv("00", "01") + tlv("01", "13") + account_info() + TAIL),
                                  "tag 01 (dynamic)"),
    "point of initiation missing": (with_crc(tlv("00", "01") + account_info() + TAIL), "tag 01 (dynamic)"),
    "merchant account missing": (with_crc(HEAD + TAIL), "tag 38 (merchant_account)"),
    "vnpay instead of napas guid": (
        with_crc(HEAD + account_info().replace("A000000727", "A000000775") + TAIL), "tag 38/00 (guid)"
    ),
    "nested tlv broken": (with_crc(HEAD + tlv("38", "0010A0000007270199") + TAIL), "tag 38/01 (tlv)"),
    "beneficiary missing": (with_crc(HEAD + tlv("38", tlv("00", "A000000727") + tlv("02", "QRIBFTTA")) + TAIL),
                            "tag 38/01 (beneficiary)"),
    "beneficiary tlv broken": (
        with_crc(HEAD + tlv("38", tlv("00", "A000000727") + tlv("01", "0006970403011") + tlv("02", "QRIBFTTA"))
                 + TAIL),
        "tag 38/01/01 (tlv)",
    ),
    "account missing": (
        with_crc(HEAD + tlv("38", tlv("00", "A000000727") + tlv("01", tlv("00", "970403")) + tlv("02", "QRIBFTTA"))
                 + TAIL),
        "tag 38/01/01 (account)",
    ),
    "unknown service": (with_crc(HEAD + account_info(service="QRIBFTTX") + TAIL), "tag 38/02 (service)"),
    "service missing": (
        with_crc(HEAD + tlv("38", tlv("00", "A000000727") + tlv("01", tlv("00", "970403") + tlv("01", "1"))) + TAIL),
        "tag 38/02 (service)",
    ),
    "wrong currency": (with_crc(HEAD + account_info() + TAIL.replace("5303704", "5303840")), "tag 53 (currency)"),
    "wrong country": (with_crc(HEAD + account_info() + TAIL.replace("5802VN", "5802US")), "tag 58 (country)"),
    "additional data tlv broken": (with_crc(HEAD + account_info() + TAIL + tlv("62", "0109NPS")), "tag 62/01 (tlv)"),
    "merchant category not digits": (with_crc(HEAD + account_info() + tlv("52", "ABCD") + TAIL),
                                     "tag 52 (merchant_category)"),
}


@pytest.mark.parametrize(("payload", "field"), MALFORMED.values(), ids=MALFORMED.keys())
def test_each_malformed_payload_is_rejected_naming_its_tag(payload: str, field: str) -> None:
    assert field in violations_of(payload)


def test_a_missing_vietqr_account_mentions_the_other_scheme_found() -> None:
    vnpay_only = with_crc(HEAD + tlv("26", tlv("00", "A000000775") + tlv("01", "12345")) + TAIL)
    assert "tag 26" in violations_of(vnpay_only)["tag 38 (merchant_account)"]


def test_fields_of_other_schemes_are_tolerated() -> None:
    payload = with_crc(HEAD + tlv("26", tlv("00", "A000000775")) + account_info() + TAIL + tlv("64", tlv("00", "vi")))
    assert parse_payload(payload).amount == 180000


@pytest.mark.parametrize("not_a_payload", ["", "hello", "0", "00020", 12345, None, b"000201"])
def test_garbage_is_rejected_with_invalid_argument(not_a_payload: object) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_payload(not_a_payload)  # type: ignore[arg-type]
    assert caught.value.violations


def test_random_corruptions_never_escape_as_bare_exceptions() -> None:
    generator = random.Random(2024)
    alphabet = "0123456789ABCDEFQRVN .đ"
    for _ in range(3000):
        characters = list(generator.choice([STATIC_TO_CARD, DYNAMIC_TO_ACCOUNT, DYNAMIC_TO_CARD]))
        for _ in range(generator.randint(1, 3)):
            spot = generator.randrange(len(characters))
            action = generator.choice(["replace", "delete", "insert"])
            if action == "replace":
                characters[spot] = generator.choice(alphabet)
            elif action == "delete":
                del characters[spot]
            else:
                characters.insert(spot, generator.choice(alphabet))
        try:
            parse_payload("".join(characters))
        except InvalidArgument as error:
            assert error.violations


# --- round trips and the payment helper ------------------------------------------------------------------------


def test_random_codes_survive_a_build_and_parse_round_trip() -> None:
    generator = random.Random(11)
    safe = "ABCXYZabcxyz0123456789 .,-"

    def text(limit: int) -> str | None:
        if generator.random() < 0.4:
            return None
        return "".join(generator.choice(safe) for _ in range(generator.randint(1, limit))).strip() or "X"

    for _ in range(300):
        service = generator.choice(list(Service))
        dynamic = generator.random() < 0.5
        code = VietQr(
            bank_bin=f"{generator.randrange(10**6):06d}",
            account="".join(generator.choice("0123456789") for _ in range(generator.randint(1, 19))),
            service=service,
            dynamic=dynamic,
            amount=generator.randint(1, 10**13 - 1) if dynamic or generator.random() < 0.5 else None,
            merchant_category=generator.choice([None, "5311", "9399"]),
            merchant_name=text(25),
            merchant_city=text(15),
            bill_number=text(25),
            reference_label=text(20),
            terminal=text(10),
            purpose=text(20),
        )
        cleaned = {
            name: " ".join(value.split()) if isinstance(value, str) and name not in ("bank_bin", "account") else value
            for name, value in vars(code).items()
        }
        assert vars(parse_payload(build_payload(code))) == cleaned


def test_payment_qr_is_a_dynamic_to_account_code_with_the_reference_first() -> None:
    payload = payment_qr("970415", "113366668888", 350000, "DVC7Q2K9", "Lệ phí cấp bản sao trích lục hộ tịch")
    code = parse_payload(payload)
    assert (code.bank_bin, code.account, code.service, code.dynamic, code.amount) == (
        "970415", "113366668888", Service.TO_ACCOUNT, True, 350000
    )
    assert code.bill_number == "DVC7Q2K9"
    assert code.purpose == "DVC7Q2K9 Le phi cap ban s"  # first 25 characters of the ASCII note
    assert payload.isascii()
    assert payload.index("DVC7Q2K9") < payload.index("Le phi")


def test_payment_qr_keeps_a_short_purpose_whole_and_trims_a_cut_at_a_space() -> None:
    assert parse_payload(payment_qr("970436", "1", 1000, "REF1", "phi")).purpose == "REF1 phi"
    code = parse_payload(payment_qr("970436", "1", 1000, "R1234567890123456789012", "a b"))
    assert code.purpose == "R1234567890123456789012 a"
    # Here the 25th character is the space after the reference: the note is cut there without a trailing space.
    code = parse_payload(payment_qr("970436", "1", 1000, "R12345678901234567890123", "ab"))
    assert code.purpose == "R12345678901234567890123"


@pytest.mark.parametrize("reference", ["", "DVC-123", "DVC 123", "ĐVC123", "R" * 26])
def test_payment_qr_rejects_references_bank_apps_would_alter(reference: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        payment_qr("970436", "0011001234567", 50000, reference, "le phi")
    assert [v.field for v in caught.value.violations] == ["reference"]


def test_payment_qr_validates_the_account_and_amount() -> None:
    with pytest.raises(InvalidArgument) as caught:
        payment_qr("97043", "0011001234567", 0, "REF1", "le phi")
    assert {v.field for v in caught.value.violations} == {"tag 38/01/00 (bank_bin)", "tag 54 (amount)"}
