"""Opt-in pytest fixtures for the fake Telnyx server.

Enable in a ``conftest.py``::

    pytest_plugins = ["telnyx_msg.testing.pytest_plugin"]

``telnyx_fake`` is an async fixture: use it from ``@pytest.mark.anyio`` tests (asyncio backend)
or with pytest-asyncio in auto mode. Override ``telnyx_fake_config`` to configure it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from telnyx_msg.testing._config import FakeConfig
from telnyx_msg.testing._fake import FakeTelnyx

__all__ = ["telnyx_fake", "telnyx_fake_config"]


@pytest.fixture
def telnyx_fake_config() -> FakeConfig:
    """The configuration ``telnyx_fake`` starts with; override this fixture to change it."""
    return FakeConfig()


@pytest.fixture
async def telnyx_fake(telnyx_fake_config: FakeConfig) -> AsyncIterator[FakeTelnyx]:
    """A started :class:`FakeTelnyx`, closed after the test."""
    async with FakeTelnyx(config=telnyx_fake_config) as fake:
        yield fake
