"""Evaluation worker process: ``python -m genesis.workload._worker MEMORY_MB STDOUT_LIMIT``.

Speaks JSON lines on its original stdin/stdout: it first sends ``{"ready": true}``, then
answers each ``{"id": ..., "code": ...}`` request with one response line (see
:func:`run_program`). File descriptors 0 and 1 are pointed at ``/dev/null`` so that the
evaluated code cannot read or corrupt the protocol streams.
"""

from __future__ import annotations

import builtins
import io
import json
import linecache
import os
import signal
import sys
import time
import traceback
from dataclasses import asdict
from typing import Any

import numpy  # noqa: F401  (pre-imported so that programs start fast)

from genesis.workload.circles import ENTRY_POINT, PackingScore, score_result

PROGRAM_FILENAME = "<program>"
_MAX_TRACEBACK_CHARS = 3000


class _Capture(io.TextIOBase):
    """A text stream that keeps the first ``limit`` characters written to it."""

    def __init__(self, limit: int) -> None:
        """Create an empty capture buffer."""
        self._limit = limit
        self._parts: list[str] = []
        self._size = 0
        self._dropped = 0

    def writable(self) -> bool:
        """Always writable."""
        return True

    def write(self, text: str) -> int:
        """Keep what fits, count the rest."""
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        room = self._limit - self._size
        if room > 0:
            kept = text[:room]
            self._parts.append(kept)
            self._size += len(kept)
        self._dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def getvalue(self) -> str:
        """The kept output, with a note on how much was dropped."""
        text = "".join(self._parts)
        if self._dropped:
            text += f"\n... [{self._dropped} more characters of output truncated]"
        return text


def _format_error(exc: BaseException) -> str:
    """Traceback limited to the program's own frames."""
    if isinstance(exc, SyntaxError):
        lines = traceback.format_exception_only(type(exc), exc)
    else:
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != PROGRAM_FILENAME:
            tb = tb.tb_next
        lines = traceback.format_exception(type(exc), exc, tb)
    text = "".join(lines).rstrip()
    if len(text) > _MAX_TRACEBACK_CHARS:
        text = "...\n" + text[-_MAX_TRACEBACK_CHARS:]
    return text


def run_program(code: str, stdout_limit: int) -> dict[str, Any]:
    """Execute ``code`` in a fresh namespace, call the entry point and score the result.

    Returns a JSON-ready dict with ``status`` ("ok", "syntax_error", "exception",
    "exit" or "missing_entry"), ``score`` (PackingScore fields), ``error``, ``stdout``
    and ``exec_seconds``.
    """
    capture = _Capture(stdout_limit)
    namespace: dict[str, Any] = {"__name__": "__program__", "__builtins__": dict(vars(builtins))}
    linecache.cache[PROGRAM_FILENAME] = (len(code), None, code.splitlines(True), PROGRAM_FILENAME)
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = io.StringIO(), capture, capture
    status, error = "ok", ""
    score: PackingScore | None = None
    start = time.perf_counter()
    try:
        exec(compile(code, PROGRAM_FILENAME, "exec"), namespace)
        entry = namespace.get(ENTRY_POINT)
        if callable(entry):
            score = score_result(entry())
        else:
            status, error = "missing_entry", f"The program does not define {ENTRY_POINT}()."
    except SyntaxError as exc:
        status, error = "syntax_error", _format_error(exc)
    except SystemExit as exc:
        status, error = "exit", f"The program called sys.exit({exc.code!r})."
    except BaseException as exc:
        status, error = "exception", _format_error(exc)
    finally:
        elapsed = time.perf_counter() - start
        sys.stdin, sys.stdout, sys.stderr = saved
        linecache.cache.pop(PROGRAM_FILENAME, None)
    if score is None:
        score = PackingScore.invalid(error)
    return {
        "status": status,
        "error": error,
        "score": asdict(score),
        "stdout": capture.getvalue(),
        "exec_seconds": elapsed,
    }


def _limit_memory(extra_mb: int) -> None:
    """Cap the address space at the current size plus ``extra_mb`` (if supported)."""
    if extra_mb <= 0:
        return
    try:
        import resource

        with open("/proc/self/statm") as f:
            current = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        limit = current + extra_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    except (ImportError, OSError, ValueError):
        pass  # not Linux, or not allowed: run without a memory cap


def _die_with_parent() -> None:
    """On Linux, get SIGKILLed if the parent dies, so a looping program is never orphaned."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # 1 == PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return  # not Linux: the worker still exits when its stdin closes between programs
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def main(argv: list[str]) -> None:
    """Serve evaluation requests until stdin closes."""
    memory_mb, stdout_limit = int(argv[0]), int(argv[1])
    _die_with_parent()
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    _limit_memory(memory_mb)
    replies.write(json.dumps({"ready": True, "pid": os.getpid()}).encode() + b"\n")
    replies.flush()
    for line in requests:
        request = json.loads(line)
        reply = run_program(request["code"], stdout_limit)
        reply["id"] = request["id"]
        replies.write(json.dumps(reply).encode() + b"\n")
        replies.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
