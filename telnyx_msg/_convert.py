"""The single cattrs converter: every wire rule for response models lives here.

Rules, applied to every attrs model in :mod:`telnyx_msg.models`:

- a trailing ``_`` is dropped on the wire (``from_`` <-> ``"from"``);
- JSON keys the model does not declare are kept on ``model.extra`` (never an error);
- ``Enum | str`` fields take the enum member when known, else keep the string;
- date-times accept ``T`` or a space, ``Z`` or an offset, any fraction digits, and become
  timezone-aware (naive values are UTC); money (``Decimal``) accepts strings and numbers;
- ``null`` for a list field gives an empty tuple; an inbound WhatsApp ``to`` string becomes one
  recipient (docs/wire.md §4.2).

Structure functions are generated once per class (cattrs' code generation) and cached.
"""

from __future__ import annotations

import enum
import linecache
import logging
import re
import types
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar, Union, get_args, get_origin

import attrs
import cattrs
from cattrs.gen import make_dict_unstructure_fn, override

from telnyx_msg import models
from telnyx_msg.errors import printable
from telnyx_msg.models import LinkClick, Message, WebhookEvent, WebhookMeta

__all__ = ["ResponseShapeError", "converter", "parse_datetime", "structure", "structure_event"]

T = TypeVar("T")
U = TypeVar("U")

logger = logging.getLogger("telnyx_msg.webhooks")

converter = cattrs.Converter(detailed_validation=False, forbid_extra_keys=False)


class ResponseShapeError(ValueError):
    """A response does not have the documented shape; ``path`` names the field.

    ``path`` reads like ``Message.to[0].phone_number``; the client turns this into its
    response-validation error with the status and request id.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


_ISO_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?"
    r"\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?"
)


def parse_datetime(value: Any) -> datetime:
    """Parse an ISO 8601 date-time as Telnyx sends it into an aware ``datetime`` (UTC if naive)."""
    if type(value) is str:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = _parse_datetime_slow(value.strip())
    elif isinstance(value, datetime):
        parsed = value
    else:
        text = str(value).strip()
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            parsed = _parse_datetime_slow(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


def _parse_datetime_slow(text: str) -> datetime:
    # Python 3.10's fromisoformat rejects "Z" and fractions that are not 3 or 6 digits.
    match = _ISO_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"not an ISO 8601 date-time: {text!r}")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    tz: timezone = timezone.utc
    if offset and offset not in ("Z", "z"):
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    return datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micro, tzinfo=tz
    )


def _decimal(value: Any) -> Decimal:
    try:
        amount = Decimal(value if type(value) is str else str(value))
    except InvalidOperation as exc:
        raise ValueError(f"not a decimal amount: {value!r}") from exc
    if not amount.is_finite():  # NaN and Infinity are no amount of money
        raise ValueError(f"not a decimal amount: {value!r}")
    return amount


def _structure_decimal(value: Any, _: type) -> Decimal:
    return _decimal(value)


converter.register_structure_hook(datetime, lambda v, _: parse_datetime(v))
converter.register_unstructure_hook(datetime, lambda v: v.isoformat())
converter.register_structure_hook(Decimal, _structure_decimal)
converter.register_unstructure_hook(Decimal, str)


def _is_mapping(tp: Any) -> bool:
    return get_origin(tp) is Mapping


converter.register_structure_hook_func(_is_mapping, lambda v, _: _mapping(v))  # checked


# --- open enums -------------------------------------------------------------------------------


def _open_enum(tp: Any) -> type[enum.Enum] | None:
    """The enum class of an ``Enum | str`` (optionally ``| None``) union, else None."""
    if get_origin(tp) not in (Union, types.UnionType):
        return None
    args = [a for a in get_args(tp) if a is not type(None)]
    if len(args) != 2 or str not in args:
        return None
    other = args[0] if args[1] is str else args[1]
    return other if isinstance(other, type) and issubclass(other, enum.Enum) else None


def _open_enum_hook(tp: Any) -> Callable[[Any, Any], Any]:
    enum_cls = _open_enum(tp)
    assert enum_cls is not None
    lookup: dict[Any, Any] = {member.value: member for member in enum_cls}

    def structure_open_enum(value: Any, _: Any) -> Any:
        if value is None:
            return None
        return lookup.get(value, value)

    return structure_open_enum


def _open_enum_unstructure(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


converter.register_structure_hook_factory(lambda t: _open_enum(t) is not None, _open_enum_hook)
converter.register_unstructure_hook_factory(
    lambda t: _open_enum(t) is not None, lambda _: _open_enum_unstructure
)
converter.register_unstructure_hook_factory(
    lambda t: isinstance(t, type) and issubclass(t, enum.Enum), lambda _: lambda v: v.value
)


# --- optional primitives: the hot path of every response -------------------------------------
# cattrs' generic Optional handling dispatches per value; these pass JSON values of the right
# type straight through and convert only what means the same thing: a number where a string is
# documented (its digits), an integral float or a numeric string where an int is, an int or a
# numeric string where a float is. Anything else is a wrongly shaped response, not a value:
# bool("false") is True, str({...}) a repr, tuple("US") two letters, int(1.9) one.

_PRIMITIVES: dict[Any, type] = {
    str | None: str,
    int | None: int,
    float | None: float,
    bool | None: bool,
}


def _to_str(value: Any) -> str:
    if type(value) in (int, float):
        return str(value)
    raise TypeError("expected a string")


def _to_int(value: Any) -> int:
    if type(value) is float and value.is_integer():
        return int(value)
    if type(value) is str:
        return int(value)  # ValueError for anything but digits
    raise TypeError("expected an integer")


def _to_float(value: Any) -> float:
    if type(value) in (int, str):
        return float(value)  # ValueError for a string that is not a number
    raise TypeError("expected a number")


def _to_bool(value: Any) -> bool:
    raise TypeError("expected true or false")


#: The conversion of a JSON value whose type is not the field's (the exact type is passed
#: through before these are called).
CONVERT: dict[type, Callable[[Any], Any]] = {
    str: _to_str,
    int: _to_int,
    float: _to_float,
    bool: _to_bool,
}


def _strings(value: Any) -> tuple[str, ...]:
    """A JSON list of strings as a tuple (a number item as its digits)."""
    if type(value) is not list and not isinstance(value, (list, tuple)):
        raise TypeError("expected a list of strings")
    return tuple([x if type(x) is str else _to_str(x) for x in value])


def _list(value: Any) -> Any:
    """A JSON list (a tuple too); an object or a string is a wrongly shaped response, not a
    list of its keys or characters."""
    if type(value) is list or isinstance(value, (list, tuple)):
        return value
    raise TypeError(f"expected a list, got {type(value).__name__}")


def _mapping(value: Any) -> Any:
    if type(value) is dict or isinstance(value, Mapping):
        return value
    raise TypeError("expected a JSON object")


def _optional_primitive_hook(tp: Any) -> Callable[[Any, Any], Any]:
    target = _PRIMITIVES[tp]
    convert = CONVERT[target]

    def structure_primitive(value: Any, _: Any) -> Any:
        return value if value is None or type(value) is target else convert(value)

    return structure_primitive


def _primitive_hook(target: type) -> Callable[[Any, Any], Any]:
    convert = CONVERT[target]

    def structure_primitive(value: Any, _: Any) -> Any:
        return value if type(value) is target else convert(value)

    return structure_primitive


converter.register_structure_hook_factory(lambda t: t in _PRIMITIVES, _optional_primitive_hook)
for _target in CONVERT:
    converter.register_structure_hook(_target, _primitive_hook(_target))


def _is_optional(tp: Any) -> bool:
    if get_origin(tp) not in (Union, types.UnionType) or tp in _PRIMITIVES:
        return False
    args = get_args(tp)
    return len(args) == 2 and type(None) in args and _open_enum(tp) is None


def _optional_hook(tp: Any) -> Callable[[Any, Any], Any]:
    inner_type = next(a for a in get_args(tp) if a is not type(None))
    inner = converter.get_structure_hook(inner_type)

    def structure_optional(value: Any, _: Any) -> Any:
        return None if value is None else inner(value, inner_type)

    return structure_optional


converter.register_structure_hook_factory(_is_optional, _optional_hook)


# --- lists: null -> () ------------------------------------------------------------------------


def _is_tuple(tp: Any) -> bool:
    return get_origin(tp) is tuple


def _tuple_hook(tp: Any) -> Callable[[Any, Any], Any]:
    item_type = get_args(tp)[0]
    if item_type is str:
        return lambda v, _: () if v is None else _strings(v)
    item = converter.get_structure_hook(item_type)
    if item_type is models.Recipient:
        return _recipients_hook(item)

    def structure_tuple(value: Any, _: Any) -> tuple[Any, ...]:
        if value is None:
            return ()
        return tuple([item(x, item_type) for x in _list(value)])

    return structure_tuple


def _recipients_hook(item: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def structure_recipients(value: Any, _: Any) -> tuple[models.Recipient, ...]:
        if value is None:
            return ()
        if isinstance(value, str):  # inbound WhatsApp: "to" is a plain string (docs/wire.md §4.2)
            return (models.Recipient(phone_number=value),)
        if type(value) is list and len(value) == 1:  # the usual single recipient
            return (item(value[0], models.Recipient),)
        return tuple([item(x, models.Recipient) for x in _list(value)])

    return structure_recipients


converter.register_structure_hook_factory(_is_tuple, _tuple_hook)


# --- attrs models: renames + extra ------------------------------------------------------------


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, models._Model) and attrs.has(tp)


def _wire_name(name: str) -> str:
    return name[:-1] if name.endswith("_") else name


def _check_plain(cls: type[Any]) -> None:
    """Assert that instances may be built by setting slots directly, skipping ``__init__``.

    Response models are slotted, without validators, converters or init hooks, so ``__init__``
    would only assign the values the generated code already computed.
    """
    slots = {s for klass in cls.__mro__ for s in getattr(klass, "__slots__", ())}
    fields = attrs.fields(cls)
    name = cls.__name__
    assert "__slots__" in cls.__dict__, f"{name}: response models must be slotted"
    assert slots - {"__weakref__"} == {f.name for f in fields}, f"{name}: unexpected slots"
    assert not any(hasattr(cls, h) for h in ("__attrs_pre_init__", "__attrs_post_init__")), (
        f"{name}: response models take no init hooks"
    )
    assert all(f.validator is None and f.converter is None and f.init for f in fields), (
        f"{name}: response models take no validators or converters"
    )


#: Models whose values repeat across messages (the sending number, the price of a segment):
#: parsing returns one shared instance per distinct value instead of a new one per response.
#: They are frozen, so sharing is invisible, and it saves both the parsing and the allocations
#: the garbage collector would otherwise trace. Only objects without unknown keys whose wire
#: values are all strings are shared (so equal keys always mean equal results); each cache
#: holds at most _INTERN_SIZE entries and starts over when full.
_INTERNED = (models.Cost, models.CostBreakdown, models.Sender)
_INTERN_SIZE = 512


def _model_structure_hook(cls: type[T]) -> Callable[[Any, Any], T]:
    # Generated once per class, like cattrs' own, but with optional primitives, enums,
    # date-times, money and empty lists inlined, and the slots set directly instead of through
    # attrs' __init__: parsing responses is the SDK's main per-request cost,
    # and this halves it.
    attrs.resolve_types(cls)  # type: ignore[type-var]  # only called for attrs classes
    fields = [f for f in attrs.fields(cls) if f.name != "extra"]  # type: ignore[arg-type]
    name = cls.__name__
    _check_plain(cls)
    namespace: dict[str, Any] = {
        "__cl": cls,
        "__known": frozenset(_wire_name(f.name) for f in fields),
        "__mapping": Mapping,
        "__proxy": types.MappingProxyType,
        "__new": object.__new__,
        "__noextra": models.NO_EXTRA,
        "__dt": parse_datetime,
        "__dec": _decimal,
        "__need": _need(name),
        "__strs": _strings,
        "__map": _mapping,
    }
    values = []
    for i, field in enumerate(fields):
        # A missing key is passed as None, which every hook maps to these defaults; a field
        # without a default is one Telnyx always returns, so its absence is an error.
        required = field.default is attrs.NOTHING
        assert required or field.default in (None, ()), (
            f"{name}.{field.name}: default must be None/() or none"
        )
        key = _wire_name(field.name)
        primitive = _PRIMITIVES.get(field.type) or (
            field.type if field.type in (str, int, float, bool) else None
        )
        enum_cls = _open_enum(field.type)
        if primitive is not None:
            namespace[f"t{i}"] = primitive
            namespace[f"c{i}"] = CONVERT[primitive]
            value = f"(v if (v := g({key!r})) is None or type(v) is t{i} else c{i}(v))"
        elif enum_cls is not None:  # known value -> member, unknown string kept as is
            namespace[f"e{i}"] = {member.value: member for member in enum_cls}
            value = f"(None if (v := g({key!r})) is None else e{i}.get(v, v))"
        elif field.type == datetime | None:
            value = f"(None if (v := g({key!r})) is None else __dt(v))"
        elif field.type == Decimal | None:
            value = f"(None if (v := g({key!r})) is None else __dec(v))"
        elif field.type == Mapping[str, Any] | None:
            value = f"(v if (v := g({key!r})) is None or type(v) is dict else __map(v))"
        elif field.type == tuple[str, ...]:
            value = f"(() if (v := g({key!r})) is None else __strs(v))"
        elif _is_optional(field.type):
            inner = next(a for a in get_args(field.type) if a is not type(None))
            namespace[f"h{i}"] = converter.get_structure_hook(inner)
            namespace[f"y{i}"] = inner
            value = f"(None if (v := g({key!r})) is None else h{i}(v, y{i}))"
        elif _is_tuple(field.type):  # the common empty list costs no call
            namespace[f"h{i}"] = converter.get_structure_hook(field.type)
            namespace[f"y{i}"] = field.type
            value = f"(() if (v := g({key!r})) is None or v == [] else h{i}(v, y{i}))"
        else:
            namespace[f"h{i}"] = converter.get_structure_hook(field.type)
            namespace[f"y{i}"] = field.type
            value = f"h{i}(g({key!r}), y{i})"
        if required:
            value = value.replace(f"g({key!r})", f"__need(d, {key!r})")
        values.append((field.name, value))
    lines = [
        f"def structure_{name}(d, _=None):",
        "    if type(d) is not dict and not isinstance(d, __mapping):",
        f"        raise TypeError('expected a JSON object for {name}, got ' + type(d).__name__)",
        "    g = d.get",
    ]
    extra = (
        "__noextra if __known.issuperset(d) else "
        "__proxy({k: v for k, v in d.items() if k not in __known})"
    )
    interned = cls in _INTERNED
    if interned:
        values, parts = _intern_prologue(cls, fields, values, namespace, lines)
    # Slot descriptors' __set__ is how attrs' own __init__ stores a frozen value, minus the
    # per-call setattr lookup.
    for field_name in [*(f for f, _ in values), "extra"]:
        namespace[f"s_{field_name}"] = getattr(cls, field_name).__set__
    lines.append("    o = __new(__cl)")
    lines += [f"    s_{field_name}(o, {value})" for field_name, value in values]
    lines.append(f"    s_extra(o, {extra})")
    if interned:
        lines += [
            "    if key is not None:",
            f"        if len(__cache) >= {_INTERN_SIZE}:",
            "            __cache.clear()",
            # The entry keeps the children alive, so the ids in its key stay theirs.
            f"        __cache[key] = (o, {parts})",
        ]
    lines += ["    return o"]
    named = [(f.name, _wire_name(f.name), f.type) for f in fields]
    namespace["__blame"] = lambda data, exc: _blame(name, named, data, exc)
    # Zero-cost unless it fails: then find the field to blame, for an error that names it.
    lines = [
        lines[0],
        "    try:",
        *("    " + line for line in lines[1:]),
        "    except (TypeError, ValueError, KeyError, AttributeError, ArithmeticError) as exc:",
        "        raise __blame(d, exc) from exc",
        "",
    ]
    filename = f"<telnyx_msg structure {name}>"
    source = "\n".join(lines)
    # Registered with linecache, so a traceback through generated code shows its lines.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), namespace)
    structure_model: Callable[[Any, Any], T] = namespace[f"structure_{name}"]
    return structure_model


def _need(model: str) -> Callable[[Any, str], Any]:
    def need(data: Any, key: str) -> Any:
        value = data.get(key)
        if value is None:
            raise ResponseShapeError(f"{model}.{key}", "missing (Telnyx always sends it)")
        return value

    return need


def _blame(
    model: str, fields: list[tuple[str, str, Any]], data: Any, exc: BaseException
) -> ResponseShapeError:
    """The error naming the field of ``data`` that failed, prefixed with this model."""
    if isinstance(exc, ResponseShapeError) and exc.path.startswith(f"{model}."):
        return exc
    if not isinstance(data, Mapping):
        return ResponseShapeError(model, str(exc))
    for _name, key, tp in fields:
        value = data.get(key)
        if value is None:
            continue
        try:
            converter.get_structure_hook(tp)(value, tp)
        except ResponseShapeError as inner:
            return ResponseShapeError(
                f"{model}.{key}.{inner.path.split('.', 1)[-1]}"
                if "." in inner.path
                else f"{model}.{key}",
                inner.reason,
            )
        except (TypeError, ValueError, KeyError, AttributeError, ArithmeticError) as inner:
            return ResponseShapeError(f"{model}.{key}", f"{value!r}: {inner}")
    return ResponseShapeError(model, str(exc))


def _intern_prologue(
    cls: type[Any],
    fields: list[Any],
    values: list[tuple[str, str]],
    namespace: dict[str, Any],
    lines: list[str],
) -> tuple[list[tuple[str, str]], str]:
    """Emit the cache lookup of an interned model; return its field values and kept children.

    The key is the raw string (or None) of each scalar field and the identity of each nested
    interned model, which the cache entry keeps alive.
    """
    namespace["__cache"] = {}
    checks, key, children, rewritten = [], [], [], []
    for i, (field, (field_name, value)) in enumerate(zip(fields, values, strict=True)):
        wire = f"g({_wire_name(field.name)!r})"
        if _is_model(get_args(field.type)[0] if _is_optional(field.type) else field.type):
            lines.append(f"    c{i} = {value}")
            key.append(f"id(c{i})")
            children.append(f"c{i}")
            rewritten.append((field_name, f"c{i}"))
        else:
            assert field.type in (str | None, Decimal | None) or _open_enum(field.type), (
                f"{cls.__name__}.{field.name}: only string-valued fields can be interned"
            )
            lines.append(f"    r{i} = {wire}")
            checks.append(f"(type(r{i}) is str or r{i} is None)")
            key.append(f"r{i}")
            rewritten.append((field_name, value.replace(wire, f"r{i}")))
    lines += [
        f"    if {' and '.join([*checks, '__known.issuperset(d)'])}:",
        f"        key = ({', '.join(key)},)",
        "        hit = __cache.get(key)",
        "        if hit is not None:",
        "            return hit[0]",
        "    else:",
        "        key = None",
    ]
    return rewritten, ", ".join(children)


def _model_unstructure_hook(cls: type[Any]) -> Callable[[Any], dict[str, Any]]:
    overrides: dict[str, Any] = {"extra": override(omit=True)}
    for field in attrs.fields(cls):
        if field.name.endswith("_"):
            overrides[field.name] = override(rename=_wire_name(field.name))
    base = make_dict_unstructure_fn(cls, converter, **overrides)

    def unstructure_model(obj: Any) -> dict[str, Any]:
        raw = base(obj)
        out = {k: v for k, v in raw.items() if v is not None}
        if obj.extra:
            out.update(obj.extra)
        return out

    return unstructure_model


converter.register_structure_hook_factory(_is_model, _model_structure_hook)
converter.register_unstructure_hook_factory(_is_model, _model_unstructure_hook)


def _metrics_hook(cls: type[T]) -> Callable[[Any, Any], T]:
    base = _model_structure_hook(cls)

    def structure_metrics(data: Any, _: Any) -> T:
        # Legacy name of the outbound error ratio (docs/wire.md §8.1).
        if isinstance(data, Mapping) and "errors" not in data:
            for legacy in ("error_ratio", "outbound_error_ratio"):
                if legacy in data:
                    data = {**data, "errors": data[legacy]}
                    break
        return base(data, cls)

    return structure_metrics


for _metrics_cls in (models.OutboundMetrics, models.MessageTypeMetrics):
    converter.register_structure_hook(_metrics_cls, _metrics_hook(_metrics_cls))


def structure(data: Any, cls: type[T]) -> T:
    """Structure decoded JSON into ``cls`` with the package converter."""
    return converter.structure(data, cls)


# --- webhook events (docs/wire.md §10.4) ----------------------------------------------------------

_event_types: dict[str, models.WebhookEventType] = {e.value: e for e in models.WebhookEventType}
_structure_message = converter.get_structure_hook(Message)
_structure_link_click = converter.get_structure_hook(LinkClick)
_structure_meta = converter.get_structure_hook(WebhookMeta)


def structure_event(document: Mapping[str, Any]) -> WebhookEvent:
    """Turn a decoded webhook document into a typed :class:`WebhookEvent`.

    Raises ``TypeError``/``ValueError`` (wrapped by the verifier) when the shape is not an event.
    """
    data = document.get("data")
    if not isinstance(data, Mapping):
        raise TypeError('webhook document has no "data" object')
    meta_raw = document.get("meta")
    meta = (
        _leniently(lambda: _structure_meta(meta_raw, WebhookMeta), None, "meta", data)
        if isinstance(meta_raw, Mapping)
        else None
    )
    if data.get("record_type") == "link_clicked" and "payload" not in data:
        click = _leniently(lambda: _structure_link_click(data, LinkClick), data, "click", data)
        return WebhookEvent(
            event_type=models.WebhookEventType.MESSAGE_LINK_CLICK,
            id=data.get("id") if isinstance(data.get("id"), str) else None,
            occurred_at=click.time_clicked if isinstance(click, LinkClick) else None,
            payload=click,
            record_type="link_clicked",
            meta=meta,
            raw=document,
        )
    raw_type = data.get("event_type")
    event_type: models.WebhookEventType | str | None = (
        _event_types.get(raw_type, raw_type) if isinstance(raw_type, str) else None
    )
    payload_raw = data.get("payload")
    payload: Message | LinkClick | Mapping[str, Any] | None
    if event_type in (
        models.WebhookEventType.MESSAGE_SENT,
        models.WebhookEventType.MESSAGE_FINALIZED,
        models.WebhookEventType.MESSAGE_RECEIVED,
    ):
        if isinstance(payload_raw, Mapping):
            raw_payload = payload_raw
            payload = _leniently(
                lambda: _structure_message(raw_payload, Message), raw_payload, "payload", data
            )
        else:
            payload = _structure_message(payload_raw, Message)  # raises: no payload at all
    elif isinstance(payload_raw, Mapping):
        payload = payload_raw
    else:
        payload = None
    occurred = data.get("occurred_at")
    event_id = data.get("id")
    record_type = data.get("record_type")
    extra = {key: value for key, value in data.items() if key not in _EVENT_KEYS}
    return WebhookEvent(
        event_type=event_type,
        id=event_id if isinstance(event_id, str) else None,
        occurred_at=(
            None
            if occurred is None
            else _leniently(lambda: parse_datetime(occurred), None, "occurred_at", data)
        ),
        payload=payload,
        record_type=record_type if isinstance(record_type, str) else None,
        meta=meta,
        raw=document,
        extra=types.MappingProxyType(extra) if extra else models.NO_EXTRA,
    )


def _leniently(read: Callable[[], T], fallback: U, what: str, data: Mapping[str, Any]) -> T | U:
    """``read()``, or ``fallback`` (logged) when a part of a webhook event is not what this SDK
    reads: Telnyx's schema requires none of an event's fields, and a correctly signed event
    refused 400 is dropped by Telnyx after its retries. The handler gets the event, with the
    raw mapping or None for that part (``event.raw`` has it all)."""
    try:
        return read()
    except (TypeError, ValueError, LookupError, AttributeError, ArithmeticError) as exc:
        logger.warning(
            "telnyx webhook event %s (%s): its %s is not what this SDK reads (%s); the handler "
            "gets %s",
            printable(data.get("id")),
            printable(data.get("event_type") or data.get("record_type")),
            what,
            exc,
            "the raw mapping" if fallback is not None else "None",
        )
        return fallback


# The keys of a webhook's ``data`` that WebhookEvent models; any other is kept on ``extra``.
_EVENT_KEYS = frozenset({"record_type", "id", "event_type", "occurred_at", "payload"})
