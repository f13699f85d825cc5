"""SMS segment counting (GSM-7 / UCS-2) on known carrier cases."""

from __future__ import annotations

import math

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from telnyx_msg._segments import GSM7_BASIC, GSM7_EXTENSION, Segments, segments

BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Segments("GSM-7", 1, 0)),
        ("a" * 160, Segments("GSM-7", 1, 160)),
        ("a" * 161, Segments("GSM-7", 2, 161)),
        ("a" * 306, Segments("GSM-7", 2, 306)),
        ("a" * 307, Segments("GSM-7", 3, 307)),
        ("a" * 459, Segments("GSM-7", 3, 459)),
        ("a" * 460, Segments("GSM-7", 4, 460)),
        ("€" * 80, Segments("GSM-7", 1, 160)),
        ("€" * 81, Segments("GSM-7", 2, 162)),
        ("a" * 159 + "€", Segments("GSM-7", 2, 161)),
        ("a" * 158 + "{", Segments("GSM-7", 1, 160)),
        # 306 septets fit 2 x 153 only if the escape pair could be split: it cannot.
        ("a" * 152 + "€" + "a" * 152, Segments("GSM-7", 3, 306)),
        ("a" * 151 + "€" + "a" * 153, Segments("GSM-7", 2, 306)),
        ("\f" * 3, Segments("GSM-7", 1, 6)),
        ("你" * 70, Segments("UCS-2", 1, 70)),
        ("你" * 71, Segments("UCS-2", 2, 71)),
        ("你" * 134, Segments("UCS-2", 2, 134)),
        ("你" * 135, Segments("UCS-2", 3, 135)),
        ("😀" * 35, Segments("UCS-2", 1, 70)),
        ("😀" * 36, Segments("UCS-2", 2, 72)),
        # 134 code units, but the surrogate pair straddles the 67-unit boundary.
        ("你" * 66 + "😀" + "你" * 66, Segments("UCS-2", 3, 134)),
        ("你" * 65 + "😀" + "你" * 67, Segments("UCS-2", 2, 134)),
        ("Hello 😀", Segments("UCS-2", 1, 8)),
        ("ç", Segments("UCS-2", 1, 1)),  # only the capital Ç is in GSM 03.38
        ("\u03b1", Segments("UCS-2", 1, 1)),  # Greek small alpha: only capitals are GSM
        ("€" * 70 + "ç", Segments("UCS-2", 2, 71)),  # UCS-2 counts € as one unit
    ],
)
def test_known_cases(text: str, expected: Segments) -> None:
    """Encoding, parts and length match what carriers bill."""
    assert segments(text) == expected


def test_basic_alphabet_is_exactly_gsm_03_38() -> None:
    """The basic set has the 128 characters of the GSM 03.38 default alphabet."""
    assert len(BASIC_TABLE) == 128
    assert frozenset(BASIC_TABLE) == GSM7_BASIC
    assert frozenset("\f^{}\\[~]|€") == GSM7_EXTENSION
    for char in BASIC_TABLE:
        assert segments(char) == Segments("GSM-7", 1, 1)
    for char in GSM7_EXTENSION:
        assert segments(char) == Segments("GSM-7", 1, 2)


def test_segments_is_frozen() -> None:
    """Segments is an immutable value."""
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        segments("hi").parts = 2  # type: ignore[misc]


@given(st.text(alphabet=sorted(GSM7_BASIC), max_size=1000))
def test_plain_gsm_matches_the_simple_formula(text: str) -> None:
    """Without extension characters, parts are 1 up to 160, else ceil(n / 153)."""
    n = len(text)
    assert segments(text) == Segments("GSM-7", 1 if n <= 160 else math.ceil(n / 153), n)


@given(st.text(max_size=600))
def test_parts_never_undercount(text: str) -> None:
    """Parts hold at most 153 septets / 67 units each, and are never more than needed + 1 each."""
    result = segments(text)
    per_part = 153 if result.encoding == "GSM-7" else 67
    single = 160 if result.encoding == "GSM-7" else 70
    if result.characters <= single:
        assert result.parts == 1
    else:
        naive = math.ceil(result.characters / per_part)
        assert naive <= result.parts <= math.ceil(result.characters / (per_part - 1))
    if result.encoding == "UCS-2":
        assert result.characters == len(text.encode("utf-16-le", "surrogatepass")) // 2
