"""Client-side validation: bad arguments raise ValidationError naming the wire field, before I/O."""

from __future__ import annotations

import gc
import logging
import math
import traceback
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any, Protocol

import anyio
import anyio.to_thread
import pytest
from aiohttp import web

import telnyx_msg
from telnyx_msg import (
    RedisDeliveryTracker,
    RedisRateLimits,
    RedisWebhookQueue,
    RequestOptions,
    ValidationError,
)
from telnyx_msg._convert import parse_datetime
from telnyx_msg._requests import CreateMessagingProfile, SendMessage
from telnyx_msg.receivers import asgi_app
from telnyx_msg.webhooks import MemoryReplayStore, RedisReplayStore, WebhookVerifier
from tests.conftest import RecordingLimiter, message_json

pytestmark = pytest.mark.anyio

FROM = "+18005550101"
TO = "+18445550001"
PROFILE = "4000eba1-a0c0-4563-9925-b25e842a7cb6"
BAD_NUMBERS = [
    "3125550001",
    "+1 312 555 0001",
    "+1-312-555-0001",
    "(312) 555-0001",
    "+0123",
    "+1234567890123456",  # 16 digits: E.164 has at most 15
]
MESSAGE = {
    "record_type": "message",
    "id": "40385f64-5717-4562-b3fc-2c963f66afa6",
    "direction": "outbound",
    "type": "SMS",
    "to": [{"phone_number": TO, "status": "queued"}],
    "text": "Hello",
}


class Recorded(Protocol):
    """What the test server recorded about one request."""

    method: str
    path: str
    headers: dict[str, str]

    @property
    def json(self) -> Any: ...


class Server(Protocol):
    """The ``api_server`` fixture's server."""

    base_url: str
    requests: list[Recorded]


StartServer = Callable[[Callable[[web.Request], Awaitable[web.StreamResponse]]], Awaitable[Server]]
Call = Callable[[], Awaitable[object]]


async def answer(request: web.Request) -> web.Response:
    """Answer every request with a queued message (used only by the accepted cases)."""
    return web.json_response({"data": MESSAGE})


@pytest.fixture
async def server(api_server: StartServer) -> Server:
    """A recording server on 127.0.0.1."""
    return await api_server(answer)


@pytest.fixture
async def client(server: Server) -> AsyncIterator[telnyx_msg.AsyncClient]:
    """An AsyncClient pointed at the recording server, without client-side rate limits."""
    async with telnyx_msg.AsyncClient("test-key", base_url=server.base_url, rate_limits=None) as c:
        yield c


async def rejected(server: Server, call: Call, field: str) -> ValidationError:
    """Await ``call``, expect ValidationError on ``field``, and check nothing was sent."""
    with pytest.raises(ValidationError) as info:
        await call()
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert server.requests == []
    return info.value


async def accepted(server: Server, call: Call) -> Any:
    """Await ``call`` and return the JSON body of the one request it sent."""
    await call()
    assert len(server.requests) == 1
    return server.requests[0].json


def headers_of(recorded: Recorded) -> dict[str, str]:
    """Request headers with lower-cased names."""
    return {k.lower(): v for k, v in recorded.headers.items()}


# --- addresses ------------------------------------------------------------------------------


@pytest.mark.parametrize("number", BAD_NUMBERS)
async def test_send_rejects_bad_to(
    client: telnyx_msg.AsyncClient, server: Server, number: str
) -> None:
    """messages.send rejects a `to` that is neither E.164 nor a short code."""
    await rejected(server, lambda: client.messages.send(to=number, from_=FROM, text="Hi"), "to")


@pytest.mark.parametrize(
    ("number", "hint"),
    [
        ("1.3125550002E+10", "scientific notation: format that column as text"),
        ("1,31256E+10", "scientific notation"),
        ("13125550000", "a spreadsheet drops the '+' of a column not formatted as text"),
        ("+1 (312) 555-0000", "remove spaces, dashes and parentheses"),
        # Without the '+' the hint's fix alone (5550123) would pass as a short code.
        ("555-0123", "and start with '+' and the country code"),
        ('="+13125550000"', "a spreadsheet formula: save the cell's value"),
        ("'+13125550000", "remove the leading ' (a spreadsheet's mark for text)"),
    ],
)
async def test_a_number_a_spreadsheet_mangled_gets_a_hint(
    client: telnyx_msg.AsyncClient, server: Server, number: str, hint: str
) -> None:
    """What Excel does to phone numbers (scientific notation, a dropped '+') is named in the
    error, so a bulk user knows what to fix in the file."""
    error = await rejected(
        server, lambda: client.messages.send(to=number, from_=FROM, text="Hi"), "to"
    )
    assert hint in str(error)


@pytest.mark.parametrize(
    ("method", "kwargs", "field"),
    [
        ("send", {"to": None, "from_": FROM, "text": "Hi"}, "to"),
        ("send_long_code", {"to": TO, "from_": None, "text": "Hi"}, "from"),
        (
            "send_number_pool",
            {"to": TO, "messaging_profile_id": None, "text": "Hi"},
            "messaging_profile_id",
        ),
        ("send_group_mms", {"to": None, "from_": FROM, "text": "Hi"}, "to"),
        (
            "send_with_alphanumeric_sender",
            {"to": TO, "from_": "Acme", "text": None, "messaging_profile_id": PROFILE},
            "text",
        ),
    ],
)
async def test_required_argument_given_as_none(
    client: telnyx_msg.AsyncClient, server: Server, method: str, kwargs: dict[str, Any], field: str
) -> None:
    """None for a required argument is not "omit it": it is rejected before any request."""
    send = getattr(client.messages, method)
    error = await rejected(server, lambda: send(**kwargs), field)
    assert "required" in str(error)


async def test_required_path_id_given_as_none(
    client: telnyx_msg.AsyncClient, server: Server
) -> None:
    """Keyword path ids are required too (autoresp configs take profile_id by keyword)."""
    await rejected(
        server,
        lambda: client.messaging_profiles.autoresp_configs.retrieve(
            "cfg-1",
            profile_id=None,  # type: ignore[arg-type]
        ),
        "profile_id",
    )


@pytest.mark.parametrize("segment", [".", ".."])
async def test_a_dot_segment_is_not_an_id(
    client: telnyx_msg.AsyncClient, server: Server, segment: str
) -> None:
    """``.`` and ``..`` as ids are refused: a proxy normalising the path would turn
    ``DELETE /messaging_profiles/p/autoresp_configs/..`` into deleting the profile."""
    error = await rejected(
        server,
        lambda: client.messaging_profiles.autoresp_configs.delete(segment, profile_id="p"),
        "autoresp_cfg_id",
    )
    assert "relative path segment" in str(error)
    await rejected(
        server,
        lambda: client.messaging_profiles.autoresp_configs.delete("cfg", profile_id=segment),
        "profile_id",
    )
    await rejected(server, lambda: client.messages.retrieve(segment), "id")


@pytest.mark.parametrize("number", BAD_NUMBERS)
@pytest.mark.parametrize("method", ["send", "send_long_code"])
async def test_send_rejects_bad_from(
    client: telnyx_msg.AsyncClient, server: Server, method: str, number: str
) -> None:
    """A non-E.164 `from` is rejected by messages.send and messages.send_long_code."""
    send = getattr(client.messages, method)
    await rejected(server, lambda: send(to=TO, from_=number, text="Hi"), "from")


@pytest.mark.parametrize("number", BAD_NUMBERS)
async def test_group_mms_rejects_bad_recipient(
    client: telnyx_msg.AsyncClient, server: Server, number: str
) -> None:
    """send_group_mms rejects a list holding one non-E.164 recipient."""
    await rejected(
        server, lambda: client.messages.send_group_mms(from_=FROM, to=[TO, number], text="Hi"), "to"
    )


async def test_group_mms_accepts_short_code_recipients(
    client: telnyx_msg.AsyncClient, server: Server
) -> None:
    """send_group_mms takes short codes among its recipients (the definition's ToNumber)."""
    body = await accepted(
        server, lambda: client.messages.send_group_mms(from_=FROM, to=[TO, "12345"], text="Hi")
    )
    assert body == {"from": FROM, "to": [TO, "12345"], "text": "Hi"}


async def test_send_accepts_short_code_to(client: telnyx_msg.AsyncClient, server: Server) -> None:
    """messages.send accepts a short code `to` and sends it as given."""
    body = await accepted(server, lambda: client.messages.send(to="12345", from_=FROM, text="Hi"))
    assert body == {"to": "12345", "from": FROM, "text": "Hi"}


@pytest.mark.parametrize(
    ("method", "kwargs", "field"),
    [
        ("send_long_code", {"from_": "12345", "to": TO, "text": "Hi"}, "from"),
        (
            "send_whatsapp",
            {
                "from_": FROM,
                "to": "12345",
                "whatsapp_message": {"type": "text", "text": {"body": "Hi"}},
            },
            "to",
        ),
    ],
    ids=["long_code-from", "whatsapp-to"],
)
async def test_short_code_rejected_where_e164_only(
    client: telnyx_msg.AsyncClient, server: Server, method: str, kwargs: dict[str, Any], field: str
) -> None:
    """Endpoints that take only E.164 numbers reject a short code."""
    send = getattr(client.messages, method)
    await rejected(server, lambda: send(**kwargs), field)


async def test_alphanumeric_sender_accepted(client: telnyx_msg.AsyncClient, server: Server) -> None:
    """A valid alphanumeric sender id ("MyCompany") is sent."""
    body = await accepted(
        server,
        lambda: client.messages.send_with_alphanumeric_sender(
            from_="MyCompany", to=TO, text="Hi", messaging_profile_id=PROFILE
        ),
    )
    assert body == {"from": "MyCompany", "to": TO, "text": "Hi", "messaging_profile_id": PROFILE}


async def test_send_accepts_alphanumeric_from(
    client: telnyx_msg.AsyncClient, server: Server
) -> None:
    """messages.send also accepts an alphanumeric `from`."""
    body = await accepted(server, lambda: client.messages.send(to=TO, from_="MyCompany", text="Hi"))
    assert body["from"] == "MyCompany"


@pytest.mark.parametrize("sender", ["TooLongSenderName", "!!!", ""])
async def test_alphanumeric_sender_rejected(
    client: telnyx_msg.AsyncClient, server: Server, sender: str
) -> None:
    """An over-long or symbol-only alphanumeric sender id is rejected as `from`."""
    await rejected(
        server,
        lambda: client.messages.send_with_alphanumeric_sender(
            from_=sender, to=TO, text="Hi", messaging_profile_id=PROFILE
        ),
        "from",
    )


@pytest.mark.parametrize("sender", ["TooLongSenderName", "!!!"])
async def test_create_alphanumeric_sender_id_rejected(
    client: telnyx_msg.AsyncClient, server: Server, sender: str
) -> None:
    """alphanumeric_sender_ids.create checks the sender id format too."""
    await rejected(
        server,
        lambda: client.alphanumeric_sender_ids.create(
            alphanumeric_sender_id=sender, messaging_profile_id=PROFILE
        ),
        "alphanumeric_sender_id",
    )


# --- content --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\n\t"], ids=["empty", "spaces", "whitespace"])
async def test_empty_text_rejected(
    client: telnyx_msg.AsyncClient, server: Server, text: str
) -> None:
    """Empty or whitespace-only `text` is rejected."""
    await rejected(server, lambda: client.messages.send(to=TO, from_=FROM, text=text), "text")


async def test_empty_text_rejected_alphanumeric(
    client: telnyx_msg.AsyncClient, server: Server
) -> None:
    """The alphanumeric send rejects empty `text` as well."""
    await rejected(
        server,
        lambda: client.messages.send_with_alphanumeric_sender(
            from_="MyCompany", to=TO, text=" ", messaging_profile_id=PROFILE
        ),
        "text",
    )


@pytest.mark.parametrize("extra", [{}, {"media_urls": []}], ids=["nothing", "empty-media"])
async def test_send_needs_text_or_media(
    client: telnyx_msg.AsyncClient, server: Server, extra: dict[str, Any]
) -> None:
    """A send with neither text nor media_urls is rejected (field `text`)."""
    await rejected(server, lambda: client.messages.send(to=TO, from_=FROM, **extra), "text")


async def test_media_only_send_accepted(client: telnyx_msg.AsyncClient, server: Server) -> None:
    """A send with media_urls and no text is valid."""
    urls = ["https://example.com/a.jpg"]
    body = await accepted(server, lambda: client.messages.send(to=TO, from_=FROM, media_urls=urls))
    assert body == {"to": TO, "from": FROM, "media_urls": urls}


async def test_media_urls_bare_string_rejected(
    client: telnyx_msg.AsyncClient, server: Server
) -> None:
    """media_urls="http://x" (a bare string, not a list) is rejected."""
    await rejected(
        server,
        lambda: client.messages.send(to=TO, from_=FROM, text="Hi", media_urls="http://x"),
        "media_urls",
    )


@pytest.mark.parametrize(
    ("kwargs", "field", "says"),
    [
        ({"media_urls": ["./photo.jpg"]}, "media_urls", "upload a local file first"),
        ({"media_urls": ["https://x.test/a.jpg", "ftp://x.test/b.jpg"]}, "media_urls", "ftp://"),
        ({"webhook_url": "example.com/hooks"}, "webhook_url", "not an http(s) URL"),
        ({"webhook_failover_url": ""}, "webhook_failover_url", "not an http(s) URL"),
        ({"media_urls": ["https:///receipt.png"]}, "media_urls", "no valid host name"),
        ({"media_urls": ["https://cdn example.com/a.png"]}, "media_urls", "no valid host name"),
        ({"webhook_url": "https://[::1/hooks"}, "webhook_url", "no valid host name"),
        # urlsplit drops tabs and line breaks, so the host looked fine; the URL went out as is
        ({"media_urls": ["https://cdn\n.example.com/a.png"]}, "media_urls", "control character"),
    ],
)
async def test_urls_telnyx_must_fetch_or_call_are_http_urls(
    client: telnyx_msg.AsyncClient,
    server: Server,
    kwargs: dict[str, Any],
    field: str,
    says: str,
) -> None:
    """Media and webhook URLs are absolute http(s) URLs (the definition's format "url"): a
    local path or a bare host name is refused before anything is sent."""
    error = await rejected(
        server, lambda: client.messages.send(to=TO, from_=FROM, text="Hi", **kwargs), field
    )
    assert says in str(error)
    # Uploading a file is advice for media only (it followed a bad webhook URL too).
    assert ("upload a local file" in str(error)) is (field == "media_urls" and "./" in str(error))


async def test_media_and_webhook_urls_with_upper_case_schemes_are_sent(
    client: telnyx_msg.AsyncClient, server: Server
) -> None:
    """URL schemes are case-insensitive."""
    urls = ["HTTPS://example.com/a.jpg"]
    hook = "Http://example.com/hooks"
    body = await accepted(
        server,
        lambda: client.messages.send(to=TO, from_=FROM, media_urls=urls, webhook_url=hook),
    )
    assert (body["media_urls"], body["webhook_url"]) == (urls, hook)


@pytest.mark.parametrize("count", [0, 9])
async def test_group_mms_recipient_count(
    client: telnyx_msg.AsyncClient, server: Server, count: int
) -> None:
    """Group MMS needs 1 to 8 recipients."""
    to = [f"+1844555{i:04d}" for i in range(count)]
    await rejected(
        server, lambda: client.messages.send_group_mms(from_=FROM, to=to, text="Hi"), "to"
    )


async def test_group_mms_eight_recipients_accepted(
    client: telnyx_msg.AsyncClient, server: Server
) -> None:
    """Group MMS with 8 recipients is sent as a JSON list."""
    to = [f"+1844555{i:04d}" for i in range(8)]
    body = await accepted(
        server, lambda: client.messages.send_group_mms(from_=FROM, to=to, text="Hi")
    )
    assert body["to"] == to


# --- send_at ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "send_at",
    [
        datetime(2030, 1, 1, 12),
        "2030-01-01T12:00:00",
        "garbage",
        "2030-13-01T12:00:00Z",
        5,
        # Not RFC 3339 (the definition's format date-time), and the string goes out as given:
        # these were checked stripped or leniently, then sent padded or in another shape.
        " 2030-01-01T12:00:00Z",
        "2030-01-01T12:00:00Z\n",
        "2030-01-01T12:00:00 Z",
        "2030-01-01 12:00:00Z",
        "20300101T120000Z",
        "2030-01-01T12:00:00+0000",
    ],
    ids=[
        "naive-datetime",
        "no-offset",
        "garbage",
        "bad-month",
        "int",
        "leading-space",
        "trailing-newline",
        "space-before-z",
        "space-separator",
        "basic-format",
        "offset-without-colon",
    ],
)
@pytest.mark.parametrize("method", ["send", "schedule"])
async def test_send_at_rejected(
    client: telnyx_msg.AsyncClient, server: Server, method: str, send_at: Any
) -> None:
    """send_at must be an aware datetime or an RFC 3339 string (with an offset or Z)."""
    send = getattr(client.messages, method)
    await rejected(server, lambda: send(to=TO, from_=FROM, text="Hi", send_at=send_at), "send_at")


@pytest.mark.parametrize(
    "send_at",
    [
        datetime(2030, 1, 1, 12, tzinfo=timezone.utc),
        "2030-01-01T12:00:00Z",
        "2030-01-01T14:00:00.250+02:00",
        "2030-01-01t12:00:00z",  # (RFC 3339 allows lower case; Python's parser did not)
    ],
    ids=["aware-datetime", "z-string", "offset-and-fraction", "lower-case-t-and-z"],
)
@pytest.mark.parametrize("method", ["send", "schedule"])
async def test_send_at_accepted(
    client: telnyx_msg.AsyncClient, server: Server, method: str, send_at: datetime | str
) -> None:
    """An aware datetime or a Z string is accepted and sent as an ISO 8601 string."""
    send = getattr(client.messages, method)
    body = await accepted(server, lambda: send(to=TO, from_=FROM, text="Hi", send_at=send_at))
    assert isinstance(body["send_at"], str)
    utc = parse_datetime(body["send_at"].upper()).replace(microsecond=0)
    assert utc == datetime(2030, 1, 1, 12, tzinfo=timezone.utc)
    if isinstance(send_at, datetime):
        assert body["send_at"] == "2030-01-01T12:00:00+00:00"


# --- enums ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"type": "TEXT"}, "type"),
        ({"type": "RCS"}, "type"),
        ({"encoding": "utf8"}, "encoding"),
        ({"encoding": "GSM-7"}, "encoding"),
    ],
    ids=["type-TEXT", "type-RCS", "encoding-utf8", "encoding-GSM-7"],
)
async def test_bad_enum_values(
    client: telnyx_msg.AsyncClient, server: Server, kwargs: dict[str, Any], field: str
) -> None:
    """`type` and `encoding` accept only their documented values."""
    await rejected(
        server, lambda: client.messages.send(to=TO, from_=FROM, text="Hi", **kwargs), field
    )


async def test_good_enum_values(client: telnyx_msg.AsyncClient, server: Server) -> None:
    """Documented `type` and `encoding` values are sent."""
    body = await accepted(
        server,
        lambda: client.messages.send(to=TO, from_=FROM, text="Hi", type="SMS", encoding="ucs2"),
    )
    assert body["type"] == "SMS"
    assert body["encoding"] == "ucs2"


@pytest.mark.parametrize("subject", [5, ["Receipt"], {"s": 1}, True])
@pytest.mark.parametrize("method", ["send", "send_group_mms"])
async def test_subject_is_a_string(
    client: telnyx_msg.AsyncClient, server: Server, method: str, subject: Any
) -> None:
    """`subject` (a string in the definition) had no check: `subject=5` went out as 5."""
    send = getattr(client.messages, method)
    to = [TO] if method == "send_group_mms" else TO
    await rejected(server, lambda: send(to=to, from_=FROM, text="Hi", subject=subject), "subject")


async def test_an_explicit_mms_type_takes_the_mms_account_lane(server: Server) -> None:
    """`type="MMS"` with text only is an MMS (the definition: "The protocol for sending the
    message, either SMS or MMS"): it took the SMS account lane, whose rate is higher."""
    limiter = RecordingLimiter()
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=limiter) as client:
        await client.messages.send(to=TO, from_=FROM, text="Hi", type="MMS")
        await client.messages.send(to=TO, from_=FROM, text="Hi", type="SMS")
    assert limiter.taken == [(FROM, "MMS"), (FROM, "SMS")]


# --- extra headers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "field"),
    [
        ({"X-N": 5}, "extra_headers[X-N]"),
        ({"X-N": None}, "extra_headers[X-N]"),
        ({"X-N": "a\r\nX-Evil: 1"}, "extra_headers[X-N]"),
        ({"X-N": "a\nb"}, "extra_headers[X-N]"),
        ({"X-N": "a\x00b"}, "extra_headers[X-N]"),
        ({"X-N": "caf\udce9"}, "extra_headers[X-N]"),
        ({5: "x"}, "extra_headers"),
        ({"X N:": "1"}, "extra_headers"),
        ({"": "1"}, "extra_headers"),
    ],
    ids=[
        "int-value",
        "none-value",
        "crlf-value",
        "lf-value",
        "nul-value",
        "lone-surrogate-value",
        "int-name",
        "not-a-token-name",
        "empty-name",
    ],
)
async def test_extra_headers_must_be_text_headers(
    client: telnyx_msg.AsyncClient, server: Server, headers: Any, field: str
) -> None:
    """A header name is an HTTP token and a value is text on one line: anything else is a
    ValidationError naming the header when RequestOptions is built (it was a bare TypeError,
    ValueError or AttributeError from aiohttp or the check, or a 400 from the server)."""
    with pytest.raises(ValidationError) as built:
        RequestOptions(extra_headers=headers)
    assert built.value.field == field
    await rejected(
        server,
        lambda: client.messages.send(
            to=TO, from_=FROM, text="Hi", options=RequestOptions(extra_headers=headers)
        ),
        field,
    )


async def test_extra_headers_must_be_a_mapping() -> None:
    """A list of pairs is not read as headers (only its first items were checked)."""
    pairs: Any = [("X-N", "1")]
    with pytest.raises(ValidationError) as caught:
        RequestOptions(extra_headers=pairs)
    assert caught.value.field == "extra_headers"


async def test_extra_headers_text_values_are_sent(
    client: telnyx_msg.AsyncClient, server: Server
) -> None:
    """What a header value may hold: any text on one line, tabs and non-ASCII included."""
    await accepted(
        server,
        lambda: client.messages.send(
            to=TO,
            from_=FROM,
            text="Hi",
            options=RequestOptions(extra_headers={"X-Trace-Id": "a\tb", "X-Name": "é"}),
        ),
    )
    sent = headers_of(server.requests[0])
    assert (sent["x-trace-id"], sent["x-name"]) == ("a\tb", "é")


# --- idempotency keys -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["", "k" * 256, "has space", "ключ", "new\nline"],
    ids=["empty", "256-chars", "space", "cyrillic", "newline"],
)
async def test_idempotency_key_format_rejected(
    client: telnyx_msg.AsyncClient, server: Server, key: str
) -> None:
    """An idempotency key outside ^[A-Za-z0-9_:-]{1,255}$ is rejected."""
    await rejected(
        server,
        lambda: client.messages.send(
            to=TO, from_=FROM, text="Hi", options=RequestOptions(idempotency_key=key)
        ),
        "idempotency_key",
    )


@pytest.mark.parametrize("key", ["abc_123:XYZ-9", "k" * 255])
async def test_idempotency_key_sent(
    client: telnyx_msg.AsyncClient, server: Server, key: str
) -> None:
    """A valid idempotency key is sent as the Idempotency-Key header."""
    await accepted(
        server,
        lambda: client.messages.send(
            to=TO, from_=FROM, text="Hi", options=RequestOptions(idempotency_key=key)
        ),
    )
    assert headers_of(server.requests[0])["idempotency-key"] == key


async def test_schedule_rejects_idempotency_key(
    client: telnyx_msg.AsyncClient, server: Server
) -> None:
    """messages.schedule does not accept an Idempotency-Key: ValidationError, nothing sent."""
    await rejected(
        server,
        lambda: client.messages.schedule(
            to=TO,
            from_=FROM,
            text="Hi",
            send_at="2030-01-01T12:00:00Z",
            options=RequestOptions(idempotency_key="abc_123"),
        ),
        "idempotency_key",
    )


async def test_options_must_be_request_options(
    client: telnyx_msg.AsyncClient, server: Server
) -> None:
    """options= must be a RequestOptions, not a dict."""
    options: Any = {"idempotency_key": "abc"}
    await rejected(
        server,
        lambda: client.messages.send(to=TO, from_=FROM, text="Hi", options=options),
        "options",
    )


async def test_validation_error_is_value_error(
    client: telnyx_msg.AsyncClient, server: Server
) -> None:
    """ValidationError is both a TelnyxError and a ValueError."""
    with pytest.raises(ValueError) as info:
        await client.messages.send(to="3125550001", from_=FROM, text="Hi")
    assert isinstance(info.value, ValidationError)
    assert isinstance(info.value, telnyx_msg.TelnyxError)
    assert server.requests == []


# --- the blocking facade ----------------------------------------------------------------------


def _raised_in_caller_thread(error: BaseException) -> bool:
    """True when no frame of the traceback ran through the portal (another thread)."""
    frames = traceback.extract_tb(error.__traceback__)
    return not any(
        f.filename.replace("\\", "/").endswith(
            ("anyio/from_thread.py", "concurrent/futures/_base.py")
        )
        for f in frames
    )


SYNC_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("send", {"to": "+1 312 555 0001", "from_": FROM, "text": "Hi"}, "to"),
    ("send", {"to": TO, "from_": FROM, "text": "  "}, "text"),
    ("send", {"to": TO, "from_": FROM, "text": "Hi", "send_at": "2030-01-01T12:00:00"}, "send_at"),
    ("send_group_mms", {"from_": FROM, "to": [], "text": "Hi"}, "to"),
    (
        "send_with_alphanumeric_sender",
        {"from_": "!!!", "to": TO, "text": "Hi", "messaging_profile_id": PROFILE},
        "from",
    ),
]


@pytest.mark.parametrize(
    ("method", "kwargs", "field"), SYNC_CASES, ids=[f"{c[0]}-{c[2]}" for c in SYNC_CASES]
)
async def test_sync_client_rejects_in_caller_thread(
    server: Server, method: str, kwargs: dict[str, Any], field: str
) -> None:
    """The blocking Client raises the same ValidationError in the caller's thread, sends nothing."""

    def run() -> ValidationError:
        with telnyx_msg.Client("test-key", base_url=server.base_url, rate_limits=None) as client:
            with pytest.raises(ValidationError) as info:
                getattr(client.messages, method)(**kwargs)
            client.messages.send(to=TO, from_=FROM, text="Hi")  # the client does reach the server
            return info.value

    error = await anyio.to_thread.run_sync(run)
    assert error.field == field
    assert _raised_in_caller_thread(error)
    assert [r.json for r in server.requests] == [{"to": TO, "from": FROM, "text": "Hi"}]


async def test_sync_client_rejects_bad_idempotency_key(server: Server) -> None:
    """A malformed idempotency key fails in the caller's thread with the blocking Client."""

    def run() -> ValidationError:
        with telnyx_msg.Client("test-key", base_url=server.base_url, rate_limits=None) as client:
            with pytest.raises(ValidationError) as info:
                client.messages.send(
                    to=TO,
                    from_=FROM,
                    text="Hi",
                    options=RequestOptions(idempotency_key="has space"),
                )
            return info.value

    error = await anyio.to_thread.run_sync(run)
    assert error.field == "idempotency_key"
    assert _raised_in_caller_thread(error)
    assert server.requests == []


async def test_sync_client_schedule_idempotency_key(server: Server) -> None:
    """Blocking messages.schedule with an idempotency key fails in the caller's thread, no I/O."""

    def run() -> ValidationError:
        with telnyx_msg.Client("test-key", base_url=server.base_url, rate_limits=None) as client:
            with pytest.raises(ValidationError) as info:
                client.messages.schedule(
                    to=TO,
                    from_=FROM,
                    text="Hi",
                    send_at="2030-01-01T12:00:00Z",
                    options=RequestOptions(idempotency_key="abc_123"),
                )
            return info.value

    error = await anyio.to_thread.run_sync(run)
    assert error.field == "idempotency_key"
    assert server.requests == []
    assert _raised_in_caller_thread(error)


@pytest.mark.anyio
async def test_page_size_over_250_fails_before_io(api_server: Any) -> None:
    """page_size is 1-250 where Telnyx's definition says so (messaging profiles, short codes,
    opt-outs, numbers): 500 is a ValidationError naming page[size]. The hosted-number and
    alphanumeric-sender lists state no maximum: a larger page is sent (it was refused)."""

    async def empty(request: web.Request) -> web.Response:
        return web.json_response({"data": [], "meta": {}})

    server = await api_server(empty)
    client = telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=None)
    try:
        with pytest.raises(telnyx_msg.ValidationError, match=r"page\[size\].*at most 250"):
            client.messaging_profiles.list(page_size=500)
        with pytest.raises(telnyx_msg.ValidationError, match=r"page\[size\].*at most 250"):
            client.short_codes.list(page_size=251)
        client.messaging_profiles.list(page_size=250)  # the largest is fine
        assert [n async for n in client.messaging_hosted_numbers.list(page_size=500)] == []
        assert [a async for a in client.alphanumeric_sender_ids.list(page_size=1000)] == []
        sizes = [r.query["page[size]"] for r in server.requests]
        assert sizes == ["500", "1000"]
    finally:
        await client.aclose()


@pytest.mark.anyio
async def test_argument_mistakes_name_the_method_and_the_fix() -> None:
    """A misspelled, missing or extra argument is a ValidationError (a TelnyxError) naming the
    public method and suggesting the fix, before any I/O, in both clients."""
    base = "http://127.0.0.1:9/v2"
    async with telnyx_msg.AsyncClient("k", base_url=base, rate_limits=None) as typed:
        client: Any = typed  # the mistakes below are ones mypy would catch; these run them
        with pytest.raises(ValidationError) as typo:
            await client.messages.send(from_="+18005550101", to="+18445550001", txt="hi")
        with pytest.raises(ValidationError) as missing:
            await client.messages.send(text="hi")
        with pytest.raises(ValidationError) as nested:
            await client.messaging_profiles.autoresp_configs.create(
                "p", op="stop", keywords=["X"], country="US"
            )
        with pytest.raises(ValidationError) as extra:
            await client.messages.retrieve("a", "b")
        with pytest.raises(ValidationError) as listed:
            client.messaging_optouts.list(page_sise=10)
    assert str(typo.value) == (
        "txt: messages.send() got an unexpected keyword argument 'txt'; did you mean 'text'?"
    )
    assert typo.value.field == "txt"
    assert str(missing.value) == "to: messages.send() needs to="
    assert "messaging_profiles.autoresp_configs.create()" in str(nested.value)
    assert "did you mean 'country_code'?" in str(nested.value)
    assert "messages.retrieve() takes 1 positional argument(s) (id)" in str(extra.value)
    assert "did you mean 'page_size'?" in str(listed.value)

    def blocking() -> str:
        with telnyx_msg.Client("k", base_url=base, rate_limits=None) as typed_sync:
            sync: Any = typed_sync
            try:
                sync.messages.send(from_="+18005550101", to="+18445550001", txt="hi")
            except ValidationError as exc:
                return str(exc)
        return ""

    assert "did you mean 'text'?" in await anyio.to_thread.run_sync(blocking)


def test_client_reused_from_a_second_event_loop_says_how_to_fix_it() -> None:
    """A module-level AsyncClient used from a second asyncio.run gets a ConfigurationError
    (a TelnyxError) explaining the fix, not aiohttp's 'Event loop is closed'."""
    import asyncio

    from telnyx_msg.testing import serve_in_thread

    with serve_in_thread() as fake:
        clients = [telnyx_msg.AsyncClient(fake.api_key, base_url=fake.base_url)]

        async def send() -> str:
            sent = await clients[0].messages.send(
                from_="+18005550101", to="+18445550001", text="hi"
            )
            return sent.id

        assert asyncio.run(send())
        with pytest.raises(telnyx_msg.ConfigurationError, match="another event loop"):
            asyncio.run(send())
        assert len(fake.messages()) == 1
        # The mistake under test: the first loop ended without closing the client, so its
        # pooled socket is left to the garbage collector, which warns about it (and aiohttp
        # logs "Unclosed connector", which the suite otherwise fails on).
        asyncio_log = logging.getLogger("asyncio")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            asyncio_log.disabled = True
            try:
                clients.clear()
                gc.collect()
            finally:
                asyncio_log.disabled = False


@pytest.mark.anyio
async def test_a_lone_surrogate_is_a_validation_error_naming_the_field() -> None:
    """Text decoded with errors="surrogateescape" cannot be encoded as UTF-8: a ValidationError
    naming the field, before any request (it was a bare UnicodeEncodeError), and send_many
    reports the item rejected (it was not_sent, as if it could be retried)."""
    from telnyx_msg.testing import MockResponse, MockTransport

    transport = MockTransport(lambda request: MockResponse(json={"data": message_json()}))
    bad = "caf\udce9"  # b"caf\xe9" decoded as UTF-8 with surrogateescape
    async with telnyx_msg.AsyncClient("k", transport=transport, rate_limits=None) as client:
        send = client.messages.send
        calls: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            ("text", lambda: send(from_="+18005550101", to="+18445550001", text=bad)),
            (
                "media_urls[1]",
                lambda: send(
                    from_="+18005550101",
                    to="+18445550001",
                    media_urls=["https://x.test/a.png", f"https://x.test/{bad}.png"],
                ),
            ),
            ("id", lambda: client.messages.retrieve(f"id-{bad}")),
            (
                "note",
                lambda: send(
                    from_="+18005550101",
                    to="+18445550001",
                    text="hi",
                    options=RequestOptions(extra_body={"note": bad}),
                ),
            ),
        ]
        for field, call in calls:
            with pytest.raises(ValidationError, match="lone surrogate") as info:
                await call()
            assert info.value.field == field
        outcomes = [
            o
            async for o in client.messages.send_many(
                [{"from_": "+18005550101", "to": "+18445550001", "text": bad}], concurrency=1
            )
        ]
    assert [o.status for o in outcomes] == ["rejected"]
    assert transport.requests == []


# --- settings: every duration and size is checked where it is given --------------------------

_NOT_SECONDS = [0, -1, float("nan"), float("inf"), "5", True, None]
_NOT_A_COUNT = [0, -3, 1.5, "10", True, None]


_URL = "redis://127.0.0.1:1/0"  # nothing connects at construction
_KEY = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
_SETTINGS: list[tuple[str, Callable[[Any], object], list[Any]]] = [
    ("DeliveryTracker.max_size", lambda v: telnyx_msg.DeliveryTracker(max_size=v), _NOT_A_COUNT),
    ("MemoryReplayStore.max_size", lambda v: MemoryReplayStore(max_size=v), _NOT_A_COUNT),
    ("MemoryReplayStore.ttl", lambda v: MemoryReplayStore(ttl=v), _NOT_SECONDS[:-1]),
    ("RedisReplayStore.timeout", lambda v: RedisReplayStore(_URL, timeout=v), _NOT_SECONDS),
    ("queue.claim_after", lambda v: RedisWebhookQueue(_URL, claim_after=v), _NOT_SECONDS),
    ("queue.handled_ttl", lambda v: RedisWebhookQueue(_URL, handled_ttl=v), _NOT_SECONDS),
    ("queue.max_attempts", lambda v: RedisWebhookQueue(_URL, max_attempts=v), _NOT_A_COUNT),
    ("RedisDeliveryTracker.ttl", lambda v: RedisDeliveryTracker(_URL, ttl=v), _NOT_SECONDS),
    (
        "RedisRateLimits.redis_timeout",
        lambda v: RedisRateLimits(_URL, redis_timeout=v),
        _NOT_SECONDS,
    ),
    ("AsyncClient.pool_size", lambda v: telnyx_msg.AsyncClient("k", pool_size=v), _NOT_A_COUNT),
    (
        "receiver.max_pending",
        lambda v: asgi_app(WebhookVerifier(_KEY), {}, max_pending=v),
        _NOT_A_COUNT,
    ),
    # An infinite handler_timeout is allowed (never cancel the handler).
    (
        "receiver.handler_timeout",
        lambda v: asgi_app(WebhookVerifier(_KEY), {}, handler_timeout=v),
        [0, -1, float("nan"), "5", True, None],
    ),
]


@pytest.mark.parametrize(
    ("build", "value"),
    [(build, value) for _, build, values in _SETTINGS for value in values],
    ids=[f"{what}={value!r}" for what, _, values in _SETTINGS for value in values],
)
def test_bad_settings_fail_where_they_are_given(build: Callable[[Any], object], value: Any) -> None:
    """A nonsense duration or size (zero, negative, NaN, an infinite Redis expiry, a string, a
    bool) raises ConfigurationError naming the setting when the object is built, never later
    inside a request, a handler or a Redis call."""
    with pytest.raises(telnyx_msg.ConfigurationError, match="must be"):
        build(value)


async def test_final_status_rejects_a_nonsense_timeout() -> None:
    """DeliveryTracker.final_status(timeout=NaN or negative) is a ConfigurationError, not an
    instant TimeoutError that reads like a lost webhook."""
    tracker = telnyx_msg.DeliveryTracker()
    values: list[Any] = [float("nan"), -1, "5"]
    for value in values:
        with pytest.raises(telnyx_msg.ConfigurationError, match="timeout"):
            await tracker.final_status("msg-1", timeout=value)
    with pytest.raises(TimeoutError):
        await tracker.final_status("msg-1", timeout=0)


_LISTS: list[tuple[str, dict[str, Any], str]] = [
    ("messaging_optouts", {"filter": {"from": b"+18005550101"}}, "filter[from]"),
    ("messaging_optouts", {"filter": {"from": object()}}, "filter[from]"),
    ("messaging_optouts", {"filter": {"from": float("nan")}}, "filter[from]"),
    ("messaging_optouts", {"created_at": {"gte": datetime(2025, 1, 1)}}, "created_at[gte]"),
    ("messaging_optouts", {"created_at": {"gte": "last week"}}, "created_at[gte]"),
    ("messaging_optouts", {"created_at": {"since": "2025-01-01T00:00:00Z"}}, "created_at"),
    ("messaging_hosted_numbers", {"sort": {"phone_number": "newest"}}, "sort"),
    ("messaging_hosted_numbers", {"filter": {"phone_number": {"contains": b"555"}}}, "filter"),
    ("short_codes", {"filter": {"messaging_profile_id": ["a", {"b": 1}]}}, "filter"),
    ("messaging_profiles", {"filter": {"name": {"contains": object()}}}, "filter[name]"),
]


@pytest.mark.parametrize(("resource", "kwargs", "field"), _LISTS)
async def test_list_filters_take_plain_values(
    client: telnyx_msg.AsyncClient,
    server: Server,
    resource: str,
    kwargs: dict[str, Any],
    field: str,
) -> None:
    """A filter, sort or date range value that is not a plain query value is a ValidationError
    when the method is called, as the same value in ``extra_query`` is: it went out as its
    repr (``b'+1800...'``, ``<object object at 0x...>``), a naive datetime without its zone."""
    with pytest.raises(ValidationError) as caught:
        getattr(client, resource).list(**kwargs)
    assert caught.value.field.startswith(field)
    assert server.requests == []


async def test_list_filters_still_send_what_they_document(api_server: Any) -> None:
    """Aware datetimes, strings and nested ``contains`` go out as before."""

    async def empty_page(request: web.Request) -> web.Response:
        return web.json_response({"data": [], "meta": {"total_pages": 1}})

    server = await api_server(empty_page)
    since = datetime(2025, 1, 1, tzinfo=timezone.utc)
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=None) as client:
        pager = client.messaging_optouts.list(
            filter={"from": FROM}, created_at={"gte": since, "lte": "2025-02-01T00:00:00Z"}
        )
        await pager.first_page()
        hosted = client.messaging_hosted_numbers.list(
            filter={"phone_number": {"contains": "555"}}, sort={"phone_number": "desc"}
        )
        await hosted.first_page()
    first, second = (r.query for r in server.requests)
    assert first["filter[from]"] == FROM
    assert first["created_at[gte]"] == since.isoformat()
    assert first["created_at[lte]"] == "2025-02-01T00:00:00Z"
    assert second["filter[phone_number][contains]"] == "555"
    assert second["sort[phone_number]"] == "desc"


@pytest.mark.parametrize(
    "since",
    [
        "2025-04-28 12:00:38.631252+00:00",  # the shape of Telnyx's own opt-out created_at
        "2025-04-28T12:00:38+0000",
    ],
)
async def test_the_optout_date_filter_takes_iso_8601_shapes_send_at_refuses(
    api_server: Any, since: str
) -> None:
    """send_at's RFC 3339 rule (it goes out as given) is not the opt-out filter's: that one
    is "ISO-8601 format" in the definition, whose own records use a space separator."""

    async def empty_page(request: web.Request) -> web.Response:
        return web.json_response({"data": [], "meta": {"total_pages": 1}})

    server = await api_server(empty_page)
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=None) as client:
        await client.messaging_optouts.list(created_at={"gte": since}).first_page()
        with pytest.raises(ValidationError, match="spaces around it"):
            await client.messaging_optouts.list(created_at={"gte": f" {since}"}).first_page()
    assert [r.query["created_at[gte]"] for r in server.requests] == [since]


@pytest.mark.parametrize("short_code", ["123", "12345678"])
async def test_short_codes_of_three_to_eight_digits_are_accepted(
    client: telnyx_msg.AsyncClient, server: Server, short_code: str
) -> None:
    """Short codes are 3-8 digits (module docstring of _validate): both ends are sent."""
    body = await accepted(
        server, lambda: client.messages.send(to=short_code, from_=FROM, text="Hi")
    )
    assert body["to"] == short_code


@pytest.mark.parametrize("short_code", ["12", "123456789"])
async def test_short_codes_outside_three_to_eight_digits_are_rejected(
    client: telnyx_msg.AsyncClient, server: Server, short_code: str
) -> None:
    await rejected(server, lambda: client.messages.send(to=short_code, from_=FROM, text="Hi"), "to")


async def test_alphanumeric_sender_id_of_eleven_characters_is_the_longest(
    client: telnyx_msg.AsyncClient, server: Server
) -> None:
    """11 characters is the carriers' limit for an alphanumeric sender id: "Acme Store1" is
    sent, "Acme Store12" (12) is refused before I/O."""

    def send(sender: str) -> Any:
        return client.messages.send_with_alphanumeric_sender(
            from_=sender, to=TO, text="Hi", messaging_profile_id=PROFILE
        )

    await rejected(server, lambda: send("Acme Store12"), "from")
    body = await accepted(server, lambda: send("Acme Store1"))
    assert body["from"] == "Acme Store1"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"page_number": True}, "page[number]"), ({"page_size": True}, "page[size]")],
)
async def test_a_bool_is_not_a_page_number_or_size(
    client: telnyx_msg.AsyncClient, server: Server, kwargs: dict[str, Any], field: str
) -> None:
    """bool is an int subclass: unchecked, True would go out as page[size]=true."""
    with pytest.raises(telnyx_msg.ValidationError) as caught:
        client.messaging_hosted_numbers.list(**kwargs)
    assert caught.value.field == field
    assert server.requests == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"media_urls": ["https://"]}, "media_urls"),
        ({"webhook_url": "http://"}, "webhook_url"),
        ({"webhook_failover_url": "HTTPS://"}, "webhook_failover_url"),
    ],
)
async def test_a_scheme_without_a_host_is_not_a_url(
    client: telnyx_msg.AsyncClient, server: Server, kwargs: dict[str, Any], field: str
) -> None:
    """A scheme alone ("https://") names nothing Telnyx could fetch or call."""
    error = await rejected(
        server,
        lambda: client.messages.send(to=TO, from_=FROM, text="Hi", **kwargs),
        field,
    )
    assert "is not an http(s) URL" in str(error)


@pytest.mark.parametrize("key", ["gt", "lt", "eq"])
async def test_a_date_range_takes_only_gte_and_lte(
    client: telnyx_msg.AsyncClient, server: Server, key: str
) -> None:
    """The definition's created_at filter has [gte] and [lte] only; another bound would be
    ignored by the server (the listing silently unfiltered)."""
    with pytest.raises(telnyx_msg.ValidationError) as caught:
        client.messaging_optouts.list(created_at={key: "2025-01-01T00:00:00Z"})  # type: ignore[arg-type]
    assert caught.value.field == "created_at"
    assert server.requests == []


async def test_a_required_settings_key_given_as_none_is_missing(
    client: telnyx_msg.AsyncClient, server: Server
) -> None:
    """url_shortener_settings needs its domain: {"domain": None} is as missing as {} (unchecked, it
    would go out as "domain": null)."""
    error = await rejected(
        server,
        lambda: client.messaging_profiles.create(
            name="n",
            whitelisted_destinations=["US"],
            url_shortener_settings={"domain": None},  # type: ignore[arg-type]
        ),
        "url_shortener_settings",
    )
    assert "needs the key(s) domain" in str(error)


async def test_final_status_refuses_an_infinite_timeout() -> None:
    """timeout=math.inf is refused like NaN (a finite number of seconds): ``None`` is the
    one explicit "no bound"; an inf slipped through from a computed deadline would wait forever."""
    tracker = telnyx_msg.DeliveryTracker()
    with (
        anyio.fail_after(5),
        pytest.raises(telnyx_msg.ConfigurationError, match="timeout"),
    ):
        await tracker.final_status("msg-1", timeout=math.inf)


def profile(**kwargs: Any) -> CreateMessagingProfile:
    return CreateMessagingProfile(name="p", whitelisted_destinations=["US"], **kwargs)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("alpha_sender", "TwelveLetter"),  # 12 characters: the first 11 match
        ("alpha_sender", "Sender!"),
        ("daily_spend_limit", "269.00 USD"),
        ("daily_spend_limit", "10x"),
    ],
)
def test_a_pattern_must_match_the_whole_value(field: str, value: str) -> None:
    """A pattern field is checked in full: a valid prefix followed by junk is refused before
    any request. Guards against `pattern` using `match` for `fullmatch`."""
    with pytest.raises(ValidationError):
        profile(**{field: value})


@pytest.mark.parametrize("value", [123, 10.5, b"10.50"])
def test_a_pattern_field_of_another_type_is_a_validation_error(value: object) -> None:
    """A non-string for a pattern field raises ValidationError (a ValueError with the field
    name), not a raw TypeError from the regex or len().
    Guards against _validate.py pattern: the `string(instance, attribute, value)` call removed."""
    with pytest.raises(ValidationError, match="daily_spend_limit"):
        profile(daily_spend_limit=value)


class _NoOffset(tzinfo):
    """A tzinfo that does not know its offset: datetimes using it are naive by definition."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str | None:
        return None


def test_send_at_with_a_tzinfo_that_has_no_offset_is_refused() -> None:
    """A datetime whose tzinfo returns no UTC offset is naive (Python's definition) and is
    refused like one. Guards against dropping `or value.utcoffset() is None`."""
    with pytest.raises(ValidationError, match="timezone-aware"):
        SendMessage(
            to="+15550001111",
            from_="+15550002222",
            text="hi",
            send_at=datetime(2030, 1, 1, 9, tzinfo=_NoOffset()),
        )
