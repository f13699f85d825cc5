"""Endpoint specs as data, and the one rule that maps request fields onto HTTP.

The rule (documented once, here): a field named in the path template fills the path; every
other field that is not ``None`` goes to the query string for GET and DELETE, and to the JSON body
otherwise. A field defaulting to ``NOT_GIVEN`` is the exception: left out it is not sent, and
``None`` is sent as ``null``. Query values are encoded the way Telnyx expects (docs/wire.md
§1.4): nested mappings become bracket keys (``filter[from]=…``), lists are comma-joined,
booleans are ``true`` or ``false``, and date-times are ISO 8601.
"""

from __future__ import annotations

import enum
import inspect
import re
import types
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Generic, Literal, NamedTuple, ParamSpec, TypeVar
from urllib.parse import quote

import attrs
from attrs import frozen

from telnyx_msg._validate import NOT_GIVEN, PLUS_SHORT_CODE_RE, SHORT_CODE_RE, wire_name
from telnyx_msg.errors import ValidationError

P = ParamSpec("P")
R = TypeVar("R")

Envelope = Literal["data", "bare", "none"]
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE"})


@frozen
class Lane:
    """How a send is rate limited: its message type and the body fields naming its sender.

    ``message_type`` is ``"SMS"``, ``"MMS"``, or None for "MMS when ``media_urls`` is set or
    ``type`` says MMS, else SMS". The sender lane is the first non-empty of ``sender_fields``
    (the ``from`` number, or the messaging profile of a number-pool send).
    """

    message_type: Literal["SMS", "MMS"] | None = None
    sender_fields: tuple[str, ...] = ("from", "messaging_profile_id")
    #: The endpoint sends from a short code: a ``from`` written ``"+55501"`` is that short
    #: code's lane (``"55501"``), not an E.164 long code's. Other sends take that lane for a
    #: ``from`` of "+" and 3 to 6 digits, too short for any phone number.
    short_code: bool = False

    def of(self, body: Mapping[str, Any]) -> tuple[str, str | None]:
        """``(message_type, sender)`` of a send's JSON body."""
        sender = None
        for name in self.sender_fields:
            sender = body.get(name)
            if sender:
                if not isinstance(sender, str):  # (client.request's json=, extra_body)
                    kind = type(sender).__name__
                    raise ValidationError(name, f"must be a string, got {kind}")
                if sender[:1] == "+" and (
                    SHORT_CODE_RE.fullmatch(sender[1:])
                    if self.short_code
                    else PLUS_SHORT_CODE_RE.fullmatch(sender)
                ):
                    sender = sender[1:]
                break
        message_type = self.message_type or (
            "MMS" if body.get("media_urls") or body.get("type") == "MMS" else "SMS"
        )
        return message_type, sender


class FieldPlan(NamedTuple):
    """Where one request field goes."""

    name: str
    wire: str
    location: Literal["path", "query", "body"]
    #: ``None`` is sent as ``null`` (the field defaults to ``NOT_GIVEN``, which is not sent).
    nullable: bool = False


@frozen(eq=False)  # a spec is one operation: compared and hashed by identity
class Endpoint(Generic[P, R]):
    """One API operation: HTTP method, path template, request model and response handling.

    ``envelope`` says where the result is: ``"data"`` (``{"data": …}``), ``"bare"`` (the body
    itself) or ``"none"`` (no result, e.g. the ``"OK"`` string of a delete). ``send`` marks a
    message send, rate limited as its ``lane`` says (default :class:`Lane`: by media, per
    ``from``). ``idempotent`` says a retry after an ambiguous failure cannot duplicate anything
    (default: by HTTP method).
    ``json_body`` says the operation takes a JSON request body (default: POST, PUT and PATCH);
    such a body is sent even when no field is set (``{}``), because the OpenAPI definition marks
    these request bodies ``required: true``. ``doc`` is the method's docstring (what it does,
    in a line or two).
    """

    method: str
    path: str
    request: Callable[P, Any]
    response: Any
    doc: str = attrs.field(default="", kw_only=True, eq=False, repr=False)
    envelope: Envelope = "data"
    many: bool = False
    paged: bool = False
    send: bool = False
    accepts_idempotency_key: bool = False
    lane: Lane | None = attrs.field()
    idempotent: bool = attrs.field()
    json_body: bool = attrs.field()
    fields: tuple[FieldPlan, ...] = attrs.field(init=False)
    #: Request fields without a default; attrs accepts None for them, the API does not.
    required: tuple[FieldPlan, ...] = attrs.field(init=False, repr=False)

    @lane.default
    def _lane_of_sends(self) -> Lane | None:
        return Lane() if self.send else None

    @idempotent.default
    def _idempotent_by_method(self) -> bool:
        return self.method in IDEMPOTENT_METHODS

    @json_body.default
    def _json_body_by_method(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH")

    @fields.default
    def _plan(self) -> tuple[FieldPlan, ...]:
        in_path = set(re.findall(r"\{(\w+)\}", self.path))
        in_query = self.method in ("GET", "DELETE")
        plans = []
        assert isinstance(self.request, type)
        assert attrs.has(self.request)
        for field in attrs.fields(self.request):
            if field.name == "options":
                continue
            if field.name in in_path:
                location: Literal["path", "query", "body"] = "path"
            else:
                location = "query" if in_query else "body"
            nullable = field.default is NOT_GIVEN
            assert not nullable or location == "body", f"{self.path}: null only in a body"
            plans.append(FieldPlan(field.name, wire_name(field), location, nullable))
        missing = in_path - {p.name for p in plans}
        assert not missing, f"{self.path}: no request field for {missing}"
        assert self.json_body or in_query or all(p.location == "path" for p in plans), (
            f"{self.path}: body fields on an operation without a JSON body"
        )
        return tuple(plans)

    @required.default
    def _required(self) -> tuple[FieldPlan, ...]:
        assert isinstance(self.request, type)
        names = {f.name for f in attrs.fields(self.request) if f.default is attrs.NOTHING}
        return tuple(plan for plan in self.fields if plan.name in names)

    def build(self, request: Any) -> tuple[str, str, dict[str, Any] | None]:
        """``(path, query_string, body)`` for a validated request model (the module's rule)."""
        path = self.path
        pairs: list[tuple[str, str]] = []
        body: dict[str, Any] | None = {} if self.json_body else None
        for plan in self.fields:
            value = getattr(request, plan.name)
            if value is None or value is NOT_GIVEN:
                if value is None and plan.nullable:
                    body[plan.wire] = None  # type: ignore[index]
                continue
            if plan.location == "body":
                body[plan.wire] = value if type(value) is str else json_value(value)  # type: ignore[index]
            elif plan.location == "path":
                path = path.replace("{" + plan.name + "}", quote(value, safe=""))
            else:
                encode_query(plan.wire, value, pairs)
        return path, query_string(pairs) if pairs else "", body


def json_value(value: Any) -> Any:
    if isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: json_value(x) for k, x in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(x) for x in value]
    return value


def query_string(pairs: list[tuple[str, str]]) -> str:
    """``k=v&...`` from encoded pairs, each part percent-encoded."""
    return "&".join(quote(k, safe="") + "=" + quote(v, safe="") for k, v in pairs)


def encode_query(key: str, value: Any, out: list[tuple[str, str]]) -> None:
    if value is None:
        return
    if isinstance(value, Mapping):
        for sub, item in value.items():
            encode_query(f"{key}[{sub}]", item, out)
    elif isinstance(value, bool):
        out.append((key, "true" if value else "false"))
    elif isinstance(value, datetime):
        out.append((key, value.isoformat()))
    elif isinstance(value, enum.Enum):
        out.append((key, str(value.value)))
    elif isinstance(value, (list, tuple)):
        out.append((key, ",".join(str(x) for x in value)))
    else:
        out.append((key, str(value)))


def endpoint(
    method: str,
    path: str,
    request: Callable[P, Any],
    response: type[R],
    *,
    doc: str,
    envelope: Envelope = "data",
    send: bool = False,
    accepts_idempotency_key: bool = False,
    lane: Lane | None = None,
    idempotent: bool | None = None,
    json_body: bool | None = None,
) -> Endpoint[P, R]:
    """An operation returning one ``response`` model."""
    extra: dict[str, Any] = {} if idempotent is None else {"idempotent": idempotent}
    if lane is not None:
        extra["lane"] = lane
    if json_body is not None:
        extra["json_body"] = json_body
    return Endpoint(
        method,
        path,
        request,
        response,
        doc=doc,
        envelope=envelope,
        send=send,
        accepts_idempotency_key=accepts_idempotency_key,
        **extra,
    )


def list_endpoint(
    method: str, path: str, request: Callable[P, Any], item: type[R], *, doc: str
) -> Endpoint[P, list[R]]:
    """An operation returning ``{"data": [item, …]}`` in one response (not paged)."""
    return Endpoint(method, path, request, item, doc=doc, many=True)


def none_endpoint(
    method: str, path: str, request: Callable[P, Any], *, doc: str
) -> Endpoint[P, None]:
    """An operation whose response body carries nothing to return."""
    return Endpoint(method, path, request, type(None), doc=doc, envelope="none")


@frozen(eq=False)
class PagedEndpoint(Endpoint[P, R]):
    """A page-number paginated list (``page[number]``/``page[size]``, ``meta``); R is the item."""


def paged_endpoint(
    path: str, request: Callable[P, Any], item: type[R], *, doc: str
) -> PagedEndpoint[P, R]:
    """A ``GET`` list paginated by page number (``page[number]``, ``page[size]``, ``meta``)."""
    return PagedEndpoint("GET", path, request, item, doc=doc, many=True, paged=True)


def describe(
    method: Callable[..., Any], endpoint: Endpoint[Any, Any], name: str, pager: str
) -> None:
    """Give a bound method its name, docstring and real signature.

    The bound callables take ``*args, **kwargs`` (the request model validates them), so without
    ``__signature__`` ``help()``, IDEs and ``inspect.signature`` would show nothing useful.
    Required arguments come first and ``options`` last; ``pager`` names the page-iterator class
    a list method returns.
    """
    params = sorted(
        inspect.signature(endpoint.request).parameters.values(),
        key=lambda p: (p.kind, p.name == "options", p.default is not p.empty),
    )
    if endpoint.paged:
        returns: Any = f"{pager}[{endpoint.response.__name__}]"
    elif endpoint.envelope == "none":
        returns = None
    elif endpoint.many:
        returns = types.GenericAlias(list, (endpoint.response,))
    else:
        returns = endpoint.response
    method.__name__ = name.rsplit(".", 1)[-1]
    method.__qualname__ = name
    method.__doc__ = endpoint.doc or endpoint.request.__doc__
    method.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        params, return_annotation=returns
    )


def describe_raw(
    method: Callable[..., Any], endpoint: Endpoint[Any, Any], name: str, pager: str
) -> None:
    """:func:`describe` for a ``with_raw_response`` method: it returns ``RawResponse[...]``."""
    describe(method, endpoint, name, pager)
    returns = inspect.signature(method).return_annotation
    text = returns if isinstance(returns, str) else getattr(returns, "__name__", repr(returns))
    method.__signature__ = method.__signature__.replace(  # type: ignore[attr-defined]
        return_annotation=f"RawResponse[{text}]"
    )
