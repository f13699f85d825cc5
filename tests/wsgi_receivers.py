"""Serve the Flask or Django webhook example with a processor that fails each event's first
delivery (a test helper, run as ``python tests/wsgi_receivers.py flask|django PORT``).

It prints ``failed ID`` and ``processed ID`` lines, so the test can see that an event whose
processing failed was delivered again and processed then, exactly once.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import telnyx_msg
from examples import webhooks_django, webhooks_flask

_failed: set[str | None] = set()
_lock = threading.Lock()


def flaky(event: telnyx_msg.WebhookEvent) -> None:
    """Fail the first delivery of every event; process the next one."""
    with _lock:
        first = event.id not in _failed
        _failed.add(event.id)
    if first:
        print(f"failed {event.id}", flush=True)
        raise RuntimeError("processing failed (on purpose)")
    print(f"processed {event.id}", flush=True)


def main() -> None:
    framework, port = sys.argv[1], sys.argv[2]
    if framework == "flask":
        webhooks_flask.create_app(process=flaky).run(host="127.0.0.1", port=int(port))
    else:
        from django.core.management import execute_from_command_line

        webhooks_django.configure(webhooks_django.create_view(process=flaky))
        execute_from_command_line(["django", "runserver", f"127.0.0.1:{port}", "--noreload"])


if __name__ == "__main__":
    main()
