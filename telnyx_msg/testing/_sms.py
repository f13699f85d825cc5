"""Pure SMS facts the fake needs: address formats, sender kinds, encodings and part counts."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from telnyx_msg._segments import segments

E164 = re.compile(r"\+[1-9][0-9]{1,14}")
SHORT_CODE = re.compile(r"[0-9]{3,8}")
# Alphanumeric sender ids: up to 11 letters, digits or spaces, at least one letter.
ALPHANUMERIC = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}")
# WhatsApp business-scoped user ids look like "US.13491208655302741918" (docs/wire.md §3.9).
WHATSAPP_BSUID = re.compile(r"[A-Z]{2}\.[0-9]+")
# North American toll-free area codes.
_TOLL_FREE = re.compile(r"\+18(00|33|44|55|66|77|88)[0-9]{7}")

_NUMBER_TYPE_KIND = {
    "long-code": "long_code",
    "longcode": "long_code",
    "toll-free": "toll_free",
    "tollfree": "toll_free",
    "short-code": "short_code",
    "shortcode": "short_code",
}
# Labels of the detailed profile metrics (docs/wire.md §8.2 shows "longcode").
KIND_LABEL = {
    "long_code": "longcode",
    "toll_free": "tollfree",
    "short_code": "shortcode",
    "alphanumeric": "alphanumeric",
}


def is_e164(value: object) -> bool:
    """True for a ``+E.164`` phone number."""
    return isinstance(value, str) and E164.fullmatch(value) is not None


def is_address(value: object) -> bool:
    """True for a recipient Telnyx accepts in ``to``: E.164 or a short code."""
    return isinstance(value, str) and (
        E164.fullmatch(value) is not None or SHORT_CODE.fullmatch(value) is not None
    )


def sender_kind(sender: str, number_type: str | None = None) -> str | None:
    """The throughput kind of a ``from`` value, or None when it is not a valid sender.

    A hosted number's ``type`` wins; otherwise the format decides.
    """
    if number_type is not None:
        return _NUMBER_TYPE_KIND.get(number_type, "long_code")
    if E164.fullmatch(sender):
        return "toll_free" if _TOLL_FREE.fullmatch(sender) else "long_code"
    if SHORT_CODE.fullmatch(sender):
        return "short_code"
    if ALPHANUMERIC.fullmatch(sender):
        return "alphanumeric"
    return None


def encode(text: str, requested: str = "auto") -> tuple[str, int]:
    """Return ``(encoding, parts)`` for ``text``: ``"GSM-7"`` or ``"UCS-2"``, counted by the
    SDK's own rules (:func:`telnyx_msg.segments`, Telnyx's documented character set).

    ``requested`` is the API's ``encoding`` field; ``"gsm7"`` with a character outside GSM-7
    raises ``ValueError``.
    """
    counted = segments(text, "ucs2" if requested == "ucs2" else "auto")
    if requested == "gsm7" and counted.encoding != "GSM-7":
        raise ValueError("text contains characters that cannot be encoded as GSM-7")
    return counted.encoding, counted.parts


def utcnow() -> datetime:
    """The current UTC time (the fake's default wall clock)."""
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    """ISO 8601 with milliseconds and offset, as Telnyx writes message timestamps."""
    return moment.isoformat(timespec="milliseconds")


def parse_datetime(value: object) -> datetime | None:
    """Parse an ISO 8601 string (``Z``, space separator and naive UTC accepted), else None."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)
