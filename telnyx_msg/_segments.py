"""How many SMS parts a text takes, as Telnyx counts (and bills) them.

Source: https://developers.telnyx.com/docs/messaging/messages/message-encoding

- GSM-7 when every character is in Telnyx's GSM 7-bit set: ASCII letters, digits, space, line
  feed, carriage return, ``!"#$%&'()*+,-./:;<=>?@_``, ``£¥èéùìòØøÅåÆæßÉ¡ÄÖÑÜ§¿äöñüà``, and the
  escaped ``~^|\\{}[]``, which take 2 septets (escape + character). Telnyx's set is narrower
  than the 3GPP TS 23.038 default alphabet: it has no Greek capitals, ``Ç``, ``¤``, ``€`` or
  form feed, so those make a text UTF-16. One part holds 160 septets; a concatenated message
  holds 153 per part (the rest is the user data header), and an escape pair is never split.
- UCS-2 (Telnyx: UTF-16) otherwise, in UTF-16 code units: 70 in one part, 67 per part when
  concatenated; a surrogate pair (an emoji) is never split across parts.
- ``encoding="ucs2"`` (the send's ``encoding`` field) forces UCS-2; ``"gsm7"`` counts GSM-7
  when the text fits (Telnyx answers 400 when it cannot convert it).
- An empty text is 1 part of 0 characters (carriers bill an empty SMS as one message).

Telnyx sends at most 10 parts as one message (``MAX_PARTS``). MMS text is UTF-8 and not split
into parts at all.
"""

from __future__ import annotations

from typing import Literal

import attrs

from telnyx_msg.errors import ValidationError

__all__ = ["GSM7_BASIC", "GSM7_EXTENSION", "MAX_PARTS", "Segments", "segments"]

# Telnyx's GSM 7-bit set, one septet each (see the module docstring for the source).
GSM7_BASIC = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    " \n\r!\"#$%&'()*+,-./:;<=>?@_"
    "£¥èéùìòØøÅåÆæßÉ¡ÄÖÑÜ§¿äöñüà"
)
# Characters sent as escape + code: two septets each.
GSM7_EXTENSION = frozenset("~^|\\{}[]")
_GSM7_ALL = GSM7_BASIC | GSM7_EXTENSION
#: The most parts Telnyx sends as one message.
MAX_PARTS = 10

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


def segments(text: str, encoding: Literal["auto", "gsm7", "ucs2"] = "auto") -> Segments:
    """Count the SMS parts of ``text``: GSM-7 if it fits Telnyx's GSM 7-bit set (and
    ``encoding`` is not ``"ucs2"``), else UCS-2."""
    if not isinstance(text, str):
        raise ValidationError("text", f"must be a string, got {type(text).__name__}")
    if encoding == "ucs2":
        return _ucs2(text)
    if GSM7_BASIC.issuperset(text):
        length = len(text)
        parts = 1 if length <= _GSM_SINGLE else -(-length // _GSM_MULTI)
        return Segments("GSM-7", parts, length)
    if _GSM7_ALL.issuperset(text):
        sizes = [2 if char in GSM7_EXTENSION else 1 for char in text]
        return Segments("GSM-7", _split(sizes, _GSM_SINGLE, _GSM_MULTI), sum(sizes))
    return _ucs2(text)


def _ucs2(text: str) -> Segments:
    sizes = [2 if ord(char) > 0xFFFF else 1 for char in text]
    return Segments("UCS-2", _split(sizes, _UCS2_SINGLE, _UCS2_MULTI), sum(sizes))
