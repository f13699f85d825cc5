"""mkdocs hook: the API reference's resource methods, models and errors, from the code itself.

The resource methods are built at run time from the endpoint catalogue, so static doc tools
cannot see them; this hook walks a real client's resource tree instead and renders every method
with its real signature, every response model with its fields and types, and every error with
its docstring, replacing the ``<!-- reference:... -->`` markers of ``docs/api.md``. It then checks
that nothing public is missing (a method, a model field, an error) and fails the build if it is.
Loaded by ``hooks:`` in mkdocs.yml; not part of the package.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Iterator
from typing import Any

import attrs

# mkdocs puts this file's folder on sys.path while it loads the hook: the reST roles and the
# docs/PAGE.md (§N) links are converted exactly as in the docstrings mkdocstrings renders.
from rst_roles import convert

WIDTH = 88
_MARKER = re.compile(r"<!-- reference:(\w+) -->")


def _first_line(doc: str | None) -> str:
    return convert(inspect.cleandoc(doc or "").split("\n\n")[0].replace("\n", " "))


def _resources() -> Iterator[tuple[str, Any, str]]:
    """``(dotted path, resource, method name)`` for every public method of the tree."""
    import telnyx_msg
    from telnyx_msg._resources import Resource, ResourceTree

    client = telnyx_msg.AsyncClient("docs-key", rate_limits=None)

    def walk(path: str, resource: Resource[Any]) -> Iterator[tuple[str, Any, str]]:
        names: list[str] = []
        for klass in reversed(type(resource).__mro__):
            names += [n for n in vars(klass) if not n.startswith("_") and n not in names]
        for name in names:
            if callable(getattr(resource, name)):
                yield path, resource, name
        for name, child in vars(resource).items():
            if isinstance(child, Resource):
                yield from walk(f"{path}.{name}", child)

    for name in typing.get_type_hints(ResourceTree):
        yield from walk(f"client.{name}", getattr(client, name))


def _annotation(annotation: Any) -> str:
    text = annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
    return text.replace("telnyx_msg.models.", "").replace("telnyx_msg.", "")


def _signature(call: str, method: Any) -> str:
    """``call(params) -> result``, one parameter per line when it is long, ``*`` kept.

    An overloaded method shows its first overload (the ``AsyncClient`` one): the
    implementation's own signature is typed ``Any`` for both modes.
    """
    signature = inspect.signature(method)
    overloads = typing.get_overloads(getattr(method, "__func__", method))
    if overloads:
        signature = inspect.signature(overloads[0])
        signature = signature.replace(parameters=list(signature.parameters.values())[1:])
    parts: list[str] = []
    star = False
    for param in signature.parameters.values():
        if param.kind is param.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        if param.kind is param.VAR_POSITIONAL:
            star = True
        text = param.name
        if param.annotation is not param.empty:
            text += f": {_annotation(param.annotation)}"
        if param.default is not param.empty:
            text += f" = {param.default!r}"
        parts.append(text)
    returns = ""
    if signature.return_annotation is not signature.empty:
        returns = f" -> {_annotation(signature.return_annotation)}"
    one_line = f"{call}({', '.join(parts)}){returns}"
    if len(one_line) <= WIDTH:
        return one_line
    return "\n".join([f"{call}(", *(f"    {part}," for part in parts), f"){returns}"])


def render_resources() -> tuple[str, set[str]]:
    """Markdown for every resource method, and the dotted names rendered."""
    out: list[str] = []
    seen: set[str] = set()
    current = ""
    for path, resource, name in _resources():
        if path != current:
            current = path
            doc = _first_line(type(resource).__doc__)
            out += [f"### `{path}`", "", doc, ""]
        method = getattr(resource, name)
        endpoint = getattr(getattr(type(resource), name, None), "endpoint", None)
        summary = _first_line(method.__doc__)
        if endpoint is not None:
            summary = f"`{endpoint.method} {endpoint.path}`: {summary}"
        out += [
            f"#### `{path}.{name}`",
            "",
            "```python",
            _signature(f"{path}.{name}", method),
            "```",
            "",
            summary,
            "",
        ]
        seen.add(f"{path}.{name}")
    return "\n".join(out), seen


def _type_name(tp: Any) -> str:
    text = inspect.formatannotation(tp)
    return (
        text.replace("collections.abc.", "")
        .replace("typing.", "")
        .replace("telnyx_msg.models.", "")
        .replace("decimal.", "")
        .replace("datetime.", "")
    )


def render_models() -> tuple[str, set[str]]:
    """Markdown for every response model (fields and types) and enum (values)."""
    import enum

    import telnyx_msg
    from telnyx_msg import models

    out: list[str] = []
    seen: set[str] = set()
    for name in models.__all__:
        cls = getattr(models, name)
        # A model also exported from telnyx_msg is documented here only (api.md's
        # ``::: telnyx_msg`` filters it out); this anchor is its telnyx_msg.NAME entry.
        anchor = f'<a id="telnyx_msg.{name}"></a>' if name in telnyx_msg.__all__ else ""
        out += [f"### `{name}`", "", anchor, "", convert(inspect.cleandoc(cls.__doc__ or "")), ""]
        if isinstance(cls, type) and issubclass(cls, enum.Enum):
            # An empty code span would show as two stray backticks: show the literal "".
            values = ", ".join(f"`{m.value}`" if m.value else '`""`' for m in cls)
            out += [f"Values: {values} (unknown values are kept as plain strings).", ""]
            seen.add(name)
        elif attrs.has(cls):
            hints = typing.get_type_hints(cls)
            out += ["| field | type |", "|---|---|"]
            for field in attrs.fields(cls):
                # Python-Markdown's tables keep a "|" inside a code span as text.
                out.append(f"| `{field.name}` | `{_type_name(hints[field.name])}` |")
                seen.add(f"{name}.{field.name}")
            out.append("")
            seen.add(name)
    return "\n".join(out), seen


def render_errors() -> tuple[str, set[str]]:
    """Markdown for every exception: its base and when it is raised."""
    from telnyx_msg import errors

    out = ["| error | base | raised when |", "|---|---|---|"]
    seen: set[str] = set()
    for name in errors.__all__:
        cls = getattr(errors, name)
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            continue
        base = cls.__bases__[0].__name__
        out.append(f"| `{name}` | `{base}` | {_first_line(cls.__doc__)} |")
        seen.add(name)
    return "\n".join(out) + "\n", seen


def check(resources: set[str], models_seen: set[str], errors_seen: set[str]) -> list[str]:
    """Everything public that the rendered reference lacks."""
    import enum

    from telnyx_msg import errors, models

    missing: list[str] = []
    for path, _resource, name in _resources():
        if f"{path}.{name}" not in resources:
            missing.append(f"{path}.{name}")
    for name in models.__all__:
        cls = getattr(models, name)
        if name not in models_seen:
            missing.append(f"models.{name}")
        elif attrs.has(cls) and not (isinstance(cls, type) and issubclass(cls, enum.Enum)):
            missing += [
                f"models.{name}.{f.name}"
                for f in attrs.fields(cls)
                if f"{name}.{f.name}" not in models_seen
            ]
    missing += [
        f"errors.{n}"
        for n in errors.__all__
        if isinstance(getattr(errors, n), type)
        and issubclass(getattr(errors, n), BaseException)
        and n not in errors_seen
    ]
    return missing


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    """mkdocs event: fill the markers; fail the build if anything public is missing."""
    if not _MARKER.search(markdown):
        return markdown
    from mkdocs.exceptions import PluginError

    parts = {"resources": render_resources(), "models": render_models(), "errors": render_errors()}
    missing = check(parts["resources"][1], parts["models"][1], parts["errors"][1])
    for marker in _MARKER.findall(markdown):
        if marker not in parts:
            raise PluginError(f"{page.file.src_path}: unknown reference marker {marker!r}")
    if set(parts) - set(_MARKER.findall(markdown)):
        missing.append(f"markers for {sorted(set(parts) - set(_MARKER.findall(markdown)))}")
    if missing:
        raise PluginError("API reference is missing: " + ", ".join(missing))
    return _MARKER.sub(lambda m: parts[m.group(1)][0], markdown)
