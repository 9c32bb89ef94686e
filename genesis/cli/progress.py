"""A progress display: a live line on a terminal, plain periodic lines otherwise.

    with Progress("copy", total=100_000, unit="programs") as progress:  # seconds=: time limit
        for batch in batches:
            progress.advance(len(batch))
        progress.note(best="2.61")          # extra fields shown after the rate

On a terminal the line is redrawn in place (at most 10 times a second) with the count,
rate and ETA; when output is redirected a plain line is printed every ``every`` seconds,
so logs stay readable. With both a ``total`` and a time limit, the share shown is that of
the limit nearer to being reached, so a run that the clock ends also ends at 100%.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class Progress:
    """Count work done and show it with rate and ETA."""

    def __init__(
        self, label: str, total: int | None = None, unit: str = "items",
        stream: TextIO | None = None, every: float = 5.0, width: int = 24,
        seconds: float | None = None,
    ) -> None:
        self.label = label
        self.total = total
        self.seconds = seconds
        self.unit = unit
        self.stream = stream or sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every = every if not self.live else 0.1
        self.width = width
        self.done = 0
        self.fields: dict[str, object] = {}
        self._start = time.monotonic()
        self._shown = -float("inf")  # the first update shows at once
        self._shown_state: tuple[object, ...] | None = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def rate(self) -> float:
        """Units per second so far."""
        elapsed = time.monotonic() - self._start
        return self.done / elapsed if elapsed > 0 else 0.0

    def advance(self, count: int = 1) -> None:
        """Record ``count`` more units done."""
        self.done += count
        self._maybe_show()

    def note(self, **fields: object) -> None:
        """Set extra fields shown after the rate (for example ``best=2.61``)."""
        self.fields.update(fields)
        self._maybe_show()

    def _shares(self, elapsed: float) -> tuple[float | None, float | None]:
        """How far the count and the clock are towards their limits (None: no such limit)."""
        count = min(1.0, self.done / self.total) if self.total else None
        clock = min(1.0, elapsed / self.seconds) if self.seconds else None
        return count, clock

    def line(self) -> str:
        """The current progress line, measured against whichever limit ends the work first."""
        elapsed = time.monotonic() - self._start
        parts = [self.label]
        counted = f"{self.done:,}/{self.total:,}" if self.total else f"{self.done:,}"
        counted += f" {self.unit}"
        count, clock = self._shares(elapsed)
        if count is None and clock is None:
            parts.append(counted)
        else:
            share = max(s for s in (count, clock) if s is not None)
            if self.live:
                filled = int(share * self.width)
                parts.append("[" + "#" * filled + "." * (self.width - filled) + "]")
            if clock is not None and (count is None or clock > count):  # time ends it first
                counted += f", {_duration(elapsed)}/{_duration(self.seconds or 0)}"
            parts.append(f"{counted} ({share:.0%})")
        parts.append(f"{self.rate:,.0f} {self.unit}/s")
        remaining = [(self.total - self.done) / self.rate] if self.total and self.rate > 0 else []
        if self.seconds is not None:  # work that also stops at a time limit
            remaining.append(self.seconds - elapsed)
        if remaining:
            parts.append(f"ETA {_duration(min(remaining))}")
        parts.extend(f"{key} {value}" for key, value in self.fields.items())
        return "  ".join(parts)

    def _maybe_show(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._shown < self.every:
            return
        shares = [round(100 * x) for x in self._shares(now - self._start) if x is not None]
        state = (self.done, repr(self.fields), shares)
        if force and not self.live and state == self._shown_state:
            return  # the final state is already on its own line
        self._shown, self._shown_state = now, state
        if self.live:
            self.stream.write("\r\033[K" + self.line())
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Show the final state (ending the live line)."""
        self._maybe_show(force=True)
        if self.live:
            self.stream.write("\n")
            self.stream.flush()
