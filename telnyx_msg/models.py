"""Typed response models of the Telnyx Messaging API.

Frozen attrs classes. Field names are the JSON names (``from_`` for ``from``). A field Telnyx
always sends (a message's ``id``, a recipient's ``phone_number``, a resource's ``id``, ...) has
no default and no ``None`` in its type: a response without it raises an error naming the field.
Every field the API may omit defaults to ``None`` (or an empty tuple for lists). Date-times are
timezone-aware,
money is :class:`~decimal.Decimal`, and enum-like fields hold a ``str`` enum member when the
value is known and the plain string otherwise, so a value Telnyx adds later never breaks
parsing. JSON keys the model does not know are kept on ``model.extra``; ``model.to_dict()``
gives the JSON shape back. Models compare by value and are not hashable (``extra`` is a
mapping); key dicts by ``model.id`` instead.

Sources: Telnyx's messaging API reference and its OpenAPI definition (vendored in
``tests/openapi/``, which the conformance tests check these models against).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Generic, TypeVar

import attrs
from attrs import frozen

__all__ = [
    "AlphanumericSenderId",
    "AutorespConfig",
    "AutorespOp",
    "Cost",
    "CostBreakdown",
    "DetailedMetric",
    "Direction",
    "ErrorSource",
    "HostedNumber",
    "HostedNumberFeatures",
    "HostedNumberOrder",
    "HostedOrderNumber",
    "InboundMetrics",
    "LineType",
    "LinkClick",
    "Media",
    "Message",
    "MessageError",
    "MessageStatus",
    "MessageType",
    "MessageTypeMetrics",
    "MessagingFeatureSet",
    "MessagingNumbersBulkUpdate",
    "MessagingProfile",
    "MetricsTimeFrame",
    "NumberHealth",
    "NumberPoolSettings",
    "OptOut",
    "OutboundMetrics",
    "Page",
    "PageMeta",
    "ProfileMetrics",
    "ProfileMetricsOverview",
    "ProfileMetricsSummary",
    "Recipient",
    "Sender",
    "ShortCode",
    "UrlShortenerSettings",
    "WebhookEvent",
    "WebhookEventType",
    "WebhookMeta",
    "WhatsAppMessage",
]

#: Shared, read-only default for ``extra`` (no per-object allocation).
NO_EXTRA: Mapping[str, Any] = MappingProxyType({})

T = TypeVar("T")


def _names(cls: type[Any], which: str) -> tuple[str, ...]:
    names = _NAMES.get((cls, which))
    if names is None:
        fields = attrs.fields(cls)
        names = _NAMES[cls, which] = tuple(f.name for f in fields if getattr(f, which))
    return names


_NAMES: dict[tuple[type[Any], str], tuple[str, ...]] = {}


def _fields_repr(self: Any) -> str:
    """attrs' repr (``Name(field=value, ...)``), written once for every model and request.

    The classes are declared ``repr=False`` (and models ``eq=False``): attrs compiles these
    methods per class, about a third of the package's import time.
    """
    cls = type(self)
    shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in _names(cls, "repr"))
    return f"{cls.__qualname__}({shown})"


class _Model:
    """Mixin: value equality, attrs' repr, and ``to_dict()`` through the package's single
    converter. Not hashable (``extra`` is a mapping)."""

    __slots__ = ()
    __repr__ = _fields_repr

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        names = _names(type(self), "eq")
        # Lists compare as attrs' tuples do: an identical value is equal without __eq__.
        return [getattr(self, n) for n in names] == [getattr(other, n) for n in names]

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        # pickle and copy.deepcopy: ``extra`` is a read-only mappingproxy, which pickle
        # cannot take; it travels as a dict and is wrapped again.
        cls = type(self)
        values = {name: getattr(self, name) for name in _names(cls, "init")}
        values["extra"] = dict(values["extra"])
        return (_rebuild, (cls, values))

    def to_dict(self) -> dict[str, Any]:
        """The JSON-shaped dict of this model (wire names, ISO date-times, ``extra`` merged);
        fields that are None (absent or null in the response) are left out."""
        from telnyx_msg._convert import converter

        result: dict[str, Any] = converter.unstructure(self)
        return result


def _rebuild(cls: type[Any], values: dict[str, Any]) -> Any:
    """A pickled model back (see ``_Model.__reduce__``)."""
    extra = values.pop("extra")
    return cls(**values, extra=MappingProxyType(extra) if extra else NO_EXTRA)


def _extra() -> Any:
    return attrs.field(default=NO_EXTRA, kw_only=True, repr=False)


# --- open enums: members for the documented values; unknown values stay plain strings ---------


class MessageStatus(str, enum.Enum):
    """Recipient status (union of the values in docs/wire.md §4.1, §4.2 and §3.11)."""

    SCHEDULED = "scheduled"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    SENDING_FAILED = "sending_failed"
    DELIVERY_UNCONFIRMED = "delivery_unconfirmed"
    DELIVERED = "delivered"
    DELIVERY_FAILED = "delivery_failed"
    READ = "read"
    WEBHOOK_DELIVERED = "webhook_delivered"
    RECEIVED = "received"

    def __str__(self) -> str:
        return self.value


class MessageType(str, enum.Enum):
    """Message protocol."""

    SMS = "SMS"
    MMS = "MMS"
    RCS = "RCS"
    WHATSAPP = "WHATSAPP"

    def __str__(self) -> str:
        return self.value


class Direction(str, enum.Enum):
    """Message direction."""

    OUTBOUND = "outbound"
    INBOUND = "inbound"

    def __str__(self) -> str:
        return self.value


class LineType(str, enum.Enum):
    """Carrier line type; the empty string is a documented value (docs/wire.md §4.1)."""

    WIRELINE = "Wireline"
    WIRELESS = "Wireless"
    VOWIFI = "VoWiFi"
    VOIP = "VoIP"
    PRE_PAID_WIRELESS = "Pre-Paid Wireless"
    LONG_CODE = "long_code"
    EMPTY = ""

    def __str__(self) -> str:
        return self.value


class AutorespOp(str, enum.Enum):
    """Auto-response operation."""

    START = "start"
    STOP = "stop"
    INFO = "info"

    def __str__(self) -> str:
        return self.value


class MetricsTimeFrame(str, enum.Enum):
    """``time_frame`` of the metrics endpoints (docs/wire.md §8)."""

    H1 = "1h"
    H3 = "3h"
    H24 = "24h"
    D3 = "3d"
    D7 = "7d"
    D30 = "30d"

    def __str__(self) -> str:
        return self.value


class WebhookEventType(str, enum.Enum):
    """Messaging webhook event types (docs/wire.md §10.1)."""

    MESSAGE_SENT = "message.sent"
    MESSAGE_FINALIZED = "message.finalized"
    MESSAGE_RECEIVED = "message.received"
    MESSAGE_LINK_CLICK = "message.link_click"

    def __str__(self) -> str:
        return self.value


# --- messages (docs/wire.md §4) -------------------------------------------------------------------


@frozen(repr=False, eq=False)
class Sender(_Model):
    """The ``from`` object of a message."""

    phone_number: str | None = None
    carrier: str | None = None
    line_type: LineType | str | None = None
    status: MessageStatus | str | None = None
    agent_id: str | None = None
    agent_name: str | None = None
    extra: Mapping[str, Any] = _extra()


@frozen(repr=False, eq=False)
class Recipient(_Model):
    """One entry of a message's ``to`` or ``cc`` list."""

    phone_number: str
    status: MessageStatus | str | None = None
    carrier: str | None = None
    line_type: LineType | str | None = None
    agent_id: str | None = None
    agent_name: str | None = None
    extra: Mapping[str, Any] = _extra()


@frozen(repr=False, eq=False)
class Cost(_Model):
    """An amount of money; ``amount`` arrives as a string or a number and becomes a Decimal."""

    amount: Decimal | None = None
    currency: str | None = None
    extra: Mapping[str, Any] = _extra()


@frozen(repr=False, eq=False)
class CostBreakdown(_Model):
    """Carrier fee and rate parts of a message's cost."""

    carrier_fee: Cost | None = None
    rate: Cost | None = None
    extra: Mapping[str, Any] = _extra()


@frozen(repr=False, eq=False)
class Media(_Model):
    """A media item; outbound messages carry ``sha256``, inbound ones ``hash_sha256``."""

    url: str | None = None
    content_type: str | None = None
    sha256: str | None = None
    hash_sha256: str | None = None
    size: int | None = None
    extra: Mapping[str, Any] = _extra()


@frozen(repr=False, eq=False)
class ErrorSource(_Model):
    """Where an error points: a JSON pointer into the request, or a query parameter."""

    pointer: str | None = None
    parameter: str | None = None
    extra: Mapping[str, Any] = _extra()


@frozen(repr=False, eq=False)
class MessageError(_Model):
    """An error attached to a message (e.g. why delivery failed)."""

    code: str | None = None
    title: str | None = None
    detail: str | None = None
    source: ErrorSource | None = None
    meta: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = _extra()


@frozen(repr=False, eq=False)
class Message(_Model):
    """A message, outbound or inbound (``direction`` tells which).

    Returned by every send, ``retrieve``, ``cancel_scheduled`` and carried by delivery and
    inbound webhooks. An inbound WhatsApp ``to`` that arrives as a plain string becomes one
    :class:`Recipient`.
    """

    id: str
    record_type: str | None = None
    direction: Direction | str | None = None
    type: MessageType | str | None = None
    messaging_profile_id: str | None = None
    organization_id: str | None = None
    from_: Sender | None = None
    to: tuple[Recipient, ...] = ()
    cc: tuple[Recipient, ...] = ()
    text: str | None = None
    subject: str | None = None
    media: tuple[Media, ...] = ()
    body: Mapping[str, Any] | None = None
    encoding: str | None = None
    parts: int | None = None
    num_chars: int | None = None
    smart_encoding_applied: bool | None = None
    autoresponse_type: str | None = None
    tags: tuple[str, ...] = ()
    cost: Cost | None = None
    cost_breakdown: CostBreakdown | None = None
    tcr_campaign_id: str | None = None
    tcr_campaign_billable: bool | None = None
    tcr_campaign_registered: str | None = None
    template_id: str | None = None
    template_name: str | None = None
    received_at: datetime | None = None
    sent_at: datetime | None = None
    completed_at: datetime | None = None
    valid_until: datetime | None = None
    webhook_url: str | None = None
    webhook_failover_url: str | None = None
    errors: tuple[MessageError, ...] = ()
    wait_seconds: float | None = None
    extra: Mapping[str, Any] = _extra()


@frozen(repr=False, eq=False)
class WhatsAppMessage(_Model):
    """The response of ``messages.send_whatsapp`` (a different shape from :class:`Message`)."""

    id: str
    record_type: str | None = None
    direction: Direction | str | None = None
    type: MessageType | str | None = None
    body: Mapping[str, Any] | None = None
    encoding: str | None = None
    from_: Sender | None = None
    to: tuple[Recipient, ...] = ()
    messaging_profile_id: str | None = None
    organization_id: str | None = None
    received_at: datetime | None = None
    wait_seconds: float | None = None
    extra: Mapping[str, Any] = _extra()


# --- numbers and senders (docs/wire.md §5, §6, §7) ------------------------------------------------


@frozen(repr=False, eq=False)
class AlphanumericSenderId(_Model):
    """An alphanumeric sender ID attached to a messaging profile."""

    id: str
    alphanumeric_sender_id: str | None = None
    messaging_profile_id: str | None = None
    organization_id: str | None = None
    record_type: str | None = None
    us_long_code_fallback: str | None = None
    extra: Mapping[str, Any] = _extra()


@frozen(repr=False, eq=False)
class MessagingFeatureSet(_Model):
    """Which directions a number supports for one protocol."""

    domestic_two_way: bool | None = None
    international_inbound: bool | None = None
    international_outbound: bool | None = None
    extra: Mapping[str, Any] = _extra()


@frozen(repr=False, eq=False)
class HostedNumberFeatures(_Model):
    """SMS and MMS feature sets of a number."""

    sms: MessagingFeatureSet | None = None
    mms: MessagingFeatureSet | None = None
    extra: Mapping[str, Any] = _extra()


@frozen(repr=False, eq=False)
class NumberHealth(_Model):
    """Health metrics of a number."""

    inbound_outbound_ratio: float | None = None
    message_count: int | None = None
    spam_ratio: float | None = None
    success_ratio: float | None = None
    extra: Mapping[str, Any] = _extra()


@frozen(repr=False, eq=False)
class HostedNumber(_Model):
    """A phone number with its messaging settings (the definition's
    ``PhoneNumberWithMessagingSettings``): returned by ``messaging_hosted_numbers``,
    ``phone_numbers.messaging`` and ``messaging_profiles.list_phone_numbers``.

    ``type`` is ``long-code``, ``toll-free``, ``short-code`` or the unhyphenated spellings;
    for a short code ``phone_number`` holds the short code itself.
    """

    id: str
    phone_number: str
    record_type: str | None = None
    country_code: str | None = None
    type: str | None = None
    messaging_profile_id: str | None = None
    messaging_product: str | None = None
    eligible_messaging_products: tuple[str, ...] = ()
    traffic_type: str | None = None
    organization_id: str | None = None
    tags: tuple[str, ...] = ()
    features: HostedNumberFeatures | None = None
    health: NumberHealth | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    extra: Mapping[str, Any] = _extra()


@frozen(repr=False, eq=False)
class ShortCode(_Model):
    """A short code and the messaging profile it is bound to (``short_codes``)."""

    id: str
    record_type: str | None = None
    short_code: str | None = None
    country_code: str | None = None
    messaging_profile_id: str | None = None
    tags: tuple[str, ...] = ()
    created_at: datetime | None = None
    updated_at: datetime | None = None
    extra: Mapping[str, Any] = _extra()


@frozen(repr=False, eq=False)
class HostedOrderNumber(_Model):
    """One number of a hosted-number order (the definition's ``HostedNumber``)."""

    id: str | None = None
    record_type: str | None = None
    phone_number: str | None = None
    status: str | None = None
    extra: Mapping[str, Any] = _extra()


@frozen(repr=False, eq=False)
class HostedNumberOrder(_Model):
    """A hosted-number order (``MessagingHostedNumberOrder``), as a hosted-number delete returns.

    ``status`` is one of ``carrier_rejected``, ``compliance_review_failed``, ``deleted``,
    ``failed``, ``incomplete_documentation``, ``incorrect_billing_information``,
    ``ineligible_carrier``, ``loa_file_invalid``, ``loa_file_successful``, ``pending``,
    ``provisioning``, ``successful`` (kept as a string: later values must not fail parsing).
    """

    id: str
    record_type: str | None = None
    messaging_profile_id: str | None = None
    status: str | None = None
    phone_numbers: tuple[HostedOrderNumber, ...] = ()
    extra: Mapping[str, Any] = _extra()


@frozen(repr=False, eq=False)
class MessagingNumbersBulkUpdate(_Model):
    """A bulk update of numbers' messaging profile: numbers move from ``pending`` to
    ``success`` or ``failed`` as the order is processed."""

    order_id: str
    record_type: str | None = None
    success: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    extra: Mapping[str, Any] = _extra()


@frozen(repr=False, eq=False)
class OptOut(_Model):
    """A recipient who opted out of messages from a sender."""

    from_: str | None = None
    to: str | None = None
    keyword: str | None = None
    messaging_profile_id: str | None = None
    created_at: datetime | None = None
    extra: Mapping[str, Any] = _extra()


# --- messaging profiles (docs/wire.md §9) ---------------------------------------------------------


@frozen(repr=False, eq=False)
class NumberPoolSettings(_Model):
    """How a messaging profile's number pool picks senders."""

    long_code_weight: float | None = None
    toll_free_weight: float | None = None
    skip_unhealthy: bool | None = None
    sticky_sender: bool | None = None
    geomatch: bool | None = None
    extra: Mapping[str, Any] = _extra()


@frozen(repr=False, eq=False)
class UrlShortenerSettings(_Model):
    """Link shortening settings of a messaging profile."""

    domain: str | None = None
    prefix: str | None = None
    replace_blacklist_only: bool | None = None
    send_webhooks: bool | None = None
    extra: Mapping[str, Any] = _extra()


@frozen(repr=False, eq=False)
class MessagingProfile(_Model):
    """A messaging profile (``messaging_profiles`` and ``actions.regenerate_secret``)."""

    id: str
    record_type: str | None = None
    name: str | None = None
    enabled: bool | None = None
    #: A credential (it authenticates v1 API calls): kept out of ``repr``, so logs do not show it.
    v1_secret: str | None = attrs.field(default=None, repr=False)
    webhook_url: str | None = None
    webhook_failover_url: str | None = None
    webhook_api_version: str | None = None
    whitelisted_destinations: tuple[str, ...] = ()
    number_pool_settings: NumberPoolSettings | None = None
    url_shortener_settings: UrlShortenerSettings | None = None
    alpha_sender: str | None = None
    daily_spend_limit: str | None = None
    daily_spend_limit_enabled: bool | None = None
    mms_fall_back_to_sms: bool | None = None
    mms_transcoding: bool | None = None
    mobile_only: bool | None = None
    smart_encoding: bool | None = None
    redaction_enabled: bool | None = None
    redaction_level: int | None = None
    features: Mapping[str, Any] | None = None
    ai_assistant_id: str | None = None
    resource_group_id: str | None = None
    health_webhook_url: str | None = None
    organization_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    extra: Mapping[str, Any] = _extra()


@frozen(repr=False, eq=False)
class AutorespConfig(_Model):
    """An auto-response setting of a messaging profile."""

    id: str
    op: AutorespOp | str
    keywords: tuple[str, ...]
    country_code: str
    created_at: datetime
    updated_at: datetime
    resp_text: str | None = None
    extra: Mapping[str, Any] = _extra()


# --- metrics (docs/wire.md §8): lenient, every field optional -------------------------------------


@frozen(repr=False, eq=False)
class OutboundMetrics(_Model):
    """Outbound counters; ``errors`` is a ratio (legacy key ``error_ratio`` is accepted)."""

    sent: int | None = None
    delivered: int | None = None
    errors: float | None = None
    extra: Mapping[str, Any] = _extra()


@frozen(repr=False, eq=False)
class InboundMetrics(_Model):
    """Inbound counters."""

    received: int | None = None
    extra: Mapping[str, Any] = _extra()


@frozen(repr=False, eq=False)
class ProfileMetricsSummary(_Model):
    """High-level metrics of one messaging profile."""

    record_type: str | None = None
    messaging_profile_id: str | None = None
    phone_numbers: int | None = None
    outbound: OutboundMetrics | None = None
    inbound: InboundMetrics | None = None
    extra: Mapping[str, Any] = _extra()


@frozen(repr=False, eq=False)
class PageMeta(_Model):
    """Pagination metadata of a list response."""

    page_number: int | None = None
    page_size: int | None = None
    total_pages: int | None = None
    total_results: int | None = None
    extra: Mapping[str, Any] = _extra()


@frozen(repr=False, eq=False)
class ProfileMetricsOverview(_Model):
    """The response of ``messaging_profile_metrics.list``: one summary per profile."""

    data: tuple[ProfileMetricsSummary, ...] = ()
    meta: PageMeta | None = None
    extra: Mapping[str, Any] = _extra()


@frozen(repr=False, eq=False)
class MessageTypeMetrics(_Model):
    """Counters of one message type (``label``, e.g. ``"longcode"``) in one time bucket."""

    label: str | None = None
    sent: int | None = None
    delivered: int | None = None
    errors: float | None = None
    received: int | None = None
    extra: Mapping[str, Any] = _extra()


@frozen(repr=False, eq=False)
class DetailedMetric(_Model):
    """Metrics of one time bucket."""

    timestamp: str | None = None
    metrics: tuple[MessageTypeMetrics, ...] = ()
    extra: Mapping[str, Any] = _extra()


@frozen(repr=False, eq=False)
class ProfileMetrics(_Model):
    """The response of ``messaging_profiles.retrieve_metrics``."""

    overview: ProfileMetricsSummary | None = None
    detailed: tuple[DetailedMetric, ...] = ()
    extra: Mapping[str, Any] = _extra()


# --- pages ------------------------------------------------------------------------------------


@frozen(unsafe_hash=False)
class Page(Generic[T]):
    """One page of a list: ``items`` and the server's ``meta``.

    ``meta`` is always there; its fields are ``None`` when the response carried none.
    """

    items: list[T]
    meta: PageMeta = attrs.Factory(lambda: PageMeta())
    page_number: int = 1


# --- webhooks (docs/wire.md §10.4) ----------------------------------------------------------------


@frozen(repr=False, eq=False)
class LinkClick(_Model):
    """A click on a shortened link (``record_type == "link_clicked"``)."""

    record_type: str | None = None
    url: str | None = None
    to: str | None = None
    message_id: str | None = None
    time_clicked: datetime | None = None
    extra: Mapping[str, Any] = _extra()


@frozen(repr=False, eq=False)
class WebhookMeta(_Model):
    """Delivery metadata Telnyx adds to an event."""

    attempt: int | None = None
    delivered_to: str | None = None
    extra: Mapping[str, Any] = _extra()


@frozen(unsafe_hash=False)
class WebhookEvent:
    """A verified webhook event.

    ``payload`` is a :class:`Message` for ``message.sent`` / ``message.finalized`` /
    ``message.received``, a :class:`LinkClick` for ``message.link_click`` (which carries no
    ``event_type``, ``id`` or ``payload`` on the wire), and the raw mapping for event types this
    library does not know, or for a payload or click it cannot read (``occurred_at`` and
    ``meta`` it cannot read are None; each is logged at WARNING). ``raw`` is the whole decoded
    JSON document; ``extra`` holds the fields of its ``data`` object this library does not model
    (a field Telnyx adds later), and ``to_dict()`` gives that ``data`` object back, as for every
    model.
    """

    event_type: WebhookEventType | str | None
    id: str | None
    occurred_at: datetime | None
    payload: Message | LinkClick | Mapping[str, Any] | None
    record_type: str | None = None
    meta: WebhookMeta | None = None
    raw: Mapping[str, Any] = attrs.field(default=NO_EXTRA, repr=False, eq=False)
    extra: Mapping[str, Any] = _extra()

    def __reduce__(self) -> tuple[Any, ...]:
        # As _Model's: the read-only mappings travel as dicts (pickle cannot take them).
        values = {f.name: getattr(self, f.name) for f in attrs.fields(type(self))}
        values["extra"], values["raw"] = dict(self.extra), dict(self.raw)
        return (_rebuild, (type(self), values))

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of the event (the delivery's ``data`` object): wire names, ISO
        date-times, the payload's own ``to_dict()``, ``extra`` merged. A link click, which has
        no envelope on the wire, gives its click back."""
        if isinstance(self.payload, LinkClick) and self.record_type == "link_clicked":
            return self.payload.to_dict()
        if (
            self.event_type == WebhookEventType.MESSAGE_LINK_CLICK
            and self.record_type == "link_clicked"
            and isinstance(self.payload, Mapping)
        ):  # a click this SDK could not read: its data object as received
            return dict(self.payload)
        result: dict[str, Any] = {}
        if self.record_type is not None:
            result["record_type"] = self.record_type
        if self.id is not None:
            result["id"] = self.id
        if self.event_type is not None:
            result["event_type"] = str(getattr(self.event_type, "value", self.event_type))
        if self.occurred_at is not None:
            result["occurred_at"] = self.occurred_at.isoformat()
        if isinstance(self.payload, _Model):
            result["payload"] = self.payload.to_dict()
        elif self.payload is not None:
            result["payload"] = dict(self.payload)
        result.update(self.extra)
        return result
