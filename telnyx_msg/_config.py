"""Client settings as small immutable values: timeouts, per-call options, client config."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs
from attrs import frozen

from telnyx_msg.errors import ConfigurationError, ValidationError

DEFAULT_BASE_URL = "https://api.telnyx.com/v2"
DEFAULT_MAX_RETRIES = 2
#: Connection pool size: matches the official SDK's 100 and bounds send_many's concurrency.
DEFAULT_POOL_SIZE = 100
#: Largest response body read (after decompression): Telnyx's largest documented answers (a
#: page of 250 records) are well under 1 MB, so 10 MB is generous yet bounds memory.
DEFAULT_MAX_RESPONSE_SIZE = 10 * 1024 * 1024

_IDEMPOTENCY_KEY_RE = re.compile(r"[A-Za-z0-9_:-]{1,255}")
#: An HTTP field name is a token (RFC 9110 §5.1); a value holds no control character but tab.
_HEADER_NAME_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE_BAD_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def positive_seconds(name: str, value: object, *, infinite: bool = False) -> float:
    """``value`` as a number of seconds > 0 (finite unless ``infinite``), else the
    ``ConfigurationError`` naming ``name``: every duration setting is checked here."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not value > 0  # NaN too
        or (value == math.inf and not infinite)
    ):
        kind = "number" if infinite else "finite number"
        raise ConfigurationError(f"{name} must be a {kind} of seconds > 0, got {value!r}")
    return float(value)


def wait_seconds(name: str, value: object) -> float:
    """``value`` as how long to wait: a finite number of seconds >= 0 (0: do not wait)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 <= value < math.inf  # NaN too
    ):
        raise ConfigurationError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    return float(value)


def positive_int(name: str, value: object) -> int:
    """``value`` as an int >= 1 (a size or a count), else the ``ConfigurationError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be an int >= 1, got {value!r}")
    return value


def _check_seconds(name: str, value: float) -> None:
    positive_seconds(name, value, infinite=True)  # math.inf opts out explicitly


@frozen(cache_hash=True)  # looked up per request by the transport
class Timeout:
    """Per-attempt timeouts in seconds. ``connect`` bounds getting a connection (a pool slot,
    DNS, TCP, TLS); ``total`` runs from then to the end of the response, so an attempt takes at
    most ``connect + total``. ``connect`` defaults to 5 s, or ``total`` if that is shorter
    (``Timeout(1.0)`` is ``timeout=1.0``).

    ``math.inf`` disables one explicitly; ``None`` is not accepted anywhere, because a silent
    "wait forever" is how clients hang in production.
    """

    total: float = 60.0
    connect: float = attrs.field(
        default=attrs.Factory(lambda self: _default_connect(self.total), takes_self=True)
    )

    def __attrs_post_init__(self) -> None:
        _check_seconds("timeout.total", self.total)
        _check_seconds("timeout.connect", self.connect)


def _default_connect(total: Any) -> Any:
    # min() only of numbers: a wrong total is then reported by the total's own check.
    return min(5.0, total) if isinstance(total, (int, float)) and total == total else 5.0


DEFAULT_TIMEOUT = Timeout()


def to_timeout(value: float | Timeout) -> Timeout:
    """Normalise a ``timeout=`` argument: a number is the total, with the default connect time."""
    if isinstance(value, Timeout):
        return value
    if value is None:
        raise ConfigurationError(
            "timeout=None would wait forever; pass seconds (e.g. 30.0), "
            "telnyx_msg.Timeout(total=..., connect=...), or math.inf to opt out explicitly"
        )
    _check_seconds("timeout", value)
    return Timeout(total=float(value))


def validate_idempotency_key(key: str) -> str:
    """Check Telnyx's documented key format ``^[A-Za-z0-9_:-]{1,255}$`` before any I/O."""
    if not isinstance(key, str) or _IDEMPOTENCY_KEY_RE.fullmatch(key) is None:
        raise ValidationError(
            "idempotency_key",
            f"{key!r} must be 1-255 characters of A-Z, a-z, 0-9, '_', ':' or '-' (a UUID4 works)",
        )
    return key


def _check_key(_: Any, __: Any, value: str | None) -> None:
    if value is not None:
        validate_idempotency_key(value)


def check_retries(value: int) -> int:
    """``value`` if it is a valid ``max_retries`` (an int >= 0), else ConfigurationError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"max_retries must be an int >= 0, got {value!r}")
    return value


def _check_retries(_: Any, __: Any, value: int | None) -> None:
    if value is not None:
        check_retries(value)


def _check_timeout(_: Any, __: Any, value: float | Timeout | None) -> None:
    if value is not None:
        to_timeout(value)


_FRAMING_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "host", "connection", "upgrade", "te", "trailer"}
)


def _check_headers(_: Any, __: Any, value: Mapping[str, str] | None) -> None:
    """Checked when the options are built: aiohttp would refuse these only inside the request
    (a bare TypeError or ValueError), and a name that is not a token costs a 400."""
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise ValidationError(
            "extra_headers", f"must be a mapping of names to values, got {type(value).__name__}"
        )
    for name, item in value.items():
        if not isinstance(name, str) or _HEADER_NAME_RE.fullmatch(name) is None:
            raise ValidationError(
                "extra_headers",
                f"{name!r} is not a header name: a non-empty str of letters, digits and "
                "!#$%&'*+-.^_`|~",
            )
        if name.lower() == "authorization":
            raise ValidationError("extra_headers", "must not set Authorization; use api_key")
        if name.lower() in _FRAMING_HEADERS:
            raise ValidationError(
                "extra_headers",
                f"must not set {name}: the client sets the headers that frame and route the "
                "request (a stray one could drop the body or send it elsewhere)",
            )
        field = f"extra_headers[{name}]"
        if not isinstance(item, str):
            raise ValidationError(field, f"must be a str, got {type(item).__name__}")
        bad = _HEADER_VALUE_BAD_RE.search(item)
        if bad is not None:  # a line break would end the header and start another
            raise ValidationError(field, f"must be one line of text; it contains {bad.group()!r}")
        try:
            item.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError(field, "contains a lone surrogate: not valid text") from None


def _check_mapping(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not isinstance(value, Mapping):
        raise ValidationError(attribute.name, f"must be a mapping, got {type(value).__name__}")


def _copied(value: Any) -> Any:
    """A mapping's own copy: the checks hold for what is sent, whatever the caller's dict
    becomes later (httpx copies too)."""
    return dict(value) if isinstance(value, Mapping) else value


@frozen(kw_only=True)
class RequestOptions:
    """How one call is made (not what it sends): pass as ``options=`` to any method.

    ``idempotency_key`` is sent as the ``Idempotency-Key`` header, identically on every attempt,
    and makes a send safe to retry after an ambiguous failure (timeout, dropped connection,
    500/502/504). ``extra_body`` and ``extra_query`` merge fields this SDK does not model yet
    into the call's JSON body and query string, unchecked against the API (they win over the
    arguments of the same name); a value they cannot encode (NaN, a naive datetime, a set, an
    object) is a ``ValidationError`` before any I/O. ``extra_headers`` must map header names
    (HTTP tokens) to one-line str values, checked here. The three mappings are copied: changing
    yours afterwards changes nothing. Fields left ``None`` use the client's settings.
    """

    timeout: float | Timeout | None = attrs.field(default=None, validator=_check_timeout)
    max_retries: int | None = attrs.field(default=None, validator=_check_retries)
    idempotency_key: str | None = attrs.field(default=None, validator=_check_key)
    extra_headers: Mapping[str, str] | None = attrs.field(
        default=None, converter=_copied, validator=_check_headers
    )
    extra_body: Mapping[str, Any] | None = attrs.field(
        default=None, converter=_copied, validator=_check_mapping
    )
    extra_query: Mapping[str, Any] | None = attrs.field(
        default=None, converter=_copied, validator=_check_mapping
    )


def resolve_api_key(api_key: str | None, option: str = "api_key=...") -> str:
    """The explicit key, else ``$TELNYX_API_KEY``; raise ConfigurationError (naming ``option``,
    e.g. the CLI's ``--api-key``) if neither is set."""
    key = api_key if api_key is not None else os.environ.get("TELNYX_API_KEY")
    if not key or not isinstance(key, str) or not key.strip():
        raise ConfigurationError(
            f"no API key: pass {option} or set the TELNYX_API_KEY environment variable"
        )
    # A key read from a file or a mounted secret often ends with a newline: never part of a key.
    key = key.strip()
    bad = next((c for c in key if not "!" <= c <= "~"), None)
    if bad is not None:  # it would go out as a broken (or split) Authorization header
        raise ConfigurationError(
            f"api_key must be one word of printable ASCII characters; it contains {bad!r}"
        )
    return key


def resolve_base_url(base_url: str | None) -> str:
    """The explicit URL, else ``$TELNYX_BASE_URL``, else Telnyx's; validated, no trailing slash.

    An explicit ``""`` is an error, not "the default": a test or staging setting that came out
    empty must not send to production. An empty ``$TELNYX_BASE_URL`` counts as unset (as
    shells and compose files leave variables).
    """
    if base_url is not None and not (isinstance(base_url, str) and base_url.strip()):
        raise ConfigurationError(
            f"base_url is {base_url!r}; pass an http(s) URL, or None for "
            "$TELNYX_BASE_URL or Telnyx's API"
        )
    url = base_url or os.environ.get("TELNYX_BASE_URL") or DEFAULT_BASE_URL
    # As for the key: a value read from a file often ends with a newline (one that is all
    # whitespace stays, and is refused below).
    url = url.strip() or url
    if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", url):
        raise ConfigurationError(f"base_url must be an http(s) URL without query, got {url!r}")
    try:  # a port that is not a number (or > 65535), an unclosed "[": failed at the first call
        parts = urlsplit(url)
        parts.port  # noqa: B018  # parsing the port is the check
    except ValueError as exc:
        raise ConfigurationError(f"base_url {url!r} is not a valid URL: {exc}") from None
    if not parts.hostname:
        raise ConfigurationError(f"base_url {url!r} has no host")
    if "@" in parts.netloc or "\\" in url:
        # Credentials would show in reprs and events (the API key authenticates); some URL
        # parsers read a backslash as the end of the host.
        raise ConfigurationError(
            "base_url must not contain credentials (user:password@) or a backslash; the API "
            "key is what authenticates"
        )
    try:  # a host IDNA cannot encode (an empty label, a byte that was not UTF-8): failed late
        from yarl import URL

        parsed = URL(url)
        parsed.host  # noqa: B018  # encoding the host is the check
    except ValueError as exc:  # UnicodeError included
        raise ConfigurationError(
            f"base_url {url!r} has a host that cannot be encoded: {exc}"
        ) from None
    if not url.isascii():
        # The transport takes URLs as already encoded: an IDN host goes out IDNA-encoded, and
        # non-ASCII path text percent-encoded, as on the wire.
        url = str(parsed)
    return url.rstrip("/")
