"""``send_many`` items as TypedDicts: one per send method, so mypy catches a misspelled key.

An item is the keyword arguments of one send method (``from_`` for ``from``). They are plain
dicts at run time; the types only tell a checker which keys each method takes. Required keys
are in the ``_*Base`` classes (Python 3.10 has no ``Required``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, TypedDict, Union

from telnyx_msg._config import RequestOptions

__all__ = [
    "SendAlphanumericItem",
    "SendGroupMmsItem",
    "SendItem",
    "SendLongCodeItem",
    "SendMessageItem",
    "SendNumberPoolItem",
    "SendShortCodeItem",
    "SendWhatsAppItem",
]


class _Webhooks(TypedDict, total=False):
    webhook_url: str
    webhook_failover_url: str
    use_profile_webhooks: bool
    options: RequestOptions


class _Content(_Webhooks, total=False):
    text: str
    media_urls: Sequence[str]
    subject: str


class _Formatted(_Content, total=False):
    type: Literal["SMS", "MMS"]
    auto_detect: bool
    encoding: Literal["auto", "gsm7", "ucs2"]


class _ToBase(TypedDict):
    to: str


class SendMessageItem(_ToBase, _Formatted, total=False):
    """An item for ``messages.send`` (the default of ``method="auto"``); give ``from_`` or
    ``messaging_profile_id``, or both."""

    from_: str
    messaging_profile_id: str
    send_at: datetime | str


class _FromToBase(TypedDict):
    from_: str
    to: str


class SendLongCodeItem(_FromToBase, _Formatted, total=False):
    """An item for ``messages.send_long_code``."""


class SendShortCodeItem(_FromToBase, _Formatted, total=False):
    """An item for ``messages.send_short_code``."""


class _PoolBase(TypedDict):
    messaging_profile_id: str
    to: str


class SendNumberPoolItem(_PoolBase, _Formatted, total=False):
    """An item for ``messages.send_number_pool``."""


class _AlphanumericBase(TypedDict):
    from_: str
    to: str
    text: str
    messaging_profile_id: str


class SendAlphanumericItem(_AlphanumericBase, _Webhooks, total=False):
    """An item for ``messages.send_with_alphanumeric_sender``."""


class _GroupBase(TypedDict):
    from_: str
    to: Sequence[str]


class SendGroupMmsItem(_GroupBase, _Content, total=False):
    """An item for ``messages.send_group_mms`` (``method="auto"`` picks it for a list ``to``)."""


class _WhatsAppBase(TypedDict):
    from_: str
    to: str
    whatsapp_message: Mapping[str, Any]


class SendWhatsAppItem(_WhatsAppBase, total=False):
    """An item for ``messages.send_whatsapp`` (``method="auto"`` picks it by its key)."""

    type: Literal["WHATSAPP"]
    messaging_profile_id: str
    webhook_url: str
    options: RequestOptions


SendItem = Union[  # noqa: UP007  # a runtime alias: `X | Y` of TypedDicts fails on 3.10
    SendMessageItem,
    SendLongCodeItem,
    SendShortCodeItem,
    SendNumberPoolItem,
    SendAlphanumericItem,
    SendGroupMmsItem,
    SendWhatsAppItem,
]
"""Any ``send_many`` item: one of the ``Send*Item`` dicts, each the keyword arguments of one
send method (``send_many``'s ``method`` says which)."""
