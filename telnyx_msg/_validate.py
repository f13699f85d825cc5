"""Client-side argument checks, run by the request models' attrs validators before any I/O.

Every failure is a :class:`~telnyx_msg.errors.ValidationError` naming the wire field.

Address rules (Telnyx's messaging reference: "E.164 format ... Include the + prefix and country
code. No spaces, dashes, or parentheses"):

- E.164: ``+``, a non-zero digit, then 1-14 more digits (``^\\+[1-9][0-9]{1,14}$``).
- Short code: 3-8 digits, no ``+`` (our decision; national short codes are 3-8 digits long).
- Alphanumeric sender ID: 1-11 letters, digits or spaces with at least one letter (our decision,
  the common carrier rule).
- WhatsApp recipients may also be a business-scoped user id such as ``US.13491208655302741918``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import attrs

from telnyx_msg.errors import ValidationError

E164_RE = re.compile(r"\+[1-9][0-9]{1,14}")
SHORT_CODE_RE = re.compile(r"[0-9]{3,8}")
# A short code written with a "+": the shortest international phone numbers (country code and
# subscriber number, e.g. Niue's +683 NNNN) have 7 digits.
PLUS_SHORT_CODE_RE = re.compile(r"\+[0-9]{3,6}")
_SCIENTIFIC = re.compile(r"[0-9](?:[.,][0-9]+)?[Ee]\+?[0-9]{1,2}")
ALPHANUMERIC_RE = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}")
WHATSAPP_USER_RE = re.compile(r"[A-Z]{2}\.[0-9]{5,40}")
#: ``page[size]`` is 1-250 on the lists whose API definition uses ``PageConsolidated``.
MAX_PAGE_SIZE = 250

Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


class NotGiven:
    """The default of an argument whose ``None`` means JSON ``null``: left out, it is not sent.

    Most arguments send nothing for ``None``; a few (a messaging profile's
    ``number_pool_settings`` and ``url_shortener_settings``) are switched off by ``null``.
    """

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __bool__(self) -> bool:
        return False


NOT_GIVEN = NotGiven()


def nullable(check: Validator) -> Validator:
    """``check`` for an argument defaulting to :data:`NOT_GIVEN` (which it lets through)."""

    def run(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not NOT_GIVEN:
            check(instance, attribute, value)

    return run


def wire_name(attribute: attrs.Attribute[Any]) -> str:
    """The JSON name of a request field (trailing ``_`` dropped, or its ``wire`` metadata)."""
    wire = attribute.metadata.get("wire")
    if wire:
        return str(wire)
    name = attribute.name
    return name[:-1] if name.endswith("_") else name


def _fail(attribute: attrs.Attribute[Any], message: str) -> ValidationError:
    return ValidationError(wire_name(attribute), message)


def _address(kinds: tuple[str, ...]) -> Validator:
    patterns = {
        "E.164 number": E164_RE,
        "short code": SHORT_CODE_RE,
        "alphanumeric sender ID": ALPHANUMERIC_RE,
        "WhatsApp user id": WHATSAPP_USER_RE,
    }
    checks = [patterns[k] for k in kinds]
    expected = " or ".join(kinds)

    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        if not isinstance(value, str):
            raise _fail(attribute, f"must be a string ({expected}), got {type(value).__name__}")
        for pattern in checks:
            if pattern.fullmatch(value):
                return
        hint = ""
        if _SCIENTIFIC.fullmatch(value):
            # What Excel shows (and saves) for a long number in a column not formatted as text.
            hint = (
                "; a spreadsheet turned the number into scientific notation: format that "
                "column as text and type the number again"
            )
        elif value.startswith("="):
            # ="+13125550001": how people keep a spreadsheet from changing a number.
            hint = "; that is a spreadsheet formula: save the cell's value, not the formula"
        elif value.startswith("'"):
            # '+13125550001: the other way, a text prefix some exports keep in the value.
            hint = "; remove the leading ' (a spreadsheet's mark for text)"
        elif any(c in value for c in " -().") and "alphanumeric sender ID" not in kinds:
            hint = "; remove spaces, dashes and parentheses"
            if "E.164 number" in kinds and not value.startswith("+"):
                # 555-0123 -> 5550123 would pass as a short code: not what was meant.
                hint += ", and start with '+' and the country code, e.g. '+13125550001'"
        elif value[:1].isdigit() and "E.164 number" in kinds:
            hint = "; E.164 numbers start with '+' and the country code, e.g. '+13125550001'"
            if value.isdigit() and len(value) > 8:
                hint += " (a spreadsheet drops the '+' of a column not formatted as text)"
        raise _fail(attribute, f"{value!r} is not a valid {expected}{hint}")

    return check


e164 = _address(("E.164 number",))
recipient = _address(("E.164 number", "short code"))
any_sender = _address(("E.164 number", "short code", "alphanumeric sender ID"))
alphanumeric_sender = _address(("alphanumeric sender ID",))
whatsapp_recipient = _address(("E.164 number", "WhatsApp user id"))


def non_empty(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A string with at least one non-whitespace character (``None`` = not sent)."""
    if value is None:
        return
    if not isinstance(value, str):
        raise _fail(attribute, f"must be a string, got {type(value).__name__}")
    if not value.strip():
        raise _fail(attribute, "must be a non-empty string")


def str_list(
    min_len: int = 0, max_len: int | None = None, item: Validator | None = None
) -> Validator:
    """A list/tuple of strings (not a bare string) with a length range and per-item check."""

    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise _fail(attribute, f"must be a list of strings, got {type(value).__name__}")
        if len(value) < min_len:
            raise _fail(attribute, f"needs at least {min_len} item(s)")
        if max_len is not None and len(value) > max_len:
            raise _fail(attribute, f"allows at most {max_len} items, got {len(value)}")
        for entry in value:
            if not isinstance(entry, str):
                raise _fail(attribute, f"items must be strings, got {type(entry).__name__}")
            if item is not None:
                item(instance, attribute, entry)

    return check


def one_of(*values: str) -> Validator:
    """One of the documented enum values (``None`` = not sent)."""
    allowed = frozenset(values)

    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None and value not in allowed:
            raise _fail(attribute, f"{value!r} is not one of {', '.join(sorted(allowed))}")

    return check


def boolean(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A real bool (``None`` = not sent)."""
    if value is not None and not isinstance(value, bool):
        raise _fail(attribute, f"must be true or false, got {value!r}")


def mapping(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A JSON object (``None`` = not sent)."""
    if value is not None and not isinstance(value, Mapping):
        raise _fail(attribute, f"must be a mapping (JSON object), got {type(value).__name__}")


def date_time(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """An aware ``datetime`` or an RFC 3339 string (``2030-01-01T09:00:00Z``, or an offset
    such as ``+02:00``), what the definition's ``format: date-time`` means: ``send_at`` goes
    out as given, so a padded or otherwise shaped string is refused here."""
    problem = None if value is None else _date_time_problem(value, rfc3339=True)
    if problem is not None:
        raise _fail(attribute, problem)


_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})")


def _date_time_problem(value: Any, *, rfc3339: bool) -> str | None:
    """What is wrong with a date-time argument: an aware ``datetime``, or a string with a UTC
    offset; with ``rfc3339``, in RFC 3339's shape (else any ISO 8601 one Python parses, as the
    opt-out list's ``created_at`` filter takes: its own records use a space separator)."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            return "datetime must be timezone-aware (e.g. tzinfo=timezone.utc)"
        return None
    if not isinstance(value, str):
        return f"must be an aware datetime or ISO 8601 string, got {value!r}"
    from telnyx_msg._convert import parse_datetime

    if value != value.strip():
        return f"{value!r} has spaces around it"
    try:
        parse_datetime(value.upper())  # (RFC 3339 allows a lower-case t and z)
    except ValueError:
        return f"{value!r} is not an ISO 8601 date-time"
    if rfc3339 and _RFC3339.fullmatch(value):
        return None
    if not (value.endswith(("Z", "z")) or re.search(r"[+-]\d{2}:?\d{2}$", value)):
        return f"{value!r} has no UTC offset; add 'Z' or '+00:00'"
    if rfc3339:
        return f"{value!r} is not an RFC 3339 date-time (like '2030-01-01T09:00:00Z')"
    return None


def positive_int(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """An int >= 1 (``None`` = not sent)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise _fail(attribute, f"must be an integer >= 1, got {value!r}")


def page_size(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A page size of the lists the definition caps: 1 to 250 (``None`` = not sent, the
    server's 20)."""
    positive_int(_, attribute, value)
    if value is not None and value > MAX_PAGE_SIZE:
        raise _fail(
            attribute, f"must be at most {MAX_PAGE_SIZE} (Telnyx's largest page), got {value!r}"
        )


def path_id(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A non-empty id for a URL path segment, not ``.`` or ``..`` (a proxy that normalises
    the path would resolve those to another resource: ``DELETE .../autoresp_configs/..``
    deletes the profile)."""
    if not isinstance(value, str) or not value.strip():
        raise _fail(attribute, f"must be a non-empty string id, got {value!r}")
    if value in (".", ".."):
        raise _fail(attribute, f"{value!r} is a relative path segment, not an id")


def string(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """Any string, the empty one included (``None`` = not sent)."""
    if value is not None and not isinstance(value, str):
        raise _fail(attribute, f"must be a string, got {type(value).__name__}")


def pattern(regex: str, description: str, *, max_len: int | None = None) -> Validator:
    """A string matching ``regex`` in full (``None`` = not sent)."""
    compiled = re.compile(regex)

    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        string(instance, attribute, value)
        if value is None:
            return
        if max_len is not None and len(value) > max_len:
            raise _fail(attribute, f"allows at most {max_len} characters, got {len(value)}")
        if not compiled.fullmatch(value):
            raise _fail(attribute, f"{value!r} is not {description}")

    return check


def http_url(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """An absolute http(s) URL (``None`` = not sent): a media file or webhook Telnyx fetches
    or posts to, so a local path or a bare host name can only fail later."""
    if value is not None:
        _check_http_url(attribute, value)


def url_or_empty(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """An http(s) URL, or ``""`` (no URL); ``None`` = not sent."""
    if value is not None and value != "":
        _check_http_url(attribute, value, ' (or "" for none)')


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _check_http_url(attribute: attrs.Attribute[Any], value: Any, alternative: str = "") -> None:
    if not isinstance(value, str):
        raise _fail(attribute, f"must be a string, got {type(value).__name__}")
    if not value[:8].lower().startswith(("http://", "https://")) or len(value) <= len("https://"):
        local = value and "://" not in value
        upload = " (upload a local file first)" if "media" in attribute.name else ""
        hint = f"; Telnyx needs a public URL{upload}" if local else ""
        raise _fail(attribute, f"{value!r} is not an http(s) URL{alternative}{hint}")
    if _CONTROL.search(value):  # (urlsplit drops a tab or line break, and it would go out)
        raise _fail(attribute, f"{value!r} has a control character{alternative}")
    try:
        host = urlsplit(value).hostname
    except ValueError:  # (an unclosed IPv6 bracket)
        host = None
    if not host or any(c.isspace() for c in host):
        raise _fail(attribute, f"{value!r} has no valid host name{alternative}")


def query_object(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A mapping of query parameters (``filter[...]``): plain values, as ``extra_query`` takes
    (a bytes value or an object would go out as its repr, a naive datetime without a zone)."""
    mapping(instance, attribute, value)
    if value is not None:
        from telnyx_msg._wire import query_value  # one rule for every query value

        query_value(wire_name(attribute), value)


def bounds(*, date_times: bool) -> Validator:
    """``{"gte": ..., "lte": ...}`` (the definition's ``created_at[gte]`` / ``[lte]``): plain
    query values, or with ``date_times`` each an aware ``datetime`` or an ISO 8601 string with
    an offset (where the definition says ``format: date-time``)."""

    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        query_object(instance, attribute, value)
        if value is None:
            return
        for key, item in value.items():
            if key not in ("gte", "lte"):
                raise _fail(attribute, f"has the key {key!r}; a range takes 'gte' and 'lte'")
            problem = _date_time_problem(item, rfc3339=False) if date_times else None
            if problem is not None:
                raise ValidationError(f"{wire_name(attribute)}[{key}]", problem)

    return check


_JSON_KINDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "number": (
        "a number",
        lambda x: isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x),
    ),
    # Telnyx's definition of the number pool weights: "a non-negative number".
    "weight": (
        "a number >= 0",
        lambda x: isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x < math.inf,
    ),
    "boolean": ("true or false", lambda x: isinstance(x, bool)),
    "string": ("a string", lambda x: isinstance(x, str)),
}


def settings_object(required: tuple[str, ...], **kinds: str) -> Validator:
    """A JSON object of a request body (``number_pool_settings``): the ``required`` keys
    present, and each key of ``kinds`` (``"number"``, ``"weight"`` (a number >= 0),
    ``"boolean"``, ``"string"``) of that JSON type when given."""
    present = object_with(required)

    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        present(instance, attribute, value)
        if value is None:
            return
        for key, kind in kinds.items():
            item = value.get(key)
            described, ok = _JSON_KINDS[kind]
            if item is not None and not ok(item):
                raise _fail(attribute, f"[{key}] must be {described}, got {item!r}")

    return check


def object_with(required: tuple[str, ...] = (), **enums: tuple[str, ...]) -> Validator:
    """A query object (:func:`query_object`) holding the ``required`` keys, whose ``enums``
    keys take listed values."""

    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        query_object(instance, attribute, value)
        if value is None:
            return
        missing = [key for key in required if value.get(key) is None]
        if missing:
            raise _fail(attribute, f"needs the key(s) {', '.join(missing)}")
        for key, allowed in enums.items():
            item = value.get(key)
            if item is not None and item not in allowed:
                raise _fail(attribute, f"[{key}] {item!r} is not one of {', '.join(allowed)}")

    return check
