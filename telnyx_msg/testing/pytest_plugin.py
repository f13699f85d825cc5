"""Opt-in pytest fixtures for the fake Telnyx server, for every test style.

Enable in a ``conftest.py``::

    pytest_plugins = ["telnyx_msg.testing.pytest_plugin"]

- ``telnyx_fake``: a started :class:`~telnyx_msg.testing.FakeTelnyx`. It serves on its own
  loop in a background thread, so the fixture itself is synchronous and works unchanged in
  pytest-asyncio tests (strict or auto mode), anyio tests and plain sync tests; await its
  coroutines (``await telnyx_fake.settle()``) from any asyncio loop, or run them from sync code
  with ``telnyx_fake.run(telnyx_fake.settle())``.
- ``telnyx_client``: a blocking :class:`telnyx_msg.Client` wired to ``telnyx_fake`` (key, base
  URL, webhook public key), for sync tests (Flask, Django, scripts).
- ``telnyx_fake_config``: the :class:`~telnyx_msg.testing.FakeConfig` the fake starts with;
  override this fixture to configure it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from telnyx_msg.testing._config import FakeConfig
from telnyx_msg.testing._fake import FakeTelnyx
from telnyx_msg.testing._thread import serve_in_thread

if TYPE_CHECKING:
    from telnyx_msg import Client

__all__ = ["telnyx_client", "telnyx_fake", "telnyx_fake_config"]


@pytest.fixture
def telnyx_fake_config() -> FakeConfig:
    """The configuration ``telnyx_fake`` starts with; override this fixture to change it."""
    return FakeConfig()


@pytest.fixture
def telnyx_fake(telnyx_fake_config: FakeConfig) -> Iterator[FakeTelnyx]:
    """A started :class:`FakeTelnyx` (served in a background thread), closed after the test."""
    with serve_in_thread(config=telnyx_fake_config) as fake:
        yield fake


@pytest.fixture
def telnyx_client(telnyx_fake: FakeTelnyx) -> Iterator[Client]:
    """A blocking :class:`telnyx_msg.Client` for ``telnyx_fake``, closed after the test."""
    from telnyx_msg import Client

    with Client(
        telnyx_fake.api_key,
        base_url=telnyx_fake.base_url,
        webhook_public_key=telnyx_fake.public_key,
    ) as client:
        yield client
