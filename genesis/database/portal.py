"""The background event loop that serves every synchronous facade of a process.

One daemon thread runs an asyncio loop; synchronous code submits coroutines to it with
:func:`call`, a lock hand-off of about 65 µs per round trip on the reference machine
(``asyncio.run_coroutine_threadsafe`` took 77 µs and anyio's ``BlockingPortal.call``
148 µs, against a budget of 100 µs per facade call). The thread is a daemon, so a facade
that is never closed cannot keep the interpreter alive; facades still open at exit are
closed by an ``atexit`` hook, which runs while the loop is still serving. After
``os.fork()`` the child starts a fresh loop on first use (the parent's thread does not
exist in the child).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["call", "closing_at_exit", "in_portal_thread", "run"]

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_owner_pid = os.getpid()
_open_at_exit: weakref.WeakSet[Any] = weakref.WeakSet()


def _get() -> asyncio.AbstractEventLoop:
    global _loop, _thread, _owner_pid
    with _lock:
        alive = _thread is not None and _thread.is_alive() and _owner_pid == os.getpid()
        if _loop is None or not alive:
            _loop = asyncio.new_event_loop()
            _thread = threading.Thread(target=_loop.run_forever, daemon=True,
                                       name="genesis-portal")
            _thread.start()
            _owner_pid = os.getpid()
        return _loop


def in_portal_thread() -> bool:
    """True when running on the portal's own event-loop thread."""
    return _thread is not None and threading.current_thread() is _thread


def call(function: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run ``await function(*args)`` on the portal loop and return its result."""
    if in_portal_thread():
        raise RuntimeError(
            "a synchronous Genesis ProgramDatabase method was called from the event loop "
            "that serves it; inside async code use genesis.database.AsyncProgramDatabase "
            "and await its methods instead"
        )

    loop = _get()
    coroutine = function(*args)
    finished = threading.Lock()
    finished.acquire()
    outcome: list[asyncio.Future[T]] = []

    def settle(task: asyncio.Future[T]) -> None:
        outcome.append(task)
        finished.release()

    def start() -> None:
        loop.create_task(coroutine).add_done_callback(settle)  # type: ignore[arg-type]

    loop.call_soon_threadsafe(start)
    finished.acquire()  # a lock hand-off: cheaper than concurrent.futures' condition
    return outcome[0].result()


async def run(function: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Await ``function(*args)`` on the portal loop from another event loop.

    The caller's loop is never blocked. Cancelling the caller does not cancel the work on
    the portal (a write that was started finishes, as a thread pool's job would).
    """
    if in_portal_thread():
        return await function(*args)
    future = asyncio.run_coroutine_threadsafe(function(*args), _get())
    return await asyncio.shield(asyncio.wrap_future(future))


def closing_at_exit(facade: Any) -> None:
    """Close ``facade`` (its ``close()`` method) at interpreter exit if still open."""
    _open_at_exit.add(facade)


@atexit.register
def _close_open_facades() -> None:
    if _owner_pid != os.getpid():
        return
    for facade in list(_open_at_exit):
        with contextlib.suppress(Exception):  # exiting anyway: do not hide the real exit
            facade.close()
