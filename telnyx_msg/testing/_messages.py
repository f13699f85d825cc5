"""Messages of the fake: validation of the send endpoints, the message store and the status
machine (scheduled -> queued -> sent -> delivered | delivery_failed; scheduled -> cancelled).

Pure: no I/O, no asyncio. The server calls :meth:`Outbox.release`, :meth:`Outbox.mark_sent` and
:meth:`Outbox.finalize` from its timers. Message shapes follow docs/wire.md §3-§4.
"""

from __future__ import annotations

import mimetypes
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs

from telnyx_msg._segments import MAX_PARTS
from telnyx_msg.testing._config import FakeConfig, Throughput
from telnyx_msg.testing._errors import (
    ApiError,
    invalid,
    invalid_from,
    not_found,
    opted_out,
    queue_full,
)
from telnyx_msg.testing._limits import QueueFull, SenderQueues
from telnyx_msg.testing._sms import (
    WHATSAPP_BSUID,
    encode,
    is_address,
    is_e164,
    iso,
    parse_datetime,
    sender_kind,
)
from telnyx_msg.testing._state import DELIVERED, FAILED, JSON, RECEIVED, SENT, Account

_TO_CARRIER = "Telnyx Fake Carrier"
_CANCEL_MARGIN = timedelta(minutes=1)
_MAX_GROUP = 8


@attrs.frozen
class _Rules:
    """What one send endpoint requires and allows."""

    required: tuple[str, ...]
    pool: bool = False  # the sender comes from the profile's number pool
    pool_fallback: bool = False  # no ``from`` but a profile: use the pool
    group: bool = False
    alphanumeric: bool = False
    schedule: bool = False  # ``send_at`` is honoured


SEND_ENDPOINTS: dict[str, _Rules] = {
    "/messages": _Rules(("to",), pool_fallback=True, schedule=True),
    "/messages/alphanumeric_sender_id": _Rules(
        ("from", "to", "text", "messaging_profile_id"), alphanumeric=True
    ),
    "/messages/group_mms": _Rules(("from", "to"), group=True),
    "/messages/long_code": _Rules(("from", "to")),
    "/messages/number_pool": _Rules(("messaging_profile_id", "to"), pool=True),
    "/messages/short_code": _Rules(("from", "to")),
    "/messages/schedule": _Rules(("to", "send_at"), pool_fallback=True, schedule=True),
}


class Message:
    """One stored message: its JSON document plus what the status machine needs."""

    __slots__ = ("data", "failing", "kind", "profile_id", "send_at", "sender", "targets", "timer")

    def __init__(
        self,
        data: JSON,
        *,
        profile_id: str | None,
        sender: str,
        kind: str,
        failing: frozenset[str] = frozenset(),
        send_at: datetime | None = None,
        targets: tuple[str, ...] | None = None,
    ) -> None:
        self.data = data
        # Webhook URLs in the order they are tried; None: the message's webhook_url, then
        # its webhook_failover_url.
        self.targets = targets
        self.profile_id = profile_id
        self.sender = sender
        self.kind = kind
        self.failing = failing
        self.send_at = send_at
        self.timer: Any = None  # the server's pending timer handle, if any

    @property
    def id(self) -> str:
        """The message id."""
        return str(self.data["id"])

    @property
    def outbound(self) -> bool:
        """True for messages the account sent (as opposed to injected inbound ones)."""
        return bool(self.data.get("direction") == "outbound")


def _optional_str(body: JSON, field: str) -> str | None:
    value = body.get(field)
    if value is not None and not isinstance(value, str):
        raise invalid(f"'{field}' must be a string.", f"/{field}")
    return value


def _optional_url(body: JSON, field: str) -> str | None:
    value = _optional_str(body, field)
    if value is not None and not value.startswith(("http://", "https://")):
        raise invalid(f"'{field}' must be an http(s) URL.", f"/{field}")
    return value


def _inbound_media(url: str) -> JSON:
    # The definition types an inbound item's content_type, hash_sha256 and size as non-null;
    # the fake never downloads the media, so it leaves out what it cannot know.
    item: JSON = {"url": url}
    content_type = mimetypes.guess_type(url)[0]
    if content_type is not None:
        item["content_type"] = content_type
    return item


class Outbox:
    """All messages of the account and the rules for sending them."""

    def __init__(
        self,
        config: FakeConfig,
        account: Account,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime],
    ) -> None:
        self.config = config
        self.account = account
        self.clock = clock
        self.wall = wall
        self.messages: OrderedDict[str, Message] = OrderedDict()
        self.queues: SenderQueues | None = None
        self.set_throughput(config.throughput)

    def set_throughput(self, throughput: Throughput | None) -> None:
        """Replace the sender queues (their backlog starts empty)."""
        self.queues = SenderQueues(throughput) if throughput is not None else None

    # -- store -------------------------------------------------------------------------------

    def _store(self, message: Message) -> None:
        self.messages[message.id] = message
        if len(self.messages) > self.config.max_messages:
            # Oldest first, like Telnyx forgetting messages after 10 days; a message still in
            # flight keeps progressing through the server's reference to it.
            self.messages.popitem(last=False)

    def get(self, message_id: str) -> Message:
        """A stored message, or a 404."""
        try:
            return self.messages[message_id]
        except KeyError:
            raise not_found("Message") from None

    def group(self, message_id: str) -> list[JSON]:
        """``GET /messages/group/{id}``: the group MMS with that id."""
        message = self.messages.get(message_id)
        if message is None or message.data.get("type") != "MMS" or len(message.data["to"]) < 2:
            raise not_found("Group message")
        return [message.data]

    # -- sending -----------------------------------------------------------------------------

    def send(self, endpoint: str, body: JSON) -> Message:
        """Validate one send request and store the new message (``queued`` or ``scheduled``).

        Raises :class:`ApiError` (422/400 bad fields, 409 opted out, 429 queue full).
        """
        rules = SEND_ENDPOINTS[endpoint]
        for field in rules.required:
            if body.get(field) in (None, "", []):
                raise invalid(f"The '{field}' parameter is required.", f"/{field}")
        now = self.wall()
        recipients = self._recipients(body.get("to"), rules)
        text = _optional_str(body, "text") or ""
        subject = _optional_str(body, "subject")
        media = body.get("media_urls") or []
        if not (isinstance(media, list) and all(isinstance(u, str) and u for u in media)):
            raise invalid("'media_urls' must be a list of URLs.", "/media_urls")
        if not text and not media:
            raise invalid("Either 'text' or 'media_urls' must be provided.", "/text")
        requested_type = body.get("type")
        if requested_type not in (None, "SMS", "MMS"):
            raise invalid("'type' must be SMS or MMS.", "/type")
        if requested_type == "SMS" and media:
            raise invalid("An SMS cannot carry media; use type MMS.", "/type")
        message_type = "MMS" if media or requested_type == "MMS" or rules.group else "SMS"
        encoding_request = body.get("encoding", "auto")
        if encoding_request not in ("auto", "gsm7", "ucs2"):
            raise invalid("'encoding' must be one of auto, gsm7, ucs2.", "/encoding")
        try:
            encoding, parts = encode(text, encoding_request)
        except ValueError as exc:
            raise invalid(str(exc), "/encoding", status=400) from None
        if message_type == "MMS":
            parts = 1
        elif parts > MAX_PARTS:
            # The definition bounds a message's parts to 1-10: a longer SMS is not one message.
            raise invalid(
                f"The text needs {parts} parts; a message has at most {MAX_PARTS}.", "/text"
            )
        profile_id = _optional_str(body, "messaging_profile_id")
        if profile_id is not None and profile_id not in self.account.profiles:
            raise invalid("Messaging profile not found.", "/messaging_profile_id")
        sender, kind, profile_id = self._sender(body, rules, profile_id, message_type)
        webhook_url = _optional_url(body, "webhook_url")
        failover_url = _optional_url(body, "webhook_failover_url")
        use_profile = body.get("use_profile_webhooks", True)
        if not isinstance(use_profile, bool):
            raise invalid("'use_profile_webhooks' must be a boolean.", "/use_profile_webhooks")
        # The message's own URLs are attempted first, then (use_profile_webhooks) the profile's.
        own = tuple(u for u in (webhook_url, failover_url) if u)
        targets = own
        if use_profile:
            profile_url, profile_failover = self.account.webhook_targets(profile_id)
            targets += tuple(u for u in (profile_url, profile_failover) if u and u not in own)
            webhook_url = webhook_url or profile_url
            failover_url = failover_url or profile_failover
        send_at = self._send_at(body, rules, now)
        for recipient in recipients:
            if self.account.blocked(sender, recipient, profile_id):
                raise opted_out(sender, recipient)
        wait = (
            0.0 if send_at is not None else self._admit(sender, kind, message_type, len(recipients))
        )
        status = "scheduled" if send_at is not None else "queued"
        cost = None if send_at is not None else self._cost(message_type, parts, len(recipients))
        data: JSON = {
            "record_type": "message",
            "direction": "outbound",
            "id": str(uuid.uuid4()),
            "type": message_type,
            "messaging_profile_id": profile_id,
            "organization_id": self.config.organization_id,
            "from": {
                "phone_number": sender,
                "carrier": "" if kind == "alphanumeric" else "Telnyx",
                "line_type": "" if kind == "alphanumeric" else "VoIP",
            },
            "to": [
                {
                    "phone_number": r,
                    "status": status,
                    "carrier": _TO_CARRIER,
                    "line_type": "Wireless",
                }
                for r in recipients
            ],
            "cc": [],
            "text": text,
            "subject": subject,
            "media": [
                {"url": u, "content_type": mimetypes.guess_type(u)[0], "sha256": None, "size": None}
                for u in media
            ],
            "encoding": encoding,
            "parts": parts,
            "tags": [],
            "cost": cost,
            "cost_breakdown": self._breakdown(cost),
            "tcr_campaign_id": None,
            "tcr_campaign_billable": False,
            "tcr_campaign_registered": None,
            "received_at": iso(now),
            "sent_at": None,
            "completed_at": None,
            "valid_until": iso((send_at or now) + self._validity()),
            "webhook_url": webhook_url,
            "webhook_failover_url": failover_url,
            "errors": [],
            "smart_encoding_applied": False,
            "wait_seconds": wait,
        }
        failing = frozenset(r for r in recipients if r in self.config.failing_numbers)
        message = Message(
            data,
            profile_id=profile_id,
            sender=sender,
            kind=kind,
            failing=failing,
            send_at=send_at,
            targets=targets,
        )
        self._store(message)
        return message

    def _recipients(self, to: object, rules: _Rules) -> list[str]:
        if rules.group:
            if not isinstance(to, list) or not to:
                raise invalid("'to' must be a list of phone numbers.", "/to")
            if len(to) > _MAX_GROUP:
                raise invalid(f"A group MMS takes no more than {_MAX_GROUP} recipients.", "/to")
            recipients = to
        else:
            recipients = [to]
        for index, recipient in enumerate(recipients):
            if not is_address(recipient):
                pointer = f"/to/{index}" if rules.group else "/to"
                raise invalid(
                    f"'{recipient}' is not a valid +E.164 phone number or short code.", pointer
                )
        return [str(r) for r in recipients]

    def _sender(
        self, body: JSON, rules: _Rules, profile_id: str | None, message_type: str
    ) -> tuple[str, str, str | None]:
        """Resolve ``(from, kind, messaging_profile_id)`` for a send."""
        raw = body.get("from")
        if rules.pool or (rules.pool_fallback and raw in (None, "")):
            if profile_id is None:
                raise invalid("Either 'from' or 'messaging_profile_id' is required.", "/from")
            pooled = self.account.pool_number(profile_id)
            sender = str(pooled["phone_number"])
            return sender, sender_kind(sender, pooled["type"]) or "long_code", profile_id
        if not isinstance(raw, str):
            raise invalid_from("'from' must be a string.")
        number = self.account.numbers_by_phone.get(raw)
        kind = sender_kind(raw, number["type"] if number else None)
        if kind is None:
            raise invalid_from(
                f"'{raw}' is not a phone number, short code or alphanumeric sender ID."
            )
        if rules.alphanumeric and kind != "alphanumeric":
            raise invalid_from(f"'{raw}' is not an alphanumeric sender ID.")
        if rules.group and not is_e164(raw):
            raise invalid_from("A group MMS must be sent from a +E.164 phone number.")
        if kind == "alphanumeric":
            if profile_id is None:
                raise invalid(
                    "'messaging_profile_id' is required with an alphanumeric sender.",
                    "/messaging_profile_id",
                )
            if message_type != "SMS":
                raise invalid("Alphanumeric sender IDs can only send SMS.", "/media_urls")
        if number is not None and not number["messaging_profile_id"]:
            # Telnyx refuses a number of the account that has no messaging profile as a sender.
            raise invalid_from(
                f"'{raw}' is not assigned to a messaging profile; assign it "
                "with phone_numbers.messaging.update first."
            )
        if self.config.strict_senders and not (
            (number is not None and number["messaging_profile_id"])
            or (kind == "alphanumeric" and self.account.alphanumeric_registered(raw, profile_id))
        ):
            raise invalid_from(
                f"'{raw}' is not a messaging-enabled number or sender ID on this account."
            )
        if profile_id is None:
            profile_id = (number["messaging_profile_id"] if number else None) or (
                self.account.default_profile_id
            )
        return raw, kind, profile_id

    def _send_at(self, body: JSON, rules: _Rules, now: datetime) -> datetime | None:
        raw = body.get("send_at")
        if raw is None or not rules.schedule:
            return None
        moment = parse_datetime(raw)
        if moment is None:
            raise invalid("'send_at' must be an ISO 8601 date-time.", "/send_at")
        if moment <= now:
            raise invalid("'send_at' must be in the future.", "/send_at")
        return moment

    def _admit(self, sender: str, kind: str, message_type: str, count: int) -> float:
        if self.queues is None:
            return 0.0
        try:
            return round(self.queues.admit(sender, kind, message_type, count, self.clock()), 3)
        except QueueFull as exc:
            raise queue_full(str(exc)) from None

    def _validity(self) -> timedelta:
        throughput = self.config.throughput
        return timedelta(seconds=throughput.queue_seconds if throughput else 4 * 3600)

    def _cost(self, message_type: str, parts: int, recipients: int) -> JSON:
        if message_type == "MMS":
            amount = Decimal(self.config.mms_price) * recipients
        else:
            amount = Decimal(self.config.sms_part_price) * parts * recipients
        return {"amount": f"{amount:.4f}", "currency": "USD"}

    @staticmethod
    def _breakdown(cost: JSON | None) -> JSON | None:
        if cost is None:
            return None
        return {
            "carrier_fee": {"amount": "0.0000", "currency": "USD"},
            "rate": {"amount": cost["amount"], "currency": "USD"},
        }

    def send_whatsapp(self, body: JSON) -> Message:
        """``POST /messages/whatsapp``: stored and returned in its own shape (docs/wire.md §3.9)."""
        sender = body.get("from")
        if sender in (None, ""):
            raise invalid("The 'from' parameter is required.", "/from")
        if not is_e164(sender):
            raise invalid_from("'from' must be a WhatsApp-enabled +E.164 number.")
        to = body.get("to")
        if to in (None, ""):
            raise invalid("The 'to' parameter is required.", "/to")
        if not (is_e164(to) or (isinstance(to, str) and WHATSAPP_BSUID.fullmatch(to))):
            raise invalid("'to' must be a +E.164 number or a WhatsApp user id.", "/to")
        content = body.get("whatsapp_message")
        if not isinstance(content, dict):
            raise invalid("The 'whatsapp_message' object is required.", "/whatsapp_message")
        if body.get("type") not in (None, "WHATSAPP"):
            raise invalid("'type' must be WHATSAPP.", "/type")
        profile_id = _optional_str(body, "messaging_profile_id")
        if profile_id is not None and profile_id not in self.account.profiles:
            raise invalid("Messaging profile not found.", "/messaging_profile_id")
        number = self.account.numbers_by_phone.get(str(sender))
        profile_id = (
            profile_id
            or (number["messaging_profile_id"] if number else None)
            or (self.account.default_profile_id)
        )
        data: JSON = {
            "record_type": "message",
            "direction": "outbound",
            "id": str(uuid.uuid4()),
            "type": "WHATSAPP",
            "body": content,
            "encoding": "utf-8",
            "from": {
                "phone_number": sender,
                "carrier": "Telnyx",
                "line_type": "VoIP",
                "status": "received",
            },
            "to": [
                {
                    "phone_number": to,
                    "status": "queued",
                    "carrier": _TO_CARRIER,
                    "line_type": "Wireless",
                }
            ],
            "messaging_profile_id": profile_id,
            "organization_id": self.config.organization_id,
            "received_at": iso(self.wall()),
            "wait_seconds": 0.0,
        }
        message = Message(data, profile_id=profile_id, sender=str(sender), kind="long_code")
        self._store(message)
        return message

    # -- status machine ----------------------------------------------------------------------

    def release(self, message: Message) -> float:
        """A scheduled message's ``send_at`` has come: it is queued now; returns its wait."""
        data = message.data
        for recipient in data["to"]:
            recipient["status"] = "queued"
        try:
            wait = self._admit(message.sender, message.kind, data["type"], len(data["to"]))
        except ApiError:
            wait = 0.0  # a scheduled message is already accepted; a full queue only delays it
        data["wait_seconds"] = wait
        data["cost"] = self._cost(data["type"], data["parts"], len(data["to"]))
        data["cost_breakdown"] = self._breakdown(data["cost"])
        return wait

    def mark_sent(self, message: Message) -> None:
        """Hand the message to the carrier: ``to[].status`` becomes ``sent``."""
        data = message.data
        data["sent_at"] = iso(self.wall())
        for recipient in data["to"]:
            recipient["status"] = "sent"
        self.account.count_message(message.profile_id, message.sender, SENT, len(data["to"]))

    def finalize(self, message: Message) -> None:
        """Final delivery receipts: ``delivered``, or ``delivery_failed`` with error 40008."""
        data = message.data
        data["completed_at"] = iso(self.wall())
        failed = 0
        for recipient in data["to"]:
            if recipient["phone_number"] in message.failing:
                recipient["status"] = "delivery_failed"
                failed += 1
                data["errors"].append(
                    {
                        "code": "40008",
                        "title": "Undeliverable",
                        "detail": f"The carrier did not accept the message to "
                        f"{recipient['phone_number']}.",
                    }
                )
            else:
                recipient["status"] = "delivered"
        count = self.account.count_message
        count(message.profile_id, message.sender, DELIVERED, len(data["to"]) - failed)
        count(message.profile_id, message.sender, FAILED, failed)

    def cancel(self, message_id: str) -> tuple[Message, JSON]:
        """``DELETE /messages/{id}``: cancel a scheduled message at least a minute away.

        Returns the message and the response body (the message without ``data`` wrapper and
        without ``wait_seconds``, docs/wire.md §3.11).
        """
        message = self.get(message_id)
        data = message.data
        if not message.outbound or any(r["status"] != "scheduled" for r in data["to"]):
            raise ApiError(
                422, "10015", "Bad Request", "Only messages with status=scheduled can be cancelled."
            )
        if message.send_at is not None and message.send_at - self.wall() < _CANCEL_MARGIN:
            raise ApiError(
                422,
                "10015",
                "Bad Request",
                "Only messages with send_at more than a minute from now can be cancelled.",
            )
        for recipient in data["to"]:
            recipient["status"] = "cancelled"
        data["cost"] = {"amount": "0.0", "currency": "USD"}
        data["cost_breakdown"] = None
        return message, {k: v for k, v in data.items() if k != "wait_seconds"}

    # -- inbound -----------------------------------------------------------------------------

    def receive(
        self,
        *,
        sender: str,
        to: str,
        text: str,
        media_urls: list[str],
        subject: str | None,
        profile_id: str | None,
    ) -> Message:
        """Create an inbound message (docs/wire.md §4.2); STOP/START words change opt-outs."""
        if not is_address(sender):
            raise ValueError(f"from_ {sender!r} is not +E.164 or a short code")
        if not is_address(to):
            raise ValueError(f"to {to!r} is not +E.164 or a short code")
        if not text and not media_urls:
            raise ValueError("an inbound message needs text or media_urls")
        number = self.account.numbers_by_phone.get(to)
        if profile_id is None:
            profile_id = (number["messaging_profile_id"] if number else None) or (
                self.account.default_profile_id
            )
        elif profile_id not in self.account.profiles:
            raise ValueError(f"unknown messaging profile {profile_id!r}")
        webhook_url, failover_url = self.account.webhook_targets(profile_id)
        encoding, parts = encode(text)
        if not media_urls and parts > MAX_PARTS:
            raise ValueError(f"text needs {parts} parts; a message has at most {MAX_PARTS}")
        data: JSON = {
            "record_type": "message",
            "direction": "inbound",
            "id": str(uuid.uuid4()),
            "type": "MMS" if media_urls else "SMS",
            "messaging_profile_id": profile_id,
            "organization_id": self.config.organization_id,
            "from": {
                "phone_number": sender,
                "carrier": _TO_CARRIER,
                "line_type": "Wireless",
                "status": "received",
            },
            "to": [
                {
                    "phone_number": to,
                    "status": "webhook_delivered",
                    "carrier": "Telnyx",
                    "line_type": "VoIP",
                }
            ],
            "cc": [],
            "text": text,
            "subject": subject,
            "media": [_inbound_media(u) for u in media_urls],
            "encoding": encoding,
            "parts": 1 if media_urls else parts,
            "tags": [],
            "cost": None,
            "cost_breakdown": None,
            "received_at": iso(self.wall()),
            "sent_at": None,
            "completed_at": None,
            "valid_until": None,
            "webhook_url": webhook_url,
            "webhook_failover_url": failover_url,
            "errors": [],
        }
        op = self.account.keyword_op(profile_id, text)
        if op == "stop":
            self.account.add_opt_out(to, sender, " ".join(text.split()).upper(), profile_id)
            data["autoresponse_type"] = "STOP"
        elif op == "start":
            self.account.remove_opt_out(to, sender, profile_id)
            data["autoresponse_type"] = "START"
        elif op == "info":
            data["autoresponse_type"] = "HELP"
        kind = sender_kind(to, number["type"] if number else None) or "long_code"
        self.account.count(profile_id, to, kind, RECEIVED)
        message = Message(data, profile_id=profile_id, sender=sender, kind=kind)
        self._store(message)
        return message
