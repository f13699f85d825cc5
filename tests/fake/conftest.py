"""Fixtures for the fake-server tests: asyncio backend, a started fake, an API caller, a
webhook receiver. ``telnyx_fake`` comes from the opt-in plugin itself, so it is tested too."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from telnyx_msg.testing import FakeTelnyx
from telnyx_msg.testing.pytest_plugin import telnyx_fake, telnyx_fake_config

from .helpers import Api, Receiver, connect

__all__ = ["anyio_backend", "api", "receiver", "telnyx_fake", "telnyx_fake_config"]


@pytest.fixture
def anyio_backend() -> str:
    """The fake is built on aiohttp, so asyncio only."""
    return "asyncio"


@pytest.fixture
async def api(telnyx_fake: FakeTelnyx) -> AsyncIterator[Api]:
    """A raw aiohttp caller bound to the default fake."""
    async with connect(telnyx_fake) as caller:
        yield caller


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A started webhook receiver, closed after the test."""
    server = Receiver()
    await server.start()
    try:
        yield server
    finally:
        await server.close()
