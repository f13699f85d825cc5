"""The code in README.md and docs/*.md: every Python block compiles, marked blocks run.

Conventions in the Markdown source:

- Every fenced ``python`` block is extracted and compiled. Top-level ``await``, ``async for`` and
  ``async with`` are allowed, because many fragments show the body of an async function.
- A line ``--8<-- "path"`` inside a block (the pymdownx.snippets include mkdocs renders) is
  replaced by that file's text first; the included examples are run by test_examples.py.
- ``<!-- run -->`` as the last non-blank line before the fence: the block is a complete program.
  It is executed as ``__main__`` in a fresh namespace in the test's thread (so it may call
  ``asyncio.run``), with ``TELNYX_BASE_URL``, ``TELNYX_API_KEY`` and ``TELNYX_PUBLIC_KEY``
  pointing at a ``FakeTelnyx`` served from a background thread.
- ``<!-- run: async -->``: the block is async code run inside an event loop with ``telnyx_msg``,
  ``fake`` (a started ``FakeTelnyx``) and ``client`` (an ``AsyncClient`` connected to it)
  predefined, and the same environment variables set. It may use any other name it defines.

Names the prose and code mention are checked too: every dotted ``telnyx_msg.…`` name must
import, every ``client.…`` chain must exist on ``AsyncClient`` or ``Client``, and every
``fake.…`` / ``telnyx_fake.…`` attribute on ``FakeTelnyx``. docs/api.md must cover every public
name (the package's ``__all__`` and each public module's own).

Type checks: runnable blocks pass ``mypy --strict`` as written. Fragments (the unmarked blocks)
pass it too, except that names they leave to their context (``request``, ``queue_for_processing``,
a framework not installed here) are allowed: a wrong keyword, attribute or type on a
``telnyx_msg`` name still fails. A fragment that uses a ``client`` it does not define is checked
with a typed one (``AsyncClient`` for async code, else ``Client``), so what it does with the
results is checked too (``event.payload.to`` without narrowing the payload fails).
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import importlib.util
import inspect
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import pytest
from anyio.from_thread import start_blocking_portal

import telnyx_msg
from telnyx_msg.testing import FakeTelnyx

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKERS = {"<!-- run -->": "program", "<!-- run: async -->": "async"}
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)")
INCLUDE = re.compile(r'^\s*--8<--\s+"(?P<path>[^"]+)"\s*$')
COMPILE_FLAGS = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
RUN_TIMEOUT = 20.0


@attrs.frozen
class Block:
    """One fenced Python block of a page."""

    page: Path
    line: int  # 1-based line of the opening fence
    source: str
    mode: str  # "compile", "program" or "async"

    @property
    def name(self) -> str:
        """``docs/page.md:LINE``, used as the test id and the code's file name."""
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    def compile(self) -> Any:
        """Compile the block with top-level ``await`` allowed."""
        return compile(self.source, self.name, "exec", flags=COMPILE_FLAGS, dont_inherit=True)


def _include(line: str) -> str:
    match = INCLUDE.match(line)
    if match is None:
        return line
    return (ROOT / match["path"]).read_text(encoding="utf-8").rstrip("\n")


def blocks(page: Path) -> Iterator[Block]:
    """The fenced ``python`` blocks of ``page``, with their run marker."""
    lines = page.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        start = index
        body: list[str] = []
        index += 1
        while index < len(lines) and not lines[index].strip().startswith(opening["fence"]):
            body.append(lines[index][len(opening["indent"]) :])
            index += 1
        index += 1
        if opening["lang"] not in ("python", "py", "pycon"):
            continue
        previous = next((ln.strip() for ln in reversed(lines[:start]) if ln.strip()), "")
        mode = MARKERS.get(previous, "compile")
        yield Block(page, start + 1, "\n".join(_include(ln) for ln in body) + "\n", mode)


ALL_BLOCKS = [block for page in PAGES for block in blocks(page)]


def _params(*modes: str) -> list[Any]:
    return [pytest.param(b, id=b.name) for b in ALL_BLOCKS if b.mode in modes]


def test_pages_have_code() -> None:
    """The extractor finds blocks on every docs page that has them, and some are run."""
    assert len(ALL_BLOCKS) > 40
    assert sum(b.mode != "compile" for b in ALL_BLOCKS) > 20
    assert {b.page.name for b in ALL_BLOCKS} >= {"quickstart.md", "resources.md", "webhooks.md"}


def test_markers_precede_python_fences() -> None:
    """Every run marker is followed by a Python block, so none is silently ignored."""
    marked = {(b.page, b.line) for b in ALL_BLOCKS if b.mode != "compile"}
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").splitlines()
        for number, text in enumerate(lines, 1):
            if text.strip() in MARKERS:
                fence = next(i for i in range(number, len(lines)) if lines[i].strip()) + 1
                assert (page, fence) in marked, f"{page.name}:{number}: marker without a block"


@pytest.mark.parametrize("block", _params("compile", "program", "async"))
def test_block_compiles(block: Block) -> None:
    """Every Python block is valid Python."""
    block.compile()


@pytest.fixture
def fake_in_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTelnyx]:
    """A FakeTelnyx served from a background event loop, exported through the environment."""
    with start_blocking_portal() as portal:
        fake = FakeTelnyx()
        portal.call(fake.start)
        try:
            _export(monkeypatch, fake)
            yield fake
        finally:
            portal.call(fake.close)


def _export(monkeypatch: pytest.MonkeyPatch, fake: FakeTelnyx) -> None:
    monkeypatch.setenv("TELNYX_BASE_URL", fake.base_url)
    monkeypatch.setenv("TELNYX_API_KEY", fake.api_key)
    monkeypatch.setenv("TELNYX_PUBLIC_KEY", fake.public_key)


@pytest.mark.parametrize("block", _params("program"))
@pytest.mark.usefixtures("fake_in_thread")
def test_program_runs(block: Block) -> None:
    """A ``<!-- run -->`` block runs to completion against the fake (via the environment)."""
    exec(block.compile(), {"__name__": "__main__"})


@pytest.mark.anyio
@pytest.mark.parametrize("block", _params("async"))
async def test_async_block_runs(block: Block, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``<!-- run: async -->`` block runs with ``client`` and ``fake`` predefined."""
    async with FakeTelnyx() as fake, fake.client() as client:
        _export(monkeypatch, fake)
        namespace: dict[str, Any] = {
            "__name__": "__snippet__",
            "telnyx_msg": telnyx_msg,
            "fake": fake,
            "client": client,
        }
        result = eval(block.compile(), namespace)  # a coroutine when the block awaits
        if inspect.iscoroutine(result):
            await asyncio.wait_for(result, RUN_TIMEOUT)


# --- names mentioned in the docs ----------------------------------------------------------------

DOTTED = re.compile(r"\btelnyx_msg(?:\.[A-Za-z_]\w*)+")
CLIENT_CHAIN = re.compile(r"(?<![\w.])client((?:\.[A-Za-z_]\w*)+)")
FAKE_ATTR = re.compile(r"(?<![\w.])(?:fake|telnyx_fake)\.([A-Za-z_]\w*)")
#: Calls of the official ``telnyx`` SDK that migration.md quotes next to ours.
#: Official-SDK methods the migration page names as having no telnyx_msg counterpart.
OFFICIAL_ONLY = {
    ("migration.md", chain)
    for chain in (
        ".messages.whatsapp",
        ".messages.rcs",
        ".messaging_hosted_numbers.delete",
        ".messaging_profiles.create",
    )
}


def _resolve(dotted: str) -> object:
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for attr in parts[split:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def _mentions(pattern: re.Pattern[str]) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for page in PAGES:
        for match in pattern.finditer(page.read_text(encoding="utf-8")):
            found.add((page.name, match.group(1) if pattern.groups else match.group(0)))
    return found


def test_dotted_names_exist() -> None:
    """Every ``telnyx_msg.x.y`` the pages mention imports."""
    missing = []
    for page, dotted in sorted(_mentions(DOTTED)):
        try:
            _resolve(dotted)
        except (AttributeError, ModuleNotFoundError):
            missing.append(f"{page}: {dotted}")
    assert not missing


def test_client_attributes_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ``client.a.b`` chain the pages mention exists on AsyncClient or Client."""
    monkeypatch.setenv("TELNYX_API_KEY", "doc-check")
    monkeypatch.setenv("TELNYX_PUBLIC_KEY", "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=")
    clients: list[Any] = [telnyx_msg.AsyncClient(base_url="http://127.0.0.1:9/v2")]
    with telnyx_msg.Client(base_url="http://127.0.0.1:9/v2") as blocking:
        clients.append(blocking)
        missing = []
        for page, chain in sorted(_mentions(CLIENT_CHAIN) - OFFICIAL_ONLY):
            if not any(_has_chain(c, chain.lstrip(".").split(".")) for c in clients):
                missing.append(f"{page}: client{chain}")
    assert not missing


def _has_chain(obj: Any, names: list[str]) -> bool:
    for name in names:
        if not hasattr(obj, name):
            return False
        obj = getattr(obj, name)
    return True


def test_fake_attributes_exist() -> None:
    """Every ``fake.x`` / ``telnyx_fake.x`` the pages mention is a FakeTelnyx attribute."""
    fake = FakeTelnyx()  # never started: no I/O
    missing = sorted(
        f"{p}: {a}"
        for p, a in _mentions(FAKE_ATTR)
        if not hasattr(FakeTelnyx, a) and a not in vars(fake)
    )
    assert not missing


# --- the API reference ------------------------------------------------------------------------


def _api_directives() -> dict[str, set[str] | None]:
    """``::: name`` directives of api.md and their ``members:`` lists (None: all members)."""
    directives: dict[str, set[str] | None] = {}
    current: str | None = None
    in_members = False
    for line in (ROOT / "docs" / "api.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("::: "):
            current, in_members = line[4:].strip(), False
            directives[current] = None
        elif current is not None and line.strip() == "members:":
            in_members = True
            directives[current] = set()
        elif in_members and line.strip().startswith("- "):
            members = directives[current] if current is not None else None
            assert members is not None
            members.add(line.strip()[2:])
        elif line.strip() and not line.startswith(" "):
            current, in_members = None, False
    return directives


def test_api_reference_covers_public_names() -> None:
    """docs/api.md documents the package's ``__all__`` and every public module's other names."""
    directives = _api_directives()
    assert directives["telnyx_msg"] is None
    exported = set(telnyx_msg.__all__)
    api = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    # Resource methods, models and errors are rendered from the code by the docs build's
    # hook (docs/_ext/reference.py), which fails the build if any is missing.
    for marker in ("resources", "models", "errors"):
        assert f"<!-- reference:{marker} -->" in api
    for name in ("telnyx_msg.webhooks", "telnyx_msg.receivers", "telnyx_msg.testing"):
        own = set(importlib.import_module(name).__all__) - exported
        listed = directives[name]
        assert listed is None or listed == own, f"{name}: {sorted(own ^ listed)}"
    for name in directives:
        _resolve(name)


def test_code_blocks_fit_the_page() -> None:
    """No code line of the docs is wider than the column shows without scrolling (84)."""
    wide = []
    for page in sorted((ROOT / "docs").glob("*.md")):
        inside = False
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            if line.startswith("```"):
                inside = not inside
            elif inside and len(line) > 84 and page.name != "performance.md":
                wide.append(f"{page.name}:{number}")
    assert wide == []


# --- the documented code type-checks as written ------------------------------------------------

ASYNC_PRELUDE = """from __future__ import annotations

import telnyx_msg
from telnyx_msg.testing import FakeTelnyx


async def _block(client: telnyx_msg.AsyncClient, fake: FakeTelnyx) -> None:
"""


def test_runnable_blocks_pass_mypy_strict(tmp_path: Path) -> None:
    """Every complete code block of the docs passes ``mypy --strict`` as written (the async
    ones inside a function given the ``client`` and ``fake`` their harness provides)."""
    from mypy import api

    names: dict[str, str] = {}
    for number, block in enumerate(b for b in ALL_BLOCKS if b.mode != "compile"):
        path = tmp_path / f"block_{number}.py"
        if block.mode == "async":
            body = "".join(
                f"    {line}\n" if line.strip() else "\n" for line in block.source.splitlines()
            )
            path.write_text(ASYNC_PRELUDE + body, encoding="utf-8")
        else:
            path.write_text(block.source, encoding="utf-8")
        names[path.name] = block.name
    out, err, status = api.run(
        [
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            *map(str, sorted(tmp_path.glob("block_*.py"))),
        ]
    )
    problems = [
        f"{names.get(Path(line.split(':')[0]).name, '?')}: {line}"
        for line in out.splitlines()
        if ": error:" in line
    ]
    assert problems == [], "\n".join(problems) + err
    assert status == 0


USES_CLIENT = re.compile(r"(?<![\w.])client\b")
DEFINES_CLIENT = re.compile(r"(?<![\w.])client\s*(?::[^=\n]*)?=(?!=)|\b(?:as|for)\s+client\b")
ASYNC_CODE = re.compile(r"\bawait\b|\basync\s+(?:for|with|def)\b")


def _client_context(source: str) -> str:
    """``source`` with a typed ``client`` declared when it uses one it does not define, so the
    type check sees real types rather than an undefined (``Any``) name: an ``AsyncClient`` for
    async code, else a ``Client``. The declaration goes after a ``from __future__`` import."""
    if not USES_CLIENT.search(source) or DEFINES_CLIENT.search(source):
        return source
    kind = "AsyncClient" if ASYNC_CODE.search(source) else "Client"
    prelude = f"import telnyx_msg\n\nclient: telnyx_msg.{kind}\n"
    future = re.match(r"(?:from __future__ import [^\n]+\n)+", source)
    head, body = (future.group(0), source[future.end() :]) if future else ("", source)
    return head + prelude + body


def test_fragments_pass_mypy_strict_in_their_context(tmp_path: Path) -> None:
    """Unmarked blocks type-check (strict) with undefined context names and missing third-party
    packages tolerated. A fragment that awaits is checked inside an async function given the
    ``client`` and ``fake`` the async blocks have; another that uses a ``client`` it does not
    define gets a typed one (``Client``, or ``AsyncClient`` for async code), so what it does
    with the results is checked against the real types."""
    from mypy import api

    names: dict[str, str] = {}
    for number, block in enumerate(b for b in ALL_BLOCKS if b.mode == "compile"):
        path = tmp_path / f"fragment_{number}.py"
        try:
            compile(block.source, block.name, "exec", dont_inherit=True)
            path.write_text(_client_context(block.source), encoding="utf-8")
        except SyntaxError:  # top-level await: the body of an async function
            body = "".join(
                f"    {line}\n" if line.strip() else "\n" for line in block.source.splitlines()
            )
            path.write_text(ASYNC_PRELUDE + body, encoding="utf-8")
        names[path.name] = block.name
    assert len(names) > 10
    out, err, status = api.run(
        [
            "--strict",
            "--ignore-missing-imports",
            "--allow-untyped-decorators",
            "--disable-error-code",
            "name-defined",
            "--no-error-summary",
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            *map(str, sorted(tmp_path.glob("fragment_*.py"))),
        ]
    )
    problems = [
        f"{names.get(Path(line.split(':')[0]).name, '?')}: {line}"
        for line in out.splitlines()
        if ": error:" in line
    ]
    assert problems == [], "\n".join(problems) + err
    assert status == 0


# --- docs/_ext/nobreak.py ---------------------------------------------------------------

NOBREAK_HOOK = ROOT / "docs" / "_ext" / "nobreak.py"

# The JSON example of wire.md's schedule notes, as mkdocs renders it in a paragraph.
WIRE_JSON = (
    "<p>A body such as <code>{&quot;to&quot;:&quot;+15550002&quot;,&quot;from&quot;:"
    "&quot;+15550001&quot;,&quot;send_at&quot;:&quot;2030-01-01T12:00:00+00:00&quot;,"
    "&quot;text&quot;:&quot;hi&quot;}</code> is refused.</p>"
)


def _nobreak_hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("nobreak", NOBREAK_HOOK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _unbreakable(html: str) -> list[str]:
    return [
        re.sub(r"&[a-z]+;", "x", s) for s in re.findall(r'<span class="nobr">([^<]*)</span>', html)
    ]


def test_a_long_hyphenated_code_span_stays_breakable() -> None:
    """wire.md's 81-character JSON example (no spaces, hyphens only in its date) must still
    wrap on a phone: made one unbreakable run, it stuck out 300 px past the text column of a
    375 px screen and the whole wire page scrolled sideways (it wrapped before the hook). No
    run the hook makes unbreakable may be wider than a phone's line of code (about 40
    characters), while an option name such as ``--ignore-unknown-columns`` still is one."""
    on_page_content = _nobreak_hook().on_page_content
    runs = _unbreakable(on_page_content(WIRE_JSON))
    assert all(len(run) <= 40 for run in runs), runs
    option = on_page_content("<p><code>[--ignore-unknown-columns]</code></p>")
    assert any("--ignore-unknown-columns" in run for run in _unbreakable(option)), option
