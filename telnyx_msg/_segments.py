"""How many SMS parts a text takes, counted as carriers count them (3GPP TS 23.038 / 23.040).

- GSM-7 when every character is in the GSM 03.38 default alphabet or its extension table
  (``^ { } \\ [ ~ ] | €`` and form feed, which take 2 septets: escape + character). One part
  holds 160 septets; a concatenated message holds 153 per part (7 septets go to the user data
  header), and an escape pair is never split across parts.
- UCS-2 otherwise, counted in UTF-16 code units: 70 in one part, 67 per part when concatenated,
  and a surrogate pair (an emoji, say) is never split across parts.
- An empty text is 1 part of 0 characters (carriers bill an empty SMS as one message).
"""

from __future__ import annotations

from typing import Literal

import attrs

__all__ = ["GSM7_BASIC", "GSM7_EXTENSION", "Segments", "segments"]

# GSM 03.38 default alphabet, in code order 0x00-0x7F (0x1B is the escape to the extension table).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# Characters sent as escape + code: two septets each.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
_GSM7_ALL = GSM7_BASIC | GSM7_EXTENSION

_GSM_SINGLE, _GSM_MULTI = 160, 153
_UCS2_SINGLE, _UCS2_MULTI = 70, 67


@attrs.frozen
class Segments:
    """The encoding, number of parts and length (septets or UTF-16 code units) of a text."""

    encoding: Literal["GSM-7", "UCS-2"]
    parts: int
    characters: int


def _split(sizes: list[int], single: int, multi: int) -> int:
    """Parts needed for units of the given sizes, never splitting one unit across parts."""
    total = sum(sizes)
    if total <= single:
        return 1
    parts, used = 1, 0
    for size in sizes:
        if used + size > multi:
            parts += 1
            used = 0
        used += size
    return parts


def segments(text: str) -> Segments:
    """Count the SMS parts of ``text``: GSM-7 if it fits the GSM alphabet, else UCS-2."""
    if GSM7_BASIC.issuperset(text):
        length = len(text)
        parts = 1 if length <= _GSM_SINGLE else -(-length // _GSM_MULTI)
        return Segments("GSM-7", parts, length)
    if _GSM7_ALL.issuperset(text):
        sizes = [2 if char in GSM7_EXTENSION else 1 for char in text]
        return Segments("GSM-7", _split(sizes, _GSM_SINGLE, _GSM_MULTI), sum(sizes))
    sizes = [2 if ord(char) > 0xFFFF else 1 for char in text]
    return Segments("UCS-2", _split(sizes, _UCS2_SINGLE, _UCS2_MULTI), sum(sizes))
