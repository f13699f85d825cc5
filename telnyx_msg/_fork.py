"""After ``fork``: the child must never touch the connections it inherited from the parent.

A forked child shares the parent's sockets and the parent's event-loop epoll set. When the child
collects an inherited connection (at exit, or when it drops a client), the library closing it
removes the parent's socket from that shared epoll set, or writes into the parent's stream (a TLS
close_notify), and the parent's next request on it hangs until its timeout. The child cannot use
those connections anyway (they belong to the parent's loop).

So, right after a fork, each registered provider names the sockets of connections made before it,
and the child's copies of them are pointed at ``/dev/null``: whatever the child's cleanup does to
them happens to ``/dev/null``, and the parent's connections stay as they were.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["in_forked_child", "on_fork_disown"]

_PROVIDERS: list[Callable[[], Iterable[Any]]] = []
_CALLBACKS: list[Callable[[], None]] = []


def on_fork_disown(provider: Callable[[], Iterable[Any]]) -> None:
    """Register ``provider() -> sockets`` (objects with ``fileno()``) to disown after a fork."""
    _PROVIDERS.append(provider)


def in_forked_child(callback: Callable[[], None]) -> None:
    """Register ``callback()`` to run in a forked child, after the sockets are disowned."""
    _CALLBACKS.append(callback)


def _after_fork() -> None:
    _disown()
    for callback in _CALLBACKS:
        with contextlib.suppress(Exception):  # best effort: never break the fork
            callback()


def _disown() -> None:
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        for provider in _PROVIDERS:
            try:
                sockets = list(provider())
            except Exception:  # best effort: never break the fork
                continue
            for sock in sockets:
                fd = sock.fileno() if sock is not None else -1
                if fd >= 0:
                    os.dup2(devnull, fd)
    finally:
        os.close(devnull)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
