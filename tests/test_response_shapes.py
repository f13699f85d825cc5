"""Answers a server may give that the models must read right or refuse by name: pickling and
copying parsed models, a field of the wrong shape, and the non-JSON NaN and Infinity (real
aiohttp servers on 127.0.0.1)."""

from __future__ import annotations

import copy
import json
import pickle
from typing import Any

import anyio.to_thread
import pytest
from aiohttp import web

import telnyx_msg
from telnyx_msg import AsyncClient
from telnyx_msg.errors import APIResponseValidationError
from telnyx_msg.testing import MockRequest, MockResponse, MockTransport
from tests.conftest import ApiServer, Handler, json_response, message_json

pytestmark = pytest.mark.anyio


def sent_message() -> dict[str, Any]:
    """A send answer with a cost, a cost breakdown and a field this SDK does not model."""
    return message_json(
        id="m-pickle",
        cost={"amount": "0.0051", "currency": "USD"},
        cost_breakdown={
            "carrier_fee": {"amount": "0.0011", "currency": "USD"},
            "rate": {"amount": "0.0040", "currency": "USD"},
        },
        new_field={"nested": [1, 2]},
    )


async def test_a_sent_message_pickles_and_deep_copies(api_server: Any) -> None:
    """AsyncClient: the Message of a send pickles, deep-copies, and keeps its extra fields."""

    async def handler(request: web.Request) -> web.Response:
        return json_response({"data": sent_message()})

    server = await api_server(handler)
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url) as client:
        message = await client.messages.send(from_="+18005550101", to="+18445550001", text="Hi")
    again = pickle.loads(pickle.dumps(message))
    assert again == message
    assert dict(again.extra) == {"new_field": {"nested": [1, 2]}}
    assert again.cost is not None
    assert str(again.cost.amount) == "0.0051"
    copied = copy.deepcopy(message)
    assert copied == message
    assert copied.extra["new_field"] is not message.extra["new_field"]  # deep
    with pytest.raises(TypeError):
        again.extra["new_field"] = 1  # still read-only


async def test_blocking_client_results_pickle(api_server: Any) -> None:
    """Client (as in a multiprocessing worker): a retrieved message and a profile pickle."""

    async def handler(request: web.Request) -> web.Response:
        if request.path.startswith("/v2/messaging_profiles/"):
            return json_response(
                {"data": {"id": "p-1", "name": "Acme", "features": {"x": True}, "later": 1}}
            )
        return json_response({"data": sent_message()})

    server = await api_server(handler)

    def blocking() -> tuple[bytes, bytes]:
        with telnyx_msg.Client("k", base_url=server.base_url) as client:
            message = client.messages.retrieve("m-pickle")
            profile = client.messaging_profiles.retrieve("p-1")
            return pickle.dumps(message), pickle.dumps(profile)

    message_bytes, profile_bytes = await anyio.to_thread.run_sync(blocking)
    message = pickle.loads(message_bytes)
    assert message.id == "m-pickle"
    assert message.to[0].phone_number == "+18445550001"
    profile = pickle.loads(profile_bytes)
    assert (profile.id, dict(profile.extra), profile.features) == ("p-1", {"later": 1}, {"x": True})


async def answer(api_server: Any, data: dict[str, Any]) -> str:
    async def handler(request: web.Request) -> web.Response:
        return json_response({"data": data})

    server = await api_server(handler)
    return str(server.base_url)


async def test_a_send_whose_body_field_is_not_an_object(api_server: Any) -> None:
    """send: ``body`` is a list -> the error names Message.body and says it was accepted."""
    base_url = await answer(api_server, message_json(body=["not", "an", "object"]))
    async with telnyx_msg.AsyncClient("k", base_url=base_url) as client:
        with pytest.raises(telnyx_msg.APIResponseValidationError) as caught:
            await client.messages.send(from_="+18005550101", to="+18445550001", text="Hi")
    assert caught.value.field == "Message.body"
    assert "Message.body" in str(caught.value)
    assert "accepted" in str(caught.value)


async def test_a_profile_whose_features_are_not_an_object(api_server: Any) -> None:
    """retrieve: MessagingProfile.features as a string is blamed on ``features``."""
    base_url = await answer(api_server, {"id": "p-1", "features": "ai_opt_out_detection"})
    async with telnyx_msg.AsyncClient("k", base_url=base_url) as client:
        with pytest.raises(telnyx_msg.APIResponseValidationError) as caught:
            await client.messaging_profiles.retrieve("p-1")
    assert caught.value.field == "MessagingProfile.features"


async def test_a_recipient_list_sent_as_an_object(api_server: Any) -> None:
    """``to`` as one object (not a list): named, and not described as a list of strings."""
    base_url = await answer(
        api_server, message_json(to={"phone_number": "+18445550001", "status": "queued"})
    )
    async with telnyx_msg.AsyncClient("k", base_url=base_url) as client:
        with pytest.raises(telnyx_msg.APIResponseValidationError) as caught:
            await client.messages.retrieve("m-1")
    assert caught.value.field == "Message.to"
    assert "got str" not in str(caught.value)
    assert "list" in str(caught.value)


def raw_json(text: str) -> web.Response:
    return web.Response(body=text.encode(), content_type="application/json")


async def test_a_nan_literal_in_a_send_answer_is_not_json(api_server: Any) -> None:
    """send answered with ``"amount": NaN``: not JSON, so not known to be Telnyx's answer:
    whether the send was accepted is unknown (it is not resent)."""
    body = json.dumps({"data": message_json(cost={"amount": "__NAN__", "currency": "USD"})})
    body = body.replace('"__NAN__"', "NaN")

    async def handler(request: web.Request) -> web.Response:
        return raw_json(body)

    server = await api_server(handler)
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url) as client:
        with pytest.raises(telnyx_msg.APIResponseValidationError) as caught:
            await client.messages.send(from_="+18005550101", to="+18445550001", text="Hi")
    assert "not JSON" in str(caught.value)
    assert (caught.value.accepted, caught.value.outcome_unknown) == (False, True)


async def test_infinity_in_client_request_is_not_json(api_server: Any) -> None:
    """client.request returns decoded JSON; ``Infinity`` is not JSON (blocking client)."""

    async def handler(request: web.Request) -> web.Response:
        return raw_json('{"data": {"wait_seconds": Infinity}}')

    server = await api_server(handler)

    def blocking() -> Any:
        with telnyx_msg.Client("k", base_url=server.base_url) as client:
            return client.request("GET", "/messages/m-1")

    with pytest.raises(telnyx_msg.APIResponseValidationError):
        await anyio.to_thread.run_sync(blocking)


@pytest.mark.parametrize("amount", ["NaN", "Infinity", "-Infinity", "sNaN"])
async def test_a_non_finite_cost_amount_is_named(api_server: Any, amount: str) -> None:
    """``cost.amount`` as the string "NaN" (etc.): the error names Message.cost.amount."""

    async def handler(request: web.Request) -> web.Response:
        data = message_json(cost={"amount": amount, "currency": "USD"})
        return raw_json(json.dumps({"data": data}))

    server = await api_server(handler)
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url) as client:
        with pytest.raises(telnyx_msg.APIResponseValidationError) as caught:
            await client.messages.retrieve("m-1")
    assert caught.value.field == "Message.cost.amount"


ID = "40385f64-5717-4562-b3fc-2c963f66afa6"


@pytest.mark.anyio
@pytest.mark.parametrize("payload", [{"data": None}, {"status": "ok"}, {}])
async def test_a_cancel_answered_by_json_that_is_not_a_message_is_not_reported_accepted(
    api_server: Any, payload: Any
) -> None:
    """``messages.cancel_scheduled`` (Telnyx answers the bare Message) answered 200 by JSON
    that names no message (a gateway's ``{"status": "ok"}``, ``{"data": null}``, ``{}``):
    nothing shows Telnyx cancelled anything, so the error must not say "the request was
    accepted" (the caller would take the scheduled message as cancelled, and it goes out)."""

    async def handler(request: web.Request) -> web.Response:
        return json_response(payload)

    server = await api_server(handler)
    async with AsyncClient("k", base_url=server.base_url, max_retries=0) as client:
        with pytest.raises(APIResponseValidationError) as info:
            await client.messages.cancel_scheduled(ID)
    assert info.value.outcome_unknown is True
    assert info.value.accepted is False
    assert "the request was accepted" not in str(info.value)


@pytest.mark.anyio
async def test_a_cancel_answered_by_a_message_with_an_odd_field_is_accepted(
    api_server: Any,
) -> None:
    """The bare Message Telnyx answers a cancel with, naming its id but with a field the SDK
    cannot read: the cancel was accepted (and ``resource_id`` names the message)."""

    async def handler(request: web.Request) -> web.Response:
        return json_response({"id": ID, "record_type": "message", "to": 5})

    server = await api_server(handler)
    async with AsyncClient("k", base_url=server.base_url, max_retries=0) as client:
        with pytest.raises(APIResponseValidationError) as info:
            await client.messages.cancel_scheduled(ID)
    assert info.value.accepted is True
    assert info.value.resource_id == ID


@pytest.mark.anyio
async def test_a_list_in_telnyx_envelope_with_an_unreadable_item_is_telnyx_answer(
    api_server: Any,
) -> None:
    """``messages.retrieve_group_messages`` answered ``{"data": [...]}`` with an item the SDK
    cannot read: that is Telnyx's envelope, so the error says the request was answered by
    Telnyx (``accepted``), not that the answer may be a proxy's."""

    async def handler(request: web.Request) -> web.Response:
        return json_response({"data": [{"id": ID, "to": 5}]})

    server = await api_server(handler)
    async with AsyncClient("k", base_url=server.base_url, max_retries=0) as client:
        with pytest.raises(APIResponseValidationError) as info:
            await client.messages.retrieve_group_messages(ID)
    assert info.value.accepted is True
    assert info.value.outcome_unknown is False


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("payload", "telnyx"),
    [
        ({"data": None}, False),
        ({"status": "ok"}, False),
        ({"data": [{"id": "p1", "enabled": "yes"}]}, True),
    ],
)
async def test_a_page_says_whether_it_was_telnyx_answer(
    api_server: Any, payload: Any, telnyx: bool
) -> None:
    """A list page answered 200 with JSON that has no ``data`` list may be anyone's answer
    (``outcome_unknown``, the message never says "the request was accepted"); Telnyx's page
    envelope with an item the SDK cannot read is Telnyx's answer (``accepted``)."""

    async def handler(request: web.Request) -> web.Response:
        return json_response(payload)

    server = await api_server(handler)
    async with AsyncClient("k", base_url=server.base_url, max_retries=0) as client:
        with pytest.raises(APIResponseValidationError) as info:
            async for _ in client.messaging_profiles.list():
                pass
    assert info.value.accepted is telnyx
    assert info.value.outcome_unknown is not telnyx
    assert ("the request was accepted" in str(info.value)) is telnyx


async def test_profile_metrics_with_one_odd_field_is_still_telnyxs_answer() -> None:
    """``messaging_profile_metrics.list`` answers ``{"data": [...], "meta": {...}}`` with no
    ``id`` (the metrics are free-form objects). Since f44dc52 a bare-answer 2xx counts as
    Telnyx's only when it names a string ``id``, so a genuine metrics answer with one value the
    SDK cannot read (``errors`` as a percentage string) is reported as "not Telnyx's answer
    shape ... a proxy or a wrong base_url answers like this", ``outcome_unknown`` True: for a
    GET of Telnyx's own answer. It should say the request was accepted, as for every other
    endpoint whose envelope Telnyx answered."""
    body = {
        "data": [
            {
                "record_type": "messaging_profile_metrics",
                "messaging_profile_id": "4000eba1-a0c0-4563-9925-b25e842a7cb6",
                "phone_numbers": 3,
                "outbound": {"sent": 10, "delivered": 9, "errors": "10%"},
                "inbound": {"received": 2},
            }
        ],
        "meta": {"page_number": 1, "page_size": 20, "total_pages": 1, "total_results": 1},
    }

    def handler(_: MockRequest) -> MockResponse:
        return MockResponse(json=body)

    async with telnyx_msg.AsyncClient(
        "KEY0123456789", transport=MockTransport(handler), rate_limits=None
    ) as client:
        with pytest.raises(telnyx_msg.APIResponseValidationError) as raised:
            await client.messaging_profile_metrics.list(time_frame="7d")
    assert raised.value.accepted
    assert not raised.value.outcome_unknown
    assert "proxy" not in str(raised.value)


@pytest.mark.parametrize(
    ("body", "call", "accepted"),
    [
        (
            {"data": []},
            lambda c: c.messages.cancel_scheduled("40385f64-5717-4562-b3fc-2c963f66afa6"),
            False,
        ),
        ({"data": [7], "meta": {}}, lambda c: c.messaging_profile_metrics.list(), True),
    ],
    ids=["cancel-answered-a-data-list", "profile-metrics-data-list"],
)
async def test_a_bare_data_list_is_telnyx_s_only_for_the_profile_metrics(
    api_server: Any, body: dict[str, Any], call: Any, accepted: bool
) -> None:
    """docs/errors.md: a 2xx is Telnyx's envelope (so the request was accepted) when, for a bare
    answer such as ``messages.cancel_scheduled``'s, it names its ``id``, "or the profile
    metrics' object with a ``data`` list". The data-list rule is applied to every bare answer,
    so a gateway or wrong ``base_url`` answering the cancel's DELETE with ``{"data": []}``
    (an empty JSON list page) says the cancel was accepted (``accepted`` True,
    ``outcome_unknown`` False): the app believes the scheduled message cancelled while Telnyx
    may never have seen the request and will send it. Telnyx's cancel answer is the message
    object itself, never a ``data`` list, so this must be ``outcome_unknown``.
    The profile metrics' own bare answer with a ``data`` list whose items cannot be read
    stays accepted (Telnyx's envelope): the guard for that fix."""

    async def answer(_: web.Request) -> web.StreamResponse:
        return json_response(body)

    handler: Handler = answer
    server: ApiServer = await api_server(handler)
    async with telnyx_msg.AsyncClient(
        "KEY0123456789", base_url=server.base_url, rate_limits=None
    ) as client:
        with pytest.raises(telnyx_msg.APIResponseValidationError) as raised:
            await call(client)
    assert (raised.value.accepted, raised.value.outcome_unknown) == (accepted, not accepted)
