"""Receive verified Telnyx webhooks in a Flask (or any WSGI) application.

    pip install flask                     # not a dependency of telnyx_msg
    export TELNYX_PUBLIC_KEY=...
      # Mission Control > Keys & Credentials > Public Key
    export REDIS_URL=redis://localhost:6379/0
      # optional: one replay window for every worker process (gunicorn -w 4);
      # needs pip install 'telnyx_msg[redis]'
    python examples/webhooks_flask.py
      # serves POST http://127.0.0.1:8000/webhooks/telnyx (Flask's development
      # server; in production: gunicorn 'webhooks_flask:create_app()')

The event is marked seen only once it was processed: if processing raises, Flask
answers 500, Telnyx delivers it again, and the redelivery is processed (marking it
seen first would answer the redelivery as a duplicate and lose the event).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

import telnyx_msg
from telnyx_msg.webhooks import SyncReplayStore

PATH = "/webhooks/telnyx"
MAX_BODY = 1 << 20  # Telnyx's webhooks are a few KB


def print_event(event: telnyx_msg.WebhookEvent) -> None:
    """Stands for your processing: quick (Telnyx waits 2 s) and idempotent."""
    message = event.payload
    if isinstance(message, telnyx_msg.Message):
        statuses = ", ".join(f"{r.phone_number} {r.status}" for r in message.to)
        # !a escapes non-ASCII: a print failing on the terminal's encoding would
        # fail the delivery, and Telnyx would send it again and again.
        print(f"{event.event_type} {message.id}: {message.text!a} {statuses}")


def replay_store() -> SyncReplayStore:
    """Where event ids are remembered: Redis, shared by every worker process, when
    REDIS_URL is set; else this process's memory (enough for one process)."""
    url = os.environ.get("REDIS_URL")
    if url:
        return telnyx_msg.RedisReplayStore(url)
    return telnyx_msg.MemoryReplayStore()


def create_app(
    public_key: str | None = None,
    process: Callable[[telnyx_msg.WebhookEvent], None] = print_event,
) -> Any:
    """A Flask app that verifies each delivery and passes it to ``process``."""
    try:
        from flask import Flask, request
    except ImportError:
        raise SystemExit("this example needs Flask: pip install flask") from None
    key = public_key or os.environ.get("TELNYX_PUBLIC_KEY")
    if not key:
        raise SystemExit(
            "set TELNYX_PUBLIC_KEY (Mission Control > Keys & Credentials)"
        )
    # Built once; thread-safe, so one verifier serves every request thread.
    verifier = telnyx_msg.WebhookVerifier(key, replay_store=replay_store())
    app = Flask(__name__)
    # Flask reads a body of any size before the signature can be checked, so a
    # body declared over MAX_BODY is refused (413) unread.
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY + 1

    @app.post(PATH)
    def telnyx_webhook() -> tuple[str, int]:
        body = request.get_data()
        if len(body) > MAX_BODY:
            # A chunked body (no Content-Length) is cut at MAX_CONTENT_LENGTH, not
            # refused: one byte past MAX_BODY means there was more.
            return "body too large", 413
        try:
            event = verifier.unwrap(body, request.headers, mark_seen=False)
        except telnyx_msg.DuplicateWebhookError:
            return "", 200  # processed before: answer 2xx so Telnyx stops
        except telnyx_msg.WebhookPayloadError as exc:
            return str(exc), 400  # signed, but not a webhook event
        except telnyx_msg.WebhookVerificationError as exc:
            return str(exc), 401
        process(event)  # raises: Flask answers 500 and Telnyx delivers it again
        try:
            verifier.mark_seen(event)
        except Exception:  # Redis down: it was processed; a 5xx would rerun it
            app.logger.exception("could not mark webhook event %s seen", event.id)
        return "", 200

    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    create_app().run(host=args.host, port=args.port)
