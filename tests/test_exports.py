"""The public surface: ``__all__`` lists, lazy attributes, and import boundaries."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest

import telnyx_msg
from telnyx_msg import models

PACKAGE_DIR = Path(telnyx_msg.__file__).parent

#: Attributes resolved on first use, and the module each comes from.
LAZY = {
    "RateLimits": "telnyx_msg._ratelimit",
    "RedisRateLimits": "telnyx_msg._redis_limits",
    "Segments": "telnyx_msg._segments",
    "segments": "telnyx_msg._segments",
    "MemoryReplayStore": "telnyx_msg.webhooks",
    "RedisReplayStore": "telnyx_msg.webhooks",
    "WebhookVerifier": "telnyx_msg.webhooks",
}

#: The documented error tree (docs/errors.md): class -> its parent.
ERROR_TREE = {
    "ConfigurationError": "TelnyxError",
    "ValidationError": "TelnyxError",
    "APIConnectionError": "TelnyxError",
    "APITimeoutError": "APIConnectionError",
    "APIStatusError": "TelnyxError",
    "BadRequestError": "APIStatusError",
    "AuthenticationError": "APIStatusError",
    "PermissionDeniedError": "APIStatusError",
    "NotFoundError": "APIStatusError",
    "ConflictError": "APIStatusError",
    "UnprocessableEntityError": "APIStatusError",
    "RateLimitError": "APIStatusError",
    "QueueFullError": "RateLimitError",
    "InternalServerError": "APIStatusError",
    "WebhookVerificationError": "TelnyxError",
    "InvalidSignatureError": "WebhookVerificationError",
    "TimestampError": "WebhookVerificationError",
    "MissingHeaderError": "WebhookVerificationError",
    "WebhookPayloadError": "WebhookVerificationError",
    "DuplicateWebhookError": "WebhookVerificationError",
}

REQUIRED = sorted(
    {
        "AsyncClient",
        "Client",
        "RequestOptions",
        "TelnyxError",
        *ERROR_TREE,
        "Message",
        "WhatsAppMessage",
        "Recipient",
        "Sender",
        "WebhookEvent",
        "RateLimits",
        "RedisRateLimits",
        "WebhookVerifier",
        "MemoryReplayStore",
        "RedisReplayStore",
        "__version__",
    }
)

#: Model names the public API promises from ``telnyx_msg.models``.
REQUIRED_MODELS = [
    "AlphanumericSenderId",
    "AutorespConfig",
    "Cost",
    "HostedNumber",
    "HostedNumberOrder",
    "LinkClick",
    "Media",
    "Message",
    "MessageError",
    "MessagingNumbersBulkUpdate",
    "MessagingProfile",
    "OptOut",
    "ProfileMetrics",
    "ProfileMetricsOverview",
    "Recipient",
    "Sender",
    "ShortCode",
    "WebhookEvent",
    "WhatsAppMessage",
]


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _resolve(name: str) -> object:
    module = LAZY.get(name)
    if module is not None and not _module_exists(module):
        pytest.skip(f"{module} (lazy source of telnyx_msg.{name}) is not written yet")
    return getattr(telnyx_msg, name)


# --- __all__ ----------------------------------------------------------------------------------


def test_all_sorted() -> None:
    """telnyx_msg.__all__ is in plain sorted() order."""
    assert telnyx_msg.__all__ == sorted(telnyx_msg.__all__)


def test_all_unique() -> None:
    """telnyx_msg.__all__ has no duplicates."""
    assert len(telnyx_msg.__all__) == len(set(telnyx_msg.__all__))


@pytest.mark.parametrize("name", telnyx_msg.__all__)
def test_all_names_resolve(name: str) -> None:
    """Every name in telnyx_msg.__all__ resolves with getattr (lazy ones included)."""
    assert _resolve(name) is not None


@pytest.mark.parametrize("name", sorted(LAZY))
def test_lazy_names_come_from_their_module(name: str) -> None:
    """A lazy attribute is the object its module defines, and is listed in __all__."""
    assert name in telnyx_msg.__all__
    value = _resolve(name)
    assert value is getattr(importlib.import_module(LAZY[name]), name)


def test_unknown_attribute_raises() -> None:
    """A name telnyx_msg does not define raises AttributeError (not ImportError/KeyError)."""
    with pytest.raises(AttributeError):
        _ = telnyx_msg.NoSuchThing


@pytest.mark.parametrize("name", REQUIRED)
def test_api_md_names_exported(name: str) -> None:
    """Every name the public API promises is in telnyx_msg.__all__ and resolves."""
    assert name in telnyx_msg.__all__
    assert _resolve(name) is not None


def test_version_is_string() -> None:
    """__version__ is a non-empty version string."""
    assert isinstance(telnyx_msg.__version__, str)
    assert telnyx_msg.__version__[:1].isdigit()


@pytest.mark.parametrize(("name", "parent"), sorted(ERROR_TREE.items()))
def test_error_tree(name: str, parent: str) -> None:
    """Each exported error subclasses its parent in the documented tree."""
    cls = getattr(telnyx_msg, name)
    assert issubclass(cls, getattr(telnyx_msg, parent))
    assert issubclass(cls, telnyx_msg.TelnyxError)


@pytest.mark.parametrize("name", ["ConfigurationError", "ValidationError"])
def test_value_error_subclasses(name: str) -> None:
    """ConfigurationError and ValidationError are also ValueErrors."""
    assert issubclass(getattr(telnyx_msg, name), ValueError)


def test_reexported_models_are_the_same_objects() -> None:
    """Models exported from telnyx_msg are the very classes of telnyx_msg.models."""
    for name in ("Message", "WhatsAppMessage", "Recipient", "Sender", "WebhookEvent"):
        assert getattr(telnyx_msg, name) is getattr(models, name)


# --- telnyx_msg.models ------------------------------------------------------------------------


def test_models_all_sorted_unique() -> None:
    """telnyx_msg.models.__all__ is sorted and has no duplicates."""
    assert models.__all__ == sorted(set(models.__all__))


def test_models_all_lists_every_model() -> None:
    """Every public class defined in telnyx_msg.models is in its __all__, and each resolves."""
    defined = {
        name
        for name, value in vars(models).items()
        if inspect.isclass(value)
        and value.__module__ == models.__name__
        and not name.startswith("_")
    }
    assert defined - set(models.__all__) == set()
    for name in models.__all__:
        assert getattr(models, name) is not None
    assert set(REQUIRED_MODELS) <= set(models.__all__)


def test_models_are_frozen_attrs() -> None:
    """Every model class in telnyx_msg.models is a frozen attrs class."""
    for name in models.__all__:
        cls = getattr(models, name)
        if not attrs.has(cls):
            continue
        fields = attrs.fields(cls)
        instance = cls(**{f.name: None for f in fields if f.default is attrs.NOTHING})
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            setattr(instance, fields[0].name, None)


# --- import boundaries (ast) ------------------------------------------------------------------


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        return [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return []


def _imports(tree: ast.Module) -> list[tuple[str, str]]:
    """``(module, where)`` for every import; where is module-level, type-checking or local."""
    found: list[tuple[str, str]] = []

    def walk(nodes: list[ast.stmt], where: str) -> None:
        for node in nodes:
            found.extend((name, where) for name in _imported(node))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for sub in ast.walk(node):
                    found.extend((name, "local") for name in _imported(sub))
            elif isinstance(node, ast.ClassDef):
                walk(node.body, where)
            elif isinstance(node, ast.If):
                walk(node.body, "type-checking" if _is_type_checking(node.test) else where)
                walk(node.orelse, where)
            elif isinstance(node, (ast.Try, ast.With)):
                for block in ("body", "orelse", "finalbody"):
                    walk(getattr(node, block, []), where)
                for handler in getattr(node, "handlers", []):
                    walk(handler.body, where)

    walk(tree.body, "module-level")
    return found


def _package_imports() -> dict[str, list[tuple[str, str]]]:
    result = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        rel = path.relative_to(PACKAGE_DIR).as_posix()
        result[rel] = _imports(ast.parse(path.read_text(encoding="utf-8"), filename=rel))
    return result


def _uses(imports: list[tuple[str, str]], top: str, where: set[str] | None = None) -> bool:
    return any(
        (name == top or name.startswith(top + ".")) and (where is None or w in where)
        for name, w in imports
    )


def _in_testing(rel: str) -> bool:
    return rel.startswith("testing/")


def test_aiohttp_boundary() -> None:
    """Only _transport, receivers, testing/ and the CLI's demo import aiohttp at module level.

    _client and _sync may name it under TYPE_CHECKING (for the ``session`` annotation) only.
    """
    allowed = {"_transport.py", "receivers.py", "cli/__init__.py", "cli/_demo.py"}
    offenders = [
        rel
        for rel, imports in _package_imports().items()
        if rel not in allowed
        and not _in_testing(rel)
        and _uses(imports, "aiohttp", {"module-level"})
    ]
    assert offenders == []
    type_checking = [
        rel
        for rel, imports in _package_imports().items()
        if rel not in allowed
        and not _in_testing(rel)
        and _uses(imports, "aiohttp", {"type-checking"})
    ]
    assert set(type_checking) <= {"_client.py", "_sync.py"}


def test_client_imports_aiohttp_only_for_typing() -> None:
    """_client.py imports aiohttp under TYPE_CHECKING and nowhere at run time."""
    imports = _package_imports()["_client.py"]
    assert not _uses(imports, "aiohttp", {"module-level", "local"})


def test_anyio_from_thread_boundary() -> None:
    """Only _sync.py imports anyio.from_thread (the loop thread of the blocking client)."""
    imports = _package_imports()
    offenders = [
        rel
        for rel, found in imports.items()
        if rel != "_sync.py" and _uses(found, "anyio.from_thread")
    ]
    assert offenders == []


# The layers, bottom up. Below the client, nothing touches I/O: the wire-free modules never
# import the transport, the client or aiohttp, even under TYPE_CHECKING.
WIRE_FREE = {
    "models.py",
    "errors.py",
    "webhooks.py",
    "_convert.py",
    "_spec.py",
    "endpoints.py",
    "_requests.py",
    "_validate.py",
    "_segments.py",
    "_items.py",
    "_raw.py",
    "_pagination.py",
    "_retry.py",
    "_config.py",
    "_bucket.py",
    "_ratelimit.py",
    "_plan.py",
    "_events.py",
    "_bulk.py",
    "_outcome.py",
    "_tracker.py",
    "_wire.py",
}
IO_MODULES = (
    "aiohttp",
    "multidict",
    "telnyx_msg._transport",
    "telnyx_msg._client",
    "telnyx_msg._sync",
    "telnyx_msg.receivers",
)


def test_layering_wire_free_modules_never_reach_the_transport() -> None:
    imports = _package_imports()
    assert set(imports) >= WIRE_FREE
    offenders = sorted(
        f"{rel} imports {top}"
        for rel in WIRE_FREE
        for top in IO_MODULES
        if _uses(imports[rel], top)
    )
    assert offenders == []


def test_layering_the_core_never_imports_the_facade_testing_or_the_cli() -> None:
    """Only the package root (lazy exports) and __main__ may name the facade, testing or CLI."""
    tops = ("telnyx_msg._sync", "telnyx_msg.testing", "telnyx_msg.cli")
    offenders = sorted(
        f"{rel} imports {top}"
        for rel, found in _package_imports().items()
        if "/" not in rel and rel not in {"__init__.py", "__main__.py"} and rel != "_sync.py"
        for top in tops
        if _uses(found, top)
    )
    assert offenders == []
    root = _package_imports()["__init__.py"]
    assert not _uses(root, "telnyx_msg._sync", {"module-level"})  # Client loads on first use


def test_layering_the_bulk_engine_sits_on_top_of_the_client() -> None:
    """The client, resources, facade and wire never import the bulk engine when they load (not
    even for typing: the shared types are in _outcome); the engine never imports the client."""
    imports = _package_imports()
    for rel in ("_client.py", "_resources.py", "_sync.py", "_transport.py", "_wire.py"):
        assert not _uses(imports[rel], "telnyx_msg._bulk", {"module-level", "type-checking"}), rel
    assert not _uses(imports["_bulk.py"], "telnyx_msg._client")


def test_layering_the_facade_uses_only_the_core_interface() -> None:
    """_sync.py touches no private attribute of its AsyncClient: it runs endpoints through
    ``_client.Core`` (runner, pager, raw_runner, send_many)."""
    tree = ast.parse((PACKAGE_DIR / "_sync.py").read_text(encoding="utf-8"))
    offenders = sorted(
        f"line {node.lineno}: {ast.unparse(node)}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and (
            (isinstance(node.value, ast.Attribute) and node.value.attr == "_async")
            or (isinstance(node.value, ast.Name) and node.value.id in {"client", "async_client"})
        )
    )
    assert offenders == []


def test_layering_the_send_path_is_sans_io_below_the_client() -> None:
    """_wire and _retry import nothing that does I/O or sleeps (they are pure functions)."""
    imports = _package_imports()
    for rel in ("_wire.py", "_retry.py"):
        for top in ("asyncio", "aiohttp", "telnyx_msg._transport", "telnyx_msg._ratelimit"):
            assert not _uses(imports[rel], top), f"{rel} imports {top}"


def _python_json(code: str) -> Any:
    """Run ``code`` in a fresh interpreter (a clean ``sys.modules``); the JSON it printed."""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(result.stdout)


def test_webhook_only_services_do_not_load_aiohttp() -> None:
    """Verifying and parsing a webhook loads neither aiohttp nor the client."""
    code = (
        "import base64, json, sys, time\n"
        "from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey\n"
        "import telnyx_msg.webhooks as w\n"
        "key = Ed25519PrivateKey.generate()\n"
        "pub = base64.b64encode(key.public_key().public_bytes_raw()).decode()\n"
        "body = json.dumps({'data': {'id': 'e1', 'event_type': 'message.sent',\n"
        "    'occurred_at': '2025-07-01T15:00:00Z', 'record_type': 'event',\n"
        "    'payload': {'id': 'm1', 'record_type': 'message'}}}).encode()\n"
        "ts = str(int(time.time()))\n"
        "sig = base64.b64encode(key.sign(ts.encode() + b'|' + body)).decode()\n"
        "event = w.WebhookVerifier(pub).unwrap(body, {w.SIGNATURE_HEADER: sig,\n"
        "    w.TIMESTAMP_HEADER: ts})\n"
        "print(json.dumps([event.id, sorted(m for m in sys.modules if m.split('.')[0] in\n"
        "    ('aiohttp', 'multidict') or m in ('telnyx_msg._client', 'telnyx_msg._transport'))]))\n"
    )
    assert _python_json(code) == ["e1", []]


def test_cattrs_boundary() -> None:
    """Only _convert.py imports cattrs."""
    offenders = [
        rel
        for rel, imports in _package_imports().items()
        if rel != "_convert.py" and _uses(imports, "cattrs")
    ]
    assert offenders == []


def test_cryptography_boundary() -> None:
    """Only webhooks.py and testing/ import cryptography."""
    offenders = [
        rel
        for rel, imports in _package_imports().items()
        if rel != "webhooks.py" and not _in_testing(rel) and _uses(imports, "cryptography")
    ]
    assert offenders == []


def test_import_is_cheap() -> None:
    """`import telnyx_msg` loads neither cryptography, redis, telnyx_msg.testing nor the CLI."""
    code = (
        "import json, sys, telnyx_msg; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('cryptography', 'redis') or m.startswith(('telnyx_msg.testing', "
        "'telnyx_msg.cli')))))"
    )
    assert _python_json(code) == []


def test_client_import_defers_the_catalogue() -> None:
    """Importing the client builds no model class; reading a method loads them and the
    response parser (cattrs), which is how a service warms up before taking traffic.

    The ~75 request and response classes cost more to build than the rest of the package, so
    a CLI or a serverless cold start that only constructs a client must not pay for them.
    """
    code = (
        "import json, sys\n"
        "from telnyx_msg import AsyncClient, Client\n"
        "deferred = ('telnyx_msg.models', 'telnyx_msg._requests', 'telnyx_msg.endpoints',\n"
        "            'telnyx_msg._convert', 'cattrs')\n"
        "before = sorted(m for m in deferred if m in sys.modules)\n"
        "client = Client(api_key='k', base_url='http://127.0.0.1:9')\n"
        "send = client.messages.send\n"
        "after = sorted(m for m in deferred if m in sys.modules)\n"
        "client.close()\n"
        "from telnyx_msg import Message\n"
        "print(json.dumps([before, after, send.__name__, Message.__name__]))"
    )
    before, after, name, message = _python_json(code)
    assert before == []
    assert after == [
        "cattrs",
        "telnyx_msg._convert",
        "telnyx_msg._requests",
        "telnyx_msg.endpoints",
        "telnyx_msg.models",
    ]
    assert (name, message) == ("send", "Message")


def _bound_methods(client: object) -> list[tuple[str, Any]]:
    from telnyx_msg._resources import Op, PagedOp, Resource

    found = []

    def walk(resource: object, prefix: str) -> None:
        for name, attr in vars(type(resource)).items():
            if isinstance(attr, (Op, PagedOp)):
                found.append((prefix + name, getattr(resource, name)))
        for name, child in vars(resource).items():
            if isinstance(child, Resource):
                walk(child, f"{prefix}{name}.")

    for name, child in vars(client).items():
        if isinstance(child, Resource):
            walk(child, f"{name}.")
    return found


@pytest.mark.parametrize("cls", ["AsyncClient", "Client"])
def test_methods_show_their_real_signature(cls: str) -> None:
    """help(), IDEs and inspect see the documented arguments, not ``*args, **kwargs``."""
    client = getattr(telnyx_msg, cls)(api_key="k", base_url="http://127.0.0.1:9")
    try:
        methods = _bound_methods(client)
        assert {
            "messages.send",
            "messaging_optouts.list",
            "messaging_profiles.autoresp_configs.retrieve",
            "messaging_profiles.create",
            "phone_numbers.messaging.update",
            "short_codes.list",
            "messaging_numbers_bulk_updates.retrieve",
        } <= {n for n, _ in methods}
        assert len(methods) == 44
        for name, method in methods:
            sig = inspect.signature(method)
            params = list(sig.parameters.values())
            assert params[-1].name == "options", name
            assert all(
                p.kind is not p.VAR_POSITIONAL and p.kind is not p.VAR_KEYWORD for p in params
            ), name
            assert method.__name__ == name.rsplit(".", 1)[1]
            assert method.__doc__
        send = dict(methods)["messages.send"]
        sig = inspect.signature(send)
        assert sig.return_annotation is models.Message
        assert sig.parameters["to"].kind is inspect.Parameter.KEYWORD_ONLY
        with pytest.raises(TypeError):
            sig.bind("+15550001111")  # keyword-only, as the request model enforces
        retrieve = inspect.signature(dict(methods)["messaging_profiles.autoresp_configs.retrieve"])
        assert list(retrieve.parameters)[:2] == ["autoresp_cfg_id", "profile_id"]
        pager = "AsyncPager" if cls == "AsyncClient" else "SyncPager"
        assert (
            inspect.signature(dict(methods)["messaging_optouts.list"]).return_annotation
            == f"{pager}[OptOut]"
        )
    finally:
        if cls == "Client":
            client.close()


def test_the_project_stands_alone() -> None:
    """No code, test or doc cites notes outside the repository (a maintainer has only it)."""
    root = PACKAGE_DIR.parent
    outside = ("WIRE.md", "API.md", "shared/", "reliability.md", "STYLE.md")
    offenders = []
    for folder, pattern in (
        ("telnyx_msg", "**/*.py"),
        ("tests", "**/*.py"),
        ("benchmarks", "*.py"),
        ("examples", "**/*.py"),
        ("docs", "*.md"),
    ):
        for path in sorted((root / folder).glob(pattern)):
            text = path.read_text(encoding="utf-8")
            offenders += [
                f"{path.relative_to(root)}: {name}"
                for name in outside
                if name in text and path.name != "test_exports.py"
            ]
    for name in ("README.md", "CHANGELOG.md", "mkdocs.yml", "pyproject.toml"):
        text = (root / name).read_text(encoding="utf-8")
        offenders += [f"{name}: {word}" for word in outside if word in text]
    assert offenders == []


def test_the_queue_full_code_has_one_home() -> None:
    """Retry policy, both limiters and the fake compare against errors.QUEUE_FULL_CODE."""
    from telnyx_msg.errors import QUEUE_FULL_CODE

    homes = sorted(
        path.relative_to(PACKAGE_DIR).as_posix()
        for path in PACKAGE_DIR.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and node.value == QUEUE_FULL_CODE
    )
    assert homes == ["errors.py"]
