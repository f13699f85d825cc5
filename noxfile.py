"""Developer and CI tasks. `nox -s tests` is the test command the README gives."""

from __future__ import annotations

import os
import shutil
import sys

import nox

# nox.project.dependency_groups (below) is new in 2025.2.9: an older nox says so, not a traceback.
nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "typecheck", "tests", "slow", "package", "docs"]

PYPROJECT = nox.project.load_toml("pyproject.toml")
TEST_DEPS = nox.project.dependency_groups(PYPROJECT, "tests")
TYPING_DEPS = nox.project.dependency_groups(PYPROJECT, "typing")
LINT_DEPS = nox.project.dependency_groups(PYPROJECT, "lint")
DOCS_DEPS = nox.project.dependency_groups(PYPROJECT, "docs")
# pytest-xdist processes: the suite spends much of its time waiting on sockets, subprocesses
# and timers, so two cores nearly halve it; more than four mostly adds contention to the tests
# that run load (pass `-n 0` after `--` to run in one process).
PARALLEL = ["-n", str(min(4, os.cpu_count() or 1))]


@nox.session
def tests(session: nox.Session) -> None:
    """The fast suite (everything not marked slow), warnings as errors."""
    session.install("-e", ".[redis,rich]", *TEST_DEPS)  # rich: the coloured progress line
    session.run("pytest", "-m", "not slow", "-q", *PARALLEL, *session.posargs)


# The tests of the parts that meet the event loop directly (transport and its timeouts, the
# limiter, the blocking facade, the Redis consumers, webhook intake), run on uvloop by `uvloop`.
UVLOOP_TESTS = [
    f"tests/test_{name}.py"
    for name in (
        "client",
        "faults_transport",
        "faults_limits",
        "ratelimit",
        "shared_limiter_threads",
        "sync",
        "bulk",
        "bulk_stop_before_connection",
        "pagination",
        "escape_hatches",
        "raw_response",
        "mock_transport",
        "observability",
        "e2e_webhooks",
        "receivers",
        "webhooks",
        "webhook_queue",
        "redis_tracker",
        "redis_limits",
        "replay_redis",
    )
]


@nox.session
def uvloop(session: nox.Session) -> None:
    """The event-loop-facing tests on uvloop's loop (what uvicorn serves on when it is
    installed); pass test paths to run others."""
    session.install("-e", ".[redis]", *TEST_DEPS, "uvloop")
    session.run(
        *("pytest", "-m", "not slow", "-q", *PARALLEL, *(session.posargs or UVLOOP_TESTS)),
        env={"TELNYX_MSG_TEST_UVLOOP": "1"},
    )


# The lowest versions pyproject.toml allows: every ">=" bound of the runtime and redis deps.
LOWEST = [
    dep.replace(">=", "==").split(";")[0]
    for dep in [
        *PYPROJECT["project"]["dependencies"],
        *PYPROJECT["project"]["optional-dependencies"]["redis"],
    ]
]


# The docs' mypy checks: typing, which the versions sessions need not repeat.
DOCS_MYPY = (
    "test_runnable_blocks_pass_mypy_strict",
    "test_fragments_pass_mypy_strict_in_their_context",
)


@nox.session(python=["3.10", "3.13"])
def versions(session: nox.Session) -> None:
    """The fast suite at both ends of what pyproject.toml allows: Python 3.10 with the lowest
    allowed dependency versions, Python 3.13 with the newest (CI runs 3.10).

    Skipped, with a warning, where that interpreter is not installed. The property tests run
    a tenth of their Hypothesis examples here, and the docs' mypy checks not at all (`tests`
    runs both in full): what differs here is the runtime, not the typing.
    """
    pins = LOWEST if session.python == "3.10" else []
    session.install("-e", ".[redis]", *TEST_DEPS, *pins)
    session.run(
        *("pytest", "-m", "not slow", "-q", *PARALLEL),
        *(session.posargs or [f"--deselect=tests/test_doc_snippets.py::{t}" for t in DOCS_MYPY]),
        env={"TELNYX_MSG_TEST_EXAMPLES": "0.1"},
    )


@nox.session
def slow(session: nox.Session) -> None:
    """Long-running tests (Hypothesis at full strength, multi-process Redis, big runs)."""
    session.install("-e", ".[redis]", *TEST_DEPS)
    session.run(
        "pytest", "-m", "slow", "-q", *PARALLEL, *session.posargs, success_codes=[0, 5]
    )  # 5: nothing collected is not a failure here


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint and format check) over the package, tests and tooling."""
    session.install(*LINT_DEPS)
    paths = ("telnyx_msg", "tests", "examples", "benchmarks", "docs/_ext", "noxfile.py")
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package, the tests and the public-API typing checks; pyright
    (strict) over the public-API typing checks and the examples."""
    session.install("-e", ".[redis,rich]", *TYPING_DEPS)  # rich: the progress line
    session.run("mypy", "--strict", "telnyx_msg", "tests", "examples", "benchmarks")
    session.run("pyright")


@nox.session
def package(session: nox.Session) -> None:
    """Build the wheel and sdist, then install each in a clean venv and import it."""
    import glob
    import shutil
    import tempfile

    session.install("build")
    # uv, where nox found it, makes the build's and the checks' environments (pip's are slower).
    uv = shutil.which("uv") or shutil.which("uv", path=os.path.dirname(sys.executable))
    dist = tempfile.mkdtemp(prefix="telnyx_msg-dist-")
    if uv:  # (build looks for uv on PATH)
        path = os.pathsep.join([session.bin, os.path.dirname(uv), os.environ["PATH"]])
        session.run(
            "python", "-m", "build", "--installer", "uv", "--outdir", dist, env={"PATH": path}
        )
    else:
        session.run("python", "-m", "build", "--outdir", dist)
    for artifact in sorted(glob.glob(f"{dist}/*")):
        venv = tempfile.mkdtemp(prefix="telnyx_msg-venv-")
        if uv:
            session.run(uv, "venv", "-q", venv, external=True)
            install = [uv, "pip", "install", "-q", "--python", f"{venv}/bin/python", artifact]
        else:
            session.run("python", "-m", "venv", venv, external=True)
            install = [f"{venv}/bin/pip", "install", "-q", artifact]
        session.run(*install, external=True)
        session.run(
            f"{venv}/bin/python",
            "-c",
            "import importlib.metadata as m, telnyx_msg, telnyx_msg.testing, "
            "telnyx_msg.webhooks; md = m.metadata('telnyx_msg'); "
            "assert md['Version'] == telnyx_msg.__version__, md['Version']; "
            "assert md.get_all('Project-URL'), 'no project URLs'; "
            "assert md.get_all('License-File') == ['LICENSE'], 'the MIT text does not ship'; "
            "assert 'Typing :: Typed' in md.get_all('Classifier'); "
            "print('ok', telnyx_msg.__version__)",
            external=True,
        )
        session.run(f"{venv}/bin/telnyx-msg", "--version", external=True)
        shutil.rmtree(venv)
    shutil.rmtree(dist)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site (mkdocs-material + mkdocstrings) with warnings as errors."""
    session.install("-e", ".", *DOCS_DEPS)
    site_dir = os.path.join(session.create_tmp(), "site")
    session.run(
        "mkdocs",
        "build",
        "--strict",
        "--site-dir",
        site_dir,
        *session.posargs,
        env={"NO_MKDOCS_2_WARNING": "1"},
    )
    # The item tables are built by a docs extension: check the page says each item's keys.
    session.run("python", "docs/_ext/check_site.py", site_dir)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against raw aiohttp on a local server (`-- --quick` for CI).

    Informational only: prints the ratios and the performance targets, writes
    bench-results.json, and never fails on numbers. `-- --with-official` also measures the
    official SDK, pinned to an exact known-good version. Then, when `redis-server` is
    installed, webhook intake with and without `RedisWebhookQueue` and one worker's throughput
    (`benchmarks.webhook_queue`, smaller with `--quick`).
    """
    session.install("-e", ".[redis]")
    if "--with-official" in session.posargs:
        session.install("telnyx[aiohttp]==4.189.0")
    session.run("python", "-m", "benchmarks.run", *session.posargs)
    if shutil.which("redis-server") is None:
        session.warn("redis-server not found: webhook queue benchmark skipped")
        return
    quick = "--quick" in session.posargs or "--smoke" in session.posargs
    size = ["-n", "500", "--reps", "1"] if quick else []
    session.run("python", "-m", "benchmarks.webhook_queue", *size)
