"""Secrets and someone else's text at the CLI and in errors.

A Redis password never reaches an error message or the terminal, whatever its characters:
passwords made by ``openssl rand -base64`` (or a cloud console) often hold ``/``, ``+``, ``#``
or ``?``; written unescaped into a ``redis://`` URL, they end the URL's authority early, so the
URL no longer parses as holding a password.

The CLI never writes control characters it received from the API to the terminal: an error's
title and detail, a message id and a recipient's status are someone else's text (whatever
answers at ``--base-url``). Printed raw, ``ESC ]0;...BEL`` retitles the terminal, ``ESC [2J``
wipes the screen and ``ESC [1A`` rewrites the lines above, so a failure could read as a success.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from telnyx_msg import RedisDeliveryTracker, RedisRateLimits, RedisReplayStore, RedisWebhookQueue
from telnyx_msg.cli import main
from telnyx_msg.errors import ConfigurationError
from tests.conftest import Handler, serving_in_thread

SENDER = "+18005550101"
#: A password as ``openssl rand -base64 12`` makes them, pasted into the URL unescaped.
PASSWORD_PARTS = ("Zx9", "Qk+Lm3")
URLS = [
    "redis://:Zx9/Qk+Lm3@127.0.0.1:9/0",
    "redis://default:Zx9#Qk+Lm3@127.0.0.1:9/0",
    "redis://:Zx9?Qk+Lm3@127.0.0.1:9/0",
]


@pytest.mark.parametrize("url", URLS)
def test_bulk_never_prints_a_redis_password_that_breaks_the_url(
    tmp_path: Path, capsys: Any, url: str
) -> None:
    """``bulk --redis URL`` with an unusable URL exits 2 without any part of the password on
    stderr (CI logs, shared terminals); today the whole URL is printed as it was given."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text(f"from,to,text\n{SENDER},+13125550001,hi\n")
    argv = ["bulk", str(source), "--out", str(out), "--api-key", "KEY0123456789"]
    argv += ["--base-url", "http://127.0.0.1:9/v2", "--redis", url]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "error:" in err
    for part in PASSWORD_PARTS:
        assert part not in err, err
    assert not out.exists()


@pytest.mark.parametrize("url", URLS)
def test_webhook_worker_never_prints_a_redis_password_that_breaks_the_url(
    capsys: Any, url: str
) -> None:
    """``webhook worker --redis URL`` with an unusable URL exits 2 without any part of the
    password on stderr (a service manager's journal keeps it)."""
    code = main(
        ["webhook", "worker", "--redis", url, "--handler", "tests.webhook_worker_handlers:record"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "error:" in err
    for part in PASSWORD_PARTS:
        assert part not in err, err


@pytest.mark.anyio
@pytest.mark.parametrize(
    "build",
    [RedisRateLimits, RedisDeliveryTracker, RedisWebhookQueue, RedisReplayStore],
    ids=lambda cls: cls.__name__,
)
@pytest.mark.parametrize("url", URLS)
async def test_redis_helpers_never_quote_part_of_the_password(build: Any, url: str) -> None:
    """Every Redis helper built from such a URL raises ConfigurationError without quoting
    any part of the password (it goes to the application's logs and error reports)."""
    with pytest.raises(ConfigurationError) as caught:
        build(url)
    for text in (str(caught.value), repr(caught.value.__cause__)):
        for part in PASSWORD_PARTS:
            assert part not in text, text


#: Retitle the terminal, clear the screen, then print a fake success line in green.
ESCAPES = "\x1b]0;owned\x07\x1b[2J\x1b[32m\x1b[1Asent: all good\x1b[0m"


def _error(status: int) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        await request.read()
        body = {"errors": [{"code": "10015", "title": "Bad " + ESCAPES, "detail": ESCAPES}]}
        return web.json_response(body, status=status)

    return handler


def _message(message_id: str, status: str) -> dict[str, Any]:
    return {
        "record_type": "message",
        "id": message_id,
        "direction": "outbound",
        "type": "SMS",
        "from": {"phone_number": SENDER},
        "to": [{"phone_number": "+13125550001", "status": status}],
        "text": "hi",
        "parts": 1,
        "errors": [],
    }


def _send_argv(base_url: str) -> list[str]:
    return [
        "send",
        "--api-key",
        "KEY0123456789",
        "--base-url",
        base_url,
        "--from",
        SENDER,
        "--to",
        "+13125550001",
        "--text",
        "hi",
    ]


def test_send_escapes_control_characters_of_an_api_error(capsys: Any) -> None:
    """``send`` reports a 422 whose title and detail hold terminal escapes without writing
    a single ESC or BEL to stderr."""
    with serving_in_thread(_error(422)) as base_url:
        assert main(_send_argv(base_url)) == 1
    captured = capsys.readouterr()
    assert "10015" in captured.err
    for stream in (captured.out, captured.err):
        assert "\x1b" not in stream, repr(stream)
        assert "\x07" not in stream, repr(stream)


def test_send_escapes_control_characters_of_an_accepted_message(capsys: Any) -> None:
    """``send`` prints an accepted message's id and recipient status without the control
    characters they hold."""

    async def accept(request: web.Request) -> web.Response:
        await request.read()
        payload = _message("40385f64-" + ESCAPES, "queued" + ESCAPES)
        return web.Response(
            body=json.dumps({"data": payload}).encode(), content_type="application/json"
        )

    with serving_in_thread(accept) as base_url:
        assert main(_send_argv(base_url)) == 0
    captured = capsys.readouterr()
    assert "40385f64-" in captured.out
    for stream in (captured.out, captured.err):
        assert "\x1b" not in stream, repr(stream)
        assert "\x07" not in stream, repr(stream)


def test_bulk_escapes_control_characters_of_the_error_that_stopped_it(
    tmp_path: Path, capsys: Any
) -> None:
    """``bulk`` stopped by a 401 (a wrong key stops the whole run) prints the error without
    its control characters."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text(f"from,to,text\n{SENDER},+13125550001,hi\n")
    with serving_in_thread(_error(401)) as base_url:
        argv = ["bulk", str(source), "--out", str(out), "--api-key", "KEY0123456789"]
        code = main([*argv, "--base-url", base_url, "--no-progress"])
    assert code == 1
    captured = capsys.readouterr()
    assert "401" in captured.err
    for stream in (captured.out, captured.err):
        assert "\x1b" not in stream, repr(stream)
        assert "\x07" not in stream, repr(stream)
