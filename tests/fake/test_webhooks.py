"""Webhooks of the fake: Ed25519 signatures, envelopes (docs/wire.md §10.4), retries, failover,
inbound messages, opt-outs and link clicks."""

from __future__ import annotations

import asyncio
import base64
import time

import pytest
from cryptography.exceptions import InvalidSignature

import telnyx_msg
from telnyx_msg.testing import (
    DEFAULT_LONG_CODE,
    DEFAULT_PROFILE_ID,
    DEFAULT_TOLL_FREE,
    FAILING_NUMBER,
    FakeConfig,
    FakeTelnyx,
    SeedProfile,
    WebhookSettings,
)
from telnyx_msg.testing._webhooks import Signer

from .helpers import Api, Received, Receiver, connect, verify_signature

pytestmark = pytest.mark.anyio

TO = "+18445550001"
FAST = WebhookSettings(attempts=3, retry_delay=0.0, timeout=1.0)


def _events(deliveries: list[Received]) -> list[str]:
    return [d.json()["data"]["event_type"] for d in deliveries]


async def test_sent_and_finalized_are_signed_and_shaped(api: Api, receiver: Receiver) -> None:
    """message.sent and message.finalized reach webhook_url, signed, in the event envelope."""
    sent = await api.send(from_=DEFAULT_TOLL_FREE, to=TO, text="hook", webhook_url=receiver.url())
    message_id = sent.body["data"]["id"]
    deliveries = await receiver.wait_for(2)
    assert _events(deliveries) == ["message.sent", "message.finalized"]
    for delivery in deliveries:
        verify_signature(api.fake.public_key, delivery)
        assert delivery.headers["content-type"] == "application/json"
        assert abs(int(delivery.headers["telnyx-timestamp"]) - time.time()) < 10
        body = delivery.json()
        assert set(body) == {"data", "meta"}
        assert set(body["data"]) == {"record_type", "id", "event_type", "occurred_at", "payload"}
        assert body["data"]["record_type"] == "event"
        assert body["meta"] == {"attempt": 1, "delivered_to": receiver.url()}
        assert body["data"]["payload"]["id"] == message_id
    first, final = (d.json()["data"] for d in deliveries)
    assert first["id"] != final["id"]
    assert first["payload"]["to"][0]["status"] == "sent"
    assert first["payload"]["completed_at"] is None
    assert final["payload"]["to"][0]["status"] == "delivered"
    assert final["payload"]["completed_at"] is not None
    await api.fake.settle()
    assert [a.ok for a in api.fake.stats.webhook_attempts] == [True, True]


async def test_tampered_body_does_not_verify(api: Api, receiver: Receiver) -> None:
    """Changing one byte of a delivered body breaks the signature."""
    await api.send(from_=DEFAULT_TOLL_FREE, to=TO, text="hook", webhook_url=receiver.url())
    delivery = (await receiver.wait_for(1))[0]
    tampered = Received(delivery.path, delivery.headers, delivery.body.replace(b"hook", b"hoop"))
    with pytest.raises(InvalidSignature):
        verify_signature(api.fake.public_key, tampered)


async def test_failed_delivery_reports_the_error(api: Api, receiver: Receiver) -> None:
    """message.finalized for a failing number carries delivery_failed and error 40008."""
    await api.send(from_=DEFAULT_TOLL_FREE, to=FAILING_NUMBER, text="x", webhook_url=receiver.url())
    final = (await receiver.wait_for(2))[1].json()["data"]
    assert final["event_type"] == "message.finalized"
    assert final["payload"]["to"][0]["status"] == "delivery_failed"
    assert final["payload"]["errors"][0]["code"] == "40008"


async def test_profile_webhook_url_is_the_fallback(api: Api, receiver: Receiver) -> None:
    """Without a per-message URL the profile's webhook_url receives the events."""
    api.fake.set_webhook_url(receiver.url("profile"))
    sent = await api.send(from_=DEFAULT_TOLL_FREE, to=TO, text="x")
    assert sent.body["data"]["webhook_url"] == receiver.url("profile")
    deliveries = await receiver.wait_for(2)
    assert {d.path for d in deliveries} == {"profile"}


@pytest.mark.parametrize("failover", [False, True])
async def test_failing_message_urls_fall_back_to_the_profiles(
    receiver: Receiver, failover: bool
) -> None:
    """``use_profile_webhooks`` (default true): the message's own webhooks are attempted
    first, then the profile's (Telnyx's definition of the field). With the message's URLs
    down, the profile's receiver gets the events; the fake sent every attempt to the message's
    URL and dropped them."""
    receiver.statuses["message"] = [500] * 20
    receiver.statuses["message-failover"] = [500] * 20
    async with FakeTelnyx(config=FakeConfig(webhooks=FAST)) as fake, connect(fake) as api:
        fake.set_webhook_url(receiver.url("profile"))
        await api.send(
            from_=DEFAULT_TOLL_FREE,
            to=TO,
            text="x",
            webhook_url=receiver.url("message"),
            **({"webhook_failover_url": receiver.url("message-failover")} if failover else {}),
        )
        await fake.settle()
        sent = [
            d.path for d in receiver.received if d.json()["data"]["event_type"] == "message.sent"
        ]
        own = ["message"] * 3 + (["message-failover"] * 3 if failover else [])
        assert sent == [*own, "profile"]
        assert _events([d for d in receiver.received if d.path == "profile"]) == [
            "message.sent",
            "message.finalized",
        ]


async def test_no_url_means_no_webhooks(api: Api) -> None:
    """Without message or profile URLs no webhook is attempted."""
    await api.send(from_=DEFAULT_TOLL_FREE, to=TO, text="quiet")
    await api.fake.settle()
    assert list(api.fake.stats.webhook_attempts) == []


async def test_use_profile_webhooks_false_skips_the_profile(api: Api, receiver: Receiver) -> None:
    """use_profile_webhooks=false ignores the profile's URL."""
    api.fake.set_webhook_url(receiver.url())
    await api.send(from_=DEFAULT_TOLL_FREE, to=TO, text="x", use_profile_webhooks=False)
    await api.fake.settle()
    assert receiver.received == []


async def test_non_2xx_is_retried(receiver: Receiver) -> None:
    """A 500 from the receiver is retried; meta.attempt counts the tries."""
    receiver.statuses["hook"] = [500]
    async with FakeTelnyx(config=FakeConfig(webhooks=FAST)) as fake, connect(fake) as api:
        await api.send(from_=DEFAULT_TOLL_FREE, to=TO, text="x", webhook_url=receiver.url())
        await fake.settle()
        attempts = [
            d.json()["meta"]["attempt"]
            for d in receiver.received
            if d.json()["data"]["event_type"] == "message.sent"
        ]
        assert attempts == [1, 2]
        first = [a for a in fake.stats.webhook_attempts if a.event_type == "message.sent"]
        assert [(a.status, a.attempt) for a in first] == [(500, 1), (200, 2)]


async def test_failover_after_all_attempts_fail(receiver: Receiver) -> None:
    """After `attempts` failures on the primary URL the failover URL gets the event."""
    receiver.statuses["primary"] = [503] * 6
    async with FakeTelnyx(config=FakeConfig(webhooks=FAST)) as fake, connect(fake) as api:
        await api.send(
            from_=DEFAULT_TOLL_FREE,
            to=TO,
            text="x",
            webhook_url=receiver.url("primary"),
            webhook_failover_url=receiver.url("failover"),
        )
        await fake.settle()
        sent = [d for d in receiver.received if d.json()["data"]["event_type"] == "message.sent"]
        assert [d.path for d in sent] == ["primary"] * 3 + ["failover"]
        assert sent[-1].json()["meta"] == {"attempt": 4, "delivered_to": receiver.url("failover")}
        verify_signature(fake.public_key, sent[-1])


async def test_connection_errors_go_to_failover(receiver: Receiver) -> None:
    """A primary URL nobody listens on fails over; attempts record the error."""
    dead = "http://127.0.0.1:9/hook"  # discard port: connection refused
    config = FakeConfig(webhooks=WebhookSettings(attempts=2, retry_delay=0.0))
    async with FakeTelnyx(config=config) as fake, connect(fake) as api:
        await api.send(
            from_=DEFAULT_TOLL_FREE,
            to=TO,
            text="x",
            webhook_url=dead,
            webhook_failover_url=receiver.url(),
        )
        await fake.settle()
        sent = [a for a in fake.stats.webhook_attempts if a.event_type == "message.sent"]
        assert [(a.url, a.status is None, a.error is not None) for a in sent] == [
            (dead, True, True),
            (dead, True, True),
            (receiver.url(), False, False),
        ]


async def test_slow_receiver_times_out(receiver: Receiver) -> None:
    """An answer slower than WebhookSettings.timeout counts as a failed attempt."""
    receiver.delay = 0.3
    config = FakeConfig(webhooks=WebhookSettings(attempts=1, timeout=0.1))
    async with FakeTelnyx(config=config) as fake:
        fake.set_webhook_url(receiver.url())
        await fake.inject_inbound(from_=TO, to=DEFAULT_LONG_CODE, text="hi")
        [attempt] = fake.stats.webhook_attempts
        assert (attempt.status, attempt.error) == (None, "timeout")
        assert fake.stats.webhooks_failed == 1


async def test_inbound_message_is_delivered_and_retrievable(api: Api, receiver: Receiver) -> None:
    """inject_inbound sends message.received to the profile URL; GET returns it as inbound."""
    api.fake.set_webhook_url(receiver.url())
    message = await api.fake.inject_inbound(
        from_=TO, to=DEFAULT_LONG_CODE, text="hello", media_urls=["https://example.com/a.png"]
    )
    [delivery] = receiver.received
    verify_signature(api.fake.public_key, delivery)
    data = delivery.json()["data"]
    assert data["event_type"] == "message.received"
    payload = data["payload"]
    assert payload == message
    assert payload["direction"] == "inbound"
    assert payload["type"] == "MMS"
    assert payload["from"]["phone_number"] == TO
    assert payload["to"][0] == {
        "phone_number": DEFAULT_LONG_CODE,
        "status": "webhook_delivered",
        "carrier": "Telnyx",
        "line_type": "VoIP",
    }
    assert set(payload["media"][0]) == {"url", "content_type"}  # nothing null, nothing unknown
    assert payload["messaging_profile_id"] == DEFAULT_PROFILE_ID
    retrieved = await api.get(f"/messages/{message['id']}")
    assert retrieved.body == {"data": message}


async def test_stop_opts_out_and_start_opts_back_in(api: Api) -> None:
    """STOP blocks sends to that recipient from every number of the profile (409 40300), as
    Telnyx's block rules apply per messaging profile; START to that number lifts it."""
    await api.fake.inject_inbound(from_=TO, to=DEFAULT_LONG_CODE, text="Stop")
    blocked = await api.post(
        "/messages/long_code", {"from": DEFAULT_LONG_CODE, "to": TO, "text": "more?"}
    )
    assert blocked.status == 409
    error = blocked.body["errors"][0]
    assert (error["code"], error["title"]) == ("40300", "Blocked due to STOP message")
    other_sender = await api.send(from_=DEFAULT_TOLL_FREE, to=TO, text="same profile")
    assert other_sender.status == 409
    await api.fake.inject_inbound(from_=TO, to=DEFAULT_LONG_CODE, text="START")
    allowed = await api.post(
        "/messages/long_code", {"from": DEFAULT_LONG_CODE, "to": TO, "text": "welcome back"}
    )
    assert allowed.status == 200
    assert api.fake.opt_outs() == []
    await api.fake.settle()


async def test_autoresp_stop_keywords_opt_out(api: Api) -> None:
    """A profile's stop-op auto-response keywords also opt the sender out."""
    await api.post(
        f"/messaging_profiles/{DEFAULT_PROFILE_ID}/autoresp_configs",
        {"op": "stop", "keywords": ["ARRET"], "country_code": "FR"},
    )
    message = await api.fake.inject_inbound(from_=TO, to=DEFAULT_LONG_CODE, text="arret")
    assert message["autoresponse_type"] == "STOP"
    assert [o["keyword"] for o in api.fake.opt_outs()] == ["ARRET"]


async def test_link_click_has_its_own_shape(api: Api, receiver: Receiver) -> None:
    """A link click is {"data": {record_type: link_clicked, ...}} without event_type/payload/id."""
    sent = await api.send(
        from_=DEFAULT_TOLL_FREE, to=TO, text="see https://x.example", webhook_url=receiver.url()
    )
    message_id = sent.body["data"]["id"]
    await api.fake.settle()
    receiver.received.clear()
    click = await api.fake.inject_link_click(message_id=message_id, url="https://x.example")
    [delivery] = receiver.received
    verify_signature(api.fake.public_key, delivery)
    assert delivery.json() == {"data": click}
    assert set(click) == {"record_type", "url", "to", "message_id", "time_clicked"}
    assert click["record_type"] == "link_clicked"
    assert click["to"] == TO.lstrip("+")
    assert click["message_id"] == message_id


async def test_link_click_for_unknown_message_is_refused(api: Api) -> None:
    """inject_link_click needs a stored message."""
    with pytest.raises(KeyError):
        await api.fake.inject_link_click(message_id="nope", url="https://x.example")


async def test_seeded_profile_webhook(receiver: Receiver) -> None:
    """SeedProfile(webhook_url=...) configures the profile before start."""
    profile = SeedProfile(webhook_url=receiver.url("seeded"))
    async with FakeTelnyx(config=FakeConfig(profiles=[profile])) as fake, connect(fake) as api:
        await api.send(from_=DEFAULT_TOLL_FREE, to=TO, text="x")
        await fake.settle()
        assert [d.path for d in receiver.received] == ["seeded", "seeded"]


async def test_close_cancels_pending_deliveries(receiver: Receiver) -> None:
    """close() cancels webhook deliveries still waiting on a slow receiver."""
    receiver.delay = 1.0
    fake = FakeTelnyx(config=FakeConfig(delivery_delay=0.0))
    await fake.start()
    async with connect(fake) as api:
        await api.send(from_=DEFAULT_TOLL_FREE, to=TO, text="x", webhook_url=receiver.url())
    for _ in range(200):
        if receiver.arrivals:
            break
        await asyncio.sleep(0.005)
    assert receiver.arrivals >= 1
    started = time.monotonic()
    await fake.close()
    assert time.monotonic() - started < 0.9
    assert receiver.received == []


def test_signer_matches_the_wire_md_vector() -> None:
    """The docs/wire.md §10.5 seed gives its public key and signature."""
    signer = Signer(bytes(range(32)))
    assert signer.public_key_b64 == "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
    body = (
        b'{"data":{"event_type":"message.received","id":"e1","occurred_at":'
        b'"2024-01-01T00:00:00.000+00:00","payload":{"id":"m1","direction":"inbound",'
        b'"text":"hi","to":[{"phone_number":"+15550001111","status":"webhook_delivered"}],'
        b'"from":{"phone_number":"+15550002222"}},"record_type":"event"},"meta":'
        b'{"attempt":1,"delivered_to":"https://example.com/hooks"}}'
    )
    headers = signer.headers(body, timestamp=1700000000)
    assert headers == {
        "telnyx-timestamp": "1700000000",
        "telnyx-signature-ed25519": "//yej8CO+03p0vw2FWWWbuA3kNOesCqkQdvgmG4WshC3WKwak5Aie+49IYig"
        "X5x4rqhdcjwmyPJ+dbTi6Kf+Bg==",
    }
    assert len(base64.b64decode(headers["telnyx-signature-ed25519"])) == 64


async def test_waiting_for_a_connection_does_not_count_against_the_receiver(
    receiver: Receiver,
) -> None:
    """More deliveries at once than the fake's 100 connections: the ones that wait for a
    connection are not timed out for it (the receiver's time starts when its request is sent)."""
    receiver.delay = 0.2  # a fifth of the timeout; six rounds of 100 take 1.2 s in all
    config = FakeConfig(webhooks=WebhookSettings(attempts=1, timeout=1.0))
    async with FakeTelnyx(config=config) as fake:
        fake.set_webhook_url(receiver.url())
        await asyncio.gather(
            *(fake.inject_inbound(from_=TO, to=DEFAULT_LONG_CODE, text=f"n{n}") for n in range(600))
        )
        await fake.settle()
        assert [a.error for a in fake.stats.webhook_attempts if not a.ok] == []
        assert fake.stats.webhooks_delivered == receiver.arrivals == 600


TO = "+18445550001"


async def test_retries_back_off_from_retry_delay(receiver: Receiver) -> None:
    """Between tries of one URL the fake waits retry_delay * 2**n, n = 0, 1, ...: with two
    failures the third try comes retry_delay * (1 + 2) after the first, not * (2 + 4)."""
    receiver.statuses["hook"] = [500, 500]
    config = FakeConfig(webhooks=WebhookSettings(attempts=3, retry_delay=0.2, timeout=1.0))
    async with FakeTelnyx(config=config) as fake:
        fake.set_webhook_url(receiver.url())
        started = time.monotonic()
        await fake.inject_inbound(from_=TO, to=DEFAULT_LONG_CODE, text="hi")
        elapsed = time.monotonic() - started
        attempts = [(a.status, a.attempt) for a in fake.stats.webhook_attempts]
    assert attempts == [(500, 1), (500, 2), (200, 3)]
    assert 0.55 <= elapsed < 1.0, elapsed


HANDSET = "+18445550009"


async def test_stop_blocks_every_number_of_the_profile() -> None:
    """Telnyx: "Block rules operate at the messaging profile level. If a user opts out from one
    number on your profile, they're opted out from all numbers on that profile."
    (developers.telnyx.com/docs/messaging/messages/advanced-opt-in-out). The fake accepts the
    send from another number of the same profile, so an app that 'falls back' to another sender
    after a STOP passes its tests and fails (40300) in production."""
    async with FakeTelnyx() as fake, fake.client() as client:
        await fake.inject_inbound(from_=HANDSET, to=DEFAULT_TOLL_FREE, text="STOP")
        with pytest.raises(telnyx_msg.ConflictError) as info:
            await client.messages.send(from_=DEFAULT_LONG_CODE, to=HANDSET, text="hi")
        assert info.value.code == "40300"


async def test_stop_blocks_number_pool_sends() -> None:
    """Same rule through number_pool: the pool rotates to the profile's other number, and the
    fake delivers to the opted-out handset."""
    async with FakeTelnyx() as fake, fake.client() as client:
        await fake.inject_inbound(from_=HANDSET, to=DEFAULT_TOLL_FREE, text="STOP")
        for _ in range(2):  # the pool holds the long code and the toll-free number
            with pytest.raises(telnyx_msg.ConflictError):
                await client.messages.send_number_pool(
                    messaging_profile_id=DEFAULT_PROFILE_ID, to=HANDSET, text="hi"
                )


# -- Telnyx's default opt-out / opt-in keywords --------------------------------------------


@pytest.mark.parametrize("word", ["UNSUBSCRIBE", "CANCEL", "STOPALL", "STOP ALL", "stop all"])
async def test_default_stop_keywords_opt_out(word: str) -> None:
    """Telnyx's default stop keywords are STOP, STOPALL, STOP ALL, UNSUBSCRIBE, CANCEL, END,
    QUIT (same page as above, and support.telnyx.com "SMS Opt-Out Keywords"); the fake knows
    only STOP, END and QUIT."""
    async with FakeTelnyx() as fake:
        inbound = await fake.inject_inbound(from_=HANDSET, to=DEFAULT_TOLL_FREE, text=word)
        assert inbound.get("autoresponse_type") == "STOP"
        assert [r["to"] for r in fake.opt_outs()] == [HANDSET]


async def test_unstop_opts_back_in() -> None:
    """Telnyx's default opt-in keywords are START and UNSTOP; the fake knows only START."""
    async with FakeTelnyx() as fake:
        await fake.inject_inbound(from_=HANDSET, to=DEFAULT_TOLL_FREE, text="STOP")
        inbound = await fake.inject_inbound(from_=HANDSET, to=DEFAULT_TOLL_FREE, text="UNSTOP")
        assert inbound.get("autoresponse_type") == "START"
        assert fake.opt_outs() == []


# -- the documented "nobody got a message twice" idiom counts inbound messages -------------


def _duplicate_check_block() -> str:
    """The code block of docs/testing.md that follows "To check that nobody got a message twice"."""
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent.parent / "docs" / "testing.md").read_text()
    import re

    match = re.search(r"nobody\s+got\s+a\s+message\s+twice", text)
    assert match is not None
    after = text[match.end() :]
    return after.split("```python", 1)[1].split("```", 1)[0]


async def test_documented_duplicate_check_ignores_inbound_messages() -> None:
    """docs/testing.md runs ``Counter(m["to"][0]["phone_number"] for m in fake.messages())`` "to
    check that nobody got a message twice". fake.messages() also holds inbound messages, whose
    to[0] is the app's own number, so two replies from handsets make the check fail although
    every recipient got exactly one message."""
    async with FakeTelnyx() as fake, fake.client() as client:
        for n in ("+18445550001", "+18445550002"):
            await client.messages.send(from_=DEFAULT_TOLL_FREE, to=n, text="Reminder")
            await fake.inject_inbound(from_=n, to=DEFAULT_TOLL_FREE, text="thanks")
        exec(_duplicate_check_block(), {"fake": fake})  # the documented assertion


@pytest.mark.parametrize("word", ["HELP", "info"])
async def test_help_keywords_mark_the_inbound_message_and_opt_nobody_out(word: str) -> None:
    """HELP and INFO are answered as help (``autoresponse_type: "HELP"``), not as an opt-out."""
    async with FakeTelnyx() as fake:
        inbound = await fake.inject_inbound(from_=HANDSET, to=DEFAULT_TOLL_FREE, text=word)
        assert inbound.get("autoresponse_type") == "HELP"
        assert fake.opt_outs() == []


async def test_start_to_a_number_lifts_the_block_on_that_number() -> None:
    """After STOPs to two numbers of a profile, a START to one of them lifts the block: it left
    the other STOP's profile-wide block in place (409 on a send from that very number)."""
    async with FakeTelnyx() as fake, fake.client() as client:
        # Both numbers are in the default profile: the handset texts STOP to each, then START
        # to the toll-free number.
        await fake.inject_inbound(from_=HANDSET, to=DEFAULT_TOLL_FREE, text="STOP")
        await fake.inject_inbound(from_=HANDSET, to=DEFAULT_LONG_CODE, text="STOP")
        inbound = await fake.inject_inbound(from_=HANDSET, to=DEFAULT_TOLL_FREE, text="START")
        assert inbound["autoresponse_type"] == "START"
        message = await client.messages.send(from_=DEFAULT_TOLL_FREE, to=HANDSET, text="hi")
        assert message.id


async def test_start_to_another_number_of_the_profile_lifts_the_profile_block() -> None:
    """Block rules operate at the messaging profile level, both ways: a START to any number of
    the profile lifts what a STOP to another of its numbers set (it lifted only its own record,
    so the profile stayed blocked)."""
    async with FakeTelnyx() as fake, fake.client() as client:
        await fake.inject_inbound(from_=HANDSET, to=DEFAULT_TOLL_FREE, text="STOP")
        await fake.inject_inbound(from_=HANDSET, to=DEFAULT_LONG_CODE, text="START")
        try:
            await client.messages.send(from_=DEFAULT_LONG_CODE, to=HANDSET, text="hi")
        except telnyx_msg.ConflictError as exc:
            pytest.fail(f"still blocked after START to a number of the profile: {exc}")


OTHER_HANDSET = "+18445550008"


# --- the fake: opt-out keywords and block rules -------------------------------------------------


@pytest.mark.parametrize("word", ["END", "quit", "Stop"])
async def test_every_default_stop_keyword_opts_out(word: str) -> None:
    """Guards against STOP_WORDS losing END or QUIT: Telnyx's defaults are STOP, STOPALL,
    STOP ALL, UNSUBSCRIBE, CANCEL, END, QUIT, and an app whose opt-out handling is tested only
    against the fake must see every one of them block the handset."""
    async with FakeTelnyx() as fake, fake.client() as client:
        inbound = await fake.inject_inbound(from_=HANDSET, to=DEFAULT_TOLL_FREE, text=word)
        assert inbound.get("autoresponse_type") == "STOP"
        with pytest.raises(telnyx_msg.ConflictError):
            await client.messages.send(from_=DEFAULT_TOLL_FREE, to=HANDSET, text="hi")


async def test_a_help_op_keyword_is_help_not_an_opt_out() -> None:
    """Guards against keyword_op ignoring the op of a profile's auto-response config: a custom
    *info* keyword (AIDE) must be answered as HELP, never opt the handset out."""
    async with FakeTelnyx() as fake:
        await _autoresp(fake, "info", ["AIDE"])
        inbound = await fake.inject_inbound(from_=HANDSET, to=DEFAULT_TOLL_FREE, text="aide")
        assert inbound.get("autoresponse_type") == "HELP"
        assert fake.opt_outs() == []


async def test_lower_case_custom_stop_keywords_match_any_case() -> None:
    """Guards against keyword_op comparing the upper-cased text with config keywords as
    registered: a stop config created with ["arret"] must opt out a handset texting ARRET."""
    async with FakeTelnyx() as fake:
        await _autoresp(fake, "stop", ["arret"])
        inbound = await fake.inject_inbound(from_=HANDSET, to=DEFAULT_TOLL_FREE, text="ARRET")
        assert inbound.get("autoresponse_type") == "STOP"
        assert [r["to"] for r in fake.opt_outs()] == [HANDSET]


async def test_start_from_one_handset_does_not_lift_anothers_block() -> None:
    """Guards against remove_opt_out dropping the recipient match: START from one handset
    lifted every handset's opt-out on the profile, so the fake delivered to people who said
    STOP."""
    async with FakeTelnyx() as fake, fake.client() as client:
        await fake.inject_inbound(from_=HANDSET, to=DEFAULT_TOLL_FREE, text="STOP")
        await fake.inject_inbound(from_=OTHER_HANDSET, to=DEFAULT_TOLL_FREE, text="STOP")
        await fake.inject_inbound(from_=OTHER_HANDSET, to=DEFAULT_TOLL_FREE, text="START")
        assert [r["to"] for r in fake.opt_outs()] == [HANDSET]
        with pytest.raises(telnyx_msg.ConflictError):
            await client.messages.send(from_=DEFAULT_LONG_CODE, to=HANDSET, text="hi")


async def test_one_handsets_stop_does_not_block_other_handsets() -> None:
    """Guards against blocked() dropping the recipient match: one STOP blocked every
    recipient of the profile."""
    async with FakeTelnyx() as fake, fake.client() as client:
        await fake.inject_inbound(from_=HANDSET, to=DEFAULT_TOLL_FREE, text="STOP")
        message = await client.messages.send(from_=DEFAULT_LONG_CODE, to=OTHER_HANDSET, text="hi")
        assert message.id


async def test_a_group_mms_with_an_opted_out_member_is_refused() -> None:
    """Guards against the send checking only its first recipient for an opt-out: a group MMS
    whose second member texted STOP was delivered to that member."""
    async with FakeTelnyx() as fake, fake.client() as client:
        await fake.inject_inbound(from_=HANDSET, to=DEFAULT_LONG_CODE, text="STOP")
        with pytest.raises(telnyx_msg.ConflictError) as info:
            await client.messages.send_group_mms(
                from_=DEFAULT_LONG_CODE, to=[OTHER_HANDSET, HANDSET], text="party"
            )
        assert info.value.code == "40300"


async def _autoresp(fake: FakeTelnyx, op: str, keywords: list[str]) -> None:
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{fake.base_url}/messaging_profiles/{DEFAULT_PROFILE_ID}/autoresp_configs",
            json={"op": op, "keywords": keywords, "country_code": "US"},
            headers={"Authorization": f"Bearer {fake.api_key}"},
        ) as reply,
    ):
        assert reply.status in (200, 201), await reply.text()


async def test_a_stop_to_a_number_follows_it_to_another_profile() -> None:
    """Guards against blocked() and remove_opt_out() relying only on the profile-wide rule:
    a handset that texted STOP to a number stays blocked from that very number after the
    number moves to another messaging profile, and its START to that number lifts it."""
    from telnyx_msg.testing import FakeConfig, SeedProfile

    config = FakeConfig(profiles=[SeedProfile(), SeedProfile(id="p2", name="Two")])
    async with FakeTelnyx(config=config) as fake, fake.client() as client:
        await fake.inject_inbound(from_=HANDSET, to=DEFAULT_TOLL_FREE, text="STOP")
        await _request(
            fake,
            "PATCH",
            f"/phone_numbers/{DEFAULT_TOLL_FREE}/messaging",
            {"messaging_profile_id": "p2"},
        )
        with pytest.raises(telnyx_msg.ConflictError):
            await client.messages.send(from_=DEFAULT_TOLL_FREE, to=HANDSET, text="hi")
        await fake.inject_inbound(from_=HANDSET, to=DEFAULT_TOLL_FREE, text="START")
        message = await client.messages.send(from_=DEFAULT_TOLL_FREE, to=HANDSET, text="hi")
        assert message.id


async def _request(fake: FakeTelnyx, method: str, path: str, body: object) -> None:
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method,
            fake.base_url + path,
            json=body,
            headers={"Authorization": f"Bearer {fake.api_key}"},
        ) as reply,
    ):
        assert reply.status in (200, 201), await reply.text()


@pytest.mark.parametrize("text", ["  stop  all ", "Stop\tAll"])
async def test_stop_all_with_irregular_spacing_opts_out(text: str) -> None:
    """Guards against keyword_op comparing the text without collapsing inner whitespace: a
    handset's "STOP  ALL" (a double space, a tab from a paste) is the STOP ALL keyword, and the
    fake must block it as it does "STOP ALL"."""
    async with FakeTelnyx() as fake:
        inbound = await fake.inject_inbound(from_=HANDSET, to=DEFAULT_TOLL_FREE, text=text)
        assert inbound.get("autoresponse_type") == "STOP"
        assert [(r["to"], r["keyword"]) for r in fake.opt_outs()] == [(HANDSET, "STOP ALL")]


async def test_documentation_hosts_are_never_contacted(receiver: Receiver) -> None:
    """A webhook_url copied from the docs (example.com) gets no POST carrying the message's text
    and numbers: one failed attempt says why, and the failover URL still gets the event."""
    config = FakeConfig(webhooks=WebhookSettings(attempts=3, retry_delay=0.0))
    async with FakeTelnyx(config=config) as fake, connect(fake) as api:
        for url in ("https://example.com/webhooks/telnyx", "http://hooks.example.invalid./x"):
            fake.stats.reset()
            await api.send(
                from_=DEFAULT_TOLL_FREE,
                to=TO,
                text="x",
                webhook_url=url,
                webhook_failover_url=receiver.url(),
            )
            await fake.settle()
            sent = [a for a in fake.stats.webhook_attempts if a.event_type == "message.sent"]
            assert [(a.url, a.attempt, a.status) for a in sent] == [
                (url, 1, None),
                (receiver.url(), 2, 200),
            ]
            assert sent[0].error is not None
            assert "reserved for documentation" in sent[0].error


async def test_fake_records_a_webhook_url_aiohttp_cannot_parse_as_a_failed_attempt() -> None:
    """A profile whose webhook URL is malformed (``http://[::1/hook``, created through
    ``client.request``, which the fake accepts as it starts with ``http://``): an inbound
    message's webhook counts failed attempts on it and then tries the failover, as before
    8c57649. The documentation-host check's ``urlsplit`` raised ValueError "Invalid IPv6
    URL" instead: ``inject_inbound`` raised it, and no attempt or failover happened."""
    async with (
        FakeTelnyx() as fake,
        fake.client(rate_limits=None, max_retries=0) as client,
    ):
        body = await client.request(
            "POST",
            "/messaging_profiles",
            json={
                "name": "A",
                "whitelisted_destinations": ["US"],
                "webhook_url": "http://[::1/hook",
                "webhook_failover_url": "http://127.0.0.1:9/hook",
            },
        )
        await fake.inject_inbound(
            from_="+18445550001",
            to=DEFAULT_TOLL_FREE,
            text="hi",
            messaging_profile_id=body["data"]["id"],
        )
        urls = {attempt.url for attempt in fake.stats.webhook_attempts}
    assert urls == {"http://[::1/hook", "http://127.0.0.1:9/hook"}
    assert fake.stats.webhooks_failed == 1


async def test_settle_waits_for_webhook_deliveries_to_a_slow_receiver(
    receiver: Receiver,
) -> None:
    """``await fake.settle()`` returns only once message.sent and message.finalized have been
    delivered, even when the receiver takes 0.3 s to answer each: a test asserting on the
    received webhooks right after settle() must not see them missing."""
    receiver.delay = 0.3
    fake = FakeTelnyx(config=FakeConfig(delivery_delay=0.0))
    await fake.start()
    try:
        async with connect(fake) as api:
            await api.send(
                from_=DEFAULT_TOLL_FREE, to="+18445550001", text="x", webhook_url=receiver.url()
            )
        await fake.settle(timeout=5.0)
        assert fake.stats.webhooks_delivered == 2
        assert [d.json()["data"]["event_type"] for d in receiver.received] == [
            "message.sent",
            "message.finalized",
        ]
    finally:
        await fake.close()
