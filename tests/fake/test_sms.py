"""Pure helpers of the fake: encodings and parts, address formats, sender kinds, datetimes."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from telnyx_msg.testing._sms import encode, is_address, parse_datetime, sender_kind


@pytest.mark.parametrize(
    ("text", "requested", "expected"),
    [
        ("", "auto", ("GSM-7", 1)),
        ("Hello", "auto", ("GSM-7", 1)),
        ("[" * 80, "auto", ("GSM-7", 1)),
        ("[" * 81, "auto", ("GSM-7", 2)),
        ("€" * 80, "auto", ("UCS-2", 2)),  # not in Telnyx's GSM 7-bit set
        ("`", "auto", ("UCS-2", 1)),
        ("Hello", "ucs2", ("UCS-2", 1)),
        ("a" * 459, "gsm7", ("GSM-7", 3)),
        ("a" * 460, "gsm7", ("GSM-7", 4)),
    ],
)
def test_encode(text: str, requested: str, expected: tuple[str, int]) -> None:
    """encode() picks GSM-7 when possible and counts parts by 160/153 or 70/67."""
    assert encode(text, requested) == expected


def test_encode_refuses_forced_gsm7() -> None:
    """encoding=gsm7 with a non-GSM character raises ValueError."""
    with pytest.raises(ValueError, match="GSM-7"):
        encode("日本", "gsm7")


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("+18445550001", True),
        ("55501", True),
        ("+0123", False),
        ("18445550001x", False),
        ("+1234567890123456", False),
        (None, False),
        (12345, False),
    ],
)
def test_is_address(value: object, ok: bool) -> None:
    """Recipients are E.164 numbers or 3-8 digit short codes."""
    assert is_address(value) is ok


@pytest.mark.parametrize(
    ("sender", "number_type", "kind"),
    [
        ("+13125550100", None, "long_code"),
        ("+18005550101", None, "toll_free"),
        ("+18885550101", None, "toll_free"),
        ("55501", None, "short_code"),
        ("ACME Co", None, "alphanumeric"),
        ("+13125550100", "toll-free", "toll_free"),
        ("+13125550100", "shortcode", "short_code"),
        ("not valid!", None, None),
        ("TOOLONGSENDER", None, None),
    ],
)
def test_sender_kind(sender: str, number_type: str | None, kind: str | None) -> None:
    """A hosted number's type wins; otherwise the sender's format decides its kind."""
    assert sender_kind(sender, number_type) == kind


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
        ("2024-01-02T03:04:05+00:00", datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
        ("2024-01-02 03:04:05", datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
        ("tomorrow", None),
        ("", None),
    ],
)
def test_parse_datetime(text: str, expected: datetime | None) -> None:
    """ISO 8601 with Z, offsets or a space parse as aware UTC; garbage gives None."""
    assert parse_datetime(text) == expected
