"""Check the built site's API reference: every exported name has one entry, and each exported
``TypedDict`` (the bulk ``Send*Item`` types) lists exactly its keys, each marked required or
optional as Python sees it.

Run by ``nox -s docs`` after ``mkdocs build``: the tables come from ``rst_roles.py`` at build
time, so a change to mkdocstrings, griffe or the items would otherwise only show as a page that
no longer says which keys an item takes. Usage: ``python docs/_ext/check_site.py SITE_DIR``.
"""

from __future__ import annotations

import html
import re
import sys
import typing
from pathlib import Path

import telnyx_msg
import telnyx_msg.receivers
import telnyx_msg.testing

_ROW = re.compile(
    r"<tr>\s*<td><code>(?P<key>[^<]+)</code></td>\s*<td>.*?</td>\s*"
    r"<td>(?P<needed>required|optional)</td>\s*</tr>",
    re.S,
)


def _section(page: str, name: str) -> str:
    """The HTML of ``name``'s entry: from its heading to the next heading of its level."""
    start = page.find(f'<h3 id="telnyx_msg.{name}"')
    if start < 0:
        raise SystemExit(f"check_site: no entry for telnyx_msg.{name} in the API reference")
    end = page.find("<h3 ", start + 1)
    return page[start : end if end >= 0 else len(page)]


def problems(site: Path) -> list[str]:
    """What is wrong with the item tables of ``site``'s API reference (empty: nothing)."""
    page = (site / "api" / "index.html").read_text(encoding="utf-8")
    found: list[str] = []
    items = [
        name for name in telnyx_msg.__all__ if typing.is_typeddict(getattr(telnyx_msg, name, None))
    ]
    if not items:
        found.append("no TypedDict is exported: nothing to check")
    found_ids = re.findall(r'id="telnyx_msg\.([A-Za-z_][A-Za-z0-9_]*)"', page)
    ids = set(found_ids)
    twice = sorted({name for name in found_ids if found_ids.count(name) > 1})
    if twice:
        found.append(f"documented twice: {twice}")
    # A name mkdocstrings leaves out (an alias without a docstring, say) fails here; the
    # version is named in the page's text instead.
    absent = sorted(set(telnyx_msg.__all__) - ids - {"__version__"})
    if absent:
        found.append(f"exported but without an entry: {absent}")
    # The modules api.md renders whole: mkdocstrings drops a member without a docstring (for a
    # constant or an alias, the string after its assignment; a ``#:`` comment does not count).
    for module in (telnyx_msg.testing, telnyx_msg.receivers):
        own = set(module.__all__) - set(telnyx_msg.__all__)
        prefix = module.__name__ + "."
        hidden = sorted(n for n in own if f'id="{prefix}{n}"' not in page)
        if hidden:
            found.append(f"{module.__name__} exports without an entry: {hidden}")
    if "__version__" not in page:
        found.append("telnyx_msg.__version__ is not mentioned")
    for name in items:
        cls = getattr(telnyx_msg, name)
        section = _section(page, name)
        rows = {html.unescape(m["key"]): m["needed"] for m in _ROW.finditer(section)}
        expected = {
            key: "required" if key in cls.__required_keys__ else "optional"
            for key in typing.get_type_hints(cls)
        }
        if rows != expected:
            missing = sorted(set(expected) - set(rows))
            extra = sorted(set(rows) - set(expected))
            wrong = sorted(k for k in set(rows) & set(expected) if rows[k] != expected[k])
            found.append(f"{name}: missing {missing}, unexpected {extra}, wrong required {wrong}")
        if "Bases:" in section:
            found.append(f"{name}: shows its private bases instead of only its keys")
    return found


def main() -> int:
    """Print each problem; exit 1 if there is any."""
    found = problems(Path(sys.argv[1]))
    for line in found:
        print(f"check_site: {line}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
