"""Realistic Telnyx JSON used by the benchmark server and the webhook case (no I/O)."""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "FROM",
    "PROFILE_ID",
    "TEXT",
    "TO",
    "message_json",
    "optout_pages",
    "send_body_parts",
    "webhook_body",
]

FROM = "+18005550101"  # toll-free: its sender lane never waits with the default limits
TO = "+18445550001"
TEXT = "Your verification code is 482915. It expires in 10 minutes."
PROFILE_ID = "40017a5e-6c0d-4f5e-9b3a-2f1e0d9c8b7a"
_ORG_ID = "b1a4c2d0-9e8f-4a7b-8c6d-5e4f3a2b1c0d"
_ID_MARK = "@@ID@@"


def message_json(message_id: str, *, status: str = "queued", final: bool = False) -> dict[str, Any]:
    """A ``POST /messages`` ``data`` object, field for field what Telnyx answers (~1 KB)."""
    return {
        "record_type": "message",
        "direction": "outbound",
        "id": message_id,
        "type": "SMS",
        "messaging_profile_id": PROFILE_ID,
        "organization_id": _ORG_ID,
        "from": {"phone_number": FROM, "carrier": "Telnyx", "line_type": "VoIP"},
        "to": [
            {
                "phone_number": TO,
                "status": status,
                "carrier": "T-Mobile USA",
                "line_type": "Wireless",
            }
        ],
        "cc": [],
        "text": TEXT,
        "subject": None,
        "media": [],
        "encoding": "GSM-7",
        "parts": 1,
        "tags": [],
        "cost": {"amount": "0.0040", "currency": "USD"},
        "cost_breakdown": {
            "carrier_fee": {"amount": "0.0000", "currency": "USD"},
            "rate": {"amount": "0.0040", "currency": "USD"},
        },
        "tcr_campaign_id": None,
        "tcr_campaign_billable": False,
        "tcr_campaign_registered": None,
        "received_at": "2026-03-02T18:10:02.574+00:00",
        "sent_at": "2026-03-02T18:10:03.011+00:00" if final else None,
        "completed_at": "2026-03-02T18:10:05.207+00:00" if final else None,
        "valid_until": "2026-03-02T22:10:02.574+00:00",
        "webhook_url": "https://example.com/webhooks/telnyx",
        "webhook_failover_url": None,
        "errors": [],
        "smart_encoding_applied": False,
        "wait_seconds": 0.0,
    }


def send_body_parts() -> tuple[bytes, bytes]:
    """The send response body split around the message id: ``head + id + tail``."""
    text = json.dumps({"data": message_json(_ID_MARK)}, separators=(", ", ": "))
    head, tail = text.split(_ID_MARK)
    return head.encode(), tail.encode()


def optout_pages(records: int, page_size: int) -> dict[int, bytes]:
    """``GET /messaging_optouts`` bodies by page number (shape as in docs/wire.md §7)."""
    total_pages = max(1, -(-records // page_size))
    pages: dict[int, bytes] = {}
    for number in range(1, total_pages + 1):
        start = (number - 1) * page_size
        data = [
            {
                "from": FROM,
                "to": f"+1312555{i % 10_000:04d}",
                "keyword": "STOP",
                "messaging_profile_id": PROFILE_ID,
                "created_at": f"2026-02-{1 + i % 28:02d} 12:{i % 60:02d}:38.631252+00:00",
            }
            for i in range(start, min(records, start + page_size))
        ]
        meta = {
            "page_number": number,
            "page_size": page_size,
            "total_pages": total_pages,
            "total_results": records,
        }
        pages[number] = json.dumps({"data": data, "meta": meta}).encode()
    return pages


def webhook_body() -> bytes:
    """A ``message.finalized`` delivery as Telnyx posts it (~1.2 KB)."""
    doc = {
        "data": {
            "event_type": "message.finalized",
            "id": "b301ed3f-1490-491f-995f-6e64e69674d4",
            "occurred_at": "2026-03-02T18:10:05.207+00:00",
            "payload": message_json(
                "40318d5e-3d53-4b8e-a3b8-7c5e9a1f0c2d", status="delivered", final=True
            ),
            "record_type": "event",
        },
        "meta": {"attempt": 1, "delivered_to": "https://example.com/webhooks/telnyx"},
    }
    return json.dumps(doc, separators=(",", ":")).encode()
