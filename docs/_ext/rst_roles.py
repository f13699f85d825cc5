"""Griffe extension for the docs build: show the docstrings' reST markup as Markdown, link the
``docs/PAGE.md`` mentions to the site's pages, and give attrs classes their constructor.

The package's docstrings are plain text with reST roles (``:class:`Message```) and ``::``
literal-block markers. mkdocstrings renders docstrings as Markdown, where both would show
verbatim; :func:`convert` turns a role into inline code and drops the ``::`` marker (the
indented block after it is already a Markdown code block). ``docs/wire.md §4.1`` becomes a link
to that section of the page. docs/_ext/reference.py runs the same :func:`convert` over the
docstrings it renders itself (models, errors, resources).

griffe reads the source statically and sees no ``__init__`` on an attrs class, so the reference
would show neither its signature nor its fields; :class:`RestRoles` adds one built from the
class's real ``attrs.fields`` (names, order, keyword-only, defaults) with the annotations of the
source. Loaded by mkdocs.yml; not part of the package.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import griffe

DOCS = Path(__file__).resolve().parent.parent
#: The packages whose attrs classes get their generated ``__init__`` in the reference.
PACKAGES = frozenset({"telnyx_msg"})

_ROLE = re.compile(r":(?:attr|class|data|exc|func|meth|mod|obj):`~?([^`]+)`")
_MARKER_LINE = re.compile(r"^[ \t]*::[ \t]*$", re.MULTILINE)
_MARKER_END = re.compile(r"(\S)::[ \t]*$", re.MULTILINE)
# "see ``docs/errors.md``" in a docstring becomes a link to that page (mkdocs resolves it), and
# "docs/wire.md §4.1 and §3.11" links to those numbered sections of the page.
_SECTION = r"§\d+(?:\.\d+)*"
_DOC_PAGE = re.compile(
    r"`{0,2}docs/(?P<page>[\w-]+)\.md`{0,2}"
    rf"(?P<sections>(?:(?:,|\s+and|\s+or|\s*/)?\s+{_SECTION})*)"
)
_SECTION_REF = re.compile(_SECTION)
_NUMBERED_HEADING = re.compile(r"^#{2,6}\s+(\d+(?:\.\d+)*)\.?\s+(.*?)\s*$", re.MULTILINE)


@functools.cache
def _anchors(page: str) -> dict[str, str]:
    """``{"4.1": "41-outboundmessagepayload", ...}``: the numbered headings of a docs page,
    with the ids the toc extension gives them (its default slugify, as mkdocs.yml uses)."""
    from markdown.extensions.toc import slugify

    text = (DOCS / f"{page}.md").read_text(encoding="utf-8")
    return {
        number: slugify(f"{number} {re.sub(r'[`*_]', '', title)}", "-")
        for number, title in _NUMBERED_HEADING.findall(text)
    }


def _link_page(match: re.Match[str]) -> str:
    page, sections = match["page"], match["sections"]
    if not sections:
        return f"[{page}]({page}.md)"
    anchors = _anchors(page)
    first = True

    def section(ref: re.Match[str]) -> str:
        nonlocal first
        number = ref.group(0)[1:]
        if number not in anchors:
            raise ValueError(f"docs/{page}.md has no section {number} (cited as {match[0]!r})")
        text = f"{page} {ref.group(0)}" if first else ref.group(0)
        first = False
        return f"[{text}]({page}.md#{anchors[number]})"

    return _SECTION_REF.sub(section, sections.lstrip())


def convert(text: str) -> str:
    """A docstring's reST roles, ``::`` markers and ``docs/PAGE.md`` mentions, as Markdown."""
    text = _ROLE.sub(r"`\1`", text)
    text = _DOC_PAGE.sub(_link_page, text)
    text = _MARKER_LINE.sub("", text)
    return _MARKER_END.sub(r"\1:", text)


def _runtime_class(obj: griffe.Class) -> Any:
    """The imported class griffe read statically, or None when it cannot be imported."""
    module = obj.module
    try:
        value: Any = importlib.import_module(module.path)
        for name in obj.path[len(module.path) + 1 :].split("."):
            value = getattr(value, name)
    except (ImportError, AttributeError):
        return None
    return value


def _source_default(member: object) -> str | griffe.Expr | None:
    """The default of an attrs field in the source: ``x: int = 3``, ``attrs.field(default=3)``
    or ``attrs.field(factory=list)`` (as ``list()``); None when it has none there."""
    if not isinstance(member, griffe.Attribute) or member.value is None:
        return None
    value = member.value
    if isinstance(value, griffe.ExprCall) and str(value.function).startswith("_"):
        return None  # a private helper that builds the field: its value reads better
    if "lambda" in str(value):  # computed from other fields: the docstring says how
        return "..."
    if not (isinstance(value, griffe.ExprCall) and str(value.function).endswith(("field", "ib"))):
        return value
    keywords = {a.name: a.value for a in value.arguments if isinstance(a, griffe.ExprKeyword)}
    if "default" in keywords:
        return keywords["default"]
    if "factory" in keywords:
        factory = keywords["factory"]
        # A lambda computed from other fields: the docstring says how; "..." as in stubs.
        return "..." if "lambda" in str(factory) else f"{factory}()"
    return None


def _runtime_default(value: Any) -> str:
    import types

    import attrs

    if isinstance(value, attrs.Factory):  # type: ignore[arg-type]
        if value.takes_self:  # computed from other fields: the docstring says how
            return "..."
        return f"{getattr(value.factory, '__name__', 'factory')}()"
    if isinstance(value, types.MappingProxyType):
        return repr(dict(value))
    return repr(value)


_CONSTANT = re.compile(r"DEFAULT_[A-Z_]+")


def _show_constant_defaults(function: griffe.Function) -> None:
    """Show a parameter default written as a module's ``DEFAULT_*`` constant as its value
    (``max_retries: int = 2``): the constant's name alone tells a reader nothing."""
    module: Any = None
    for parameter in function.parameters:
        if parameter.default is None or not _CONSTANT.fullmatch(str(parameter.default)):
            continue
        if module is None:
            module = importlib.import_module(function.module.path)
        value = getattr(module, str(parameter.default), None)
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            parameter.default = repr(value)


def _attrs_init(obj: griffe.Class) -> griffe.Function | None:
    """The ``__init__`` attrs generates for ``obj``, as griffe parameters, or None."""
    import attrs

    cls = _runtime_class(obj)
    if not (isinstance(cls, type) and attrs.has(cls)):
        return None
    params = [griffe.Parameter("self", kind=griffe.ParameterKind.positional_or_keyword)]
    for field in attrs.fields(cls):
        if not field.init:
            continue
        member = obj.all_members.get(field.name)
        annotation = member.annotation if isinstance(member, griffe.Attribute) else None
        default: str | griffe.Expr | None = None
        if field.default is not attrs.NOTHING:
            # The default as the source writes it (``DEFAULT_NUMBERS``, ``Faults()``), which
            # reads better than the repr of its value; the repr when the source has none.
            default = _source_default(member) or _runtime_default(field.default)
        kind = (
            griffe.ParameterKind.keyword_only
            if field.kw_only
            else griffe.ParameterKind.positional_or_keyword
        )
        params.append(
            griffe.Parameter(field.alias, annotation=annotation, kind=kind, default=default)
        )
    # attrs puts keyword-only fields last, whatever their order in the class.
    params.sort(key=lambda p: p.kind is griffe.ParameterKind.keyword_only)
    return griffe.Function(
        "__init__",
        lineno=obj.lineno,
        endlineno=obj.lineno,
        parent=obj,
        parameters=griffe.Parameters(*params),
        returns="None",
    )


def _typed_dict_keys(obj: griffe.Class) -> str | None:
    """A Markdown table of a ``TypedDict``'s keys (its own and inherited), or None.

    The item types build theirs from private bases, which the reference would otherwise show
    as the only clue to which keys an item takes (Python-Markdown keeps a ``|`` inside a code
    span of a table as text)."""
    import typing

    cls = _runtime_class(obj)
    if cls is None or not typing.is_typeddict(cls):
        return None
    hints = typing.get_type_hints(cls)
    rows = ["| key | type | |", "|---|---|---|"]
    required = cls.__required_keys__
    for key, hint in sorted(hints.items(), key=lambda item: item[0] not in required):
        text = re.sub(
            r"\b(?:typing|collections\.abc|datetime|telnyx_msg(?:\.\w+)*)\.",
            "",
            inspect.formatannotation(hint),
        )
        needed = "required" if key in required else "optional"
        rows.append(f"| `{key}` | `{text}` | {needed} |")
    return "\n".join(rows)


class RestRoles(griffe.Extension):
    """Rewrite each object's docstring once, as it is loaded; give attrs classes an __init__."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Called by griffe for every module, class, function and attribute."""
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value)

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Called by griffe once a package is loaded: add its attrs classes' __init__ (only
        for the packages documented here, whose modules it imports to read the fields)."""
        if pkg.name not in PACKAGES:
            return
        seen: set[str] = set()

        def walk(obj: griffe.Module | griffe.Class) -> None:
            for member in list(obj.members.values()):
                if member.is_alias or member.path in seen:
                    continue
                seen.add(member.path)
                if isinstance(member, griffe.Class):
                    keys = _typed_dict_keys(member)
                    if keys is not None:
                        member.bases = []  # private building blocks: the table says it all
                        doc = member.docstring.value if member.docstring else ""
                        member.docstring = griffe.Docstring(f"{doc}\n\n{keys}", parent=member)
                    if "__init__" not in member.members:
                        init = _attrs_init(member)
                        if init is not None:
                            member.set_member("__init__", init)
                    walk(member)
                elif isinstance(member, griffe.Function):
                    _show_constant_defaults(member)
                elif isinstance(member, griffe.Module):
                    walk(member)

        walk(pkg)
