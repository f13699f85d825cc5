"""What a bulk send reports, and the per-send gate the client checks before writing.

Shared by the request pipeline (``_client``), which reads :data:`send_gate`, and the bulk engine
(``_bulk``), which sets it; so the engine sits on top of the client without the client
importing it.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from attrs import frozen

from telnyx_msg.errors import TelnyxError

if TYPE_CHECKING:
    from telnyx_msg.models import Message, WhatsAppMessage

__all__ = ["SEND_METHODS", "NotSentError", "SendGate", "SendMethod", "SendOutcome", "send_gate"]

OutcomeStatus = Literal["sent", "rejected", "unknown", "not_sent"]
SendMethod = Literal[
    "auto",
    "send",
    "send_long_code",
    "send_short_code",
    "send_number_pool",
    "send_with_alphanumeric_sender",
    "send_group_mms",
    "send_whatsapp",
]
SEND_METHODS = frozenset(SendMethod.__args__) - {"auto"}  # type: ignore[attr-defined]


@frozen
class SendOutcome:
    """The fate of one input item of ``send_many``.

    ``index`` is its position in the input, ``request`` the mapping as sent (the copy taken
    when it was pulled), ``status`` one of ``sent`` /
    ``rejected`` / ``unknown`` / ``not_sent``, ``message`` the accepted message (for ``sent``),
    ``error`` the exception behind any other status.
    """

    index: int
    request: Mapping[str, Any]
    status: OutcomeStatus
    message: Message | WhatsAppMessage | None = None
    error: BaseException | None = None

    @property
    def reason(self) -> str:
        """A one-line explanation (the error text, or ``"accepted"``)."""
        return "accepted" if self.error is None else str(self.error)


class NotSentError(TelnyxError):
    """The request was not written because the bulk run was stopped first."""


class SendGate:
    """Per-send flag the client checks just before writing a request (see ``send_gate``)."""

    __slots__ = ("stopped", "written")

    def __init__(self) -> None:
        self.stopped = False
        self.written = False


#: Set inside each send task: the client's request pipeline takes it in the item's send (a call
#: an event hook makes meanwhile does not see it) and checks it after the rate limiter and
#: before the network, so a stopped run never writes a request it has not written yet.
send_gate: contextvars.ContextVar[SendGate | None] = contextvars.ContextVar(
    "telnyx_msg_send_gate", default=None
)
