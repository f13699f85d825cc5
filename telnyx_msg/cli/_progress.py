"""The bulk command's progress line: drawn on a terminal only, fitted to its width, in colour
when the ``rich`` extra is installed (``pip install 'telnyx_msg[rich]'``; ``NO_COLOR`` or a
``TERM=dumb`` terminal keeps it plain)."""

from __future__ import annotations

import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable

__all__ = ["Progress"]

#: Colours of the progress line's parts (rich styles).
_STYLES = (
    (r"\[#+", "cyan"),
    (r"\bsent \d+", "green"),
    (r"\brejected \d+", "magenta"),
    (r"\bunknown \d+", "yellow"),
    (r"\bnot_sent \d+", "red"),
)


def _colouring() -> Callable[[str], str] | None:
    """``colour(line)``: the line with ANSI colours by rich, or None (no rich, no colour)."""
    try:
        from rich.console import Console
        from rich.text import Text

        # Rendered to a string, then drawn as the plain line is: rich would wrap a long line.
        console = Console(force_terminal=True, highlight=False, soft_wrap=True, width=1 << 16)
        if console.no_color or console.color_system is None or console.is_dumb_terminal:
            return None
    except Exception:  # not installed, or broken: the colour is only a nicety
        return None

    def colour(line: str) -> str:
        text = Text(line)
        for pattern, style in _STYLES:
            text.highlight_regex(pattern, style)
        with console.capture() as captured:
            console.print(text, end="")
        return captured.get()

    return colour


class Progress:
    """One line on stderr, redrawn at most 4 times a second: bar, counts, rate and ETA.

    When stderr is not a terminal (a log file, a pipe, nohup), no carriage-return frames:
    with ``log_every`` seconds, a plain ``progress:`` line at most that often, so a long run's
    log shows it is moving; without, nothing.
    """

    def __init__(self, total: int, *, enabled: bool, log_every: float | None = None) -> None:
        self.total = total
        self.enabled = enabled
        self.log_every = log_every
        self.counts: Counter[str] = Counter()
        self.started = time.monotonic()
        self._shown = self._logged = self.started
        self._drawn = False
        self._colour = _colouring() if enabled else None

    def update(self, status: str) -> None:
        """Count one outcome; redraw (or log) if due."""
        self.counts[status] += 1
        if self.enabled:
            now = time.monotonic()
            if now - self._shown >= 0.25:
                self._shown = now
                self._draw(now)
        elif self.log_every is not None:
            now = time.monotonic()
            if now - self._logged >= self.log_every:
                self._logged = now
                text = self.line(now, 200).partition("] ")[2]
                try:
                    print(f"progress: {text}", file=sys.stderr, flush=True)
                except (OSError, ValueError, AttributeError):  # (stderr closed: 2>&-)
                    self.log_every = None

    def finish(self) -> None:
        """Draw the final state and end the line."""
        if self.enabled and (self._drawn or self.counts):
            self._draw(time.monotonic(), end="\n")

    def line(self, now: float, width: int) -> str:
        """The progress text for a terminal ``width`` columns wide."""
        done = sum(self.counts.values())
        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        left = max(self.total - done, 0)
        eta = f"{left / rate:.0f}s" if rate > 0 and left else "-"
        counts = " ".join(
            f"{k} {self.counts[k]}"
            for k in ("sent", "rejected", "unknown", "not_sent")
            if self.counts[k]
        )
        tail = f" {done}/{self.total} {counts}  {rate:.1f}/s  ETA {eta}"
        bar_width = max(0, min(30, width - len(tail) - 3))
        if bar_width >= 5:
            filled = int(bar_width * done / self.total) if self.total else bar_width
            text = f"[{'#' * filled}{'.' * (bar_width - filled)}]{tail}"
        else:
            text = tail.strip()
        return text[: max(width - 1, 0)]

    def _draw(self, now: float, end: str = "") -> None:
        width = shutil.get_terminal_size((80, 24)).columns
        try:
            # \r returns to the line start; \x1b[K clears what a longer previous frame left.
            line = self.line(now, width)
            if self._colour is not None:
                try:
                    line = self._colour(line)
                except Exception:  # a broken rich: the colour is only a nicety
                    self._colour = None
            sys.stderr.write("\r" + line + "\x1b[K" + end)
            sys.stderr.flush()
        except (OSError, ValueError):
            # The terminal went away (a closed ssh session, EIO): the progress line is only
            # a view, and must not stop the sends or the run's own ending.
            self.enabled = False
            return
        self._drawn = True
