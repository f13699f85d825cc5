"""SMS segment counting (GSM-7 / UCS-2) on known carrier cases."""

from __future__ import annotations

import math

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from telnyx_msg._segments import GSM7_BASIC, GSM7_EXTENSION, Segments, segments

# Telnyx's GSM 7-bit set, transcribed from
# https://developers.telnyx.com/docs/messaging/messages/message-encoding
TELNYX_BASIC = (
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    "\n\r !\"#$%&'()*+,-./:;<=>?@_£¥èéùìòØøÅåÆæßÉ¡ÄÖÑÜ§¿äöñüà"
)
TELNYX_ESCAPED = "~^|\\{}[]"


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
        ("a" * 1530, Segments("GSM-7", 10, 1530)),  # Telnyx's maximum of 10 parts
        ("[" * 80, Segments("GSM-7", 1, 160)),
        ("[" * 81, Segments("GSM-7", 2, 162)),
        ("a" * 159 + "[", Segments("GSM-7", 2, 161)),
        ("a" * 158 + "{", Segments("GSM-7", 1, 160)),
        # 306 septets fit 2 x 153 only if the escape pair could be split: it cannot.
        ("a" * 152 + "[" + "a" * 152, Segments("GSM-7", 3, 306)),
        ("a" * 151 + "[" + "a" * 153, Segments("GSM-7", 2, 306)),
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
        ("ç", Segments("UCS-2", 1, 1)),
        ("\u03b1", Segments("UCS-2", 1, 1)),
        # In the 3GPP alphabet, not in Telnyx's set: the text is sent (and billed) as UTF-16.
        ("Price 5€", Segments("UCS-2", 1, 8)),
        ("€" * 80, Segments("UCS-2", 2, 80)),
        ("Δ", Segments("UCS-2", 1, 1)),
        ("Ç", Segments("UCS-2", 1, 1)),
        ("\f", Segments("UCS-2", 1, 1)),
        ("\x1b", Segments("UCS-2", 1, 1)),  # the escape code itself is not a character
        ("`", Segments("UCS-2", 1, 1)),
    ],
)
def test_known_cases(text: str, expected: Segments) -> None:
    """Encoding, parts and length match what Telnyx bills."""
    assert segments(text) == expected


def test_the_character_set_is_telnyx_s() -> None:
    """The sets are exactly Telnyx's published GSM 7-bit set and its escaped characters."""
    assert frozenset(TELNYX_BASIC) == GSM7_BASIC
    assert len(TELNYX_BASIC) == len(GSM7_BASIC)
    assert frozenset(TELNYX_ESCAPED) == GSM7_EXTENSION
    for char in TELNYX_BASIC:
        assert segments(char) == Segments("GSM-7", 1, 1)
    for char in TELNYX_ESCAPED:
        assert segments(char) == Segments("GSM-7", 1, 2)


def test_a_forced_encoding_is_counted() -> None:
    """``encoding="ucs2"`` counts UCS-2 (100 plain letters: 2 parts, not 1); ``"gsm7"`` counts
    as ``"auto"`` does (Telnyx converts what it can, or refuses the send)."""
    assert segments("a" * 100, "ucs2") == Segments("UCS-2", 2, 100)
    assert segments("a" * 100, "gsm7") == Segments("GSM-7", 1, 100)


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


def test_only_characters_beyond_the_bmp_take_two_code_units() -> None:
    """UTF-16 needs a surrogate pair only above U+FFFF: U+FFFF itself (the last BMP code
    point) is one unit, U+10000 (the first supplementary one) two."""
    assert segments("\uffff") == Segments("UCS-2", 1, 1)
    assert segments("\ufffd" * 70) == Segments("UCS-2", 1, 70)
    assert segments("\uffff" * 70) == Segments("UCS-2", 1, 70)
    assert segments("\U00010000") == Segments("UCS-2", 1, 2)
    for text in ("\uffff", "\U00010000"):
        assert segments(text).characters == len(text.encode("utf-16-le")) // 2


@pytest.mark.parametrize("text", [None, b"hi", 5])
def test_a_text_that_is_not_a_string_is_a_validation_error(text: object) -> None:
    """segments(None) raised "'NoneType' object is not iterable"."""
    from telnyx_msg.errors import ValidationError

    with pytest.raises(ValidationError, match="text: must be a string"):
        segments(text)  # type: ignore[arg-type]
