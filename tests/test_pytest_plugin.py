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
