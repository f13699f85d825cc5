"""Lifecycle of the fake: start/close, addresses and keys, configuration, the pytest plugin,
and cleanliness (no leaked tasks, timers, sessions or warnings)."""

from __future__ import annotations

import asyncio
import base64
import gc
import re
from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import telnyx_msg
import telnyx_msg.testing
from telnyx_msg.testing import (
    DEFAULT_API_KEY,
    DEFAULT_PROFILE_ID,
    DEFAULT_TOLL_FREE,
    FakeConfig,
    FakeTelnyx,
    Faults,
    SeedNumber,
    SeedProfile,
    Throughput,
    serve_in_thread,
)

from .helpers import Receiver, connect

pytestmark = pytest.mark.anyio

TO = "+18445550001"


def _other_tasks() -> set[asyncio.Task[object]]:
    current = asyncio.current_task()
    return {t for t in asyncio.all_tasks() if t is not current}


async def test_addresses_and_keys() -> None:
    """base_url ends in /v2 on 127.0.0.1; the default key is fixed; public_key is 32 bytes."""
    async with FakeTelnyx() as fake:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v2", fake.base_url)
        assert fake.port > 0
        assert fake.api_key == DEFAULT_API_KEY == "test-key"
        assert len(base64.b64decode(fake.public_key, validate=True)) == 32
        assert fake.default_profile_id == DEFAULT_PROFILE_ID


async def test_custom_api_key_is_the_only_one_accepted() -> None:
    """FakeTelnyx(api_key=...) accepts exactly that Bearer key."""
    async with FakeTelnyx(api_key="KEY123") as fake, connect(fake) as api:
        assert (await api.get("/messaging_optouts")).status == 200
        assert (await api.get("/messaging_optouts", key=DEFAULT_API_KEY)).status == 401


async def test_signing_key_may_be_a_private_key_object() -> None:
    """An Ed25519PrivateKey given as signing_key determines public_key."""
    key = Ed25519PrivateKey.generate()
    fake = FakeTelnyx(signing_key=key)
    other = FakeTelnyx(signing_key=key)
    assert fake.public_key == other.public_key
    assert fake.public_key != FakeTelnyx().public_key


def test_bad_signing_key_is_refused() -> None:
    """A signing key that is not a 32-byte seed is a ValueError."""
    with pytest.raises(ValueError, match="32-byte"):
        FakeTelnyx(signing_key=b"short")


async def test_port_before_start_is_an_error() -> None:
    """base_url is unavailable until the fake is started."""
    fake = FakeTelnyx()
    with pytest.raises(RuntimeError, match="not started"):
        _ = fake.base_url
    await fake.close()


async def test_close_is_idempotent_and_start_is_once() -> None:
    """close() twice is fine; a closed fake cannot start again."""
    fake = FakeTelnyx()
    await fake.start()
    with pytest.raises(RuntimeError):
        await fake.start()
    await fake.close()
    await fake.close()
    with pytest.raises(RuntimeError):
        await fake.start()


async def test_close_leaves_no_tasks_timers_or_sessions() -> None:
    """Closing mid-traffic (timers, scheduled sends, webhooks) leaves nothing running."""
    before = _other_tasks()
    receiver = Receiver()
    await receiver.start()
    receiver.gate = asyncio.Event()
    fake = FakeTelnyx(config=FakeConfig(delivery_delay=0.01))
    await fake.start()
    async with connect(fake) as api:
        for _ in range(5):
            await api.send(from_=DEFAULT_TOLL_FREE, to=TO, text="x", webhook_url=receiver.url())
        send_at = (datetime.now(timezone.utc) + timedelta(seconds=30)).isoformat()
        await api.post(
            "/messages/schedule",
            {"from": DEFAULT_TOLL_FREE, "to": TO, "text": "later", "send_at": send_at},
        )
        await asyncio.sleep(0.05)
    assert receiver.arrivals > 0  # webhook deliveries are in flight
    await fake.close()
    # The receiver's handlers outlive their dropped connections (aiohttp does not cancel them);
    # they are not the fake's, so let them finish before looking.
    receiver.gate.set()
    await receiver.close()
    await asyncio.sleep(0.05)
    assert _other_tasks() <= before
    gc.collect()  # an unclosed aiohttp session would warn (an error under filterwarnings)


async def test_start_failure_cleans_up() -> None:
    """A port already in use makes start() fail without leaking the webhook session."""
    async with FakeTelnyx() as first:
        second = FakeTelnyx(port=first.port)
        with pytest.raises(OSError):
            await second.start()
    gc.collect()


async def test_configure_changes_runtime_fields_only() -> None:
    """configure() swaps runtime settings and refuses seed fields."""
    async with FakeTelnyx() as fake:
        new = fake.configure(delivery_delay=0.2, faults=Faults(latency=0.0))
        assert fake.config is new
        assert new.delivery_delay == 0.2
        with pytest.raises(ValueError, match="profiles"):
            fake.configure(profiles=())


async def test_message_helper_returns_a_copy() -> None:
    """fake.message(id) returns a deep copy of the stored JSON."""
    async with FakeTelnyx() as fake, connect(fake) as api:
        sent = await api.send(from_=DEFAULT_TOLL_FREE, to=TO, text="x")
        copy = fake.message(sent.body["data"]["id"])
        copy["to"][0]["status"] = "tampered"
        assert fake.message(sent.body["data"]["id"])["to"][0]["status"] != "tampered"
        with pytest.raises(KeyError):
            fake.message("nope")
        await fake.settle()


async def test_settle_times_out_while_work_remains() -> None:
    """settle() raises TimeoutError if messages are still progressing at the deadline."""
    async with FakeTelnyx(config=FakeConfig(delivery_delay=1.0)) as fake, connect(fake) as api:
        await api.send(from_=DEFAULT_TOLL_FREE, to=TO, text="x")
        with pytest.raises(TimeoutError):
            await fake.settle(timeout=0.05)


def test_config_validation() -> None:
    """Inconsistent configurations fail when built."""
    with pytest.raises(ValueError, match="unknown profile"):
        FakeConfig(numbers=[SeedNumber(phone_number="+13125550100", messaging_profile_id="x")])
    with pytest.raises(ValueError, match="unique"):
        FakeConfig(profiles=[SeedProfile(), SeedProfile()])
    with pytest.raises(ValueError, match="type"):
        SeedNumber(phone_number="+13125550100", type="landline")
    with pytest.raises(ValueError, match="per_kind_mps"):
        Throughput(per_kind_mps={"long_code": 1.0})
    with pytest.raises(ValueError, match="> 0"):
        Throughput(per_sender_mps={"+1": 0.0})


def test_public_names() -> None:
    """telnyx_msg.testing exports a sorted __all__ of public names only."""
    names = telnyx_msg.testing.__all__
    assert names == sorted(names, key=lambda n: (not n.isupper(), n))
    assert all(not n.startswith("_") for n in names)
    assert {"FakeTelnyx", "FakeConfig", "Faults", "Throughput", "ApiRateLimit"} <= set(names)
    for name in names:
        assert hasattr(telnyx_msg.testing, name)


async def test_plugin_fixture_gives_a_running_fake(telnyx_fake: FakeTelnyx) -> None:
    """The opt-in plugin's telnyx_fake fixture yields a started fake."""
    async with connect(telnyx_fake) as api:
        assert (await api.get("/messaging_hosted_numbers")).status == 200


async def test_close_awaited_from_the_test_loop_closes_a_threaded_fake() -> None:
    """docs/testing.md: "Await its coroutines from your test's loop" and "Cleanup: await
    fake.close() stops the server". settle/inject_* hop to the fake's loop; close() does not and
    crashes with "attached to a different loop" (a user simulating a Telnyx outage hits it)."""
    with serve_in_thread() as fake:
        async with fake.client(max_retries=0) as client:
            await client.messages.send(from_=DEFAULT_TOLL_FREE, to="+18445550001", text="x")
            await fake.close()  # RuntimeError: ... attached to a different loop
            with pytest.raises(telnyx_msg.APIConnectionError):
                await client.messages.send(from_=DEFAULT_TOLL_FREE, to="+18445550001", text="x")
