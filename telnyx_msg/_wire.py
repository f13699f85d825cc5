"""The HTTP side of an operation, without I/O: build a request, read a response or its error.

Everything here is a pure function of its arguments, so it is tested on recorded response
bodies (``tests/wire/``) with no server: :func:`build_request` turns an endpoint and a validated
request model into the bytes and headers to send; :func:`finisher` and :func:`page_parser` turn
a 2xx body into models (a malformed one raises :class:`APIResponseValidationError` naming the
field); :func:`status_error` and :func:`transport_error` turn a failed attempt into the mapped
exception. The client (``_client._call``) only sequences these with the limiter, the
transport and the retry decision (``_retry.next_delay``).
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar

import attrs

from telnyx_msg._config import RequestOptions
from telnyx_msg._retry import Failure, server_hint, status_outcome_unknown
from telnyx_msg._spec import Endpoint, Lane, encode_query, query_string
from telnyx_msg.errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    ClientClosedError,
    ErrorDetail,
    RateLimiterUnavailableError,
    TelnyxError,
    ValidationError,
    status_error_class,
)

if TYPE_CHECKING:
    from telnyx_msg.models import Page

__all__ = [
    "HttpResponse",
    "Operation",
    "TransportError",
    "WireRequest",
    "build_request",
    "decode",
    "failure",
    "finisher",
    "json_body",
    "page_parser",
    "reached_earlier",
    "request_id",
    "status_error",
    "transport_error",
]

T = TypeVar("T")

_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "telnyx-request-id")
# allow_nan=False: Python would write NaN and Infinity, which are not JSON (servers refuse them).
_JSON_DUMPS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# NaN and Infinity are not JSON (RFC 8259), though Python's json reads them: a NaN amount or
# wait would parse, compare unequal to itself and fail any arithmetic far from here.
_JSON_DECODE = json.JSONDecoder(parse_constant=_no_constant).decode
#: What json raises on a body it cannot read (RecursionError: nested too deep).
_UNREADABLE = (ValueError, RecursionError)


class HttpResponse(NamedTuple):
    """A response: status, case-insensitive headers and the raw body.

    ``too_large`` is True when the body exceeded the size cap; ``body`` is then empty.
    """

    status: int
    headers: Mapping[str, str]
    body: bytes
    too_large: bool = False


class TransportError(Exception):
    """No response. ``reached`` tells whether the request may have reached the server;
    ``final`` that trying again cannot help (an untrusted TLS certificate)."""

    def __init__(
        self,
        message: str,
        *,
        reached: bool,
        timeout: bool,
        closed: bool = False,
        final: bool = False,
    ) -> None:
        super().__init__(message)
        self.reached = reached
        self.timeout = timeout
        self.closed = closed  # the client was closed before the request got a connection
        self.final = final


class Operation(Protocol):
    """What the pipeline needs of an operation: an :class:`Endpoint`, or the ad-hoc one of
    ``client.request``."""

    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def lane(self) -> Lane | None: ...
    @property
    def idempotent(self) -> bool: ...
    @property
    def accepts_idempotency_key(self) -> bool: ...
    def build(self, request: Any, /) -> tuple[str, str, dict[str, Any] | None]: ...


class Located(Protocol):
    """Anything that names a call's method and path (for error messages)."""

    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...


class WireRequest(NamedTuple):
    """One request, ready for the transport, with what the pipeline decides on.

    ``message_type`` is the rate-limit type of a send (``"SMS"``/``"MMS"``), None when the call
    is not rate limited (not a send, or no limiter); ``sender`` is the send's sender lane;
    ``key_accepted`` that the operation takes an ``Idempotency-Key`` (the sends).
    """

    method: str
    path: str
    url: str
    headers: Mapping[str, str]
    data: bytes | None
    retry_safe: bool
    idempotency_key: str | None
    message_type: str | None
    sender: str | None
    key_accepted: bool = False


def build_request(
    op: Operation, request: Any, base_url: str, headers: Mapping[str, str], limited: bool = True
) -> WireRequest:
    """The HTTP request for a validated request model (its ``options`` applied).

    ``limited=False`` (the client has no rate limiter) skips reading the send's lane.
    """
    try:
        path, query, body = op.build(request)  # quotes the path and query parameters
    except UnicodeEncodeError:
        raise _not_unicode(request) from None
    options: RequestOptions | None = request.options
    key = None
    if options is not None:
        key = options.idempotency_key
        if key is not None or options.extra_headers:
            extra = dict(options.extra_headers or {})
            if key is not None:
                extra["Idempotency-Key"] = key
            headers = merge_headers(headers, extra)
        if options.extra_body or options.extra_query:
            query, body = _with_extras(options, query, body)
    lane = op.lane
    message_type = sender = None
    if limited and lane is not None and body is not None:
        message_type, sender = lane.of(body)
    data = None
    if body is not None:
        try:
            text = _JSON_DUMPS(body)
        except (TypeError, ValueError, RecursionError):
            # Only client.request's json= arrives unchecked (a set, a Decimal, NaN, a mapping
            # that is not a dict): json_body names the field, or makes it encodable.
            text = _JSON_DUMPS(json_body(body))
        try:
            data = text.encode()
        except UnicodeEncodeError:
            raise _not_unicode(body) from None
    return WireRequest(
        op.method,
        path,
        base_url + path + ("?" + query if query else ""),
        headers,
        data,
        # A key makes a retry safe only where Telnyx deduplicates by it (the sends); on a
        # client.request of another method it is just a header and changes no retry.
        op.idempotent or (key is not None and op.accepts_idempotency_key),
        key,
        message_type,
        sender,
        op.accepts_idempotency_key,
    )


def _not_unicode(value: Any) -> ValidationError:
    """The error for a string that cannot be sent: it holds a lone surrogate (text decoded
    with ``errors="surrogateescape"``, or cut through a surrogate pair), which UTF-8 cannot
    encode. Found by walking the arguments only once encoding failed."""
    return ValidationError(_unencodable(value, "") or "request", _LONE_SURROGATE)


_LONE_SURROGATE = (
    "is not valid Unicode text: it contains a lone surrogate (for example from bytes "
    "decoded with errors='surrogateescape'); decode the source with its real encoding"
)


def _unencodable(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "request"
        return None
    if isinstance(value, Mapping):
        items: Any = value.items()
    elif isinstance(value, (list, tuple)):
        items = ((f"[{i}]", item) for i, item in enumerate(value))
    elif hasattr(type(value), "__attrs_attrs__"):
        items = ((a.name, getattr(value, a.name)) for a in type(value).__attrs_attrs__)
    else:
        return None
    for key, item in items:
        key = str(key)
        name = key if not path else (f"{path}{key}" if key[:1] == "[" else f"{path}.{key}")
        found = _unencodable(item, name)
        if found is not None:
            return found
    return None


def json_body(body: Mapping[str, Any], name: str = "json") -> dict[str, Any]:
    """An escape hatch's JSON object (``extra_body``, ``client.request(json=...)``), ready for
    the encoder: aware datetimes as ISO 8601 text, tuples as lists. A value JSON cannot carry
    as it is raises the :class:`ValidationError` naming its field, before any I/O.

    Refused: NaN and the infinities (not JSON), a naive datetime (no zone: ``send_at`` refuses
    it too), a key that is not a string, and any other type (a set, ``Decimal``, ``bytes``,
    ``date``): convert those yourself, to the text or number the API expects. ``name`` (the
    argument) is the field blamed for a fault of the object itself.
    """
    try:
        return _json_object(body, "", [], name)
    except RecursionError:
        raise ValidationError(name, "is nested too deeply to encode") from None


def _json_object(
    value: Mapping[Any, Any], path: str, inside: list[int], name: str = ""
) -> dict[str, Any]:
    if id(value) in inside:  # the encoder's "Circular reference detected"
        raise ValidationError(path or name, "contains itself")
    inside.append(id(value))
    out: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise ValidationError(
                path or name, f"has the key {key!r}: JSON object keys are strings"
            )
        out[key] = _json(item, f"{path}.{key}" if path else key, inside)
    inside.pop()
    return out


def _json(value: Any, path: str, inside: list[int]) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(path, f"is {value!r}, which JSON cannot carry")
        return value
    if isinstance(value, datetime):
        return _aware(value, path).isoformat()
    if isinstance(value, Mapping):
        return _json_object(value, path, inside)
    if isinstance(value, (list, tuple)):
        if id(value) in inside:
            raise ValidationError(path, "contains itself")
        inside.append(id(value))
        items = [_json(item, f"{path}[{i}]", inside) for i, item in enumerate(value)]
        inside.pop()
        return items
    raise ValidationError(
        path,
        f"is a {type(value).__name__}, which is not a JSON value; pass a str, int, float, "
        "bool, None, an aware datetime, a list or a dict (a Decimal as str, a set as a list)",
    )


def _aware(value: datetime, path: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(
            path, f"{value!r} has no time zone; pass an aware datetime (tzinfo=timezone.utc)"
        )
    return value


def merge_headers(base: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """``base`` with ``extra`` on top; header names compare case-insensitively (one value each)."""
    spelled = {name.lower(): (name, value) for name, value in extra.items()}  # last one wins
    merged = {name: value for name, value in base.items() if name.lower() not in spelled}
    merged.update(spelled.values())
    return merged


def encode_pairs(params: Mapping[str, Any], name: str = "params") -> str:
    """A query string from an escape hatch's parameters (``extra_query``,
    ``client.request(params=...)``), with the methods' encoding rules (``_spec``).

    A value is a str, int, finite float, bool, enum, aware datetime or None (left out), a list
    of those (joined with ``,``) or a mapping of them (``filter[from]=...``). Anything else
    raises the :class:`ValidationError` naming the parameter, before any I/O: its ``repr``
    went into the URL. ``name`` (the argument) is the field blamed for a key that is not text.
    """
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        if not isinstance(key, str):
            raise ValidationError(name, f"has the key {key!r}: parameter names are strings")
        encode_query(key, query_value(key, value), pairs)
    return query_string(pairs)


def query_value(name: str, value: Any) -> Any:
    """``value`` checked, its list items as the text to join (``_spec.encode_query`` joins
    ``str(item)``, which spells a bool ``True`` and an enum ``MessageType.SMS``)."""
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for sub, item in value.items():
            if isinstance(sub, bool) or not isinstance(sub, (str, int)):
                raise ValidationError(name, f"has the key {sub!r}: keys are strings")
            out[sub] = query_value(f"{name}[{sub}]", item)
        return out
    if isinstance(value, (list, tuple)):
        texts: list[str] = []
        for i, item in enumerate(value):
            if item is None or isinstance(item, (Mapping, list, tuple)):
                raise ValidationError(
                    f"{name}[{i}]", f"is {item!r}; a list parameter holds plain values"
                )
            one: list[tuple[str, str]] = []
            encode_query(name, query_value(f"{name}[{i}]", item), one)
            texts.append(one[0][1])
        return texts
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(name, f"is {value!r}, which is not a query value")
    elif isinstance(value, datetime):
        _aware(value, name)
    elif isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError(name, _LONE_SURROGATE) from None
    elif value is not None and not isinstance(value, (str, int, enum.Enum)):
        raise ValidationError(
            name,
            f"is a {type(value).__name__}, which is not a query value; pass a str, int, "
            "float, bool, enum, aware datetime, a list or a mapping of them",
        )
    return value


def _with_extras(
    options: RequestOptions, query: str, body: dict[str, Any] | None
) -> tuple[str, dict[str, Any] | None]:
    """Merge ``extra_query`` / ``extra_body`` into a built request (the same encoding rules)."""
    if options.extra_body:
        body = {**(body or {}), **json_body(options.extra_body, "extra_body")}
    if options.extra_query:
        extra = encode_pairs(options.extra_query, "extra_query")
        # An extra parameter replaces an argument of the same name (never sent twice).
        names = {part.split("=", 1)[0] for part in extra.split("&")}
        kept = [part for part in query.split("&") if part and part.split("=", 1)[0] not in names]
        query = "&".join([*kept, extra] if extra else kept)
    return query, body


def kept_headers(headers: Mapping[str, str]) -> Mapping[str, str]:
    """An error's copy of the response headers, picklable so the error still crosses a process
    boundary: aiohttp's read-only proxy is not, its ``copy()`` (still case-insensitive) is."""
    copy = getattr(headers, "copy", None)
    return copy() if callable(copy) else dict(headers)


def request_id(headers: Mapping[str, str]) -> str | None:
    """Telnyx's id of the request, from whichever header carries it."""
    for name in _REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value
    return None


def decode(response: HttpResponse, op: Located) -> Any:
    """The JSON body of a 2xx (``{}`` when empty); not JSON raises APIResponseValidationError."""
    if not response.body:
        return {}
    try:
        # Telnyx answers UTF-8 JSON objects; json.loads would first sniff every body's encoding.
        body = response.body
        if body[:1] in (b"{", b"["):
            try:
                return _JSON_DECODE(body.decode("utf-8"))
            except ValueError:
                pass  # e.g. UTF-16 without a BOM: json.loads below knows those
        return json.loads(body, parse_constant=_no_constant)
    # json recurses once per nesting level: a body nested deeper than the interpreter's
    # recursion limit raises RecursionError, and is no more JSON we can read than any other.
    except _UNREADABLE as exc:
        raise invalid(
            response, op, f"the body is not JSON: {response.body[:200]!r}", accepted=False
        ) from exc


def invalid(
    response: HttpResponse,
    op: Located,
    message: str,
    field: str | None = None,
    resource_id: str | None = None,
    *,
    accepted: bool,
) -> APIResponseValidationError:
    """The error for a 2xx whose body cannot be read; ``accepted``: it is Telnyx's envelope.

    ``field`` is the model path the structuring blamed (``Message.to.phone_number``).
    """
    return APIResponseValidationError(
        message,
        status=response.status,
        request_id=request_id(response.headers),
        body=response.body[:1000].decode("utf-8", "replace"),
        method=op.method,
        path=op.path,
        field=field,
        headers=kept_headers(response.headers),
        resource_id=resource_id,
        accepted=accepted,
    )


def too_large(response: HttpResponse, op: Located, limit: int) -> APIResponseValidationError:
    """The error for a 2xx whose body exceeded ``max_response_size`` (it was not read)."""
    return APIResponseValidationError(
        f"the body exceeds max_response_size ({limit} bytes) and was not read",
        status=response.status,
        request_id=request_id(response.headers),
        method=op.method,
        path=op.path,
        headers=kept_headers(response.headers),
        accepted=False,  # not read, so not known to be Telnyx's envelope
    )


_SHAPE_ERRORS = (TypeError, ValueError, KeyError, AttributeError)


def finisher(endpoint: Endpoint[Any, T]) -> Callable[[HttpResponse, Any], T]:
    """``finish(response, request) -> result``: decode and structure one endpoint's 2xx
    response to ``request`` (its model, which gives errors the real path)."""
    envelope = endpoint.envelope
    if envelope == "none":
        return lambda _, __: None  # type: ignore[return-value]  # T is None for these endpoints
    from telnyx_msg._convert import converter  # cattrs loads on first use, not at import

    item_type = endpoint.response
    hook = converter.get_structure_hook(item_type)
    many = endpoint.many
    # A bare answer's sign of being Telnyx's: its "id", or (the profile metrics, which have
    # none) its "data" list; only the model that holds a "data" list may show the latter.
    bare_list = (
        envelope == "bare" and attrs.has(item_type) and "data" in attrs.fields_dict(item_type)
    )

    def finish(response: HttpResponse, request: Any) -> Any:
        try:
            doc = decode(response, endpoint)
        except APIResponseValidationError:
            decode(response, _called(endpoint, request))  # raises again, naming the real path
            raise
        # Telnyx's envelope around a result that could not be read: the request was accepted.
        # Any other body may be a proxy's or a wrong base_url's (an HTML page answering 200).
        enveloped = False
        try:
            if not response.body:
                raise TypeError("the body is empty")
            if envelope == "data":
                if type(doc) is not dict:
                    raise TypeError(f"expected a JSON object with 'data', got {type(doc).__name__}")
                doc = doc.get("data")  # None when missing: the model's error names it
            if many:
                if type(doc) is not list:
                    raise TypeError(f"expected a list under 'data', got {type(doc).__name__}")
                enveloped = True
                return [hook(x, item_type) for x in doc]
            enveloped = type(doc) is dict
            if envelope == "bare" and enveloped:
                # No envelope to recognise: Telnyx's bare answer names what it returns, or
                # (the profile metrics, which have no id) holds its list under "data".
                enveloped = type(doc.get("id")) is str or (
                    bare_list and type(doc.get("data")) is list
                )
            return hook(doc, item_type)
        except _SHAPE_ERRORS as exc:
            found = doc.get("id") if type(doc) is dict else None  # the data object, if any
            raise _shape_error(
                response,
                _called(endpoint, request),
                exc,
                found if type(found) is str else None,
                accepted=enveloped,
            ) from exc

    return finish


class At(NamedTuple):
    """Where a call went: its method and its real path (ids filled in), for error messages."""

    method: str
    path: str


def _called(endpoint: Endpoint[Any, Any], request: Any) -> At:
    """The method and path ``request`` was sent to (built again: only errors need it)."""
    return At(endpoint.method, endpoint.build(request)[0])


def page_parser(
    endpoint: Endpoint[Any, T],
) -> Callable[[Any, HttpResponse, int | None], tuple[Page[T], list[Any]]]:
    """``parse(request, response, page_number) -> (page, raw data)`` for a paged endpoint."""
    from telnyx_msg._convert import converter
    from telnyx_msg.models import Page, PageMeta

    item_type = endpoint.response
    hook = converter.get_structure_hook(item_type)
    meta_hook = converter.get_structure_hook(PageMeta)

    def parse(
        request: Any, response: HttpResponse, number: int | None
    ) -> tuple[Page[T], list[Any]]:
        try:
            doc = decode(response, endpoint)
        except APIResponseValidationError:
            decode(response, _called(endpoint, request))  # raises again, naming the real path
            raise
        raw_list = doc.get("data") if isinstance(doc, dict) else None
        meta_raw = doc.get("meta") if isinstance(doc, dict) else None
        if not isinstance(raw_list, list) or not isinstance(meta_raw, (dict, type(None))):
            # Read as an empty page, it would silently end the iteration.
            raise invalid(
                response,
                _called(endpoint, request),
                "unexpected page shape: expected {'data': [...]}",
                accepted=False,
            )
        try:
            meta = PageMeta() if meta_raw is None else meta_hook(meta_raw, PageMeta)
            items = [hook(x, item_type) for x in raw_list]
        except _SHAPE_ERRORS as exc:
            raise _shape_error(response, _called(endpoint, request), exc, accepted=True) from exc
        return Page(items, meta, number or request.page_number or 1), raw_list

    return parse


def _shape_error(
    response: HttpResponse,
    op: Located,
    exc: Exception,
    resource_id: str | None = None,
    *,
    accepted: bool,
) -> APIResponseValidationError:
    return invalid(
        response,
        op,
        f"unexpected response shape: {exc}",
        getattr(exc, "path", None),
        resource_id,
        accepted=accepted,
    )


def status_error(response: HttpResponse, wire: WireRequest) -> APIStatusError:
    """The typed error for a non-2xx response (see ``errors.status_error_class``)."""
    body: Any
    try:
        body = json.loads(response.body) if response.body else None
    except _UNREADABLE:
        body = response.body.decode("utf-8", "replace")
    raw_errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(raw_errors, list):
        errors = [ErrorDetail.from_json(e) for e in raw_errors]
    elif isinstance(body, dict) and ("code" in body or "title" in body):
        errors = [ErrorDetail.from_json(body)]  # the bare form of some opt-out/cancel errors
    else:
        errors = []
    status = response.status
    code = errors[0].code if errors else None
    return status_error_class(status, code)(
        status,
        errors=errors,
        request_id=request_id(response.headers),
        body=body,
        method=wire.method,
        path=wire.path,
        retry_after=server_hint(response.headers, status),
        outcome_unknown=status_outcome_unknown(status, wire.method),
        headers=kept_headers(response.headers),
    )


def transport_error(
    exc: TransportError, wire: WireRequest
) -> APIConnectionError | ClientClosedError:
    """The typed error for an attempt that got no response (after the retries it allowed)."""
    method, path = wire.method, wire.path
    if exc.closed:
        return ClientClosedError(
            f"{method} {path}: not sent, the client was closed", method=method, path=path
        )
    note = ""
    if exc.reached and not wire.retry_safe:
        note = " The request may have reached Telnyx, so it was not retried" + (
            "; pass options=RequestOptions(idempotency_key=...) to make it retryable."
            if wire.key_accepted  # only the sends take one
            else "."
        )
    elif exc.reached:  # retried as far as allowed: the last attempt may have taken effect
        note = " The request may have reached Telnyx (outcome unknown)."
    error_cls = APITimeoutError if exc.timeout else APIConnectionError
    return error_cls(
        f"{method} {path}: {exc}.{note}", method=method, path=path, outcome_unknown=exc.reached
    )


def reached_earlier(error: TelnyxError) -> TelnyxError:
    """``error`` ended a call an earlier attempt of which may have taken effect (a connection
    lost after sending, a 500): so may the call have, whatever the last attempt met (a refused
    connection, a 429, the limiter or the client failing). Says so on it, and returns it."""
    if (
        not isinstance(error, (APIConnectionError, APIStatusError, RateLimiterUnavailableError))
        or error.outcome_unknown
    ):
        return error
    error.outcome_unknown = True
    if isinstance(error, APIStatusError):
        error.args = (error._describe(),)
    else:
        note = "an earlier attempt may have reached Telnyx (outcome unknown)"
        error.args = (f"{str(error).rstrip('.')}; {note}",)
    return error


def failure(response: HttpResponse | None, error: Exception) -> Failure:
    """What the retry policy (``_retry.next_delay``) needs to know of a failed attempt."""
    if response is None:
        cause = error.__cause__
        if isinstance(error, ClientClosedError) or getattr(cause, "final", False):
            return Failure(None, final=True)
        return Failure(None, reached=getattr(error, "outcome_unknown", True))
    if not isinstance(error, APIStatusError):  # a 2xx that could not be read
        return Failure(response.status, final=True)
    return Failure(
        response.status,
        code=error.code,
        hint=error.retry_after,
        should_retry=response.headers.get("x-should-retry"),
    )
