"""The pytest plugin in every test style: pytest-asyncio strict and auto, anyio, and sync.

Each style runs the example test files of ``examples/testing/`` (shown in docs/testing.md) in a
separate pytest process, with that style's configuration.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

# pytest-asyncio warns (an error here) when a project leaves this unset.
LOOP_SCOPE = "asyncio_default_fixture_loop_scope = function"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "testing"


def _run(pytester: pytest.Pytester, example: str, ini: str, *plugins: str) -> pytest.RunResult:
    shutil.copy(EXAMPLES / "conftest.py", pytester.path / "conftest.py")
    shutil.copy(EXAMPLES / example, pytester.path / example)
    pytester.makeini("[pytest]\n" + ini + "\nfilterwarnings =\n    error\n")
    return pytester.runpytest_subprocess(
        *plugins, "-p", "no:cacheprovider", "-q", example, timeout=120
    )


def test_pytest_asyncio_strict_mode(pytester: pytest.Pytester) -> None:
    """An @pytest.mark.asyncio test under pytest-asyncio's default strict mode."""
    result = _run(
        pytester, "test_pytest_asyncio.py", f"asyncio_mode = strict\n{LOOP_SCOPE}", "-p", "asyncio"
    )
    result.assert_outcomes(passed=1)


def test_pytest_asyncio_auto_mode(pytester: pytest.Pytester) -> None:
    """The same test under auto mode (the marker is then optional)."""
    result = _run(
        pytester, "test_pytest_asyncio.py", f"asyncio_mode = auto\n{LOOP_SCOPE}", "-p", "asyncio"
    )
    result.assert_outcomes(passed=1)


def test_anyio(pytester: pytest.Pytester) -> None:
    """An @pytest.mark.anyio test, without pytest-asyncio."""
    result = _run(pytester, "test_anyio.py", "", "-p", "no:asyncio")
    result.assert_outcomes(passed=1)


def test_sync_with_the_blocking_client(pytester: pytest.Pytester) -> None:
    """A plain sync test gets a started fake and a blocking Client."""
    result = _run(pytester, "test_blocking.py", "", "-p", "no:asyncio")
    result.assert_outcomes(passed=1)


PLUGIN_USE = """
import json

import pytest

from telnyx_msg.testing import ApiRateLimit, FakeConfig

pytest_plugins = ["telnyx_msg.testing.pytest_plugin"]


@pytest.fixture
def telnyx_fake_config():
    return FakeConfig(api_rate_limit=ApiRateLimit(limit=7, window=60))


def test_config_override(telnyx_fake):
    assert telnyx_fake.config.api_rate_limit == ApiRateLimit(limit=7, window=60)


def test_client_verifies_the_fakes_webhooks(telnyx_fake, telnyx_client):
    body = json.dumps({"data": {"id": "e-1", "event_type": "call.initiated", "payload": {}}})
    headers = telnyx_fake.sign_webhook(body.encode())
    assert telnyx_client.webhooks.unwrap(body, headers).id == "e-1"
"""


def test_plugin_fixtures_honour_config_and_webhook_key(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TELNYX_PUBLIC_KEY", raising=False)
    pytester.makepyfile(test_plugin_use=PLUGIN_USE)
    result = pytester.runpytest_subprocess("-p", "no:asyncio", "-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=2)
