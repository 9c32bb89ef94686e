"""A loopback TCP proxy that adds a round-trip time and counts the round trips clients wait.

    python -m benchmarks.latency_proxy --target 127.0.0.1:5432 --rtt-ms 1 --listen 6433

It stands in for a database server on another machine: every chunk is held for half the
round-trip time in each direction, order kept. It counts *flights*: bursts a client sends
after the proxy last delivered it the end of a server turn on that connection (a
PostgreSQL ReadyForQuery, an authentication challenge, a COPY go-ahead; any server data
for traffic it cannot read), i.e. the network round trips the client waited for:
pipelined statements sent without waiting are one flight, even when the client's writes
straddle the first results.

From Python, :class:`LatencyProxy` runs it in a child process (its CPU does not share the
caller's GIL) and reads, resets or re-times it through a small control socket::

    with LatencyProxy("127.0.0.1:5432", rtt_ms=5) as proxy:
        ...connect to 127.0.0.1:proxy.port...
        proxy.reset()
        ...
        print(proxy.stats().flights)

The proxy costs CPU of its own: compare figures measured through it with each other (RTT 0
against RTT 5 ms), and direct connections with direct connections.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["LatencyProxy", "ProxyStats", "serve"]

_CHUNK = 256 * 1024


_ONE_BYTE_ANSWERS = {80877103, 80877104}  # SSLRequest, GSSENCRequest: answered by 1 byte
_PROTOCOL_3 = 196608


class _Turns:
    """Where the server's turns end, from PostgreSQL's message framing.

    A client waits for ReadyForQuery (the end of a query, or of a pipeline at its Sync), an
    authentication challenge or a COPY FROM's go-ahead; any other server message (a part of
    a pipeline's results, a notification) is not an answer it waits for. Traffic that is not
    PostgreSQL's plain protocol (TLS, another protocol) counts every server burst instead.
    """

    def __init__(self) -> None:
        self.framed: bool | None = None  # unknown until the client's first message
        self.one_byte = False  # the next server byte answers an SSL/GSS request
        self.header = bytearray()  # the current message's type, length and 4 body bytes
        self.skip = 0  # body bytes of the current message still to pass

    def client(self, data: bytes) -> None:
        """Look at the client's first bytes: a startup or SSL/GSS request, or not ours."""
        if self.framed is None:
            code = int.from_bytes(data[4:8], "big") if len(data) >= 8 else -1
            self.framed = code == _PROTOCOL_3 or code in _ONE_BYTE_ANSWERS
            self.one_byte = code in _ONE_BYTE_ANSWERS

    def server(self, data: bytes) -> bool:
        """Read server bytes; return whether a turn the client waits for ended in them."""
        if not self.framed:
            return True
        ended, at = False, 0
        while at < len(data):
            if self.one_byte:
                self.one_byte, ended = False, True
                self.framed = data[at:at + 1] == b"N"  # accepted: encrypted from here
                at += 1
                if not self.framed:
                    return True
                continue
            if self.skip:
                step = min(self.skip, len(data) - at)
                self.skip -= step
                at += step
                continue
            take = min(9 - len(self.header), len(data) - at)
            self.header += data[at:at + take]
            at += take
            if len(self.header) < 5:
                continue
            kind, length = self.header[:1], int.from_bytes(self.header[1:5], "big")
            if len(self.header) < min(9, 1 + length):
                continue
            if kind in (b"Z", b"G", b"W") or (kind == b"R" and self.header[5:9] != b"\0" * 4):
                ended = True
            self.skip = 1 + length - len(self.header)
            if self.skip < 0:  # a short message: its header took bytes of the next one
                at += self.skip
                self.skip = 0
            self.header.clear()
        return ended


@dataclass
class _Link:
    """Counters of one client connection."""

    ident: int
    peer: str
    flights: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    open: bool = True
    server_spoke: bool = True  # the next client burst is a new flight
    turns: _Turns = field(default_factory=_Turns)

    def as_dict(self) -> dict[str, Any]:
        """Return the counters for the control socket."""
        return {"id": self.ident, "peer": self.peer, "flights": self.flights,
                "bytes_up": self.bytes_up, "bytes_down": self.bytes_down, "open": self.open}


@dataclass
class ProxyStats:
    """Counters since the last reset: flights, bytes and connections, in total and each."""

    rtt_ms: float
    flights: int
    bytes_up: int
    bytes_down: int
    connections_opened: int
    connections: list[dict[str, Any]] = field(default_factory=list)
    cpu_seconds: float = 0.0  # the proxy process's user + system time, since it started

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProxyStats:
        """Build stats from the control socket's answer."""
        return cls(**data)


class _Proxy:
    """The proxy's state, served on one asyncio loop."""

    def __init__(self, target: tuple[str, int], rtt_ms: float) -> None:
        self.target = target
        self.rtt_ms = rtt_ms
        self.links: list[_Link] = []
        self.opened = 0
        self._next = 0
        self._closed: dict[str, int] = {"flights": 0, "bytes_up": 0, "bytes_down": 0}
        self.stop = asyncio.Event()
        self.writers: set[asyncio.StreamWriter] = set()
        self._slack = 0.0  # how late the loop wakes from a sleep, learnt as it runs

    def _learn(self, late: float) -> None:
        """Sleep shorter next time by what the last wake-up was late (timer slack, load)."""
        self._slack = min(0.002, max(0.0, self._slack + 0.2 * late))

    @property
    def delay(self) -> float:
        """One-way delay in seconds."""
        return self.rtt_ms / 2000.0

    # Forwarding --------------------------------------------------------------------------

    async def handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
                     ) -> None:
        """Serve one client connection until either side closes it."""
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.close()
            return
        for writer in (client_w, server_w):
            self.writers.add(writer)
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._next += 1
        self.opened += 1
        peer = client_w.get_extra_info("peername")
        link = _Link(self._next, f"{peer[0]}:{peer[1]}" if peer else "?")
        self.links.append(link)
        try:
            await asyncio.gather(self._pump(client_r, server_w, link, up=True),
                                 self._pump(server_r, client_w, link, up=False),
                                 return_exceptions=True)
        finally:
            link.open = False
            self.writers.difference_update((client_w, server_w))
            self._retire()

    def _retire(self) -> None:
        """Fold a closed connection's counters into the totals, keeping recent ones listed."""
        closed = [x for x in self.links if not x.open]
        if len(closed) > 200:
            for old in closed[:-200]:
                self.links.remove(old)
                for key in self._closed:
                    self._closed[key] += getattr(old, key)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    link: _Link, *, up: bool) -> None:
        """Forward one direction: at once when nothing is held back, else through a queue."""
        queue: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue()
        held = 0  # chunks queued or being sent: a new chunk must wait behind them

        def delivered(data: bytes) -> None:
            if not up:
                link.server_spoke = link.server_spoke or link.turns.server(data)
                link.bytes_down += len(data)

        async def send() -> None:
            nonlocal held
            while True:
                due, data = await queue.get()
                if data is None:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(max(0.0, wait - self._slack))
                    self._learn(time.monotonic() - due)
                writer.write(data)
                delivered(data)
                await writer.drain()
                held -= 1

        sender = asyncio.create_task(send())
        try:
            # a side that hangs up ends this direction
            with contextlib.suppress(ConnectionError, OSError):
                while True:
                    data = await reader.read(_CHUNK)
                    if not data:
                        break
                    if up:
                        link.turns.client(data)
                        link.bytes_up += len(data)
                        if link.server_spoke:
                            link.flights += 1
                            link.server_spoke = False
                    if self.delay <= 0 and held == 0:  # RTT 0: no extra task switch per chunk
                        writer.write(data)
                        delivered(data)
                        await writer.drain()
                    else:
                        held += 1
                        queue.put_nowait((time.monotonic() + self.delay, data))
        finally:
            queue.put_nowait((0.0, None))
            with contextlib.suppress(ConnectionError, OSError):
                await sender
            writer.close()

    # Control -----------------------------------------------------------------------------

    def totals(self) -> dict[str, int]:
        """Return flights and bytes since the last reset."""
        return {key: self._closed[key] + sum(getattr(x, key) for x in self.links)
                for key in self._closed}

    def stats(self) -> dict[str, Any]:
        """Return every counter as a JSON-able dict."""
        times = os.times()
        return {"rtt_ms": self.rtt_ms, **self.totals(), "connections_opened": self.opened,
                "connections": [x.as_dict() for x in self.links],
                "cpu_seconds": times.user + times.system}

    def reset(self) -> None:
        """Start counting from zero (per-connection counters too)."""
        for link in self.links:
            link.flights = link.bytes_up = link.bytes_down = 0
        self.links = [x for x in self.links if x.open]
        self._closed = dict.fromkeys(self._closed, 0)
        self.opened = 0

    async def control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                      ) -> None:
        """Answer JSON-line commands: stats, reset, rtt (with "ms"), stop."""
        self.writers.add(writer)
        try:
            # a hung-up client, or a line that is not JSON, ends the session
            with contextlib.suppress(ConnectionError, OSError, ValueError):
                while line := await reader.readline():
                    request = json.loads(line)
                    command = request.get("cmd")
                    if command == "reset":
                        self.reset()
                    elif command == "rtt":
                        self.rtt_ms = float(request["ms"])
                    elif command == "stop":
                        self.stop.set()
                    elif command != "stats":
                        writer.write(json.dumps({"error": f"unknown command {command!r}"})
                                     .encode() + b"\n")
                        continue
                    writer.write(json.dumps(self.stats()).encode() + b"\n")
                    await writer.drain()
        finally:
            self.writers.discard(writer)
            writer.close()


def _parse_target(target: str | tuple[str, int]) -> tuple[str, int]:
    if isinstance(target, tuple):
        return target
    host, _, port = target.rpartition(":")
    return host or "127.0.0.1", int(port)


async def _serve(target: tuple[str, int], rtt_ms: float, listen_port: int,
                 announce: bool, seconds: float, verbose: bool) -> None:
    proxy = _Proxy(target, rtt_ms)
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", listen_port)
    control = await asyncio.start_server(proxy.control, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    control_port = control.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, proxy.stop.set)
    loop.add_signal_handler(signal.SIGUSR1, lambda: print(_summary(proxy.stats()), flush=True))
    if announce:
        print(json.dumps({"port": port, "control_port": control_port}), flush=True)
    if verbose:
        print(f"proxy 127.0.0.1:{port} -> {target[0]}:{target[1]}, rtt {rtt_ms} ms "
              f"(control port {control_port}, pid {os.getpid()})", flush=True)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(proxy.stop.wait(), seconds or None)
    server.close()
    control.close()
    for writer in list(proxy.writers):  # every handler then sees EOF and ends by itself
        writer.close()
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    if others:
        await asyncio.wait(others, timeout=2)
    loop.set_exception_handler(lambda _loop, _context: None)  # stragglers die quietly
    if verbose:
        print(_summary(proxy.stats()), flush=True)


def _summary(stats: dict[str, Any]) -> str:
    return (f"flights {stats['flights']} bytes_up {stats['bytes_up']} bytes_down "
            f"{stats['bytes_down']} connections {stats['connections_opened']}")


def serve(target: str | tuple[str, int], rtt_ms: float, listen_port: int = 0, *,
          announce: bool = False, seconds: float = 0.0, verbose: bool = False) -> None:
    """Run the proxy in this process until stopped (a signal, ``stop``, or ``seconds``).

    The loop waits on ``select()``, whose timeouts have microsecond resolution (epoll
    rounds them up to whole milliseconds, which would turn a 0.5 ms delay into 1 ms).
    """
    loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
    try:
        loop.run_until_complete(_serve(_parse_target(target), rtt_ms, listen_port, announce,
                                       seconds, verbose))
    finally:
        loop.close()


class LatencyProxy:
    """The proxy in a child process, as a context manager with counters to read and reset."""

    def __init__(self, target: str | tuple[str, int] = "127.0.0.1:5432", rtt_ms: float = 0.0,
                 *, listen_port: int = 0) -> None:
        self.target = _parse_target(target)
        self.rtt_ms = rtt_ms
        self.listen_port = listen_port
        self.port = 0
        self.control_port = 0
        self._process: subprocess.Popen[str] | None = None
        self._control: socket.socket | None = None
        self._lines: Any = None

    def __enter__(self) -> LatencyProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def host(self) -> str:
        """The address clients connect to."""
        return "127.0.0.1"

    @property
    def pid(self) -> int | None:
        """The proxy process's id."""
        return self._process.pid if self._process is not None else None

    def start(self) -> LatencyProxy:
        """Start the proxy process and wait until it listens."""
        root = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
        command = [sys.executable, "-m", "benchmarks.latency_proxy", "--announce",
                   "--listen", str(self.listen_port), "--rtt-ms", str(self.rtt_ms),
                   "--target", f"{self.target[0]}:{self.target[1]}"]
        self._process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                         stdin=subprocess.DEVNULL, text=True)
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self.close()
            raise RuntimeError("the latency proxy exited before listening")
        ports = json.loads(line)
        self.port, self.control_port = ports["port"], ports["control_port"]
        self._control = socket.create_connection(("127.0.0.1", self.control_port), timeout=30)
        self._lines = self._control.makefile("rb")
        return self

    def _ask(self, **request: Any) -> dict[str, Any]:
        if self._control is None:
            raise RuntimeError("the latency proxy is not running")
        self._control.sendall(json.dumps(request).encode() + b"\n")
        answer = json.loads(self._lines.readline())
        if "error" in answer:
            raise ValueError(answer["error"])
        return answer

    def stats(self) -> ProxyStats:
        """Return the counters since the last reset."""
        return ProxyStats.from_dict(self._ask(cmd="stats"))

    def reset(self) -> ProxyStats:
        """Zero the counters; return them as they were just after (zeros)."""
        return ProxyStats.from_dict(self._ask(cmd="reset"))

    def set_rtt(self, rtt_ms: float) -> None:
        """Change the round-trip time of chunks forwarded from now on."""
        self._ask(cmd="rtt", ms=rtt_ms)
        self.rtt_ms = rtt_ms

    def close(self) -> None:
        """Stop the proxy process (idempotent)."""
        if self._control is not None:
            with contextlib.suppress(OSError, ValueError):
                self._ask(cmd="stop")
            self._lines.close()
            self._control.close()
            self._control = None
        if self._process is not None:
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.terminate()
                self._process.wait(5)
            if self._process.stdout is not None:
                self._process.stdout.close()
            self._process = None


def main(argv: Sequence[str] | None = None) -> None:
    """Run the proxy from the command line until SIGINT/SIGTERM (SIGUSR1 prints totals)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=int, default=6433, help="port on 127.0.0.1")
    parser.add_argument("--target", default="127.0.0.1:5432", help="host:port to forward to")
    parser.add_argument("--rtt-ms", type=float, default=1.0, help="added round-trip time")
    parser.add_argument("--seconds", type=float, default=0.0, help="stop after (0: never)")
    parser.add_argument("--announce", action="store_true",
                        help="print the ports as one JSON line, and nothing else")
    args = parser.parse_args(argv)
    serve(args.target, args.rtt_ms, args.listen, announce=args.announce,
          seconds=args.seconds, verbose=not args.announce)


if __name__ == "__main__":
    main()
