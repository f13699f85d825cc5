"""Receive verified Telnyx webhooks in a Django view (a one-file Django project).

    pip install django                    # not a dependency of telnyx_msg
    export TELNYX_PUBLIC_KEY=...
      # Mission Control > Keys & Credentials > Public Key
    export REDIS_URL=redis://localhost:6379/0
      # optional: one replay window for every worker process (gunicorn -w 4);
      # needs pip install 'telnyx_msg[redis]'
    python examples/webhooks_django.py runserver 8000 --noreload
      # serves POST http://127.0.0.1:8000/webhooks/telnyx

In your own project, ``telnyx_webhook`` goes in an app's ``views.py`` (with the
verifier built once, at import) and its ``path(...)`` in ``urls.py``. As in the
Flask example, the event is marked seen only after it was processed, so a
delivery whose processing failed (answered 500) is processed when Telnyx sends it
again.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import telnyx_msg
from telnyx_msg.webhooks import SyncReplayStore

logger = logging.getLogger(__name__)
PATH = "webhooks/telnyx"


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


def create_view(
    public_key: str | None = None,
    process: Callable[[telnyx_msg.WebhookEvent], None] = print_event,
) -> Callable[..., Any]:
    """The view: verifies each delivery and passes it to ``process``."""
    from django.http import HttpRequest, HttpResponse
    from django.views.decorators.csrf import csrf_exempt
    from django.views.decorators.http import require_POST

    key = public_key or os.environ.get("TELNYX_PUBLIC_KEY")
    if not key:
        raise SystemExit(
            "set TELNYX_PUBLIC_KEY (Mission Control > Keys & Credentials)"
        )
    verifier = telnyx_msg.WebhookVerifier(key, replay_store=replay_store())

    @csrf_exempt
    @require_POST
    def telnyx_webhook(request: HttpRequest) -> HttpResponse:
        try:
            event = verifier.unwrap(request.body, request.headers, mark_seen=False)
        except telnyx_msg.DuplicateWebhookError:
            return HttpResponse(status=200)  # processed before: Telnyx may stop
        except telnyx_msg.WebhookPayloadError as exc:  # signed, but not an event
            return HttpResponse(str(exc), status=400)
        except telnyx_msg.WebhookVerificationError as exc:
            return HttpResponse(str(exc), status=401)
        process(event)  # raises: Django answers 500 and Telnyx delivers it again
        try:
            verifier.mark_seen(event)
        except Exception:  # Redis down: it was processed; a 5xx would rerun it
            logger.exception("could not mark webhook event %s seen", event.id)
        return HttpResponse(status=200)

    return telnyx_webhook


def configure(view: Callable[..., Any]) -> None:
    """Settings for this one-file project: no database, no apps, one URL."""
    from django.conf import settings
    from django.urls import path

    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        ROOT_URLCONF=__name__,
        SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY", "only-for-this-example"),
        MIDDLEWARE=["django.middleware.csrf.CsrfViewMiddleware"],
    )
    globals()["urlpatterns"] = [path(PATH, view)]


if __name__ == "__main__":
    try:
        from django.core.management import execute_from_command_line
    except ImportError:
        raise SystemExit("this example needs Django: pip install django") from None
    configure(create_view())
    execute_from_command_line(sys.argv)
