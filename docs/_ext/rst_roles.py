"""Griffe extension for the docs build: show the docstrings' reST markup as Markdown, and link
the ``docs/PAGE.md`` mentions to the site's pages.

The package's docstrings are plain text with reST roles (``:class:`Message```) and ``::``
literal-block markers. mkdocstrings renders docstrings as Markdown, where both would show
verbatim; this turns a role into inline code and drops the ``::`` marker (the indented block
after it is already a Markdown code block). Loaded by mkdocs.yml; not part of the package.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:attr|class|data|exc|func|meth|mod|obj):`~?([^`]+)`")
_MARKER_LINE = re.compile(r"^[ \t]*::[ \t]*$", re.MULTILINE)
_MARKER_END = re.compile(r"(\S)::[ \t]*$", re.MULTILINE)
# "see ``docs/errors.md``" in a docstring becomes a link to that page (mkdocs resolves it).
_DOC_PAGE = re.compile(r"`{0,2}docs/([\w-]+)\.md`{0,2}")


class RestRoles(griffe.Extension):
    """Rewrite each object's docstring once, as it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Called by griffe for every module, class, function and attribute."""
        docstring = obj.docstring
        if docstring is None:
            return
        text = _ROLE.sub(r"`\1`", docstring.value)
        text = _DOC_PAGE.sub(r"[\1](\1.md)", text)
        text = _MARKER_LINE.sub("", text)
        docstring.value = _MARKER_END.sub(r"\1:", text)
