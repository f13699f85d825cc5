"""Response models and the cattrs converter: wire JSON in, typed models out, and back again."""

from __future__ import annotations

import enum
import gc
import json
import string
import weakref
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import telnyx_msg
from telnyx_msg import models as m
from telnyx_msg._convert import parse_datetime, structure, structure_event
from telnyx_msg._requests import SendMessage
from telnyx_msg.models import Cost, Message, Recipient, Sender
from tests.conftest import examples

UTC = timezone.utc
JSON = dict[str, Any]

PROPERTY = settings(
    max_examples=examples(120),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- leaf strategies --------------------------------------------------------------------------

_OFFSETS: dict[str, timezone] = {
    "Z": UTC,
    "+00:00": UTC,
    "+05:30": timezone(timedelta(hours=5, minutes=30)),
    "-04:00": timezone(timedelta(hours=-4)),
    "": UTC,  # naive on the wire: read as UTC
}


@st.composite
def iso_pairs(draw: st.DrawFn) -> tuple[str, datetime]:
    """An ISO 8601 string as Telnyx sends them, and the aware datetime it means."""
    moment = draw(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)))
    sep = draw(st.sampled_from(["T", " "]))
    digits = draw(st.integers(0, 6))
    offset = draw(st.sampled_from(sorted(_OFFSETS)))
    text = moment.strftime(f"%Y-%m-%d{sep}%H:%M:%S")
    fraction = f"{moment.microsecond:06d}"[:digits]
    if digits:
        text += "." + fraction
    micro = int(fraction.ljust(6, "0")) if digits else 0
    return text + offset, moment.replace(microsecond=micro, tzinfo=_OFFSETS[offset])


iso_datetimes = iso_pairs().map(lambda pair: pair[0])
uuids = st.uuids().map(str)
e164 = st.from_regex(r"\+[1-9][0-9]{7,14}", fullmatch=True)
texts = st.text(max_size=20)
words = st.text(alphabet=string.ascii_letters + string.digits + "-_ ", max_size=16)
counts = st.integers(0, 10**6)
ratios = st.floats(0, 1, allow_nan=False) | st.integers(0, 1)
unknown_words = st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=16)


def nullable(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``strategy`` or JSON null."""
    return st.none() | strategy


def open_enum(cls: type[enum.Enum]) -> st.SearchStrategy[str]:
    """A documented value of ``cls`` or an unknown future one."""
    return st.sampled_from([str(e.value) for e in cls]) | unknown_words


def json_lists(item: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A short JSON list of ``item``, or null."""
    return nullable(st.lists(item, max_size=3))


amounts = st.decimals(min_value=0, max_value=1000, places=4, allow_nan=False).flatmap(
    lambda d: st.sampled_from([str(d), float(d), format(d, "f")])
)
json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-1000, 1000)
    | texts
    | st.floats(allow_nan=False, allow_infinity=False)
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(words, inner, max_size=3),
    max_leaves=6,
)
free_objects = st.dictionaries(words, json_values, max_size=3)
#: Keys the API might add later; the prefix keeps them apart from every declared name.
extra_keys = st.dictionaries(unknown_words.map(lambda k: "x_" + k), json_values, max_size=3)


def obj(
    fields: dict[str, st.SearchStrategy[Any]], required: tuple[str, ...] = ()
) -> st.SearchStrategy[JSON]:
    """A JSON object: the ``required`` fields (those Telnyx always sends), any of the others,
    plus unknown future keys."""
    always = {k: fields[k] for k in required}
    optional = {k: v for k, v in fields.items() if k not in always}
    return st.tuples(st.fixed_dictionaries(always, optional=optional), extra_keys).map(
        lambda pair: {**pair[0], **pair[1]}
    )


# --- model strategies (field lists from docs/wire.md) --------------------------------------------

costs = obj({"amount": nullable(amounts), "currency": st.sampled_from(["USD", "EUR"])})
senders = obj(
    {
        "phone_number": e164,
        "carrier": texts,
        "line_type": nullable(open_enum(m.LineType)),
        "status": nullable(open_enum(m.MessageStatus)),
        "agent_id": texts,
        "agent_name": texts,
    }
)
recipients = obj(
    {
        "phone_number": e164,
        "status": nullable(open_enum(m.MessageStatus)),
        "carrier": nullable(texts),
        "line_type": nullable(open_enum(m.LineType)),
        "agent_id": texts,
        "agent_name": texts,
    },
    required=("phone_number",),
)
media_items = obj(
    {
        "url": texts,
        "content_type": st.sampled_from(["image/jpeg", "image/png", "video/mp4"]),
        "sha256": nullable(st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)),
        "hash_sha256": st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
        "size": nullable(counts),
    }
)
message_errors = obj(
    {
        "code": st.from_regex(r"[0-9]{5}", fullmatch=True),
        "title": texts,
        "detail": nullable(texts),
        "source": nullable(obj({"pointer": st.just("/to"), "parameter": texts})),
        "meta": nullable(free_objects),
    }
)
messages = obj(
    {
        "id": uuids,
        "record_type": st.just("message"),
        "direction": nullable(open_enum(m.Direction)),
        "type": nullable(open_enum(m.MessageType)),
        "messaging_profile_id": nullable(uuids),
        "organization_id": uuids,
        "from": nullable(senders),
        "to": json_lists(recipients) | e164,  # a plain string for inbound WhatsApp
        "cc": json_lists(recipients),
        "text": nullable(texts),
        "subject": nullable(texts),
        "media": json_lists(media_items),
        "body": nullable(free_objects),
        "encoding": st.sampled_from(["GSM-7", "UCS-2"]),
        "parts": counts,
        "num_chars": counts,
        "smart_encoding_applied": st.booleans(),
        "autoresponse_type": nullable(st.sampled_from(["START", "STOP", "HELP"])),
        "tags": json_lists(words),
        "cost": nullable(costs),
        "cost_breakdown": nullable(obj({"carrier_fee": nullable(costs), "rate": nullable(costs)})),
        "tcr_campaign_id": nullable(texts),
        "tcr_campaign_billable": st.booleans(),
        "tcr_campaign_registered": st.just("REGISTERED"),
        "template_id": texts,
        "template_name": texts,
        "received_at": nullable(iso_datetimes),
        "sent_at": nullable(iso_datetimes),
        "completed_at": nullable(iso_datetimes),
        "valid_until": nullable(iso_datetimes),
        "webhook_url": nullable(texts),
        "webhook_failover_url": nullable(texts),
        "errors": json_lists(message_errors),
        "wait_seconds": nullable(st.floats(0, 1e4, allow_nan=False) | counts),
    },
    required=("id",),
)
whatsapp_messages = obj(
    {
        "id": uuids,
        "record_type": st.just("message"),
        "direction": open_enum(m.Direction),
        "type": open_enum(m.MessageType),
        "body": nullable(free_objects),
        "encoding": texts,
        "from": nullable(senders),
        "to": json_lists(recipients),
        "messaging_profile_id": uuids,
        "organization_id": uuids,
        "received_at": nullable(iso_datetimes),
        "wait_seconds": st.floats(0, 1e4, allow_nan=False),
    },
    required=("id",),
)
alphanumeric_sender_ids = obj(
    {
        "id": uuids,
        "alphanumeric_sender_id": words,
        "messaging_profile_id": uuids,
        "organization_id": uuids,
        "record_type": st.just("alphanumeric_sender_id"),
        "us_long_code_fallback": nullable(e164),
    },
    required=("id",),
)
feature_sets = obj(
    {
        "domestic_two_way": st.booleans(),
        "international_inbound": st.booleans(),
        "international_outbound": st.booleans(),
    }
)
hosted_numbers = obj(
    {
        "id": uuids,
        "record_type": st.sampled_from(["messaging_phone_number", "messaging_settings"]),
        "phone_number": e164,
        "country_code": st.sampled_from(["US", "CA", "GB"]),
        "type": st.sampled_from(["long-code", "toll-free", "short-code", "longcode", "tollfree"]),
        "messaging_profile_id": nullable(uuids),
        "messaging_product": texts,
        "eligible_messaging_products": json_lists(words),
        "traffic_type": texts,
        "organization_id": uuids,
        "tags": json_lists(words),
        "features": nullable(obj({"sms": nullable(feature_sets), "mms": nullable(feature_sets)})),
        "health": nullable(
            obj(
                {
                    "inbound_outbound_ratio": ratios,
                    "message_count": counts,
                    "spam_ratio": ratios,
                    "success_ratio": ratios,
                }
            )
        ),
        "created_at": iso_datetimes,
        "updated_at": nullable(iso_datetimes),
    },
    required=("id", "phone_number"),
)
opt_outs = obj(
    {
        "from": e164,
        "to": e164,
        "keyword": nullable(st.sampled_from(["STOP", "UNSUBSCRIBE"])),
        "messaging_profile_id": nullable(uuids),
        "created_at": iso_datetimes,
    }
)
messaging_profiles = obj(
    {
        "id": uuids,
        "record_type": st.just("messaging_profile"),
        "name": texts,
        "enabled": st.booleans(),
        "v1_secret": texts,
        "webhook_url": nullable(texts),
        "webhook_failover_url": nullable(texts),
        "webhook_api_version": st.sampled_from(["1", "2", "2010-04-01"]),
        "whitelisted_destinations": json_lists(st.sampled_from(["US", "CA", "*"])),
        "number_pool_settings": nullable(
            obj(
                {
                    "long_code_weight": ratios,
                    "toll_free_weight": ratios,
                    "skip_unhealthy": st.booleans(),
                    "sticky_sender": st.booleans(),
                    "geomatch": st.booleans(),
                }
            )
        ),
        "url_shortener_settings": nullable(
            obj(
                {
                    "domain": texts,
                    "prefix": texts,
                    "replace_blacklist_only": st.booleans(),
                    "send_webhooks": st.booleans(),
                }
            )
        ),
        "alpha_sender": nullable(words),
        "daily_spend_limit": st.sampled_from(["100.00", "0"]),
        "daily_spend_limit_enabled": st.booleans(),
        "mms_fall_back_to_sms": st.booleans(),
        "mms_transcoding": st.booleans(),
        "mobile_only": st.booleans(),
        "smart_encoding": st.booleans(),
        "redaction_enabled": st.booleans(),
        "redaction_level": st.integers(0, 2),
        "features": nullable(free_objects),
        "ai_assistant_id": nullable(texts),
        "resource_group_id": nullable(texts),
        "health_webhook_url": nullable(texts),
        "organization_id": uuids,
        "created_at": iso_datetimes,
        "updated_at": iso_datetimes,
    },
    required=("id",),
)
autoresp_configs = obj(
    {
        "id": uuids,
        "op": open_enum(m.AutorespOp),
        "keywords": st.lists(words, max_size=3),
        "country_code": st.sampled_from(["US", "CA"]),
        "resp_text": nullable(texts),
        "created_at": iso_datetimes,
        "updated_at": iso_datetimes,
    },
    required=("id", "op", "keywords", "country_code", "created_at", "updated_at"),
)
#: The outbound error ratio arrives as ``errors`` or under a legacy name (docs/wire.md §8).
error_ratio_keys = st.sampled_from(["errors", "error_ratio", "outbound_error_ratio"])


def with_error_ratio(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[JSON]:
    """A metrics object whose error ratio uses one of its accepted key names."""
    return st.tuples(obj(fields), error_ratio_keys, st.none() | ratios).map(
        lambda t: {**t[0], t[1]: t[2]} if t[2] is not None else t[0]
    )


summaries = obj(
    {
        "record_type": st.just("messaging_profile_metrics"),
        "messaging_profile_id": uuids,
        "phone_numbers": counts,
        "outbound": nullable(with_error_ratio({"sent": counts, "delivered": counts})),
        "inbound": nullable(obj({"received": counts})),
    }
)
page_metas = obj(
    {
        "page_number": st.integers(1, 9),
        "page_size": st.integers(1, 250),
        "total_pages": st.integers(0, 9),
        "total_results": counts,
    }
)
profile_metrics_overviews = obj({"data": json_lists(summaries), "meta": nullable(page_metas)})
profile_metrics = obj(
    {
        "overview": nullable(summaries),
        "detailed": json_lists(
            obj(
                {
                    "timestamp": iso_datetimes,
                    "metrics": json_lists(
                        with_error_ratio(
                            {
                                "label": st.sampled_from(["longcode", "tollfree", "shortcode"]),
                                "sent": counts,
                                "delivered": counts,
                                "received": counts,
                            }
                        )
                    ),
                }
            )
        ),
    }
)
short_codes = obj(
    {
        "id": uuids,
        "record_type": st.just("short_code"),
        "short_code": st.from_regex(r"[0-9]{3,8}", fullmatch=True),
        "country_code": st.sampled_from(["US", "CA"]),
        "messaging_profile_id": nullable(uuids),
        "tags": json_lists(words),
        "created_at": iso_datetimes,
        "updated_at": iso_datetimes,
    },
    required=("id",),
)
hosted_number_orders = obj(
    {
        "id": uuids,
        "record_type": st.just("messaging_hosted_number_order"),
        "messaging_profile_id": nullable(uuids),
        "status": st.sampled_from(["deleted", "pending", "successful", "carrier_rejected"]),
        "phone_numbers": json_lists(
            obj(
                {
                    "id": uuids,
                    "record_type": st.just("messaging_hosted_number"),
                    "phone_number": e164,
                    "status": st.sampled_from(["deleted", "failed_timeout", "provisioning"]),
                }
            )
        ),
    },
    required=("id",),
)
bulk_updates = obj(
    {
        "order_id": uuids,
        "record_type": st.just("messaging_numbers_bulk_update"),
        "success": json_lists(e164),
        "pending": json_lists(e164),
        "failed": json_lists(e164),
    },
    required=("order_id",),
)
link_clicks = obj(
    {
        "record_type": st.just("link_clicked"),
        "url": texts,
        "to": st.from_regex(r"1[0-9]{10}", fullmatch=True),
        "message_id": uuids,
        "time_clicked": iso_datetimes,
    }
)

MODELS: list[tuple[type[Any], st.SearchStrategy[JSON]]] = [
    (m.Message, messages),
    (m.WhatsAppMessage, whatsapp_messages),
    (m.AlphanumericSenderId, alphanumeric_sender_ids),
    (m.HostedNumber, hosted_numbers),
    (m.OptOut, opt_outs),
    (m.MessagingProfile, messaging_profiles),
    (m.AutorespConfig, autoresp_configs),
    (m.ProfileMetrics, profile_metrics),
    (m.ProfileMetricsOverview, profile_metrics_overviews),
    (m.LinkClick, link_clicks),
    (m.ShortCode, short_codes),
    (m.HostedNumberOrder, hosted_number_orders),
    (m.MessagingNumbersBulkUpdate, bulk_updates),
]
MODEL_IDS = [cls.__name__ for cls, _ in MODELS]


def assert_keys_kept(wire: Any, out: Any, where: str = "$") -> None:
    """Every non-null key of ``wire`` (recursively) is present in ``out`` (a ``to_dict()``)."""
    if isinstance(wire, Mapping) and isinstance(out, Mapping):
        for key, value in wire.items():
            if value is None:
                continue
            assert key in out, f"{where}.{key} was dropped by to_dict()"
            assert_keys_kept(value, out[key], f"{where}.{key}")
    elif isinstance(wire, list) and isinstance(out, list) and len(wire) == len(out):
        for i, (a, b) in enumerate(zip(wire, out, strict=True)):
            assert_keys_kept(a, b, f"{where}[{i}]")


# --- properties -------------------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "wire"), MODELS, ids=MODEL_IDS)
@PROPERTY
@given(data=st.data())
def test_round_trip(cls: type[Any], wire: st.SearchStrategy[JSON], data: st.DataObject) -> None:
    """structure(to_dict(structure(d))) == structure(d) for realistic wire JSON."""
    doc = data.draw(wire, label="wire")
    model = structure(doc, cls)
    again = structure(model.to_dict(), cls)
    assert again == model
    assert again.to_dict() == model.to_dict()


@pytest.mark.parametrize(("cls", "wire"), MODELS, ids=MODEL_IDS)
@PROPERTY
@given(data=st.data())
def test_parsed_model_is_what_init_builds(
    cls: type[Any], wire: st.SearchStrategy[JSON], data: st.DataObject
) -> None:
    """Parsing sets slots directly; the result must be the object ``cls(**fields)`` gives."""
    model = structure(data.draw(wire, label="wire"), cls)
    rebuilt = attrs.evolve(model)  # through attrs' own __init__
    assert rebuilt == model
    assert repr(rebuilt) == repr(model)
    assert rebuilt.extra == model.extra
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        model.extra = {}
    with pytest.raises(TypeError, match="unhashable"):
        hash(model)


@pytest.mark.parametrize(("cls", "wire"), MODELS, ids=MODEL_IDS)
@PROPERTY
@given(data=st.data())
def test_unknown_keys_kept(
    cls: type[Any], wire: st.SearchStrategy[JSON], data: st.DataObject
) -> None:
    """Unknown keys land on .extra (top level and nested) and reappear in to_dict()."""
    doc = data.draw(wire, label="wire")
    future = data.draw(extra_keys, label="future")
    doc = {**doc, **future}
    model = structure(doc, cls)
    out = model.to_dict()
    known = {a.name.removesuffix("_") for a in attrs.fields(cls)} - {"extra"}
    assert dict(model.extra) == {k: v for k, v in doc.items() if k not in known}
    for key, value in future.items():
        assert model.extra[key] == value
        assert out[key] == value
    assert_keys_kept(doc, out)


@PROPERTY
@given(iso_pairs())
def test_parse_datetime_formats(pair: tuple[str, datetime]) -> None:
    """T or space, Z/offset/none, 0-6 fraction digits: all parse to the aware datetime meant."""
    text, expected = pair
    parsed = parse_datetime(text)
    assert parsed.tzinfo is not None
    assert parsed == expected
    assert parsed.utcoffset() == expected.utcoffset()


@PROPERTY
@given(iso_pairs())
def test_message_datetimes_aware(pair: tuple[str, datetime]) -> None:
    """Every date-time field of a Message is timezone-aware and equals the wire instant."""
    text, expected = pair
    msg = structure(
        {
            "id": "m",
            "sent_at": text,
            "received_at": text,
            "completed_at": text,
            "valid_until": text,
        },
        m.Message,
    )
    for value in (msg.sent_at, msg.received_at, msg.completed_at, msg.valid_until):
        assert value is not None
        assert value.tzinfo is not None
        assert value == expected


@PROPERTY
@given(st.sampled_from([str(s.value) for s in m.MessageStatus]) | unknown_words)
def test_status_open_enum(raw: str) -> None:
    """A known status becomes its enum member, an unknown one stays the plain string."""
    recipient = structure({"phone_number": "+18445550001", "status": raw}, m.Recipient)
    assert recipient.status == raw
    known = raw in {s.value for s in m.MessageStatus}
    assert isinstance(recipient.status, m.MessageStatus) is known
    assert recipient.to_dict()["status"] == raw


# --- webhook events (docs/wire.md §10) ------------------------------------------------------------

VECTOR_BODY = (
    '{"data":{"event_type":"message.received","id":"e1","occurred_at":'
    '"2024-01-01T00:00:00.000+00:00","payload":{"id":"m1","direction":"inbound","text":"hi",'
    '"to":[{"phone_number":"+15550001111","status":"webhook_delivered"}],'
    '"from":{"phone_number":"+15550002222"}},"record_type":"event"},'
    '"meta":{"attempt":1,"delivered_to":"https://example.com/hooks"}}'
)


def test_event_vector_received() -> None:
    """The docs/wire.md §10.5 body parses to a typed message.received event with a Message
    payload."""
    event = structure_event(json.loads(VECTOR_BODY))
    assert isinstance(event, m.WebhookEvent)
    assert event.event_type == "message.received"
    assert event.event_type is m.WebhookEventType.MESSAGE_RECEIVED
    assert event.id == "e1"
    assert event.record_type == "event"
    assert event.occurred_at == datetime(2024, 1, 1, tzinfo=UTC)
    assert event.occurred_at is not None
    assert event.occurred_at.tzinfo is not None
    assert event.meta == m.WebhookMeta(attempt=1, delivered_to="https://example.com/hooks")
    payload = event.payload
    assert isinstance(payload, m.Message)
    assert payload.direction == "inbound"
    assert payload.direction is m.Direction.INBOUND
    assert payload.id == "m1"
    assert payload.text == "hi"
    assert payload.to == (
        m.Recipient(phone_number="+15550001111", status=m.MessageStatus.WEBHOOK_DELIVERED),
    )
    assert payload.from_ == m.Sender(phone_number="+15550002222")


@pytest.mark.parametrize("event_type", ["message.sent", "message.finalized"])
def test_event_delivery_update(event_type: str) -> None:
    """message.sent and message.finalized carry an outbound Message payload."""
    doc = {
        "data": {
            "record_type": "event",
            "id": "e2",
            "event_type": event_type,
            "occurred_at": "2025-07-01T15:00:01.5Z",
            "payload": {
                "id": "m2",
                "direction": "outbound",
                "cost": {"amount": 0.0051, "currency": "USD"},
                "to": [{"phone_number": "+18445550001", "status": "delivered"}],
            },
        },
        "meta": {"attempt": 2, "delivered_to": "https://example.com/hooks"},
    }
    event = structure_event(doc)
    assert event.event_type == event_type
    assert isinstance(event.event_type, m.WebhookEventType)
    assert isinstance(event.payload, m.Message)
    assert event.payload.direction == "outbound"
    assert event.payload.cost == m.Cost(amount=Decimal("0.0051"), currency="USD")
    assert event.occurred_at == datetime(2025, 7, 1, 15, 0, 1, 500000, tzinfo=UTC)


def test_event_link_click() -> None:
    """A link click (no event_type/id/payload) is message.link_click with a LinkClick payload."""
    doc = {
        "data": {
            "record_type": "link_clicked",
            "url": "https://example.com/offer",
            "to": "18445550001",
            "message_id": "40385f64-5717-4562-b3fc-2c963f66afa6",
            "time_clicked": "2025-07-01 15:00:00.123+00:00",
        }
    }
    event = structure_event(doc)
    assert event.event_type == "message.link_click"
    assert event.event_type is m.WebhookEventType.MESSAGE_LINK_CLICK
    assert event.id is None
    assert event.record_type == "link_clicked"
    clicked = datetime(2025, 7, 1, 15, 0, 0, 123000, tzinfo=UTC)
    assert event.payload == m.LinkClick(
        record_type="link_clicked",
        url="https://example.com/offer",
        to="18445550001",
        message_id="40385f64-5717-4562-b3fc-2c963f66afa6",
        time_clicked=clicked,
    )
    assert event.occurred_at == clicked


def test_event_unknown_type_keeps_mapping() -> None:
    """An unknown event type still parses; its payload stays the raw mapping."""
    payload = {"id": "m3", "direction": "outbound", "read_at": "2025-07-01T15:00:00Z"}
    doc = {
        "data": {
            "record_type": "event",
            "id": "e3",
            "event_type": "message.read",
            "occurred_at": "2025-07-01T15:00:00Z",
            "payload": payload,
        }
    }
    event = structure_event(doc)
    assert event.event_type == "message.read"
    assert not isinstance(event.event_type, m.WebhookEventType)
    assert event.id == "e3"
    assert isinstance(event.payload, Mapping)
    assert not isinstance(event.payload, m.Message)
    assert dict(event.payload) == payload
    assert event.meta is None


# --- specific wire quirks ---------------------------------------------------------------------


def test_repeated_costs_and_senders_are_shared() -> None:
    """Equal prices and senders parse to one shared frozen object; anything else does not."""

    def message(amount: str, sender: str, **cost_extra: Any) -> m.Message:
        cost = {"amount": amount, "currency": "USD", **cost_extra}
        return structure(
            {
                "id": "x",
                "from": {"phone_number": sender, "carrier": "Telnyx"},
                "cost": cost,
                "cost_breakdown": {"rate": cost},
            },
            m.Message,
        )

    first, second = message("0.0040", "+18005550101"), message("0.0040", "+18005550101")
    assert first.cost is second.cost
    assert first.from_ is second.from_
    assert first.cost_breakdown is second.cost_breakdown
    assert first.cost_breakdown is not None
    assert first.cost_breakdown.rate is first.cost
    other = message("0.0050", "+18005550199")
    assert other.cost is not first.cost
    assert other.from_ is not first.from_
    assert other.cost == m.Cost(amount=Decimal("0.0050"), currency="USD")
    odd = message("0.0040", "+18005550101", discount="0.001")  # unknown key: its own object
    assert odd.cost is not first.cost
    assert odd.cost is not None
    assert odd.cost.extra == {"discount": "0.001"}
    number = structure({"amount": 1, "currency": "USD"}, m.Cost)  # not a string: not shared
    assert number is not structure({"amount": 1, "currency": "USD"}, m.Cost)
    assert number.amount == Decimal(1)


def test_shared_objects_are_bounded() -> None:
    """The sharing caches hold a bounded number of objects, however many prices appear."""
    refs = [
        weakref.ref(structure({"amount": f"0.{i:06d}", "currency": "USD"}, m.Cost))
        for i in range(3000)
    ]
    gc.collect()
    assert sum(ref() is not None for ref in refs) <= 512


@pytest.mark.parametrize("amount", ["0.0051", 0.0051], ids=["string", "number"])
def test_cost_amount_decimal(amount: str | float) -> None:
    """cost.amount as a string or a JSON number becomes Decimal("0.0051") (never a float)."""
    msg = structure({"id": "m", "cost": {"amount": amount, "currency": "USD"}}, m.Message)
    assert msg.cost is not None
    assert isinstance(msg.cost.amount, Decimal)
    assert msg.cost.amount == Decimal("0.0051")
    assert msg.to_dict()["cost"] == {"amount": "0.0051", "currency": "USD"}


def test_created_at_space_separator() -> None:
    """An opt-out created_at with a space instead of T parses to an aware datetime."""
    opt_out = structure(
        {
            "from": "+18005550101",
            "to": "+18445550001",
            "created_at": "2025-04-28 12:00:38.631252+00:00",
        },
        m.OptOut,
    )
    assert opt_out.created_at == datetime(2025, 4, 28, 12, 0, 38, 631252, tzinfo=UTC)
    assert opt_out.created_at is not None
    assert opt_out.created_at.utcoffset() == timedelta(0)
    assert opt_out.from_ == "+18005550101"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-04-28T12:00:38", datetime(2025, 4, 28, 12, 0, 38, tzinfo=UTC)),
        ("2025-04-28 12:00:38.5", datetime(2025, 4, 28, 12, 0, 38, 500000, tzinfo=UTC)),
    ],
)
def test_naive_datetime_is_utc(text: str, expected: datetime) -> None:
    """A date-time without an offset is read as UTC."""
    parsed = parse_datetime(text)
    assert parsed.tzinfo is not None
    assert parsed.utcoffset() == timedelta(0)
    assert parsed == expected


def test_naive_datetime_object_is_utc() -> None:
    """A naive datetime object is made aware as UTC."""
    assert parse_datetime(datetime(2025, 1, 1, 8)) == datetime(2025, 1, 1, 8, tzinfo=UTC)


def test_empty_line_type_and_unknown_values() -> None:
    """line_type "" and unknown statuses/types/directions parse without error."""
    msg = structure(
        {
            "id": "m",
            "direction": "sideways",
            "type": "CARRIER_PIGEON",
            "from": {"phone_number": "+18005550101", "line_type": "", "status": "weird_new_status"},
            "to": [{"phone_number": "+18445550001", "status": "weird_new_status", "line_type": ""}],
        },
        m.Message,
    )
    assert msg.from_ is not None
    assert msg.from_.line_type == ""
    assert msg.from_.line_type is m.LineType.EMPTY
    assert msg.from_.status == "weird_new_status"
    assert msg.to[0].status == "weird_new_status"
    assert msg.to[0].line_type == ""
    assert msg.direction == "sideways"
    assert msg.type == "CARRIER_PIGEON"
    assert msg.to_dict()["to"][0] == {
        "phone_number": "+18445550001",
        "status": "weird_new_status",
        "line_type": "",
    }


def test_inbound_whatsapp_to_string() -> None:
    """An inbound WhatsApp "to" given as a plain string becomes one Recipient."""
    msg = structure(
        {"id": "m", "direction": "inbound", "type": "WHATSAPP", "to": "+18445550001"}, m.Message
    )
    assert msg.to == (m.Recipient(phone_number="+18445550001"),)
    assert msg.type is m.MessageType.WHATSAPP


@pytest.mark.parametrize(
    ("cls", "doc", "fields"),
    [
        (
            m.Message,
            {"id": "m", "to": None, "cc": None, "media": None, "tags": None, "errors": None},
            ["to", "cc", "media", "tags", "errors"],
        ),
        (m.WhatsAppMessage, {"id": "w", "to": None}, ["to"]),
        (
            m.HostedNumber,
            {
                "id": "n",
                "phone_number": "+13125550100",
                "eligible_messaging_products": None,
                "tags": None,
            },
            ["eligible_messaging_products", "tags"],
        ),
        (
            m.MessagingProfile,
            {"id": "p", "whitelisted_destinations": None},
            ["whitelisted_destinations"],
        ),
        (m.ProfileMetricsOverview, {"data": None}, ["data"]),
        (m.ProfileMetrics, {"detailed": None}, ["detailed"]),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else None,
)
def test_null_lists_become_empty(cls: type[Any], doc: JSON, fields: list[str]) -> None:
    # (AutorespConfig.keywords is always sent: a null there is an error, tested below.)
    """A JSON null for a list field gives an empty tuple."""
    model = structure(doc, cls)
    for name in fields:
        assert getattr(model, name) == ()


def test_metrics_legacy_error_ratio() -> None:
    """Legacy error_ratio / outbound_error_ratio fill `errors`; `errors` wins when both exist."""
    overview = structure(
        {
            "data": [
                {"messaging_profile_id": "p1", "outbound": {"sent": 10, "error_ratio": 0.25}},
                {"messaging_profile_id": "p2", "outbound": {"errors": 0.5, "error_ratio": 0.9}},
            ],
            "meta": {"page_number": 1, "total_pages": 1},
        },
        m.ProfileMetricsOverview,
    )
    first, second = overview.data
    assert first.outbound is not None
    assert first.outbound.errors == 0.25
    assert first.outbound.sent == 10
    assert second.outbound is not None
    assert second.outbound.errors == 0.5
    detailed = structure(
        {
            "detailed": [
                {
                    "timestamp": "2025-07-01T00:00:00Z",
                    "metrics": [{"label": "longcode", "outbound_error_ratio": 0.125}],
                }
            ]
        },
        m.ProfileMetrics,
    )
    assert detailed.detailed[0].metrics[0].errors == 0.125


ENUM_MEMBERS = [
    member
    for cls in (
        m.MessageStatus,
        m.MessageType,
        m.Direction,
        m.LineType,
        m.AutorespOp,
        m.MetricsTimeFrame,
        m.WebhookEventType,
    )
    for member in cls
]


@pytest.mark.parametrize("member", ENUM_MEMBERS, ids=lambda e: f"{type(e).__name__}.{e.name}")
def test_enum_equals_string(member: enum.Enum) -> None:
    """Enum members compare (and hash, and format) equal to their wire strings."""
    value = member.value
    assert isinstance(member, str)
    assert member == value
    assert value == member
    assert str(member) == value
    assert f"{member}" == value
    assert {value: 1}[member] == 1


@pytest.mark.parametrize(
    ("cls", "doc", "path"),
    [
        (m.Message, {"to": [{"phone_number": "+18445550001"}]}, "Message.id: missing"),
        (m.Message, {"id": "m", "to": [{"status": "sent"}]}, "Message.to.phone_number: missing"),
        (
            m.AutorespConfig,
            {
                "id": "a",
                "op": "stop",
                "keywords": None,
                "country_code": "US",
                "created_at": "2024-01-01T00:00:00Z",
                "updated_at": "2024-01-01T00:00:00Z",
            },
            "AutorespConfig.keywords: missing",
        ),
        (m.Message, {"id": "m", "parts": "one"}, "Message.parts: 'one'"),
        (m.Message, {"id": "m", "sent_at": "yesterday"}, "Message.sent_at: 'yesterday'"),
        (m.Message, {"id": "m", "cost": {"amount": "lots"}}, "Message.cost.amount: 'lots'"),
    ],
)
def test_malformed_response_names_the_field(cls: type[Any], doc: JSON, path: str) -> None:
    """A missing always-sent field or a malformed value is an error naming the field."""
    from telnyx_msg._convert import ResponseShapeError

    with pytest.raises(ResponseShapeError) as caught:
        structure(doc, cls)
    assert str(caught.value).startswith(path)


PROFILE = {
    "id": "p",
    "name": "n",
    "created_at": "2024-01-01T00:00:00Z",
    "updated_at": "2024-01-01T00:00:00Z",
}


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("enabled", "false", "expected true or false"),  # bool("false") would be True
        ("enabled", 0, "expected true or false"),
        ("whitelisted_destinations", "US", "expected a list of strings"),  # not ("U", "S")
        ("whitelisted_destinations", ["US", {"a": 1}], "expected a string"),
        ("webhook_url", {"url": "https://x"}, "expected a string"),  # not its repr
        ("webhook_url", True, "expected a string"),
        ("redaction_level", 1.9, "expected an integer"),  # not 1
        ("redaction_level", True, "expected an integer"),
        ("number_pool_settings", "on", "expected a JSON object"),
        ("v1_secret", ["s"], "expected a string"),
    ],
)
def test_a_value_of_the_wrong_type_is_an_error(key: str, value: Any, reason: str) -> None:
    """A value that would only convert into a different value names its field; it is not
    silently turned into True, a list of letters, a repr or a truncated number."""
    from telnyx_msg._convert import ResponseShapeError

    with pytest.raises(ResponseShapeError) as caught:
        structure({**PROFILE, key: value}, m.MessagingProfile)
    assert caught.value.path == f"MessagingProfile.{key}"
    assert reason in str(caught.value)


@pytest.mark.parametrize(
    ("key", "value", "parsed"),
    [
        ("redaction_level", 2.0, 2),
        ("redaction_level", "3", 3),
        ("v1_secret", 5, "5"),
        ("whitelisted_destinations", ["US", 1], ("US", "1")),
    ],
)
def test_a_value_meaning_the_same_is_converted(key: str, value: Any, parsed: Any) -> None:
    """An integral float, a numeric string, a number where text is documented: same value."""
    assert getattr(structure({**PROFILE, key: value}, m.MessagingProfile), key) == parsed


def test_generated_code_shows_in_tracebacks() -> None:
    """The generated structuring code is registered with linecache (debuggable)."""
    import linecache
    import traceback

    try:
        structure({"id": "m", "parts": "one"}, m.Message)
    except ValueError as exc:
        cause = exc.__cause__
        assert cause is not None
        text = "".join(traceback.format_exception(cause))
    assert "<telnyx_msg structure Message>" in text
    assert linecache.getline("<telnyx_msg structure Message>", 1).startswith(
        "def structure_Message"
    )
    assert "parts" in text


@pytest.mark.anyio
async def test_client_reports_the_missing_field(api_server: Any) -> None:
    """Through the client, a 2xx lacking an always-sent field is APIResponseValidationError
    naming it, for a single result and for a page of a list."""
    from tests.conftest import json_response

    async def answer(request: Any) -> Any:
        if request.method == "GET" and request.path.endswith("/messaging_profiles"):
            return json_response({"data": [{"name": "no id"}], "meta": {"page_number": 1}})
        return json_response({"data": {"direction": "outbound", "to": []}})

    server = await api_server(answer)
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=None) as client:
        with pytest.raises(telnyx_msg.APIResponseValidationError) as one:
            await client.messages.retrieve("m")
        with pytest.raises(telnyx_msg.APIResponseValidationError) as page:
            await client.messaging_profiles.list().first_page()
    assert one.value.field == "Message.id"
    assert "Message.id: missing" in str(one.value)
    assert page.value.field == "MessagingProfile.id"


def test_models_compare_and_print_by_value() -> None:
    """Equal when the class and every field are equal (``extra`` included), printed as attrs
    prints (fields in order, ``extra`` left out), and not hashable (``extra`` is a mapping)."""
    cost = Cost(amount=Decimal("0.0040"), currency="USD")
    assert cost == Cost(amount=Decimal("0.004"), currency="USD")
    assert cost != Cost(amount=Decimal("0.0040"), currency="EUR")
    assert cost != Cost(amount=Decimal("0.0040"), currency="USD", extra={"fx": 1})
    assert Sender(phone_number="+1") != Recipient(phone_number="+1")  # other class
    assert (cost == "0.0040") is False
    assert repr(cost) == "Cost(amount=Decimal('0.0040'), currency='USD')"
    message = Message(id="m1", to=(Recipient(phone_number="+13125550001"),))
    assert repr(message).startswith("Message(id='m1', record_type=None, direction=None, type=None,")
    assert "to=(Recipient(phone_number='+13125550001', status=None," in repr(message)
    assert "extra" not in repr(message)
    with pytest.raises(TypeError, match="unhashable"):
        hash(cost)
    request = SendMessage(from_="+13125550000", to="+13125550001", text="hi")
    assert repr(request) == (
        "SendMessage(options=None, webhook_url=None, webhook_failover_url=None, "
        "use_profile_webhooks=None, text='hi', media_urls=None, subject=None, type=None, "
        "auto_detect=None, to='+13125550001', from_='+13125550000', "
        "messaging_profile_id=None, encoding=None, send_at=None)"
    )


@pytest.mark.anyio
async def test_profile_secret_never_in_a_repr() -> None:
    """A messaging profile's ``v1_secret`` (a credential) is readable but not in ``repr``.

    Logging a profile, or an update request that sets the secret, must not write it out.
    """
    from telnyx_msg.testing import FakeTelnyx

    async with (
        FakeTelnyx() as fake,
        telnyx_msg.AsyncClient(fake.api_key, base_url=fake.base_url) as client,
    ):
        profile = await client.messaging_profiles.create(name="p", whitelisted_destinations=["US"])
        secret = profile.v1_secret
        assert secret
        assert secret not in repr(profile)
        assert profile.to_dict()["v1_secret"] == secret  # the JSON shape keeps it
        updated = await client.messaging_profiles.update(profile.id, v1_secret="s3cret-value")
        assert updated.v1_secret == "s3cret-value"
        assert "s3cret-value" not in repr(updated)
    from telnyx_msg._requests import UpdateMessagingProfile

    assert "s3cret" not in repr(UpdateMessagingProfile(profile.id, v1_secret="s3cret-value"))


@pytest.mark.parametrize(
    ("field", "enum_name", "value"),
    [
        ("type", "MessageType", "RCS"),
        ("type", "MessageType", "MMS"),
        ("direction", "Direction", "inbound"),
    ],
)
def test_documented_enum_values_become_members(field: str, enum_name: str, value: str) -> None:
    """A value the enum documents (RCS is in the definition's message type) is structured to
    its member, not left a plain string as an unknown value is."""
    model = structure({"id": "m", field: value}, m.Message)
    member = getattr(model, field)
    assert isinstance(member, getattr(m, enum_name))
    assert member.value == value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "2024-01-01T12:00:00.5z",
            datetime(2024, 1, 1, 12, 0, 0, 500_000, timezone.utc),
        ),
        (
            "2024-03-10 08:15:30,25 -0130",
            datetime(
                2024,
                3,
                10,
                8,
                15,
                30,
                250_000,
                timezone(-timedelta(hours=1, minutes=30)),
            ),
        ),
        (
            "2024-03-10T08:15:30,1 +0545",
            datetime(
                2024,
                3,
                10,
                8,
                15,
                30,
                100_000,
                timezone(timedelta(hours=5, minutes=45)),
            ),
        ),
        (
            "2024-03-10T08:15:30.1234567 z",
            datetime(2024, 3, 10, 8, 15, 30, 123_456, timezone.utc),
        ),
        ("2024-03-10 08:15z", datetime(2024, 3, 10, 8, 15, tzinfo=timezone.utc)),
    ],
)
def test_parse_datetime_forms_fromisoformat_refuses(text: str, expected: datetime) -> None:
    """Forms datetime.fromisoformat refuses on every Python (a lower-case z, a space before
    the offset) go through the module's own parser, with the same meaning: a fraction is
    read as a fraction of a second (".5" is 500 ms, not 5 µs), a negative offset is
    negative and its minutes count. (On 3.11+ the property test above never reaches that
    parser: fromisoformat reads everything iso_pairs draws.)"""
    with pytest.raises(ValueError):
        datetime.fromisoformat(text)
    parsed = parse_datetime(text)
    assert parsed == expected
    assert parsed.utcoffset() == expected.utcoffset()
    assert parsed.microsecond == expected.microsecond


@pytest.mark.parametrize(("value", "parsed"), [("2.5", 2.5), (3, 3.0), ("0", 0.0), (0.25, 0.25)])
def test_a_number_where_a_float_is_documented_is_converted(value: Any, parsed: float) -> None:
    """A float field takes an int or a numeric string (its value), as int fields take "3":
    number pool weights sent as "2.5" must not be a ResponseShapeError."""
    profile = structure(
        {
            **PROFILE,
            "number_pool_settings": {"long_code_weight": value, "toll_free_weight": 1},
        },
        m.MessagingProfile,
    )
    assert profile.number_pool_settings is not None
    weight = profile.number_pool_settings.long_code_weight
    assert type(weight) is float
    assert weight == parsed
    assert profile.number_pool_settings.toll_free_weight == 1.0
