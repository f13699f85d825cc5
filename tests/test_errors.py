"""Error mapping: status → exception class, Telnyx error details, request ids, no key leaks."""

from __future__ import annotations

import logging
from typing import Any

import anyio.to_thread
import pytest
from aiohttp import web

import telnyx_msg
from telnyx_msg import RequestOptions
from telnyx_msg._retry import Backoff
from telnyx_msg.testing import (
    FakeConfig,
    FakeTelnyx,
    MockResponse,
    MockTransport,
    MockTransportError,
)
from tests.conftest import ApiServer, json_response, raw_reply, telnyx_error

pytestmark = pytest.mark.anyio

KEY = "KEYsuper-secret-0123456789"

STATUS_CLASSES = [
    (400, "10015", telnyx_msg.BadRequestError),
    (401, "10009", telnyx_msg.AuthenticationError),
    (403, "10010", telnyx_msg.PermissionDeniedError),
    (404, "10005", telnyx_msg.NotFoundError),
    (409, "10001", telnyx_msg.ConflictError),
    (410, "10001", telnyx_msg.APIStatusError),
    (422, "40305", telnyx_msg.UnprocessableEntityError),
    (429, "10011", telnyx_msg.RateLimitError),
    (429, "40318", telnyx_msg.QueueFullError),
    (500, "10001", telnyx_msg.InternalServerError),
    (501, "10001", telnyx_msg.InternalServerError),
    (502, "10001", telnyx_msg.InternalServerError),
    (503, "10001", telnyx_msg.InternalServerError),
    (504, "10001", telnyx_msg.InternalServerError),
]


@pytest.mark.parametrize("answer", ["html 401", "json 401", "html 200"])
async def test_an_echoed_api_key_never_reaches_the_error(api_server: Any, answer: str) -> None:
    """A proxy, gateway or misdirected base_url that echoes the request's Authorization
    header (an HTML page, a JSON detail, even a 200): the key is masked in the error's text
    and body (it was shown)."""

    async def echo(request: web.Request) -> web.Response:
        auth = request.headers["Authorization"]
        if answer == "json 401":
            return telnyx_error(401, "10009", "Authentication failed", f"got {auth}")
        status = int(answer.split()[1])
        return web.Response(status=status, text=f"<pre>credentials: {auth}</pre>")

    server = await api_server(echo)
    async with telnyx_msg.AsyncClient(KEY, base_url=server.base_url, rate_limits=None) as client:
        with pytest.raises(telnyx_msg.TelnyxError) as caught:
            await client.messages.retrieve("m")
    error: Any = caught.value
    expected = (
        telnyx_msg.APIResponseValidationError
        if answer.endswith("200")
        else telnyx_msg.AuthenticationError
    )
    assert type(error) is expected
    assert "Bearer ***" in f"{error} {error.body} {getattr(error, 'errors', '')}"
    assert KEY not in f"{error} {error!r} {error.body} {getattr(error, 'errors', '')}"


async def test_an_api_key_echoed_in_a_header_is_masked(api_server: Any) -> None:
    """A gateway that reflects the Authorization header into a response header: the key is
    masked in the error (its request id), the response event and a raw response's headers."""

    async def reflect(request: web.Request) -> web.Response:
        auth = request.headers["Authorization"]
        headers = {"X-Request-Id": auth, "X-Echo": f"you sent {auth}"}
        return web.Response(status=401, text="denied", headers=headers)

    seen: list[Any] = []

    async def on_response(event: Any) -> None:
        seen.append(event)

    server = await api_server(reflect)
    async with telnyx_msg.AsyncClient(
        KEY, base_url=server.base_url, rate_limits=None, event_hooks={"response": [on_response]}
    ) as client:
        with pytest.raises(telnyx_msg.AuthenticationError) as caught:
            await client.messages.retrieve("m")
        with pytest.raises(telnyx_msg.AuthenticationError) as raw_caught:
            await client.messages.with_raw_response.retrieve("m")
    error: Any = caught.value
    assert error.request_id == "Bearer ***"
    texts = [f"{error} {error!r} {error.request_id}", f"{raw_caught.value!r}"]
    texts += [f"{e!r} {e.request_id}" for e in seen]
    assert [t for t in texts if KEY in t] == []


async def test_no_exception_in_the_chain_carries_the_key() -> None:
    """A response aiohttp cannot parse: the chained aiohttp exception held the request's
    headers (Authorization included), which error trackers serialize with the chain."""
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n{}"
    async with (
        raw_reply(reply) as base_url,
        telnyx_msg.AsyncClient(KEY, base_url=base_url, rate_limits=None, max_retries=0) as client,
    ):
        with pytest.raises(telnyx_msg.APIConnectionError) as caught:
            await client.messages.retrieve("m")
    chain: list[BaseException] = []
    error: BaseException | None = caught.value
    while error is not None and len(chain) < 10:
        chain.append(error)
        error = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    dumped = " ".join(f"{e!r} {vars(e)!r}" for e in chain)
    assert KEY not in dumped


async def test_a_reply_echoing_the_key_in_a_line_aiohttp_cannot_parse_is_masked() -> None:
    """A broken proxy (or a wrong base_url) folding the request's headers into one malformed
    header line: aiohttp's parser error quoted the line, so `Authorization: Bearer <key>` was
    in the APIConnectionError, its chain and the ResponseEvent's error."""
    import asyncio
    import traceback

    async def reflect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 502 Bad Gateway\r\nEcho " + head.strip().replace(b"\r\n", b" | "))
        writer.write(b"\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(reflect, "127.0.0.1", 0)
    base_url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v2"
    events: list[Any] = []
    try:
        async with telnyx_msg.AsyncClient(
            KEY, base_url=base_url, max_retries=0, event_hooks={"response": [events.append]}
        ) as client:
            with pytest.raises(telnyx_msg.APIConnectionError) as caught:
                await client.messages.retrieve("m-1")
    finally:
        server.close()
        await server.wait_closed()
    text = "".join(traceback.format_exception(caught.value)) + repr(caught.value)
    assert "Bearer ***" in text  # (the echo itself is still shown, masked)
    assert KEY not in text
    assert len(events) == 1
    assert KEY not in f"{events[0].error} {events[0]!r}"


@pytest.mark.parametrize(("status", "code", "error_cls"), STATUS_CLASSES)
async def test_status_maps_to_exception(
    api_server: Any, status: int, code: str, error_cls: type[telnyx_msg.APIStatusError]
) -> None:
    """Each HTTP status raises its documented class with Telnyx's details and request id."""

    async def handler(request: web.Request) -> web.Response:
        return json_response(
            {
                "errors": [
                    {
                        "code": code,
                        "title": "Something failed",
                        "detail": "Because.",
                        "source": {"pointer": "/to"},
                        "meta": {"url": "https://d/" + code},
                    }
                ]
            },
            status=status,
            headers={"x-request-id": "req-123"},
        )

    server = await api_server(handler)
    async with telnyx_msg.AsyncClient(
        KEY, base_url=server.base_url, max_retries=0, rate_limits=None
    ) as client:
        with pytest.raises(telnyx_msg.APIStatusError) as caught:
            await client.messages.send(from_="+18005550101", to="+18445550001", text="x")
    error = caught.value
    assert type(error) is error_cls
    assert isinstance(error, telnyx_msg.TelnyxError)
    assert error.status == status
    assert error.request_id == "req-123"
    assert error.code == code
    detail = error.errors[0]
    assert (detail.code, detail.title, detail.detail) == (code, "Something failed", "Because.")
    assert detail.source == {"pointer": "/to"}
    assert isinstance(error.body, dict)
    text = str(error)
    assert str(status) in text
    assert f"[{code}]" in text
    assert "Something failed" in text
    assert "request_id=req-123" in text
    assert "POST /messages" in text


async def test_non_json_error_body(api_server: Any) -> None:
    """An HTML error page still raises the status class, with the text as body."""

    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html>Bad gateway</html>")

    server = await api_server(handler)
    async with telnyx_msg.AsyncClient(
        KEY, base_url=server.base_url, max_retries=0, rate_limits=None
    ) as client:
        with pytest.raises(telnyx_msg.InternalServerError) as caught:
            await client.messages.retrieve("m")
    assert caught.value.errors == []
    assert caught.value.body == "<html>Bad gateway</html>"
    assert "Bad gateway" in str(caught.value)


async def test_numeric_error_code_is_a_string(api_server: Any) -> None:
    """A code sent as a JSON number is still exposed as a string."""

    async def handler(request: web.Request) -> web.Response:
        return json_response({"errors": [{"code": 40318, "title": "Queue full"}]}, status=429)

    server = await api_server(handler)
    async with telnyx_msg.AsyncClient(KEY, base_url=server.base_url, rate_limits=None) as client:
        with pytest.raises(telnyx_msg.QueueFullError) as caught:
            await client.messages.send(from_="+18005550101", to="+18445550001", text="x")
    assert caught.value.code == "40318"
    assert len(caught.value.errors) == 1


async def test_api_key_never_leaks(api_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    """The API key is in no repr, exception text, or log line, even at DEBUG with retries."""
    caplog.set_level(logging.DEBUG, logger="telnyx_msg")

    async def handler(request: web.Request) -> web.Response:
        return telnyx_error(503, "10001", "Unavailable", headers={"x-request-id": "r1"})

    server = await api_server(handler)
    async with telnyx_msg.AsyncClient(
        KEY, base_url=server.base_url, rate_limits=None, backoff=Backoff(initial=0.001, max=0.001)
    ) as client:
        with pytest.raises(telnyx_msg.InternalServerError) as caught:
            await client.messages.send(from_="+18005550101", to="+18445550001", text="x")
        texts = [
            repr(client),
            str(client),
            repr(client.with_options(timeout=3)),
            repr(vars(client)),
            repr(client._shared),
            str(caught.value),
            repr(caught.value),
            repr(caught.value.__dict__),
            caplog.text,
        ]
    assert len(server.requests) == 3
    assert server.requests[0].headers["Authorization"] == f"Bearer {KEY}"
    for text in texts:
        assert KEY not in text
    assert "attempt=2" in caplog.text


def test_blocking_client_repr_hides_key() -> None:
    """The blocking client's repr does not show the key either."""
    with telnyx_msg.Client(KEY, base_url="http://127.0.0.1:9/v2", rate_limits=None) as client:
        assert KEY not in repr(client)


def test_configuration_and_validation_errors_are_value_errors() -> None:
    """ConfigurationError and ValidationError are ValueErrors, as documented."""
    assert issubclass(telnyx_msg.ConfigurationError, ValueError)
    assert issubclass(telnyx_msg.ValidationError, ValueError)
    assert issubclass(telnyx_msg.APITimeoutError, telnyx_msg.APIConnectionError)
    assert issubclass(telnyx_msg.QueueFullError, telnyx_msg.RateLimitError)
    for name in (
        "InvalidSignatureError",
        "TimestampError",
        "MissingHeaderError",
        "WebhookPayloadError",
        "DuplicateWebhookError",
    ):
        assert issubclass(getattr(telnyx_msg, name), telnyx_msg.WebhookVerificationError)


def test_hint_names_the_source_the_error_has() -> None:
    """The hint names source.parameter or source.pointer, whichever the error carries."""
    from telnyx_msg.errors import ErrorDetail, UnprocessableEntityError

    by_parameter = UnprocessableEntityError(
        422,
        errors=[ErrorDetail(code="10015", title="Bad Request", source={"parameter": "page[size]"})],
    )
    by_pointer = UnprocessableEntityError(
        422, errors=[ErrorDetail(code="10015", title="Bad Request", source={"pointer": "/to"})]
    )
    assert by_parameter.hint == (
        "the parameter page[size] was rejected (errors[0].source.parameter)."
    )
    assert by_pointer.hint == "the field /to was rejected (errors[0].source.pointer)."


def test_404_on_a_message_hints_at_retention() -> None:
    """A 404 retrieving a message says old messages can be gone."""
    from telnyx_msg.errors import NotFoundError

    error = NotFoundError(404, method="GET", path="/messages/{id}")
    assert error.hint is not None
    assert "limited time" in error.hint
    assert "hint: no message with that id" in str(error)


def test_every_redis_outage_is_one_catchable_family() -> None:
    """A service that shares Redis across the limiter, queue and tracker can catch one class."""
    import telnyx_msg.errors as errors

    family = (
        telnyx_msg.RateLimiterUnavailableError,
        telnyx_msg.WebhookQueueUnavailableError,
        telnyx_msg.DeliveryTrackerUnavailableError,
    )
    for cls in family:
        assert issubclass(cls, telnyx_msg.RedisUnavailableError)
        assert issubclass(cls, telnyx_msg.TelnyxError)
        # Importable without redis installed: they live with the other errors.
        assert getattr(errors, cls.__name__) is cls
    assert not issubclass(telnyx_msg.RedisUnavailableError, telnyx_msg.APIConnectionError)


async def test_errors_survive_pickling(api_server: Any) -> None:
    """Errors cross process boundaries (multiprocessing, concurrent.futures, task queues):
    an APIStatusError came back as a TypeError, and a ValidationError could not be rebuilt."""
    import pickle

    async def not_found(request: web.Request) -> web.Response:
        return telnyx_error(404, "10005", "Resource not found", "no such message")

    server = await api_server(not_found)
    async with telnyx_msg.AsyncClient(KEY, base_url=server.base_url, rate_limits=None) as client:
        with pytest.raises(telnyx_msg.NotFoundError) as caught:
            await client.messages.retrieve("m")
    errors: list[Exception] = [
        caught.value,
        telnyx_msg.ValidationError("to", "must be E.164"),
        telnyx_msg.ConfigurationError("no API key"),
    ]
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert str(copy) == str(error)
        assert vars(copy) == vars(error)
    assert copy_of(caught.value).code == "10005"


def copy_of(error: Any) -> Any:
    import pickle

    return pickle.loads(pickle.dumps(error))


async def test_40305_hint_shown_for_the_fakes_own_40305() -> None:
    """errors.md:217-220: 40305 has its own hint (number not on the account / profile / 10DLC).
    The fake (like Telnyx) sends 40305 with source.pointer "/from", and the generic
    "the field /from was rejected" hint replaces the 40305 one."""
    async with FakeTelnyx(config=FakeConfig(strict_senders=True)) as fake, fake.client() as c:
        with pytest.raises(telnyx_msg.UnprocessableEntityError) as info:
            await c.messages.send(from_="+13125559999", to="+18445550001", text="Hi")
    assert info.value.code == "40305"
    assert info.value.hint == telnyx_msg.errors.HINTS["40305"]


@pytest.mark.parametrize("code", ["40305", "40014"])
async def test_code_hint_wins_over_source_pointer(code: str) -> None:
    body = {"errors": [{"code": code, "title": "t", "source": {"pointer": "/from"}}]}
    transport = MockTransport(lambda request: MockResponse(422, body))
    async with telnyx_msg.AsyncClient(
        "k", base_url="http://127.0.0.1:9/v2", transport=transport, rate_limits=None
    ) as c:
        with pytest.raises(telnyx_msg.APIStatusError) as info:
            await c.messages.send(from_="+18005550101", to="+18445550001", text="Hi")
    assert info.value.hint == telnyx_msg.errors.HINTS[code]


async def test_outcome_unknown_connection_error_message_says_so() -> None:
    """errors.md:244-249: when the error raised at the end is outcome_unknown=True, "its message
    says so". A keyed send whose every attempt was dropped after writing ends with
    'POST /messages: <error>.' and no mention of the unknown outcome."""

    def drop(request: object) -> MockResponse:
        raise MockTransportError("connection lost", reached=True)

    transport = MockTransport(drop)
    async with telnyx_msg.AsyncClient(
        "k",
        base_url="http://127.0.0.1:9/v2",
        transport=transport,
        rate_limits=None,
        backoff=telnyx_msg.Backoff(initial=0.001, max=0.002),
    ) as c:
        with pytest.raises(telnyx_msg.APIConnectionError) as info:
            await c.messages.send(
                from_="+18005550101",
                to="+18445550001",
                text="Hi",
                options=telnyx_msg.RequestOptions(idempotency_key="order-42"),
            )
    assert len(transport.requests) == 3
    assert info.value.outcome_unknown is True
    assert "outcome unknown" in str(info.value) or "may have reached" in str(info.value)


FAST_BACKOFF = Backoff(initial=0.001, max=0.002)

# What nginx answers when its upstream is down: the page a load balancer in front of an API
# really sends (CRLF line ends included).
NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
# A CDN's error page: a long head before anything that says what went wrong.
CDN_503 = (
    '<!DOCTYPE html>\n<!--[if lt IE 7]> <html class="no-js ie6 oldie" lang="en-US"> '
    "<![endif]-->\n<head>\n"
    + "".join(f'<meta name="m{i}" content="{"x" * 40}" />\n' for i in range(6))
    + "<title>api.telnyx.com | 503: Service Unavailable</title>\n"
    + "<style>body{margin:0}</style>\n</head>\n<body><h1>Service Unavailable</h1></body></html>\n"
)


async def _patch_with_key_attempts(server: ApiServer, key: str | None) -> int:
    server.requests.clear()
    options = RequestOptions(idempotency_key=key) if key else None
    async with telnyx_msg.AsyncClient(
        KEY, base_url=server.base_url, rate_limits=None, backoff=FAST_BACKOFF
    ) as client:
        with pytest.raises(telnyx_msg.InternalServerError):
            await client.request("PATCH", "/not_modelled_yet/abc", json={"add": 1}, options=options)
    return len(server.requests)


async def test_an_idempotency_key_on_a_client_request_patch_does_not_make_it_retried(
    api_server: Any,
) -> None:
    """docs/configuration.md: an idempotency key on a ``client.request`` that is not a POST
    "sends it as the Idempotency-Key header, and it changes nothing about that call's
    retries". Telnyx deduplicates sends only, so a PATCH to a path the SDK does not model that
    got a 500 (it may have been applied) must not be repeated because a key rides along: with
    the key the PATCH reached the server 3 times, without it once."""

    async def failing(request: web.Request) -> web.Response:
        await request.read()
        return json_response({"errors": [{"code": "10007", "title": "Unexpected error"}]}, 500)

    server = await api_server(failing)
    without_key = await _patch_with_key_attempts(server, None)
    with_key = await _patch_with_key_attempts(server, "k-1")
    assert without_key == 1
    assert server.requests[0].headers.get("Idempotency-Key") == "k-1"  # still sent
    assert with_key == without_key

    # The blocking Client goes through the same pipeline.
    server.requests.clear()

    def blocking() -> None:
        with telnyx_msg.Client(
            KEY, base_url=server.base_url, rate_limits=None, backoff=FAST_BACKOFF
        ) as client:
            with pytest.raises(telnyx_msg.InternalServerError) as caught:
                client.request(
                    "PATCH",
                    "/not_modelled_yet/abc",
                    json={"add": 1},
                    options=RequestOptions(idempotency_key="k-2"),
                )
            assert caught.value.outcome_unknown is True

    await anyio.to_thread.run_sync(blocking)
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("status", "page", "says"),
    [(502, NGINX_502, "502 Bad Gateway"), (503, CDN_503, "Service Unavailable")],
)
async def test_an_html_error_page_reads_as_one_line_that_says_what_failed(
    api_server: Any, status: int, page: str, says: str
) -> None:
    """docs/errors.md: ``str(error)`` is one line with the status, the method and path (then
    the hint line). A load balancer's HTML error page was pasted into it raw: nginx's 502 made
    the message seven lines of markup with ``on GET /messages/m1`` stranded after the closing
    ``</html>``, and a CDN's page was cut after 200 characters of ``<meta>`` tags, before the
    title that says what went wrong. The page itself stays in ``error.body``."""

    async def page_answer(request: web.Request) -> web.Response:
        return web.Response(status=status, text=page, content_type="text/html")

    server = await api_server(page_answer)
    async with telnyx_msg.AsyncClient(
        KEY, base_url=server.base_url, rate_limits=None, max_retries=0
    ) as client:
        with pytest.raises(telnyx_msg.InternalServerError) as caught:
            await client.messages.retrieve("m1")
    error = caught.value
    assert error.body == page
    first_line = str(error).split("\n  hint:")[0]
    assert "\n" not in first_line, repr(first_line)
    assert "\r" not in first_line, repr(first_line)
    assert first_line.startswith(f"{status} ")
    assert says in first_line
    assert "on GET /messages/m1" in first_line


async def test_an_html_error_title_reads_with_its_entities_decoded(api_server: Any) -> None:
    """An HTML error page's title is shown as the page shows it: ``&amp;`` is ``&`` and
    ``&#8211;`` a dash. str(error) showed the raw markup ("Bad Gateway &amp; Proxy")."""

    async def page(request: web.Request) -> web.Response:
        await request.read()
        html = "<html><head><title>Bad Gateway &amp; Proxy &#8211; edge</title></head></html>"
        return web.Response(status=502, text=html, content_type="text/html")

    server: ApiServer = await api_server(page)
    async with telnyx_msg.AsyncClient(
        KEY, base_url=server.base_url, rate_limits=None, max_retries=0
    ) as client:
        with pytest.raises(telnyx_msg.APIStatusError) as info:
            await client.messages.retrieve("m1")
    assert "Bad Gateway & Proxy \u2013 edge" in str(info.value)


async def test_an_html_error_page_without_a_title_reads_as_text_not_markup(
    api_server: Any,
) -> None:
    """docs/migration.md promises a readable ``str(error)`` ("status [code] title ... on
    METHOD path"). A gateway's or web server's HTML error page without a ``<title>`` (a wrong
    base_url, a proxy's 404) is printed with its raw tags; the summary should be its text."""

    async def html_404(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(
            status=404,
            text=(
                "<!DOCTYPE html><html><body><h1>Not Found</h1>"
                "<p>The requested URL was not found on this server.</p></body></html>"
            ),
            content_type="text/html",
        )

    server = await api_server(html_404)
    async with telnyx_msg.AsyncClient(
        "KEY0123456789abcdef", base_url=server.base_url, rate_limits=None
    ) as client:
        with pytest.raises(telnyx_msg.NotFoundError) as info:
            await client.messages.retrieve("m")
    text = str(info.value)
    assert "Not Found" in text
    assert "<" not in text, text
    assert ">" not in text, text


async def test_an_untitled_html_error_page_reads_with_its_entities_decoded(
    api_server: Any,
) -> None:
    """A web server's HTML error page without a ``<title>`` is summarised by its text:
    ``&amp;`` and ``&ndash;`` must read as the characters they stand for, as they do for a
    titled page, not as HTML source."""

    async def html_502(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(
            status=502,
            text="<html><body><h1>Bad Gateway &amp; Proxy &ndash; edge</h1></body></html>",
            content_type="text/html",
        )

    server = await api_server(html_502)
    async with telnyx_msg.AsyncClient(
        "KEY0123456789abcdef", base_url=server.base_url, rate_limits=None, max_retries=0
    ) as client:
        with pytest.raises(telnyx_msg.APIStatusError) as info:
            await client.messages.retrieve("m")
    text = str(info.value)
    assert "Bad Gateway & Proxy \u2013 edge" in text, text
    assert "&amp;" not in text, text


async def test_an_error_keeps_the_response_headers(api_server: Any) -> None:
    """The official SDK's ``exc.response.headers`` has a home: a 429's rate-limit headers (or
    any other) are on ``exc.headers``, case-insensitively, and still there after the error
    crossed a process boundary (pickled)."""

    async def limited(request: web.Request) -> web.Response:
        headers = {"x-ratelimit-limit": "200", "x-ratelimit-remaining": "0"}
        return telnyx_error(
            429, "10011", "Too many requests", headers=headers | {"x-ratelimit-reset": "120"}
        )

    server = await api_server(limited)
    async with telnyx_msg.AsyncClient(KEY, base_url=server.base_url, rate_limits=None) as client:
        with pytest.raises(telnyx_msg.RateLimitError) as caught:
            await client.messages.retrieve("m")
    for error in (caught.value, copy_of(caught.value)):
        assert error.headers["X-RateLimit-Limit"] == "200"
        assert error.headers.get("x-ratelimit-remaining") == "0"
        assert error.retry_after == 120


async def test_an_unreadable_2xx_error_has_status_code_and_headers(api_server: Any) -> None:
    """A migrated ``except (APIStatusError, APIResponseValidationError) as exc:
    log(exc.status_code)`` must not become an AttributeError when a proxy answers a send with
    a 200 HTML page: that error has ``status_code`` and ``headers`` like the status errors."""

    async def portal(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="<html><title>Portal</title></html>", content_type="text/html")

    server = await api_server(portal)
    async with telnyx_msg.AsyncClient(
        KEY, base_url=server.base_url, max_retries=0, rate_limits=None
    ) as client:
        with pytest.raises(telnyx_msg.APIResponseValidationError) as caught:
            await client.messages.send(from_="+18005550101", to="+18445550001", text="Hi")
    for error in (caught.value, copy_of(caught.value)):
        assert error.status == error.status_code == 200
        assert error.headers["content-type"].startswith("text/html")


async def test_an_accepted_send_with_an_unreadable_answer_names_its_message(
    api_server: Any,
) -> None:
    """A 2xx whose ``data`` has its id but a field the SDK cannot read: the message was
    accepted, and ``resource_id`` gives its id (the link to its webhooks and
    ``messages.retrieve``) without parsing the raw, possibly cut short, ``body``."""

    async def odd(request: web.Request) -> web.Response:
        await request.read()
        return json_response({"data": {"id": "m-accepted", "to": [{"status": "queued"}]}})

    server = await api_server(odd)
    async with telnyx_msg.AsyncClient(KEY, base_url=server.base_url, rate_limits=None) as client:
        with pytest.raises(telnyx_msg.APIResponseValidationError) as caught:
            await client.messages.send(from_="+18005550101", to="+18445550001", text="Hi")
    assert caught.value.field == "Message.to.phone_number"
    assert caught.value.resource_id == copy_of(caught.value).resource_id == "m-accepted"
