"""Fault injection of the fake: latency, scripted and random 5xx, drops, stalls, Retry-After,
request matching, runtime changes, and the request counters."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiohttp
import pytest

from telnyx_msg.testing import DEFAULT_TOLL_FREE, FakeConfig, FakeTelnyx, Faults, SeedNumber

from .helpers import Api, connect

pytestmark = pytest.mark.anyio

TO = "+18445550001"


async def test_latency_delays_every_answer() -> None:
    """Faults(latency=...) delays answers by at least that long."""
    async with (
        FakeTelnyx(config=FakeConfig(faults=Faults(latency=0.1))) as fake,
        connect(fake) as api,
    ):
        started = time.monotonic()
        reply = await api.get("/messaging_optouts")
        assert reply.status == 200
        assert time.monotonic() - started >= 0.1


async def test_scripted_errors_then_normal_answers() -> None:
    """Script steps are consumed one per request; then the fake answers normally."""
    faults = Faults(script=[503, 500, "ok", 502])
    async with FakeTelnyx(config=FakeConfig(faults=faults)) as fake, connect(fake) as api:
        statuses = [(await api.get("/messaging_optouts")).status for _ in range(5)]
        assert statuses == [503, 500, 200, 502, 200]
        assert fake.stats.faults == 3


async def test_injected_5xx_has_telnyx_body_and_request_id() -> None:
    """An injected 500 has a Telnyx error body (code 10007) and an x-request-id."""
    async with (
        FakeTelnyx(config=FakeConfig(faults=Faults(script=[500]))) as fake,
        connect(fake) as api,
    ):
        reply = await api.send(from_=DEFAULT_TOLL_FREE, to=TO, text="x")
        assert reply.status == 500
        assert reply.error_code == "10007"
        assert reply.headers["x-request-id"]
        assert fake.stats.messages_sent == 0


async def test_injected_429_is_a_10011() -> None:
    """A scripted 429 answers like the account limit (code 10011)."""
    async with (
        FakeTelnyx(config=FakeConfig(faults=Faults(script=[429]))) as fake,
        connect(fake) as api,
    ):
        reply = await api.get("/messaging_optouts")
        assert (reply.status, reply.error_code) == (429, "10011")


async def test_retry_after_header_on_injected_503() -> None:
    """Faults(retry_after=0.5) adds Retry-After to injected 503s but not to 500s."""
    faults = Faults(script=[503, 500], retry_after=0.5)
    async with FakeTelnyx(config=FakeConfig(faults=faults)) as fake, connect(fake) as api:
        unavailable = await api.get("/messaging_optouts")
        failed = await api.get("/messaging_optouts")
        assert unavailable.headers["Retry-After"] == "0.5"
        assert "Retry-After" not in failed.headers


async def test_retry_after_may_be_an_http_date() -> None:
    """A string retry_after is sent verbatim."""
    date = "Wed, 21 Oct 2037 07:28:00 GMT"
    faults = Faults(script=[503], retry_after=date)
    async with FakeTelnyx(config=FakeConfig(faults=faults)) as fake, connect(fake) as api:
        assert (await api.get("/messaging_optouts")).headers["Retry-After"] == date


async def test_drop_aborts_without_processing() -> None:
    """A "drop" step reads the body, then closes the connection; no message is created."""
    async with (
        FakeTelnyx(config=FakeConfig(faults=Faults(script=["drop"]))) as fake,
        connect(fake) as api,
    ):
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await api.send(from_=DEFAULT_TOLL_FREE, to=TO, text="lost")
        assert fake.stats.messages_sent == 0
        assert fake.stats.requests[-1].status is None
        assert fake.stats.requests[-1].json == {"from": DEFAULT_TOLL_FREE, "to": TO, "text": "lost"}


async def test_drop_after_processing_creates_the_message() -> None:
    """A "drop_after" step processes the send, then closes the connection unanswered."""
    faults = Faults(script=["drop_after"])
    async with FakeTelnyx(config=FakeConfig(faults=faults)) as fake, connect(fake) as api:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await api.send(from_=DEFAULT_TOLL_FREE, to=TO, text="maybe")
        assert fake.stats.messages_sent == 1
        await fake.settle()


async def test_stall_outlasts_the_client_timeout() -> None:
    """A "stall" step processes the request and holds the answer past the client's timeout."""
    faults = Faults(script=["stall"], stall_seconds=5.0)
    async with FakeTelnyx(config=FakeConfig(faults=faults)) as fake, connect(fake) as api:
        started = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await api.post(
                "/messages", {"from": DEFAULT_TOLL_FREE, "to": TO, "text": "slow"}, timeout=0.2
            )
        assert time.monotonic() - started < 2.0
        assert fake.stats.messages_sent == 1
        await fake.settle()
    # Leaving the block closed the fake promptly although the stalled handler was waiting.


async def test_close_releases_a_stalled_request_promptly() -> None:
    """close() does not wait for stall_seconds to pass."""
    fake = FakeTelnyx(config=FakeConfig(faults=Faults(stall_rate=1.0, stall_seconds=30.0)))
    await fake.start()
    async with connect(fake) as api:
        call = asyncio.ensure_future(api.get("/messaging_optouts"))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await fake.close()
        assert time.monotonic() - started < 2.0
        with pytest.raises(aiohttp.ClientError):
            await call


async def test_close_waits_for_handlers_of_abandoned_requests() -> None:
    """A stalled request whose client gave up does not outlive close()."""
    before = asyncio.all_tasks()
    fake = FakeTelnyx(config=FakeConfig(faults=Faults(stall_rate=1.0, stall_seconds=30.0)))
    await fake.start()
    async with connect(fake) as api:
        with pytest.raises(asyncio.TimeoutError):
            await api.get("/messaging_optouts", timeout=0.1)
    assert fake.stats.in_flight == 1  # still stalling, its client is gone
    await fake.close()
    assert fake.stats.in_flight == 0
    assert asyncio.all_tasks() <= before


async def test_error_rate_with_seed_is_repeatable() -> None:
    """error_rate=1 fails every request with a status from error_statuses."""
    faults = Faults(error_rate=1.0, error_statuses=(502, 504), seed=7)
    async with FakeTelnyx(config=FakeConfig(faults=faults)) as fake, connect(fake) as api:
        statuses = [(await api.get("/messaging_optouts")).status for _ in range(10)]
        assert set(statuses) <= {502, 504}
        fake.configure(faults=faults)
        again = [(await api.get("/messaging_optouts")).status for _ in range(10)]
        assert again == statuses


async def test_drop_rate_drops_some_requests() -> None:
    """drop_rate=0.5 drops roughly half the requests (seeded)."""
    faults = Faults(drop_rate=0.5, seed=1)
    async with FakeTelnyx(config=FakeConfig(faults=faults)) as fake, connect(fake) as api:
        outcomes: list[int | None] = []
        for _ in range(40):
            try:
                outcomes.append((await api.get("/messaging_optouts")).status)
            except aiohttp.ClientError:
                outcomes.append(None)
        # aiohttp's client silently retries a GET once on a reused connection, so count on
        # the server side.
        total = fake.stats.count("GET", "/messaging_optouts")
        dropped = sum(1 for r in fake.stats.requests if r.status is None)
        assert dropped == fake.stats.faults
        assert 0.25 < dropped / total < 0.75
        assert 0 < outcomes.count(None) <= dropped


async def test_match_limits_faults_to_some_requests() -> None:
    """Faults with match=("POST /messages",) leave other requests alone."""
    faults = Faults(error_rate=1.0, match=("POST /messages",))
    async with FakeTelnyx(config=FakeConfig(faults=faults)) as fake, connect(fake) as api:
        assert (await api.get("/messaging_optouts")).status == 200
        assert (
            await api.post("/messages/long_code", {"from": "+13125550100", "to": TO, "text": "x"})
        ).status == 200
        assert (await api.send(from_=DEFAULT_TOLL_FREE, to=TO, text="x")).status in (500, 503)
        await fake.settle()


async def test_faults_change_at_runtime(api: Api) -> None:
    """configure(faults=...) applies to the next request and restarts the script."""
    assert (await api.get("/messaging_optouts")).status == 200
    api.fake.configure(faults=Faults(script=[503]))
    assert (await api.get("/messaging_optouts")).status == 503
    assert (await api.get("/messaging_optouts")).status == 200
    api.fake.configure(faults=Faults(script=[503]))
    assert (await api.get("/messaging_optouts")).status == 503


def test_invalid_fault_settings_are_refused() -> None:
    """Unknown script steps and probabilities above 1 are rejected when built."""
    with pytest.raises(ValueError, match="fault step"):
        Faults(script=["explode"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="<= 1"):
        Faults(error_rate=0.6, drop_rate=0.6)


async def test_counters_track_requests_and_concurrency() -> None:
    """request_counts are per (method, route); max_in_flight sees concurrent requests."""
    config = FakeConfig(faults=Faults(latency=0.1, match=("GET *",)))
    async with FakeTelnyx(config=config) as fake, connect(fake) as api:
        await asyncio.gather(*(api.get("/messaging_optouts") for _ in range(5)))
        await api.get("/messages/3fa85f64-5717-4562-b3fc-2c963f66afa6")
        assert fake.stats.count("GET", "/messaging_optouts") == 5
        assert fake.stats.count("get", "/messages/{id}") == 1
        assert fake.stats.max_in_flight == 5
        assert fake.stats.in_flight == 0
        fake.stats.reset()
        assert fake.stats.count("GET", "/messaging_optouts") == 0
        assert fake.stats.max_in_flight == 0


@pytest.mark.parametrize(("status", "code"), [(401, "10009"), (404, "10005"), (429, "10011")])
async def test_an_injected_error_has_the_code_the_fake_answers_that_status_with(
    status: int, code: str
) -> None:
    """An injected 401 or 404 answered 10015 "Bad Request", a body neither Telnyx nor the fake
    itself sends with that status: a test of a user's auth-failure handling saw the wrong code."""
    faults = Faults(script=[status])
    async with FakeTelnyx(config=FakeConfig(faults=faults)) as fake, connect(fake) as api:
        reply = await api.get("/messaging_profiles")
    assert reply.status == status
    assert reply.error_code == code


def test_stats_are_readable_while_a_fake_in_another_thread_records() -> None:
    """Iterating fake.stats.requests (or webhook_attempts, request_counts) from the test
    thread while serve_in_thread's fake handled traffic raised "deque mutated during
    iteration" at random."""
    import threading
    import urllib.request

    from telnyx_msg.testing import serve_in_thread

    errors: list[BaseException] = []
    with serve_in_thread(config=FakeConfig(request_log_size=50)) as fake:
        # Until the log has turned over three times (bounded: 10 s on a loaded machine).
        stop = time.monotonic() + 10
        done = threading.Event()
        auth = {"Authorization": f"Bearer {fake.api_key}"}

        def traffic() -> None:
            while time.monotonic() < stop and not done.is_set():
                request = urllib.request.Request(
                    fake.base_url + "/messaging_profiles", headers=auth
                )
                with urllib.request.urlopen(request, timeout=10) as answer:
                    answer.read()

        threads = [threading.Thread(target=traffic) for _ in range(3)]
        for thread in threads:
            thread.start()
        try:
            while time.monotonic() < stop and fake.stats.count("GET", "/messaging_profiles") < 150:
                try:
                    assert all(r.status == 200 for r in fake.stats.requests)
                    assert all(n >= 1 for _, n in fake.stats.request_counts.items())
                except RuntimeError as exc:
                    errors.append(exc)
        finally:
            done.set()
            for thread in threads:
                thread.join(10)
        assert fake.stats.count("GET", "/messaging_profiles") > 50
    assert not errors, f"{len(errors)} x {errors[0]!r}"


async def test_request_log_is_bounded() -> None:
    """stats.requests keeps only the newest request_log_size requests."""
    async with FakeTelnyx(config=FakeConfig(request_log_size=3)) as fake, connect(fake) as api:
        for index in range(6):
            await api.get("/messaging_optouts", params={"page[number]": str(index + 1)})
        logged = list(fake.stats.requests)
        assert [r.query for r in logged] == [(("page[number]", str(i)),) for i in (4, 5, 6)]
        assert logged[-1].method == "GET"
        assert logged[-1].path == "/v2/messaging_optouts"
        assert logged[-1].headers["authorization"] == f"Bearer {fake.api_key}"
        assert logged[-1].status == 200


async def test_request_log_can_be_off() -> None:
    """request_log_size=0 records nothing but still counts."""
    async with FakeTelnyx(config=FakeConfig(request_log_size=0)) as fake, connect(fake) as api:
        await api.get("/messaging_optouts")
        assert len(fake.stats.requests) == 0
        assert fake.stats.count("GET", "/messaging_optouts") == 1


def test_a_match_pattern_with_v2_is_refused() -> None:
    """Patterns are matched on the path without /v2: ``"POST /v2/messages"`` never matched
    anything, silently."""
    with pytest.raises(ValueError, match="leave out /v2"):
        Faults(match=("POST /v2/messages",))
    assert Faults(match=("POST /messages*",)).match == ("POST /messages*",)


@pytest.mark.parametrize(
    "build",
    [
        lambda: Faults(
            script=[503], match="POST /messages"
        ),  # ("POST /messages") without its comma
        lambda: Faults(script=[503], match="POST /messages*"),
        lambda: FakeConfig(failing_numbers="+18445550001"),
        lambda: SeedNumber(phone_number="+13125550199", tags="vip"),
    ],
)
def test_one_string_where_a_collection_goes_is_refused(build: Callable[[], object]) -> None:
    """``Faults(match=("POST /messages"))`` (the trailing comma forgotten) was split into its
    characters: the fault fired on no request, or with a ``*`` among them on every one, and
    ``failing_numbers="+1..."`` failed no message, so a resilience test passed without the
    fault it is about. A bare string is refused, showing the one-item tuple to write."""
    with pytest.raises(TypeError, match=r"not the str .*: \('"):
        build()
