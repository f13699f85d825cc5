"""mkdocs hook: an inline code span never breaks inside an option name.

Browsers may break a line after any hyphen, so a command synopsis on cli.md showed
``[--no-progress]`` as ``[-`` and ``-no-progress]`` (on a phone nearly every option split, and
``--to`` read as ``-to``). Each hyphenated word of an inline code span is wrapped in
``<span class="nobr">`` (``white-space: nowrap`` in extra.css): a long span still wraps
between its words, and copying it gives the same text. Code blocks are left alone. Loaded by
``hooks:`` in mkdocs.yml; not part of the package.
"""

from __future__ import annotations

import re
from typing import Any

_BLOCK = re.compile(r"(<pre\b.*?</pre>)", re.S)
_CODE = re.compile(r"<code>([^<]*-[^<]*)</code>")  # plain text only: no markup inside
_WORD = re.compile(r"\S*-\S*")


_LONGEST = 40  # characters: a longer run would stick out of a phone's line of code


def _nobr(word: re.Match[str]) -> str:
    text = word.group(0)
    return text if len(text) > _LONGEST else f'<span class="nobr">{text}</span>'


def _unbroken(code: re.Match[str]) -> str:
    words = _WORD.sub(_nobr, code.group(1))
    return f"<code>{words}</code>"


def on_page_content(html: str, **_: Any) -> str:
    """Wrap the hyphenated words of inline code spans in ``nobr`` spans."""
    return "".join(
        part if part.startswith("<pre") else _CODE.sub(_unbroken, part)
        for part in _BLOCK.split(html)
    )
