"""Endpoint specs as data, and the one rule that maps request fields onto HTTP.

The rule (documented once, here): a field named in the path template fills the path; every
other field that is not ``None`` goes to the query string for GET and DELETE, and to the JSON body
otherwise. Query values are encoded the way Telnyx expects (docs/wire.md §1.4): nested mappings
become bracket keys (``filter[from]=…``), lists are comma-joined, booleans are ``true`` or
``false``, and date-times are ISO 8601.
"""

from __future__ import annotations

import enum
import inspect
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Generic, Literal, ParamSpec, TypeVar
from urllib.parse import quote

import attrs
from attrs import frozen

from telnyx_msg._validate import wire_name

P = ParamSpec("P")
R = TypeVar("R")

Envelope = Literal["data", "bare", "none"]
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE"})


@frozen
class FieldPlan:
    """Where one request field goes."""

    name: str
    wire: str
    location: Literal["path", "query", "body"]


@frozen
class Endpoint(Generic[P, R]):
    """One API operation: HTTP method, path template, request model and response handling.

    ``envelope`` says where the result is: ``"data"`` (``{"data": …}``), ``"bare"`` (the body
    itself) or ``"none"`` (no result, e.g. the ``"OK"`` string of a delete). ``send`` marks a
    message send (rate limited per sender, accepts an Idempotency-Key). ``idempotent`` says a
    retry after an ambiguous failure cannot duplicate anything (default: by HTTP method).
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
    idempotent: bool = attrs.field()
    json_body: bool = attrs.field()
    fields: tuple[FieldPlan, ...] = attrs.field(init=False)
    #: Request fields without a default; attrs accepts None for them, the API does not.
    required: tuple[FieldPlan, ...] = attrs.field(init=False, repr=False)
    #: ``build(request) -> (path, query_string, body)`` for a validated request model.
    build: Callable[[Any], tuple[str, str, dict[str, Any] | None]] = attrs.field(
        init=False, repr=False, eq=False
    )

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
            plans.append(FieldPlan(field.name, wire_name(field), location))
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

    @build.default
    def _lazy_build(self) -> Callable[[Any], tuple[str, str, dict[str, Any] | None]]:
        # Compiled on first use, not at import: most programs call a handful of endpoints.
        def build_first(request: Any) -> tuple[str, str, dict[str, Any] | None]:
            compiled = self._compile_build()
            object.__setattr__(self, "build", compiled)  # later calls go straight to it
            return compiled(request)

        return build_first

    def _compile_build(self) -> Callable[[Any], tuple[str, str, dict[str, Any] | None]]:
        # The rule of the module docstring, unrolled per endpoint into straight-line code:
        # a loop over the field plans costs more than the rest of a send's request building.
        namespace: dict[str, Any] = {
            "__quote": quote,
            "__json": json_value,
            "__query": encode_query,
            "__template": self.path,
        }
        has_body = self.json_body
        has_query = any(plan.location == "query" for plan in self.fields)
        lines = [
            "def build(request):",
            "    path = __template",
            "    query = []" if has_query else "",
            f"    body = {'{}' if has_body else 'None'}",
        ]
        for plan in self.fields:
            lines.append(f"    value = request.{plan.name}")
            lines.append("    if value is not None:")
            if plan.location == "path":
                lines.append(
                    f"        path = path.replace({'{' + plan.name + '}'!r}, "
                    "__quote(value, safe=''))"
                )
            elif plan.location == "query":
                lines.append(f"        __query({plan.wire!r}, value, query)")
            else:
                lines.append(
                    f"        body[{plan.wire!r}] = value if type(value) is str else __json(value)"
                )
        if not has_query:
            lines += ["    return path, '', body", ""]
        else:
            lines += [
                "    if not query:",
                "        return path, '', body",
                "    return path, '&'.join(__quote(k, safe='') + '=' + __quote(v, safe='')"
                " for k, v in query), body",
                "",
            ]
        exec(
            compile("\n".join(lines), f"<telnyx_msg build {self.method} {self.path}>", "exec"),
            namespace,
        )
        build: Callable[[Any], tuple[str, str, dict[str, Any] | None]] = namespace["build"]
        return build


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
    idempotent: bool | None = None,
    json_body: bool | None = None,
) -> Endpoint[P, R]:
    """An operation returning one ``response`` model."""
    extra: dict[str, Any] = {} if idempotent is None else {"idempotent": idempotent}
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


@frozen
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
        returns = list[endpoint.response]  # type: ignore[name-defined]
    else:
        returns = endpoint.response
    method.__name__ = name.rsplit(".", 1)[-1]
    method.__qualname__ = name
    method.__doc__ = endpoint.doc or endpoint.request.__doc__
    method.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        params, return_annotation=returns
    )
