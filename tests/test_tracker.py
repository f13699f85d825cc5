"""The in-memory DeliveryTracker: which webhook statuses are final, waiters, eviction."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import threading
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol

import aiohttp
import pytest
from aiohttp import web

import telnyx_msg
from telnyx_msg._tracker import DEFAULT_FINAL_STATUS_TIMEOUT, DeliveryTracker
from telnyx_msg.models import Message, Recipient, WebhookEvent, WebhookEventType
from telnyx_msg.receivers import aiohttp_handler
from telnyx_msg.testing import FakeTelnyx


def sent(message_id: str, *statuses: str | None) -> WebhookEvent:
    """A message.sent whose recipients have ``statuses``."""
    to = tuple(
        Recipient(phone_number=f"+1555000{i:04d}", status=status)
        for i, status in enumerate(statuses)
    )
    return WebhookEvent(
        event_type=WebhookEventType.MESSAGE_SENT,
        id=f"evt-{message_id}",
        occurred_at=None,
        payload=Message(id=message_id, to=to),
    )


def finalized(message_id: str) -> WebhookEvent:
    return WebhookEvent(
        event_type=WebhookEventType.MESSAGE_FINALIZED,
        id=f"fin-{message_id}",
        occurred_at=None,
        payload=Message(
            id=message_id, to=(Recipient(phone_number="+15550001111", status="delivered"),)
        ),
    )


def test_message_sent_without_recipients_is_not_final() -> None:
    """Guards against a regression (``bool(statuses)`` dropped): a message.sent with no recipient
    status list is vacuously "all terminal" and resolved final_status with a message nobody got."""
    tracker = DeliveryTracker()
    tracker.record(sent("m0"))
    assert tracker.result_nowait("m0") is None


def test_group_message_sent_with_one_terminal_recipient_is_not_final() -> None:
    """Guards against a regression (``all`` -> ``any``): a group message.sent where one recipient
    already failed but the other is still ``sent`` must keep the wait open (its final status is
    still to come)."""
    tracker = DeliveryTracker()
    tracker.record(sent("g1", "sending_failed", "sent"))
    assert tracker.result_nowait("g1") is None
    tracker.record(sent("g2", "sending_failed", "delivered"))
    assert tracker.result_nowait("g2") is not None


@pytest.mark.anyio
async def test_a_redelivered_final_status_does_not_shorten_the_evicted_memory() -> None:
    """Guards against a regression (``self._evicted.pop(message.id)`` dropped): a final status
    redelivered after its eviction (Telnyx redelivers webhooks) left a stale entry among the evicted
    ids, which pushed out an id that must still be remembered: awaiting it then waited out its whole
    timeout instead of raising LookupError at once (the class docstring: the ids of dropped ones are
    remembered, another max_size)."""
    tracker = DeliveryTracker(max_size=2)
    for message_id in ("x", "y", "a", "b", "c"):
        tracker.record(finalized(message_id))
    # final: b, c; evicted ids: y, a (x forgotten)
    tracker.record(finalized("a"))  # a redelivery of an evicted final status
    # final: c, a; evicted ids: y, b
    assert tracker.result_nowait("a") is not None
    with pytest.raises(LookupError, match="max_size"):
        await tracker.final_status("y", timeout=0.05)


def test_record_ignores_a_waiter_whose_loop_is_closed() -> None:
    """Guards against a regression (the ``loop.is_closed()`` check dropped): a final_status left
    waiting in a loop that was closed without finishing it (an abandoned worker loop) made record()
    raise RuntimeError('Event loop is closed') in the webhook handler, and the status was not
    delivered to the waiters after it."""
    tracker = DeliveryTracker()
    old = asyncio.new_event_loop()
    task = old.create_task(tracker.final_status("m1", timeout=None))
    old.run_until_complete(asyncio.sleep(0))
    assert tracker.waiting == 1
    old.close()  # closed with the task still pending (its waiter stays registered)

    async def live() -> Message:
        return await tracker.final_status("m1", timeout=5)

    new = asyncio.new_event_loop()
    try:
        waiter = new.create_task(live())
        new.run_until_complete(asyncio.sleep(0))
        tracker.record(finalized("m1"))  # must not raise
        assert new.run_until_complete(waiter).id == "m1"
    finally:
        new.close()
        task._log_destroy_pending = False  # type: ignore[attr-defined]  # abandoned on purpose
        del task


@contextlib.contextmanager
def loop_errors() -> Iterator[list[dict[str, Any]]]:
    """What the running loop reports through its exception handler ("Exception in
    callback") meanwhile."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        yield errors
    finally:
        loop.set_exception_handler(previous)


@pytest.mark.anyio
async def test_a_final_status_cancelled_as_its_event_arrives_logs_no_error() -> None:
    """Guards against a regression (``_resolve`` without its ``waiter.done()`` check): a
    final_status cancelled in the same loop turn as its event arrived had its future set after it
    was cancelled: InvalidStateError, reported by the loop as "Exception in callback"."""
    with loop_errors() as errors:
        tracker = DeliveryTracker()
        task = asyncio.ensure_future(tracker.final_status("m1", timeout=5))
        await asyncio.sleep(0)
        task.cancel()
        tracker.record(finalized("m1"))
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(5):
            await asyncio.sleep(0)
    assert errors == []
    assert tracker.result_nowait("m1") is not None


def test_final_status_waits_600_seconds_by_default() -> None:
    """Guards against a regression (the default changed): the documented default wait of
    final_status is 600 s (its docstring, the constant's comment)."""
    default = inspect.signature(DeliveryTracker.final_status).parameters["timeout"].default
    assert default == DEFAULT_FINAL_STATUS_TIMEOUT == 600.0


SENDER = "+18005550101"
TO = "+18445550001"
CC = "+18445550002"


def delivery_body(event_type: str, message_id: str, to_status: str, cc_status: str) -> bytes:
    """A delivery webhook as Telnyx sends it, for a message with one ``to`` and one ``cc``."""
    payload = {
        "record_type": "message",
        "id": message_id,
        "direction": "outbound",
        "type": "MMS",
        "from": {"phone_number": SENDER, "carrier": "TELNYX LLC", "line_type": "VoIP"},
        "to": [{"phone_number": TO, "status": to_status, "carrier": "", "line_type": ""}],
        "cc": [{"phone_number": CC, "status": cc_status, "carrier": "", "line_type": ""}],
        "text": "hi all",
        "errors": [],
    }
    data = {
        "record_type": "event",
        "id": str(uuid.uuid4()),
        "event_type": event_type,
        "occurred_at": "2024-01-01T00:00:00.000+00:00",
        "payload": payload,
    }
    return json.dumps({"data": data, "meta": {"attempt": 1}}).encode()


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelnyx]:
    async with FakeTelnyx() as instance:
        yield instance


@pytest.mark.anyio
async def test_cc_recipient_still_sent_keeps_the_wait_open_through_a_receiver(
    fake: FakeTelnyx,
) -> None:
    """A ``message.sent`` whose ``to`` recipient failed but whose ``cc`` recipient is still
    ``sent`` must not end ``final_status``: the user is owed the ``cc`` recipient's outcome,
    which only the later ``message.finalized`` carries (it used to be dropped as a repeat, and
    the wait returned ``cc[0].status == "sent"`` as the final state)."""
    tracker = telnyx_msg.DeliveryTracker()
    receiver = aiohttp_handler(
        telnyx_msg.WebhookVerifier(fake.public_key),
        {"message.sent": tracker.handle, "message.finalized": tracker.handle},
    )
    app = web.Application()
    app.router.add_post("/hooks", receiver)
    app.on_cleanup.append(receiver.on_cleanup)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/hooks"
    message_id = str(uuid.uuid4())
    try:
        async with aiohttp.ClientSession() as http:
            for body in (
                delivery_body("message.sent", message_id, "sending_failed", "sent"),
                delivery_body("message.finalized", message_id, "sending_failed", "delivered"),
            ):
                headers = {"content-type": "application/json", **fake.sign_webhook(body)}
                async with http.post(url, data=body, headers=headers) as answer:
                    assert answer.status == 200, await answer.text()
                if "message.sent" in body.decode():
                    assert tracker.result_nowait(message_id) is None
        final = await tracker.final_status(message_id, timeout=5)
    finally:
        await runner.cleanup()
    assert [r.status for r in final.to] == ["sending_failed"]
    assert [r.status for r in final.cc] == ["delivered"]


def _event(event_type: WebhookEventType, message_id: str, cc_status: str) -> WebhookEvent:
    return WebhookEvent(
        event_type=event_type,
        id=str(uuid.uuid4()),
        occurred_at=None,
        payload=Message(
            id=message_id,
            to=(Recipient(phone_number=TO, status="delivered"),),
            cc=(Recipient(phone_number=CC, status=cc_status),),
        ),
    )


@pytest.mark.redis
@pytest.mark.anyio
async def test_redis_tracker_keeps_the_wait_open_for_a_cc_recipient(redis_url: str) -> None:
    """The same across processes: the Redis tracker must not store a ``message.sent`` whose
    ``cc`` recipient is still ``queued`` as the final status (``SET NX`` would then keep it and
    drop the ``message.finalized`` with the recipient's real outcome for a day)."""
    tracker = telnyx_msg.RedisDeliveryTracker(redis_url, key_prefix=f"t{uuid.uuid4().hex}:")
    try:
        await tracker.handle(_event(WebhookEventType.MESSAGE_SENT, "m-cc", "queued"))
        assert await tracker.result("m-cc") is None
        await tracker.handle(_event(WebhookEventType.MESSAGE_FINALIZED, "m-cc", "delivery_failed"))
        final = await tracker.final_status("m-cc", timeout=5)
        assert [r.status for r in final.cc] == ["delivery_failed"]
    finally:
        await tracker.aclose()


class TrackerInterface(Protocol):
    """The interface both trackers share (code written against it takes either)."""

    async def handle(self, event: WebhookEvent) -> None: ...

    async def final_status(self, message_id: str, *, timeout: float | None = ...) -> Message: ...

    async def result(self, message_id: str) -> Message | None: ...


@pytest.mark.parametrize("kind", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
@pytest.mark.anyio
async def test_both_trackers_answer_await_result(kind: str, request: pytest.FixtureRequest) -> None:
    """``await tracker.result(id)`` works on the in-memory ``DeliveryTracker`` as on a
    ``RedisDeliveryTracker`` (it raised ``TypeError: object NoneType can't be used in 'await'
    expression``): None before the final status is known, the final Message after; blocking
    code has ``result_nowait``. Typed: both classes satisfy one interface under mypy."""
    tracker: TrackerInterface
    if kind == "memory":
        tracker = memory = telnyx_msg.DeliveryTracker()
    else:
        redis_url: str = request.getfixturevalue("redis_url")
        tracker = telnyx_msg.RedisDeliveryTracker(redis_url, key_prefix=f"t{uuid.uuid4().hex}:")
    try:
        assert await tracker.result("m-r") is None
        await tracker.handle(_event(WebhookEventType.MESSAGE_FINALIZED, "m-r", "delivered"))
        final = await tracker.result("m-r")
        assert final is not None
        assert final.id == "m-r"
        if kind == "memory":
            assert memory.result_nowait("m-r") == final
    finally:
        if isinstance(tracker, telnyx_msg.RedisDeliveryTracker):
            await tracker.aclose()


def unreadable_finalized(message_id: str, event_type: str = "message.finalized") -> WebhookEvent:
    """A verified ``message.finalized`` whose recipient has a status but no ``phone_number``:
    the SDK cannot read the payload as a Message and hands it over as the raw mapping."""
    from tests.test_webhook_queue import sign, verifier

    payload = {
        "record_type": "message",
        "id": message_id,
        "direction": "outbound",
        "to": [{"status": "delivered"}],
    }
    body = json.dumps(
        {
            "data": {
                "record_type": "event",
                "id": str(uuid.uuid4()),
                "event_type": event_type,
                "occurred_at": "2024-01-01T00:00:01Z",
                "payload": payload,
            }
        }
    ).encode()
    event = verifier().unwrap(body, sign(body))
    assert not isinstance(event.payload, Message)
    return event


@pytest.mark.anyio
async def test_an_unreadable_final_status_fails_its_waiters_at_once() -> None:
    """A ``message.finalized`` the receiver acknowledged (so Telnyx never sends it again) but
    whose payload the SDK could not read: ``final_status`` raises ``LookupError`` saying so,
    for a waiter already waiting and for a later one, instead of waiting out its timeout
    (600 s by default) and blaming a status that never came; a readable final status that
    arrives afterwards does not change the first one's verdict."""
    tracker = DeliveryTracker()
    early = asyncio.ensure_future(tracker.final_status("m-unreadable", timeout=60))
    await asyncio.sleep(0)
    await tracker.handle(unreadable_finalized("m-unreadable"))
    with pytest.raises(LookupError, match="arrived, but its payload is not one this SDK reads"):
        await asyncio.wait_for(early, 5)
    await tracker.handle(finalized("m-unreadable"))
    with pytest.raises(LookupError, match=r"messages\.retrieve"):
        await tracker.final_status("m-unreadable", timeout=60)
    assert tracker.result_nowait("m-unreadable") is None
    assert tracker.waiting == 0


@pytest.mark.anyio
async def test_an_unreadable_copy_of_an_evicted_final_status_still_says_it_was_dropped() -> None:
    """A final status recorded and then dropped by ``max_size``, followed by an unreadable
    ``message.finalized`` for the same message: the first status won, so waiting for it says
    it was dropped (raise ``max_size``), not that it arrived unreadable."""
    tracker = DeliveryTracker(max_size=1)
    await tracker.handle(finalized("m-first"))
    await tracker.handle(finalized("m-second"))  # drops m-first
    await tracker.handle(unreadable_finalized("m-first"))
    with pytest.raises(LookupError, match="dropped to stay within max_size"):
        await tracker.final_status("m-first", timeout=1)


# --- found by a mutation round: waiters, threads, unreadable ids, memory --------------------


async def until_waiting(tracker: DeliveryTracker, count: int) -> None:
    for _ in range(100):
        if tracker.waiting == count:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"waiting={tracker.waiting}, expected {count}")


@pytest.mark.anyio
async def test_a_waiter_that_times_out_leaves_the_other_waiters_of_its_message_waiting() -> None:
    """Kills the mutant of ``_discard`` that drops every waiter of the message id instead of
    the one that gave up. Two ``final_status`` calls for one message (a request handler and a
    report, say) with different timeouts: the shorter one timing out must not unregister the
    other, which would then never be woken by the final status and time out too."""
    tracker = DeliveryTracker()
    patient = asyncio.ensure_future(tracker.final_status("m-two", timeout=30))
    await until_waiting(tracker, 1)
    with pytest.raises(TimeoutError):
        await tracker.final_status("m-two", timeout=0.01)
    assert tracker.waiting == 1
    tracker.record(finalized("m-two"))
    final = await asyncio.wait_for(patient, 5)
    assert final.id == "m-two"
    assert tracker.waiting == 0


def _record_from_a_thread(tracker: DeliveryTracker, event: WebhookEvent) -> threading.Timer:
    """``tracker.record(event)`` in another thread, 0.2 s from now (the loop asleep by then)."""
    thread = threading.Timer(0.2, tracker.record, args=(event,))
    thread.start()
    return thread


@pytest.mark.anyio
@pytest.mark.parametrize("readable", [True, False], ids=["final", "unreadable-final"])
async def test_record_from_another_thread_wakes_the_waiting_loop_at_once(readable: bool) -> None:
    """Kills the mutants that resolve (``record``) or reject (``_fail``) a waiter with
    ``loop.call_soon`` instead of ``loop.call_soon_threadsafe``. ``record`` is documented to be
    callable from any thread (a WSGI receiver's worker thread) and to wake waiters in their own
    loop: ``call_soon`` from another thread does not wake a loop asleep in its selector, so the
    waiter only saw its status when something else woke the loop (here: its own timeout, 3 s
    later)."""
    tracker = DeliveryTracker()
    waiter = asyncio.ensure_future(tracker.final_status("m-thread", timeout=3))
    await until_waiting(tracker, 1)
    started = time.monotonic()
    thread = _record_from_a_thread(
        tracker, finalized("m-thread") if readable else unreadable_finalized("m-thread")
    )
    try:
        if readable:
            assert (await waiter).id == "m-thread"
        else:
            with pytest.raises(LookupError, match="not one this SDK reads"):
                await waiter
        assert time.monotonic() - started < 2
    finally:
        thread.join(5)


@pytest.mark.anyio
async def test_an_unreadable_message_sent_does_not_fail_the_wait() -> None:
    """Kills the mutant of ``unreadable_final`` that counts an unreadable event of any type
    as an unreadable *final* status. A ``message.sent`` whose payload the SDK could not read
    says nothing final (the ``message.finalized`` follows): the waiter must go on waiting and
    get the final status, not raise ``LookupError`` at once."""
    tracker = DeliveryTracker()
    waiter = asyncio.ensure_future(tracker.final_status("m-sent", timeout=30))
    await until_waiting(tracker, 1)
    await tracker.handle(unreadable_finalized("m-sent", "message.sent"))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    await tracker.handle(finalized("m-sent"))
    assert (await asyncio.wait_for(waiter, 5)).id == "m-sent"


async def remembered_and_forgotten(
    tracker: DeliveryTracker, remembered: tuple[str, ...], why: str, forgotten: str
) -> None:
    """Waiting for a ``remembered`` id raises ``LookupError`` (matching ``why``) at once; the
    ``forgotten`` one is waited for again (and times out); no waiter is left behind."""
    for message_id in remembered:
        with pytest.raises(LookupError, match=why):
            await tracker.final_status(message_id, timeout=5)
    with pytest.raises(TimeoutError):
        await tracker.final_status(forgotten, timeout=0.01)
    assert tracker.waiting == 0


@pytest.mark.anyio
async def test_the_ids_of_unreadable_final_statuses_are_bounded_oldest_forgotten_first() -> None:
    """Kills the mutants of ``_fail`` that keep every unreadable id (no bound) or forget the
    newest instead of the oldest. Like the dropped ids, the ids of unreadable final statuses are
    remembered up to ``max_size`` (memory stays bounded in a long-running receiver), the oldest
    forgotten first: the newest still raises ``LookupError`` at once; a forgotten one is waited
    for again."""
    tracker = DeliveryTracker(max_size=2)
    for message_id in ("u-a", "u-b", "u-c"):
        await tracker.handle(unreadable_finalized(message_id))
    await remembered_and_forgotten(tracker, ("u-b", "u-c"), "not one this SDK reads", "u-a")


@pytest.mark.anyio
async def test_a_final_status_cancelled_as_its_unreadable_event_arrives_logs_no_error() -> None:
    """Kills the mutant of ``_reject`` without its ``waiter.done()`` check: a final_status
    cancelled in the same loop turn as an unreadable ``message.finalized`` arrived had the
    exception set on its cancelled future: InvalidStateError, reported by the loop as
    "Exception in callback" (the twin of the guard ``_resolve`` has)."""
    with loop_errors() as errors:
        tracker = DeliveryTracker()
        task = asyncio.ensure_future(tracker.final_status("m-cancel", timeout=5))
        await until_waiting(tracker, 1)
        task.cancel()
        await tracker.handle(unreadable_finalized("m-cancel"))
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(5):
            await asyncio.sleep(0)
    assert errors == []
    with pytest.raises(LookupError):
        await tracker.final_status("m-cancel", timeout=5)


@pytest.mark.anyio
async def test_waits_that_time_out_leave_no_memory_behind() -> None:
    """Kills the mutant of ``_discard`` that keeps an empty waiter list under the message id
    when its last waiter gives up. ``waiting`` still said 0, but every message whose wait timed
    out (a final status that never came) left an entry behind: a long-running service that
    awaits each message it sends leaked without bound. Measured with tracemalloc, on the
    allocations made by the tracker's own module."""
    tracker = DeliveryTracker()
    grown = await bytes_kept_by_timed_out_waits(tracker, 2000)
    assert tracker.waiting == 0
    assert grown < 20_000, f"{grown} bytes kept after 2000 timed-out waits"


async def bytes_kept_by_timed_out_waits(tracker: Any, count: int) -> int:
    """Bytes the tracker's own module still holds after ``count`` waits timed out
    (``final_status(id, timeout=0)`` for ids that never come), measured with tracemalloc."""
    here = tracemalloc.Filter(True, inspect.getfile(type(tracker)))
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot().filter_traces([here])
        for n in range(count):
            with pytest.raises(TimeoutError):
                await tracker.final_status(f"m-never-{n}", timeout=0)
        after = tracemalloc.take_snapshot().filter_traces([here])
    finally:
        tracemalloc.stop()
    return sum(stat.size_diff for stat in after.compare_to(before, "filename"))


# --- edges found by mutation testing ------------------------------------------------------

TERMINAL = ["delivered", "delivery_failed", "sending_failed", "delivery_unconfirmed", "expired"]
NOT_TERMINAL = ["queued", "sending", "sent"]


def delivery(event_type: WebhookEventType, message_id: str, *statuses: str | None) -> WebhookEvent:
    """A delivery webhook for a group message whose recipients have ``statuses`` (one ``to``,
    the rest ``cc``), with the statuses in its text so tests can tell two copies apart."""
    recipients = [
        Recipient(phone_number=f"+1844555{i:04d}", status=status)
        for i, status in enumerate(statuses)
    ]
    return WebhookEvent(
        event_type=event_type,
        id=str(uuid.uuid4()),
        occurred_at=None,
        payload=Message(
            id=message_id,
            text=",".join(str(s) for s in statuses),
            to=tuple(recipients[:1]),
            cc=tuple(recipients[1:]),
        ),
    )


# --- which webhook ends the wait -----------------------------------------------------------


@pytest.mark.parametrize("status", [*TERMINAL, "cancelled"])
def test_a_message_sent_whose_recipients_are_all_terminal_is_final(status: str) -> None:
    """Guards against: a terminal status dropped from ``TERMINAL_STATUSES`` (mutants removing
    ``delivery_unconfirmed``, ``expired`` or ``cancelled`` survived the suite). A
    ``message.sent`` whose every recipient is already in a final state ends the wait (the
    documented rule); without it the wait hangs on until the ``message.finalized``, and runs
    to its timeout if that one is lost."""
    tracker = DeliveryTracker()
    tracker.record(sent(f"m-{status}", status))
    final = tracker.result_nowait(f"m-{status}")
    assert final is not None
    assert [r.status for r in final.to] == [status]


@pytest.mark.parametrize("status", NOT_TERMINAL)
def test_a_message_sent_with_a_recipient_not_yet_final_is_not_final(status: str) -> None:
    """The other half of the rule above: a ``message.sent`` with any recipient still
    ``queued``/``sending``/``sent`` does not end the wait. Guards against: a non-terminal
    status counted as terminal."""
    tracker = DeliveryTracker()
    tracker.record(delivery(WebhookEventType.MESSAGE_SENT, "m-open", "delivered", status))
    assert tracker.result_nowait("m-open") is None


def test_a_message_sent_with_a_recipient_without_status_is_not_final() -> None:
    """Guards against: ``len(statuses) == len(recipients)`` dropped from ``_is_final``. A group
    ``message.sent`` where one recipient already has a terminal status but another has none
    yet says nothing final about that one: the wait must go on, not return a Message whose
    ``cc`` recipient has no outcome (and, first status winning, keep it over the real
    ``message.finalized``)."""
    tracker = DeliveryTracker()
    tracker.record(delivery(WebhookEventType.MESSAGE_SENT, "m-none", "delivered", None))
    assert tracker.result_nowait("m-none") is None
    tracker.record(
        delivery(WebhookEventType.MESSAGE_FINALIZED, "m-none", "delivered", "delivery_failed")
    )
    final = tracker.result_nowait("m-none")
    assert final is not None
    assert [r.status for r in final.cc] == ["delivery_failed"]


@pytest.mark.anyio
async def test_message_finalized_ends_the_wait_whatever_its_recipient_statuses() -> None:
    """Guards against: ``message.finalized`` no longer final by itself (only through its
    recipients' statuses). The docs: ``final_status`` resolves on ``message.finalized``;
    Telnyx sends nothing after it, so one whose recipient status this SDK does not count as
    terminal (here ``read``, a status of the API's enum) must still end the wait, not let
    it run to its timeout."""
    tracker = DeliveryTracker()
    waiter = asyncio.ensure_future(tracker.final_status("m-read", timeout=5))
    await until_waiting(tracker, 1)
    tracker.record(delivery(WebhookEventType.MESSAGE_FINALIZED, "m-read", "read"))
    final = await asyncio.wait_for(waiter, 1)
    assert [r.status for r in final.to] == ["read"]


# --- the first final status wins ----------------------------------------------------------


def test_the_first_final_status_is_kept_in_memory_too() -> None:
    """Guards against: ``message.id in self._final`` dropped from ``record`` (the last final
    status wins). The docs: later events for a message that is already final are ignored,
    as in Redis (``SET NX``): a ``message.sent`` already all ``sending_failed`` is the answer;
    a later copy (a redelivered or a ``message.finalized`` with other content) must not
    replace what ``result``/``final_status`` return, or two processes would disagree."""
    tracker = DeliveryTracker()
    tracker.record(delivery(WebhookEventType.MESSAGE_SENT, "m-first", "sending_failed"))
    tracker.record(delivery(WebhookEventType.MESSAGE_FINALIZED, "m-first", "delivery_failed"))
    final = tracker.result_nowait("m-first")
    assert final is not None
    assert final.text == "sending_failed"


# --- what is remembered of dropped and unreadable statuses --------------------------------


@pytest.mark.anyio
async def test_the_most_recently_dropped_ids_are_the_ones_remembered() -> None:
    """Guards against: the memory of evicted ids forgetting its newest id instead of its
    oldest (``popitem(last=True)``). The class docstring: the ids of dropped statuses are
    remembered (another ``max_size``), so awaiting one raises ``LookupError`` at once; the id
    dropped last is the one most likely to be awaited next, and must not wait out its whole
    timeout instead."""
    tracker = DeliveryTracker(max_size=2)
    for message_id in ("a", "b", "c", "d", "e"):
        tracker.record(finalized(message_id))
    # kept: d, e; dropped and remembered: b, c; forgotten: a
    await remembered_and_forgotten(tracker, ("b", "c"), "dropped to stay within max_size", "a")


@pytest.mark.anyio
async def test_the_memory_of_dropped_ids_is_bounded() -> None:
    """Guards against: the bound on remembered evicted ids dropped (they piled up forever).
    A long-running receiver with ``max_size`` set records far more final statuses than it
    keeps: its memory must stay bounded by ``max_size`` (twice, with the dropped ids), not
    grow with every message it ever saw. Measured with tracemalloc, on the allocations made
    by the tracker's own module."""
    tracker = DeliveryTracker(max_size=10)
    events = [finalized(f"m-{n}") for n in range(5000)]
    here = tracemalloc.Filter(True, inspect.getfile(DeliveryTracker))
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot().filter_traces([here])
        for one in events:
            tracker.record(one)
        after = tracemalloc.take_snapshot().filter_traces([here])
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert grown < 20_000, f"{grown} bytes kept after 5000 final statuses with max_size=10"


@pytest.mark.anyio
async def test_a_garbled_copy_of_a_known_final_status_does_not_push_out_an_unreadable_id() -> None:
    """Guards against: ``message_id in self._final`` dropped from ``_fail``. A final status
    already known, then an unreadable ``message.finalized`` for the same message (the first
    status won, so the copy is ignored): under the mutant the copy took a place among the
    remembered unreadable ids and pushed out a real one, whose waiter then ran to its
    timeout instead of raising ``LookupError`` at once; and once the readable status was
    dropped by ``max_size``, waiting for it blamed an unreadable payload, not ``max_size``."""
    tracker = DeliveryTracker(max_size=1)
    await tracker.handle(unreadable_finalized("m-garbled"))
    await tracker.handle(finalized("m-known"))
    await tracker.handle(unreadable_finalized("m-known"))  # a copy of a status already final
    with pytest.raises(LookupError, match="not one this SDK reads"):
        await tracker.final_status("m-garbled", timeout=0.5)
    await tracker.handle(finalized("m-later"))  # drops m-known
    with pytest.raises(LookupError, match="dropped to stay within max_size"):
        await tracker.final_status("m-known", timeout=0.5)


# --- waiters ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_waiting_counts_every_waiting_call() -> None:
    """Guards against: ``waiting`` counting message ids instead of ``final_status`` calls.
    Two calls waiting for one message (a request handler and a report, say) are two
    waiting calls, as the property's docstring says."""
    tracker = DeliveryTracker()
    first = asyncio.ensure_future(tracker.final_status("m-both", timeout=5))
    second = asyncio.ensure_future(tracker.final_status("m-both", timeout=5))
    other = asyncio.ensure_future(tracker.final_status("m-other", timeout=5))
    await until_waiting(tracker, 3)
    tracker.record(finalized("m-both"))
    tracker.record(finalized("m-other"))
    assert [m.id for m in await asyncio.gather(first, second, other)] == [
        "m-both",
        "m-both",
        "m-other",
    ]
    assert tracker.waiting == 0


def test_a_final_status_frees_the_waiters_of_a_loop_that_is_gone() -> None:
    """Guards against: ``record`` waking the waiters of a message without unregistering them
    (``self._waiters.get`` instead of ``pop``). A ``final_status`` left behind in an event
    loop closed without finishing it never runs its own clean-up: the final status is the
    last chance to let go of it, or every such waiter stays in memory (and in ``waiting``)
    for the life of the process."""
    tracker = DeliveryTracker()
    old = asyncio.new_event_loop()
    task = old.create_task(tracker.final_status("m-gone", timeout=None))
    old.run_until_complete(asyncio.sleep(0))
    assert tracker.waiting == 1
    old.close()  # closed with the task still pending
    try:
        tracker.record(finalized("m-gone"))
        assert tracker.waiting == 0
        assert tracker.result_nowait("m-gone") is not None
    finally:
        task._log_destroy_pending = False  # type: ignore[attr-defined]  # abandoned on purpose
        del task


@pytest.mark.parametrize("timeout", [-1, float("nan"), float("inf"), True, "5"])
@pytest.mark.anyio
async def test_final_status_refuses_a_timeout_that_is_not_a_duration(timeout: object) -> None:
    """Guards against: ``final_status`` not validating ``timeout``. A negative, NaN, infinite,
    boolean or string timeout is a mistake in the caller's code, which gets a
    ``ConfigurationError`` naming ``timeout`` (as every duration setting does), not a
    ``TimeoutError`` that looks like a missing delivery report, nor a ``TypeError`` from
    inside asyncio."""
    tracker = DeliveryTracker()
    with pytest.raises(telnyx_msg.ConfigurationError, match="timeout"):
        await tracker.final_status("m-bad", timeout=timeout)  # type: ignore[arg-type]
    assert tracker.waiting == 0


@pytest.mark.anyio
async def test_an_unreadable_final_status_without_an_id_takes_no_place() -> None:
    """Guards against: ``unreadable_final`` accepting an empty message id. An unreadable
    ``message.finalized`` whose payload has no usable id names no message anyone can await;
    it must not take a place among the remembered unreadable ids (``max_size`` of them) and
    push out a real one, whose waiter would then run to its timeout instead of raising
    ``LookupError`` at once."""
    tracker = DeliveryTracker(max_size=1)
    await tracker.handle(unreadable_finalized("m-unreadable"))
    await tracker.handle(unreadable_finalized(""))
    with pytest.raises(LookupError, match="not one this SDK reads"):
        await tracker.final_status("m-unreadable", timeout=0.5)


# --- Redis --------------------------------------------------------------------------------
