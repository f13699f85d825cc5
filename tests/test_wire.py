"""``_wire``, the sans-I/O half of the request pipeline, on recorded bodies in ``tests/wire/``.

Pure tests: no server, no network, no mock of our code. A request is built from keyword
arguments the way a resource method builds it (``make_request`` then ``build_request``); a
response is an :class:`HttpResponse` holding a sample file's bytes. The retry policy is checked
end to end on the same objects: ``failure(response, error)`` fed to ``_retry.next_delay``.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from telnyx_msg import endpoints as ep
from telnyx_msg._client import make_request
from telnyx_msg._config import RequestOptions
from telnyx_msg._retry import Backoff, Failure, next_delay
from telnyx_msg._spec import Endpoint
from telnyx_msg._transport import fixed_headers
from telnyx_msg._wire import (
    HttpResponse,
    TransportError,
    WireRequest,
    build_request,
    decode,
    failure,
    finisher,
    page_parser,
    request_id,
    status_error,
    too_large,
    transport_error,
)
from telnyx_msg.errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    ClientClosedError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    QueueFullError,
    RateLimitError,
    UnprocessableEntityError,
    status_error_class,
)
from telnyx_msg.models import (
    AutorespOp,
    Message,
    MessageStatus,
    MetricsTimeFrame,
    OptOut,
    Page,
    PageMeta,
)

WIRE = Path(__file__).parent / "wire"
BASE = "https://api.telnyx.com/v2"
FIXED = {
    "Authorization": "Bearer KEY_TEST",
    "Accept": "application/json",
    "Content-Type": "application/json",
    "User-Agent": "telnyx_msg/test",
}
NO_JITTER = Backoff(jitter=0)
FROM = "+18005550101"
TO = "+18445550001"
PROFILE = "4000eba1-a0c0-4563-9925-b25e842a7cb6"
MESSAGE_ID = "40385f64-5717-4562-b3fc-2c963f66afa6"
PHOTO = "https://example.com/photo.jpg"
UTC = timezone.utc
_AUTORESP: dict[str, Any] = {"op": "stop", "keywords": ["STOP"], "country_code": "US"}


def sample(name: str) -> bytes:
    """The bytes of a recorded body in tests/wire/."""
    return (WIRE / name).read_bytes()


def sample_json(name: str) -> Any:
    return json.loads(sample(name))


def headers(**pairs: str) -> CIMultiDictProxy[str]:
    """Case-insensitive response headers, as the transport hands them over.

    Keyword names use ``_`` for ``-``: ``headers(X_Request_Id="r1")``.
    """
    return CIMultiDictProxy(CIMultiDict({k.replace("_", "-"): v for k, v in pairs.items()}))


def build(
    endpoint: Endpoint[Any, Any],
    *args: Any,
    fixed: Any = None,
    **kwargs: Any,
) -> WireRequest:
    """The wire request of one call, built as a resource method builds it."""
    request = make_request(endpoint, args, kwargs, "test")
    return build_request(endpoint, request, BASE, FIXED if fixed is None else fixed)


def body_of(wire: WireRequest) -> Any:
    assert wire.data is not None
    return json.loads(wire.data)


def query_of(wire: WireRequest) -> list[tuple[str, str]]:
    """The decoded query pairs, in order (what a server sees)."""
    return parse_qsl(urlsplit(wire.url).query, keep_blank_values=True)


def send(**options: Any) -> WireRequest:
    """``POST /messages`` of a plain SMS, with ``RequestOptions(**options)`` when given."""
    extra = {"options": RequestOptions(**options)} if options else {}
    return build(ep.send_message, from_=FROM, to=TO, text="Hello", **extra)


def retrieve() -> WireRequest:
    return build(ep.retrieve_message, MESSAGE_ID)


# --- 1. build_request -----------------------------------------------------------------------


def test_send_is_a_post_with_a_compact_json_body_using_the_wire_name_from() -> None:
    wire = build(ep.send_message, from_=FROM, to=TO, text="Hello", media_urls=[PHOTO])
    assert (wire.method, wire.path) == ("POST", "/messages")
    assert wire.url == "https://api.telnyx.com/v2/messages"
    assert body_of(wire) == {"from": FROM, "to": TO, "text": "Hello", "media_urls": [PHOTO]}
    assert wire.data is not None
    assert b" " not in wire.data  # compact separators: no ", " or ": "
    assert b'"from":"+18005550101"' in wire.data
    assert b"from_" not in wire.data
    assert wire.message_type == "MMS"
    assert wire.sender == FROM


def test_send_without_media_is_an_sms() -> None:
    wire = send()
    assert wire.message_type == "SMS"
    assert wire.sender == FROM
    assert "media_urls" not in body_of(wire)


def test_send_body_keeps_non_ascii_text_as_utf8() -> None:
    text = "Grüße ☃ 你好"
    wire = build(ep.send_message, from_=FROM, to=TO, text=text)
    assert wire.data is not None
    assert text.encode("utf-8") in wire.data
    assert b"\\u" not in wire.data
    assert body_of(wire)["text"] == text


def test_send_at_datetime_is_sent_as_iso8601() -> None:
    when = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    wire = build(ep.send_message, from_=FROM, to=TO, text="Hi", send_at=when)
    assert body_of(wire)["send_at"] == "2030-01-01T12:00:00+00:00"


@pytest.mark.parametrize(
    ("endpoint", "kwargs", "path", "lane"),
    [
        (ep.send_message, {"from_": FROM, "to": TO, "text": "Hi"}, "/messages", ("SMS", FROM)),
        (
            ep.send_message,
            {"messaging_profile_id": PROFILE, "to": TO, "text": "Hi"},
            "/messages",
            ("SMS", PROFILE),
        ),
        (
            ep.send_message,
            {"from_": FROM, "messaging_profile_id": PROFILE, "to": TO, "media_urls": [PHOTO]},
            "/messages",
            ("MMS", FROM),
        ),
        (
            ep.send_number_pool,
            {"messaging_profile_id": PROFILE, "to": TO, "text": "Hi"},
            "/messages/number_pool",
            ("SMS", PROFILE),
        ),
        (
            ep.send_number_pool,
            {"messaging_profile_id": PROFILE, "to": TO, "media_urls": [PHOTO]},
            "/messages/number_pool",
            ("MMS", PROFILE),
        ),
        (
            ep.send_group_mms,
            {"from_": FROM, "to": [TO, "+18445550002"], "text": "Hi all"},
            "/messages/group_mms",
            ("MMS", FROM),
        ),
        (
            ep.send_long_code,
            {"from_": FROM, "to": TO, "text": "Hi"},
            "/messages/long_code",
            ("SMS", FROM),
        ),
        (
            ep.send_short_code,
            {"from_": "22000", "to": TO, "media_urls": [PHOTO]},
            "/messages/short_code",
            ("MMS", "22000"),
        ),
        (
            ep.send_alphanumeric,
            {"from_": "ACME", "to": TO, "text": "Hi", "messaging_profile_id": PROFILE},
            "/messages/alphanumeric_sender_id",
            ("SMS", "ACME"),
        ),
        (
            ep.send_whatsapp,
            {"from_": FROM, "to": TO, "whatsapp_message": {"type": "text", "text": {"body": "x"}}},
            "/messages/whatsapp",
            ("SMS", None),
        ),
    ],
    ids=[
        "from",
        "profile-only",
        "from-wins-over-profile",
        "number-pool-sms",
        "number-pool-mms",
        "group-mms-text-only",
        "long-code",
        "short-code-mms",
        "alphanumeric",
        "whatsapp",
    ],
)
def test_send_lanes(
    endpoint: Endpoint[Any, Any], kwargs: dict[str, Any], path: str, lane: tuple[str, str]
) -> None:
    """Each send's rate-limit type and sender lane, from its wire body."""
    wire = build(endpoint, **kwargs)
    assert wire.method == "POST"
    assert wire.url == BASE + path
    assert (wire.message_type, wire.sender) == lane


def test_group_mms_body_lists_every_recipient() -> None:
    wire = build(ep.send_group_mms, from_=FROM, to=[TO, "+18445550002"], text="Hi all")
    assert body_of(wire) == {"from": FROM, "to": [TO, "+18445550002"], "text": "Hi all"}


def test_retrieve_is_a_get_with_the_id_in_the_path_and_no_lane() -> None:
    wire = retrieve()
    assert (wire.method, wire.path) == ("GET", f"/messages/{MESSAGE_ID}")
    assert wire.url == f"{BASE}/messages/{MESSAGE_ID}"
    assert wire.data is None
    assert (wire.message_type, wire.sender) == (None, None)
    assert wire.retry_safe is True
    assert wire.idempotency_key is None
    assert dict(wire.headers) == FIXED


@pytest.mark.parametrize(
    ("endpoint", "args", "path"),
    [
        (ep.retrieve_phone_number_messaging, (FROM,), "/phone_numbers/%2B18005550101/messaging"),
        (ep.retrieve_hosted_number, ("a/b c?x#y",), "/messaging_hosted_numbers/a%2Fb%20c%3Fx%23y"),
        (
            ep.retrieve_autoresp_config,
            ("cfg 1",),
            "/messaging_profiles/p%2F1/autoresp_configs/cfg%201",
        ),
    ],
    ids=["plus", "reserved-characters", "two-params"],
)
def test_path_params_are_percent_encoded(
    endpoint: Endpoint[Any, Any], args: tuple[str, ...], path: str
) -> None:
    kwargs = {"profile_id": "p/1"} if endpoint is ep.retrieve_autoresp_config else {}
    wire = build(endpoint, *args, **kwargs)
    assert wire.path == path
    assert wire.url == BASE + path


def test_paged_list_query_uses_bracket_keys_and_true() -> None:
    wire = build(
        ep.list_optouts,
        page_number=2,
        page_size=1,
        filter={"messaging_profile_id": PROFILE, "from": FROM},
        created_at={"gte": datetime(2024, 1, 1, tzinfo=UTC)},
        redaction_enabled=True,
    )
    assert (wire.method, wire.path, wire.data) == ("GET", "/messaging_optouts", None)
    assert (wire.message_type, wire.sender) == (None, None)
    assert query_of(wire) == [
        ("page[number]", "2"),
        ("page[size]", "1"),
        ("filter[messaging_profile_id]", PROFILE),
        ("filter[from]", FROM),
        ("created_at[gte]", "2024-01-01T00:00:00+00:00"),
        ("redaction_enabled", "true"),
    ]
    # On the wire the brackets, "+" and ":" are percent-encoded (docs/wire.md §1.4).
    raw = urlsplit(wire.url).query
    assert "filter%5Bfrom%5D=%2B18005550101" in raw
    assert "created_at%5Bgte%5D=2024-01-01T00%3A00%3A00%2B00%3A00" in raw
    assert "[" not in raw
    assert wire.url.startswith(BASE + "/messaging_optouts?")


def test_query_false_nested_filters_and_enums() -> None:
    optouts = build(ep.list_optouts, redaction_enabled=False)
    assert optouts.url == BASE + "/messaging_optouts?redaction_enabled=false"
    profiles = build(ep.list_messaging_profiles, filter={"name": {"contains": "Acme Co"}})
    assert urlsplit(profiles.url).query == "filter%5Bname%5D%5Bcontains%5D=Acme%20Co"
    metrics = build(ep.retrieve_profile_metrics, PROFILE, time_frame=MetricsTimeFrame.H24)
    assert metrics.url == f"{BASE}/messaging_profiles/{PROFILE}/metrics?time_frame=24h"


def test_list_without_parameters_has_no_query_string() -> None:
    wire = build(ep.list_short_codes)
    assert wire.url == BASE + "/short_codes"


def test_enum_and_boolean_body_values() -> None:
    autoresp = build(
        ep.create_autoresp_config,
        PROFILE,
        op=AutorespOp.STOP,
        keywords=["STOP", "END"],
        country_code="US",
    )
    assert body_of(autoresp) == {"op": "stop", "keywords": ["STOP", "END"], "country_code": "US"}
    bulk = build(ep.create_bulk_update, messaging_profile_id="", numbers=[FROM], assign_only=False)
    assert body_of(bulk) == {"messaging_profile_id": "", "numbers": [FROM], "assign_only": False}
    assert bulk.data is not None
    assert b'"assign_only":false' in bulk.data


def test_post_without_idempotency_key_is_not_retry_safe() -> None:
    wire = send()
    assert wire.retry_safe is False
    assert wire.idempotency_key is None
    assert "Idempotency-Key" not in wire.headers
    assert dict(wire.headers) == FIXED


def test_idempotency_key_header_and_extra_headers_are_merged_into_a_copy() -> None:
    fixed = dict(FIXED)
    options = RequestOptions(idempotency_key="send-0001", extra_headers={"X-Trace-Id": "t-42"})
    request = make_request(
        ep.send_message, (), {"from_": FROM, "to": TO, "text": "Hi", "options": options}
    )
    wire = build_request(ep.send_message, request, BASE, fixed)
    assert wire.retry_safe is True
    assert wire.idempotency_key == "send-0001"
    assert dict(wire.headers) == {**FIXED, "X-Trace-Id": "t-42", "Idempotency-Key": "send-0001"}
    assert fixed == FIXED  # the client's fixed headers are shared by every call


def test_fixed_headers_as_the_client_holds_them() -> None:
    """The client's fixed headers are a read-only CIMultiDictProxy; a key still merges in."""
    wire = send(idempotency_key="send-0002")
    proxy_wire = build(
        ep.send_message,
        fixed=fixed_headers(FIXED),
        from_=FROM,
        to=TO,
        text="Hello",
        options=RequestOptions(idempotency_key="send-0002"),
    )
    assert dict(proxy_wire.headers) == dict(wire.headers)
    assert proxy_wire.headers["Idempotency-Key"] == "send-0002"
    assert proxy_wire.headers["Authorization"] == "Bearer KEY_TEST"


def test_extra_headers_alone_do_not_make_a_post_retry_safe() -> None:
    wire = send(extra_headers={"X-Trace-Id": "t-42", "Accept": "application/vnd.api+json"})
    assert wire.headers["X-Trace-Id"] == "t-42"
    assert wire.headers["Accept"] == "application/vnd.api+json"  # the call's header wins
    assert wire.retry_safe is False
    assert wire.idempotency_key is None
    assert "Idempotency-Key" not in wire.headers


@pytest.mark.parametrize(
    ("wire", "retry_safe", "data"),
    [
        (lambda: build(ep.update_hosted_number, "1293384261075731499"), True, b"{}"),
        (lambda: build(ep.cancel_scheduled_message, MESSAGE_ID), True, None),
        (
            lambda: build(ep.update_autoresp_config, "c1", profile_id=PROFILE, **_AUTORESP),
            True,
            b'{"op":"stop","keywords":["STOP"],"country_code":"US"}',
        ),
        (lambda: build(ep.regenerate_profile_secret, PROFILE), False, None),
        (lambda: build(ep.create_bulk_update, messaging_profile_id=PROFILE, numbers=[FROM]), False,
         b'{"messaging_profile_id":"4000eba1-a0c0-4563-9925-b25e842a7cb6","numbers":["+18005550101"]}'),
        (lambda: build(ep.schedule_message, from_=FROM, to=TO, text="x"), False,
         b'{"text":"x","to":"+18445550001","from":"+18005550101"}'),
    ],
    ids=["patch", "delete", "put", "post-no-body", "post-bulk", "post-schedule"],
)  # fmt: skip
def test_retry_safety_and_bodies_by_method(wire: Any, retry_safe: bool, data: bytes | None) -> None:
    built: WireRequest = wire()
    assert built.retry_safe is retry_safe
    if data is None:
        assert built.data is None
    else:
        assert json.loads(built.data or b"null") == json.loads(data)
    assert built.message_type is None


def test_extra_body_and_extra_query_are_merged() -> None:
    sent = send(extra_body={"new_field": {"a": 1}, "text": "overridden"})
    assert body_of(sent) == {"from": FROM, "to": TO, "text": "overridden", "new_field": {"a": 1}}
    listed = build(
        ep.list_optouts,
        page_size=5,
        options=RequestOptions(extra_query={"filter": {"new": "x"}, "flag": True}),
    )
    assert query_of(listed) == [("page[size]", "5"), ("filter[new]", "x"), ("flag", "true")]
    assert listed.data is None


def test_extra_query_alone_starts_the_query_string_and_joins_lists() -> None:
    wire = build(
        ep.retrieve_message,
        MESSAGE_ID,
        options=RequestOptions(extra_query={"include": ["cost", "errors"], "x": False}),
    )
    assert wire.url == f"{BASE}/messages/{MESSAGE_ID}?include=cost%2Cerrors&x=false"


def test_extra_body_with_media_makes_the_send_an_mms() -> None:
    """The lane is read from the body that goes on the wire, extras included."""
    wire = send(extra_body={"media_urls": [PHOTO]})
    assert wire.message_type == "MMS"
    assert body_of(wire)["media_urls"] == [PHOTO]


def test_extra_headers_replace_fixed_headers_whatever_their_case() -> None:
    wire = send(idempotency_key="send-0003", extra_headers={"user-agent": "my-app/1.0"})
    names = [name.lower() for name in wire.headers]
    assert names.count("user-agent") == 1
    assert CIMultiDict(wire.headers)["User-Agent"] == "my-app/1.0"


def test_extra_query_wins_over_an_argument_of_the_same_name() -> None:
    wire = build(
        ep.list_optouts, page_size=20, options=RequestOptions(extra_query={"page[size]": 50})
    )
    assert query_of(wire) == [("page[size]", "50")]


# --- 2. finisher / page_parser --------------------------------------------------------------


def ok(body: bytes, **extra_headers: str) -> HttpResponse:
    return HttpResponse(200, headers(X_Request_Id="req-1", **extra_headers), body)


#: A valid request of each endpoint these tests finish (its path names the id "m-1").
REQUESTS: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
    "send_message": ((), {"from_": FROM, "to": TO, "text": "hi"}),
    "send_long_code": ((), {"from_": FROM, "to": TO, "text": "hi"}),
    "send_number_pool": ((), {"messaging_profile_id": "p-1", "to": TO, "text": "hi"}),
    "retrieve_message": (("m-1",), {}),
    "cancel_scheduled_message": (("m-1",), {}),
    "retrieve_group_messages": (("m-1",), {}),
    "delete_autoresp_config": (("a-1",), {"profile_id": "p-1"}),
    "list_profile_metrics": ((), {}),
}


def finish(endpoint: Endpoint[Any, Any], response: HttpResponse) -> Any:
    """``finisher(endpoint)`` applied to a response of a valid request."""
    name = next(n for n, e in vars(ep).items() if e is endpoint)
    args, kwargs = REQUESTS[name]
    return finisher(endpoint)(response, make_request(endpoint, args, kwargs, name))


def test_send_response_is_structured_into_a_message() -> None:
    message: Message = finish(ep.send_message, ok(sample("message_send.json")))
    assert isinstance(message, Message)
    assert message.id == MESSAGE_ID
    assert message.direction == "outbound"
    assert message.type == "SMS"
    assert message.from_ is not None
    assert message.from_.phone_number == FROM
    assert [(r.phone_number, r.status) for r in message.to] == [(TO, MessageStatus.QUEUED)]
    assert message.text == "Your code is 123456"
    assert message.parts == 1
    assert message.cost is not None
    assert message.cost.amount == Decimal("0.0040")
    assert message.cost_breakdown is not None
    assert message.cost_breakdown.rate is not None
    assert message.cost_breakdown.rate.amount == Decimal("0.00300")
    assert message.received_at == datetime(2025, 7, 1, 15, 0, tzinfo=UTC)
    assert message.sent_at is None
    assert message.wait_seconds == 0.5
    assert message.tcr_campaign_billable is False


def test_every_send_finishes_the_same_recorded_message() -> None:
    response = ok(sample("message_send.json"))
    ids = {
        finish(endpoint, response).id
        for endpoint in (ep.send_long_code, ep.send_number_pool, ep.retrieve_message)
    }
    assert ids == {MESSAGE_ID}


def test_cancel_response_is_a_bare_message() -> None:
    message: Message = finish(ep.cancel_scheduled_message, ok(sample("message_cancelled.json")))
    assert message.id == "4031938e-60e4-4235-a8dd-0b1c55a23e7a"
    assert message.to[0].status == MessageStatus.CANCELLED
    assert message.cost is not None
    assert message.cost.amount == Decimal("0.0")
    assert message.cost_breakdown is None


def test_a_bare_message_is_not_found_under_the_data_envelope() -> None:
    with pytest.raises(APIResponseValidationError) as caught:
        finish(ep.retrieve_message, ok(sample("message_cancelled.json")))
    assert caught.value.field == "Message"


@pytest.mark.parametrize(("body", "got"), [(b"[1, 2]", "got list"), (b'"x"', "got str")])
def test_a_body_that_is_not_an_object_says_what_it_is(body: bytes, got: str) -> None:
    """A 2xx JSON array said "expected a JSON object for Message, got NoneType"."""
    with pytest.raises(APIResponseValidationError, match=f"with 'data', {got}"):
        finish(ep.retrieve_message, ok(body))


def test_group_messages_are_a_list() -> None:
    one = sample_json("message_send.json")["data"]
    two = {**one, "id": "4031938e-60e4-4235-a8dd-0b1c55a23e7a", "to": [{"phone_number": TO}]}
    body = json.dumps({"data": [one, two]}).encode()
    messages: list[Message] = finish(ep.retrieve_group_messages, ok(body))
    assert [m.id for m in messages] == [MESSAGE_ID, "4031938e-60e4-4235-a8dd-0b1c55a23e7a"]
    assert messages[1].to[0].status is None


@pytest.mark.parametrize(
    "body",
    [b'{"data": null}', b"{}", b"", b'{"data": {}}', b'{"data": "none"}', b"[]"],
    ids=["data-null", "no-data", "empty", "data-object", "data-string", "bare-list"],
)
def test_a_list_answer_that_is_not_a_list_is_an_error(body: bytes) -> None:
    """A non-paged list (group messages) answered with no list raises; it read as ``[]``,
    so a caller saw "no messages" instead of a broken answer."""
    with pytest.raises(APIResponseValidationError):
        finish(ep.retrieve_group_messages, ok(body))


def test_an_empty_body_of_a_bare_answer_is_an_error() -> None:
    """The metrics overview (no ``data`` envelope) from an empty 2xx body raises; it read as
    an overview of no profiles."""
    with pytest.raises(APIResponseValidationError, match="empty"):
        finish(ep.list_profile_metrics, ok(b""))
    assert finish(ep.list_profile_metrics, ok(b'{"data": []}')).data == ()


def test_a_malformed_answer_names_the_path_that_was_called() -> None:
    """The error's path has the ids of the call (which record answered badly), as a status
    error's does, not the endpoint's template."""
    with pytest.raises(APIResponseValidationError) as caught:
        finish(ep.retrieve_message, ok(b'{"data": {"id": 5, "parts": "one"}}'))
    assert caught.value.path == "/messages/m-1"
    assert str(caught.value).startswith("GET /messages/m-1 answered 200: ")
    with pytest.raises(APIResponseValidationError) as caught:
        finish(ep.retrieve_message, ok(b"<html>"))
    assert caught.value.path == "/messages/m-1"
    request = make_request(ep.list_profile_short_codes, ("p-1",), {})
    with pytest.raises(APIResponseValidationError) as caught:
        page_parser(ep.list_profile_short_codes)(request, ok(b'{"data": null}'), None)
    assert caught.value.path == "/messaging_profiles/p-1/short_codes"


def test_ok_string_of_a_delete_is_nothing() -> None:
    assert finish(ep.delete_autoresp_config, ok(b'"OK"')) is None


def test_malformed_message_names_the_field() -> None:
    body = sample("message_send_malformed.json")
    with pytest.raises(APIResponseValidationError) as caught:
        finish(ep.send_message, ok(body))
    error = caught.value
    assert error.field == "Message.parts"
    text = str(error)
    assert text.startswith("POST /messages answered 200: ")
    assert "Message.parts" in text
    assert "'one'" in text
    assert "the request was accepted" in text
    assert "(request_id=req-1)" in text
    assert (error.status, error.request_id, error.method, error.path) == (
        200,
        "req-1",
        "POST",
        "/messages",
    )
    assert error.accepted is True
    assert error.outcome_unknown is False
    assert error.body == body.decode()


@pytest.mark.parametrize(
    ("field", "value", "blamed"),
    [
        ("received_at", "yesterday", "Message.received_at"),
        ("wait_seconds", "soon", "Message.wait_seconds"),
        ("cost", {"amount": "a lot", "currency": "USD"}, "Message.cost.amount"),
        ("to", [{"status": "queued"}], "Message.to.phone_number"),
    ],
)
def test_other_malformed_fields_are_named(field: str, value: Any, blamed: str) -> None:
    doc = sample_json("message_send.json")
    doc["data"][field] = value
    with pytest.raises(APIResponseValidationError) as caught:
        finish(ep.send_message, ok(json.dumps(doc).encode()))
    assert caught.value.field == blamed
    assert blamed in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [sample("not_json_200.html"), sample("message_send.json")[:-40]],
    ids=["html", "truncated"],
)
def test_a_2xx_that_is_not_json(body: bytes) -> None:
    with pytest.raises(APIResponseValidationError) as caught:
        finish(ep.send_message, ok(body))
    error = caught.value
    assert error.field is None
    assert "the body is not JSON" in str(error)
    assert repr(body[:20])[2:-1] in str(error)
    assert error.status == 200
    assert error.request_id == "req-1"
    assert error.body == body[:1000].decode()  # the raw text, cut short


#: JSON nested deeper than the decoder's recursion limit: json raises RecursionError on it.
DEEP = b'{"data": {"id": "m", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"


def test_a_2xx_nested_too_deep_is_not_json() -> None:
    """A body too deeply nested to decode is read like any body that is not JSON (it was a
    bare RecursionError, which send_many reported as an unknown outcome)."""
    request = make_request(ep.list_optouts, (), {})
    for read in (
        lambda r: finish(ep.send_message, r),
        lambda r: page_parser(ep.list_optouts)(request, r, None),
        lambda r: decode(r, ep.send_message),
    ):
        with pytest.raises(APIResponseValidationError, match="the body is not JSON") as caught:
            read(ok(DEEP))
        assert caught.value.status == 200
        assert caught.value.body == DEEP[:1000].decode()


def test_paged_body_becomes_a_page_with_meta() -> None:
    request = make_request(ep.list_optouts, (), {"page_number": 2, "page_size": 2})
    response = ok(sample("optouts_page.json"))
    page, raw = page_parser(ep.list_optouts)(request, response, None)
    assert isinstance(page, Page)
    assert page.meta == PageMeta(page_number=2, page_size=2, total_pages=3, total_results=5)
    assert page.page_number == 2
    assert raw == sample_json("optouts_page.json")["data"]
    first, second = page.items
    assert isinstance(first, OptOut)
    assert (first.from_, first.to, first.keyword) == (FROM, TO, "STOP")
    assert first.created_at == datetime(2025, 4, 28, 12, 0, 38, 631252, tzinfo=UTC)
    assert (second.to, second.keyword, second.messaging_profile_id) == ("+18445550002", None, None)
    assert second.created_at == datetime(2025, 4, 29, 8, 15, 2, tzinfo=UTC)


def test_page_number_comes_from_the_caller_then_the_request_then_one() -> None:
    parse = page_parser(ep.list_optouts)
    response = ok(sample("optouts_page.json"))
    asked_two = make_request(ep.list_optouts, (), {"page_number": 2})
    plain = make_request(ep.list_optouts, (), {})
    assert parse(asked_two, response, 3)[0].page_number == 3
    assert parse(asked_two, response, None)[0].page_number == 2
    assert parse(plain, response, None)[0].page_number == 1


def test_page_without_meta_has_an_empty_meta() -> None:
    doc = sample_json("optouts_page.json")
    del doc["meta"]
    request = make_request(ep.list_optouts, (), {})
    page, _ = page_parser(ep.list_optouts)(request, ok(json.dumps(doc).encode()), None)
    assert page.meta == PageMeta()
    assert len(page.items) == 2


def test_malformed_page_item_or_meta_names_the_field() -> None:
    request = make_request(ep.list_optouts, (), {})
    parse = page_parser(ep.list_optouts)
    doc = sample_json("optouts_page.json")
    doc["data"][1]["created_at"] = "last tuesday"
    with pytest.raises(APIResponseValidationError) as item:
        parse(request, ok(json.dumps(doc).encode()), None)
    assert item.value.field == "OptOut.created_at"
    assert item.value.path == "/messaging_optouts"
    doc = sample_json("optouts_page.json")
    doc["meta"]["total_pages"] = "three"
    with pytest.raises(APIResponseValidationError) as meta:
        parse(request, ok(json.dumps(doc).encode()), None)
    assert meta.value.field == "PageMeta.total_pages"


def test_a_page_that_is_not_json() -> None:
    request = make_request(ep.list_optouts, (), {})
    with pytest.raises(APIResponseValidationError) as caught:
        page_parser(ep.list_optouts)(request, ok(sample("not_json_200.html")), None)
    assert "not JSON" in str(caught.value)
    assert caught.value.method == "GET"


def test_a_page_whose_data_is_an_object_is_malformed() -> None:
    doc = sample_json("optouts_page.json")
    doc["data"] = doc["data"][0]
    request = make_request(ep.list_optouts, (), {})
    with pytest.raises(APIResponseValidationError):
        page_parser(ep.list_optouts)(request, ok(json.dumps(doc).encode()), None)


def test_too_large_2xx_error() -> None:
    response = HttpResponse(200, headers(X_Request_Id="req-9"), b"", too_large=True)
    error = too_large(response, send(), 10_485_760)
    assert isinstance(error, APIResponseValidationError)
    assert "max_response_size (10485760 bytes)" in str(error)
    assert (error.status, error.request_id, error.method) == (200, "req-9", "POST")


# --- 3. status_error ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status", "cls", "code"),
    [
        ("error_429_10011.json", 429, RateLimitError, "10011"),
        ("error_429_40318.json", 429, QueueFullError, "40318"),
        ("error_422.json", 422, UnprocessableEntityError, "10015"),
        ("error_401.json", 401, AuthenticationError, "10009"),
        ("error_404.json", 404, NotFoundError, "10005"),
        ("error_409_40300.json", 409, ConflictError, "40300"),
        ("error_500.json", 500, InternalServerError, "10007"),
        ("error_500.json", 504, InternalServerError, "10007"),
    ],
)
def test_error_bodies_map_to_their_class(
    name: str, status: int, cls: type[APIStatusError], code: str
) -> None:
    body = sample(name)
    error = status_error(HttpResponse(status, headers(X_Request_Id="req-7"), body), send())
    assert type(error) is cls
    assert status_error_class(status, code) is cls
    assert error.status == status
    assert error.code == code
    assert error.title == sample_json(name)["errors"][0]["title"]
    assert error.request_id == "req-7"
    assert error.body == json.loads(body)
    assert (error.method, error.path) == ("POST", "/messages")
    assert f"[{code}]" in str(error)
    assert "on POST /messages" in str(error)


def test_422_keeps_the_error_details_and_points_at_the_field() -> None:
    error = status_error(HttpResponse(422, headers(), sample("error_422.json")), send())
    (detail,) = error.errors
    assert detail.detail == "The 'to' parameter must be a valid phone number."
    assert detail.source == {"pointer": "/to"}
    assert detail.meta == {"url": "https://developers.telnyx.com/docs/overview/errors/10015"}
    assert error.hint == "the field /to was rejected (errors[0].source.pointer)."


def test_queue_full_code_sent_as_a_number_is_still_queue_full() -> None:
    doc = sample_json("error_429_40318.json")
    doc["errors"][0]["code"] = 40318
    error = status_error(HttpResponse(429, headers(), json.dumps(doc).encode()), send())
    assert type(error) is QueueFullError
    assert error.code == "40318"


def test_a_bare_error_object_is_read_as_one_error() -> None:
    """Some opt-out and cancel errors come as one object, without the ``errors`` list: its
    code still picks the class (a bare 40318 is queue full, so it is never retried)."""
    body = json.dumps({"code": "40318", "title": "Queue full", "detail": "try later"}).encode()
    error = status_error(HttpResponse(429, headers(), body), send())
    assert type(error) is QueueFullError
    assert (error.code, error.title) == ("40318", "Queue full")
    delay = next_delay(failure(HttpResponse(429, headers(), body), error), 0, 2, True, Backoff())
    assert delay is None


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (502, b"<html><body>502 Bad Gateway</body></html>", InternalServerError),
        (503, b"", InternalServerError),
        (429, b"", RateLimitError),
        (418, b"[]", APIStatusError),
    ],
)
def test_error_bodies_that_are_not_telnyx_errors(
    status: int, body: bytes, cls: type[APIStatusError]
) -> None:
    error = status_error(HttpResponse(status, headers(), body), retrieve())
    assert type(error) is cls
    assert error.errors == []
    assert error.code is None
    assert error.body == (json.loads(body) if body[:1] == b"[" else body.decode() or None)


@pytest.mark.parametrize(
    ("status", "cls"), [(422, UnprocessableEntityError), (500, InternalServerError)]
)
def test_an_error_body_nested_too_deep_is_kept_as_text(
    status: int, cls: type[APIStatusError]
) -> None:
    """A 4xx/5xx body too deeply nested to decode still maps to its status class, with the
    body kept as text like any error body that is not JSON (it was a bare RecursionError)."""
    error = status_error(HttpResponse(status, headers(X_Request_Id="req-3"), DEEP), send())
    assert type(error) is cls
    assert (error.status, error.request_id, error.errors) == (status, "req-3", [])
    assert error.body == DEEP.decode()


@pytest.mark.parametrize(
    ("name", "value"),
    [("X-Request-Id", "a"), ("request-id", "b"), ("Telnyx-Request-Id", "c")],
)
def test_request_id_is_read_from_any_of_its_headers(name: str, value: str) -> None:
    response = HttpResponse(404, CIMultiDictProxy(CIMultiDict({name: value})), b"")
    assert status_error(response, retrieve()).request_id == value
    assert request_id(response.headers) == value


def test_request_id_absent() -> None:
    error = status_error(HttpResponse(404, headers(), sample("error_404.json")), retrieve())
    assert error.request_id is None
    assert "request_id" not in str(error)


@pytest.mark.parametrize(
    ("status", "response_headers", "retry_after"),
    [
        (429, {"x-ratelimit-reset": "7"}, 7.0),
        (429, {"X-RateLimit-Reset": "7", "Retry-After": "2"}, 2.0),
        (429, {"Retry-After-Ms": "1500", "Retry-After": "2"}, 1.5),
        (429, {"retry-after": "not-a-number", "x-ratelimit-reset": "4"}, 4.0),
        (503, {"Retry-After": "3"}, 3.0),
        (503, {"x-ratelimit-reset": "7"}, None),
        (429, {}, None),
    ],
)
def test_retry_after_comes_from_the_headers(
    status: int, response_headers: dict[str, str], retry_after: float | None
) -> None:
    response = HttpResponse(
        status, CIMultiDictProxy(CIMultiDict(response_headers)), sample("error_429_10011.json")
    )
    error = status_error(response, send())
    assert error.retry_after == retry_after


def test_retry_after_as_a_far_http_date() -> None:
    response = HttpResponse(
        503, headers(Retry_After="Wed, 21 Oct 2099 07:28:00 GMT"), sample("error_500.json")
    )
    error = status_error(response, retrieve())
    assert error.retry_after is not None
    assert error.retry_after > 365 * 24 * 3600


@pytest.mark.parametrize(
    ("status", "wire", "unknown"),
    [
        (500, send, True),
        (502, send, True),
        (504, send, True),
        (503, send, False),
        (429, send, False),
        # Retried (the key makes that safe), but the last 500 leaves the outcome open.
        (500, lambda: send(idempotency_key="send-0004"), True),
        (503, lambda: send(idempotency_key="send-0004"), False),
        (500, retrieve, False),
    ],
    ids=[
        "500-post",
        "502-post",
        "504-post",
        "503-post",
        "429-post",
        "500-post-key",
        "503-post-key",
        "500-get",
    ],
)
def test_outcome_unknown_only_for_a_5xx_that_may_have_been_accepted(
    status: int, wire: Any, unknown: bool
) -> None:
    error = status_error(HttpResponse(status, headers(), sample("error_500.json")), wire())
    assert error.outcome_unknown is unknown
    assert ("outcome unknown" in str(error)) is unknown


# --- 4. transport_error ---------------------------------------------------------------------

_REFUSED = TransportError("connection refused", reached=False, timeout=False)
_CONNECT_TIMEOUT = TransportError("connect timed out", reached=False, timeout=True)
_READ_TIMEOUT = TransportError("read timed out", reached=True, timeout=True)
_RESET = TransportError("connection reset by peer", reached=True, timeout=False)
_CLOSED = TransportError("the client is closed", reached=False, timeout=False, closed=True)
_HINT = "pass options=RequestOptions(idempotency_key=...) to make it retryable"


@pytest.mark.parametrize(
    ("exc", "cls", "unknown"),
    [
        (_REFUSED, APIConnectionError, False),
        (_CONNECT_TIMEOUT, APITimeoutError, False),
        (_READ_TIMEOUT, APITimeoutError, True),
        (_RESET, APIConnectionError, True),
        (_CLOSED, ClientClosedError, False),
    ],
    ids=["refused", "connect-timeout", "read-timeout", "reset", "closed"],
)
def test_transport_errors_map_to_connection_errors(
    exc: TransportError, cls: type[APIConnectionError], unknown: bool
) -> None:
    error = transport_error(exc, send())
    assert type(error) is cls
    assert error.outcome_unknown is unknown
    assert (error.method, error.path) == ("POST", "/messages")
    assert str(error).startswith("POST /messages: ")


def test_closed_client_message() -> None:
    exc = TransportError("the session is closed", reached=False, timeout=False, closed=True)
    error = transport_error(exc, retrieve())
    assert str(error) == f"GET /messages/{MESSAGE_ID}: not sent, the client was closed"


@pytest.mark.parametrize(
    ("reached", "wire", "hinted"),
    [
        (True, send, True),
        (True, lambda: send(idempotency_key="send-0005"), False),
        (False, send, False),
        (True, retrieve, False),
        (
            True,
            lambda: build(ep.create_messaging_profile, name="n", whitelisted_destinations=["US"]),
            False,
        ),
    ],
    ids=["reached-post", "reached-post-key", "not-reached-post", "reached-get", "reached-create"],
)
def test_idempotency_hint_only_when_a_send_may_have_been_accepted(
    reached: bool, wire: Any, hinted: bool
) -> None:
    built: WireRequest = wire()
    error = transport_error(TransportError("read timed out", reached=reached, timeout=True), built)
    assert (_HINT in str(error)) is hinted
    assert str(error).startswith(f"{built.method} {built.path}: read timed out.")
    # A POST that takes no key (creating a profile) is not told to pass one: it would be a
    # ValidationError. It is still told why it was not retried.
    if reached and not built.retry_safe:
        assert "so it was not retried" in str(error)


# --- 5. failure + next_delay: the retry policy ----------------------------------------------


class Case(NamedTuple):
    id: str
    wire: Any  # () -> WireRequest
    status: int | None  # None: no response, see transport
    expected: float | None
    body: str = "error_500.json"
    headers: dict[str, str] = {}  # noqa: RUF012  # read-only default
    transport: TransportError | None = None
    attempt: int = 0
    max_retries: int = 2
    backoff: Backoff = NO_JITTER


def _key() -> WireRequest:
    return send(idempotency_key="send-0006")


def _patch() -> WireRequest:
    return build(ep.update_hosted_number, "1293384261075731499", tags=["a"])


_RATE = "error_429_10011.json"
_FULL = "error_429_40318.json"

CASES = [
    # transport rows
    Case("refused-post", send, None, 0.5, transport=_REFUSED),
    Case("connect-timeout-post", send, None, 0.5, transport=_CONNECT_TIMEOUT),
    Case("read-timeout-post-no-key", send, None, None, transport=_READ_TIMEOUT),
    Case("reset-post-no-key", send, None, None, transport=_RESET),
    Case("read-timeout-post-key", _key, None, 0.5, transport=_READ_TIMEOUT),
    Case("read-timeout-get", retrieve, None, 0.5, transport=_READ_TIMEOUT),
    Case("reset-idempotent-patch", _patch, None, 0.5, transport=_RESET),
    Case("closed-get", retrieve, None, None, transport=_CLOSED),
    # 429
    Case("429-10011-reset-hint", send, 429, 7.0, _RATE, {"x-ratelimit-reset": "7"}),
    Case("429-10011-retry-after-ms", send, 429, 0.25, _RATE, {"Retry-After-Ms": "250"}),
    Case("429-10011-no-hint", send, 429, 0.5, _RATE),
    Case("429-10011-no-hint-2nd-retry", send, 429, 1.0, _RATE, attempt=1),
    Case("429-40318-post", send, 429, None, _FULL),
    Case("429-40318-key", _key, 429, None, _FULL, {"Retry-After": "1"}),
    Case("429-40318-get", retrieve, 429, None, _FULL),
    # 408 / 503 / other 5xx
    Case("408-post", send, 408, 0.5),
    Case("503-post", send, 503, 0.5),
    Case("503-post-retry-after", send, 503, 3.0, headers={"Retry-After": "3"}),
    Case("500-post-no-key", send, 500, None),
    Case("502-post-no-key", send, 502, None),
    Case("504-post-no-key", send, 504, None),
    Case("500-post-key", _key, 500, 0.5),
    Case("500-get", retrieve, 500, 0.5),
    Case("500-patch", _patch, 500, 0.5),
    # other 4xx
    Case("422-post", send, 422, None, "error_422.json"),
    Case("404-get", retrieve, 404, None, "error_404.json"),
    Case("409-post-key", _key, 409, None, "error_409_40300.json"),
    # x-should-retry overrides the status rows
    Case("should-retry-false-503", retrieve, 503, None, headers={"x-should-retry": "false"}),
    Case("should-retry-false-429", send, 429, None, _RATE, {"X-Should-Retry": "False"}),
    Case("should-retry-true-500-post", send, 500, 0.5, headers={"X-Should-Retry": "TRUE"}),
    Case("should-retry-true-400", retrieve, 400, 0.5, "error_422.json", {"x-should-retry": "true"}),
    Case("should-retry-other-500-post", send, 500, None, headers={"x-should-retry": "maybe"}),
    Case("should-retry-other-503", send, 503, 0.5, headers={"x-should-retry": "1"}),
    # hints longer than max_wait give up at once
    Case("hint-above-max-wait", send, 429, None, _RATE, {"x-ratelimit-reset": "61"}),
    Case("hint-at-max-wait", send, 429, 60.0, _RATE, {"x-ratelimit-reset": "60"}),
    Case(
        "hint-above-custom-max-wait",
        retrieve,
        503,
        None,
        headers={"Retry-After": "6"},
        backoff=Backoff(jitter=0, max_wait=5),
    ),
    Case(
        "hint-date-far-away",
        retrieve,
        503,
        None,
        headers={"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"},
    ),
    # retries exhausted
    Case("attempt-at-max", retrieve, 503, None, attempt=2),
    Case("attempt-past-max", retrieve, 503, None, attempt=3),
    Case("no-retries", retrieve, 503, None, max_retries=0),
    Case("no-retries-refused", send, None, None, transport=_REFUSED, max_retries=0),
    Case("last-retry-allowed", retrieve, 503, 1.0, attempt=1),
    # backoff doubles up to max
    Case("backoff-3", retrieve, 503, 4.0, attempt=3, max_retries=10),
    Case("backoff-capped", retrieve, 503, 8.0, attempt=6, max_retries=10),
    Case(
        "backoff-custom",
        retrieve,
        503,
        0.4,
        attempt=2,
        max_retries=5,
        backoff=Backoff(initial=0.1, max=2.0, jitter=0),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_retry_policy(case: Case) -> None:
    wire: WireRequest = case.wire()
    response: HttpResponse | None
    error: Exception
    if case.status is None:
        assert case.transport is not None
        response, error = None, transport_error(case.transport, wire)
    else:
        response = HttpResponse(
            case.status, CIMultiDictProxy(CIMultiDict(case.headers)), sample(case.body)
        )
        error = status_error(response, wire)
    delay = next_delay(
        failure(response, error), case.attempt, case.max_retries, wire.retry_safe, case.backoff
    )
    assert delay == case.expected


def test_failure_of_a_status_error_carries_code_hint_and_directive() -> None:
    response = HttpResponse(
        429,
        headers(X_RateLimit_Reset="7", X_Should_Retry="true"),
        sample("error_429_40318.json"),
    )
    assert failure(response, status_error(response, send())) == Failure(
        429, code="40318", hint=7.0, should_retry="true"
    )


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (_REFUSED, Failure(None, reached=False)),
        (_READ_TIMEOUT, Failure(None, reached=True)),
        (_CLOSED, Failure(None, final=True)),
    ],
    ids=["refused", "read-timeout", "closed"],
)
def test_failure_of_a_transport_error(exc: TransportError, expected: Failure) -> None:
    assert failure(None, transport_error(exc, send())) == expected


def test_a_too_large_2xx_is_never_retried() -> None:
    response = HttpResponse(200, {}, b"", too_large=True)
    for wire in (send(), retrieve()):
        error = too_large(response, wire, 10_485_760)
        assert failure(response, error) == Failure(200, final=True)
        assert next_delay(failure(response, error), 0, 2, wire.retry_safe, NO_JITTER) is None


def test_an_unreadable_2xx_is_never_retried() -> None:
    """A 2xx whose body could not be structured was accepted: retrying could send twice."""
    response = ok(sample("message_send_malformed.json"))
    with pytest.raises(APIResponseValidationError) as caught:
        finish(ep.send_message, response)
    assert failure(response, caught.value) == Failure(200, final=True)
    assert next_delay(failure(response, caught.value), 0, 2, True, NO_JITTER) is None


def test_a_bare_error_object_with_only_a_title_is_read_as_one_error() -> None:
    """The bare form (no ``errors`` list) is recognised by its ``title`` too, not only by a
    ``code``: its title and detail reach the exception (not errors == [], losing them)."""
    body = json.dumps({"title": "Invalid opt-out", "detail": "the number is not opted out"})
    error = status_error(HttpResponse(422, headers(), body.encode()), send())
    assert type(error) is UnprocessableEntityError
    (detail,) = error.errors
    assert (detail.code, detail.title) == (None, "Invalid opt-out")
    assert detail.detail == "the number is not opted out"
    assert error.title == "Invalid opt-out"


def test_the_first_error_code_picks_the_class_and_the_retry() -> None:
    """With several error objects, the first one's code decides (errors.status_error_class):
    a 429 whose first error is 40318 is queue full (never retried) even when a later one is
    10011, and the other way round it is an ordinary rate limit (retried)."""
    full_first = {"errors": [{"code": "40318", "title": "Queue full"}, {"code": "10011"}]}
    rate_first = {"errors": [{"code": "10011", "title": "Too many"}, {"code": "40318"}]}
    response = HttpResponse(429, headers(), json.dumps(full_first).encode())
    error = status_error(response, send())
    assert type(error) is QueueFullError
    assert next_delay(failure(response, error), 0, 2, True, NO_JITTER) is None

    response = HttpResponse(429, headers(), json.dumps(rate_first).encode())
    error = status_error(response, send())
    assert type(error) is RateLimitError
    assert next_delay(failure(response, error), 0, 2, True, NO_JITTER) == 0.5


def test_a_hint_of_zero_gets_the_backoff_not_an_immediate_retry() -> None:
    """``Retry-After: 0`` (or ``retry-after-ms: 0``) is a hint of 0 s: the retry still waits
    the backoff, so a server saying "now" is not hammered (_retry.next_delay)."""
    for hint in (
        headers(Retry_After="0"),
        headers(Retry_After_Ms="0"),
        headers(Retry_After="-5"),
    ):
        response = HttpResponse(503, hint, b"")
        error = status_error(response, retrieve())
        assert error.retry_after == 0.0
        assert failure(response, error) == Failure(503, hint=0.0)
        assert next_delay(failure(response, error), 0, 2, True, NO_JITTER) == 0.5
        assert next_delay(failure(response, error), 1, 2, True, NO_JITTER) == 1.0
