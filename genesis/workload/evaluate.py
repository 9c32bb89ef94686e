"""Pooled, crash-proof evaluation of circle-packing programs in worker processes.

Each worker is a persistent ``python -m genesis.workload._worker`` child that speaks JSON
lines on stdin/stdout and runs one program at a time in a fresh namespace. A worker that
times out, dies (``os._exit``, segfault, memory exhaustion) or is cancelled mid-request is
killed together with its process group and replaced in the background, so a bad program
never affects the caller. This is fault isolation, not a security sandbox: the evaluated
code runs with the caller's user rights.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from genesis.workload.circles import PackingScore

_PROJECT_ROOT = str(Path(__file__).resolve().parents[2])
_LINE_LIMIT = 64 * 1024 * 1024
_SINGLE_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class EvalResult:
    """Outcome of evaluating one program; all numbers are finite floats.

    ``status`` is ``"ok"`` (valid packing), ``"invalid"`` (ran but the packing is
    invalid), ``"syntax_error"``, ``"exception"``, ``"exit"``, ``"missing_entry"``,
    ``"timeout"`` or ``"crash"``.
    """

    correct: bool
    combined_score: float
    public_metrics: dict[str, float]
    private_metrics: dict[str, float]
    text_feedback: str
    stdout: str
    seconds: float
    status: str


class _WorkerDied(Exception):
    """The worker closed its reply stream or broke the protocol."""


class _Worker:
    """One worker process and its request counter."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        """Wrap a started process (use :meth:`spawn`)."""
        self.proc = proc
        self.tasks = 0

    @classmethod
    async def spawn(cls, argv: list[str], env: dict[str, str], timeout: float) -> _Worker:
        """Start a worker and wait until it has imported everything and is ready."""
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,
            limit=_LINE_LIMIT,
        )
        worker = cls(proc)
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), timeout)
            if not line or not json.loads(line).get("ready"):
                raise RuntimeError(f"evaluation worker failed to start: {argv}")
        except BaseException:
            await worker.stop()
            raise
        return worker

    async def request(self, code: str, timeout: float) -> dict[str, Any]:
        """Send one program and wait at most ``timeout`` seconds for its reply."""
        self.tasks += 1
        payload = json.dumps({"id": self.tasks, "code": code}).encode() + b"\n"
        try:
            return await asyncio.wait_for(self._exchange(payload), timeout)
        except (ConnectionError, ValueError) as exc:  # broken pipe, over-long or bad line
            raise _WorkerDied(str(exc)) from exc

    async def _exchange(self, payload: bytes) -> dict[str, Any]:
        """Write a request line and read the matching reply line."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(payload)
        await self.proc.stdin.drain()
        line = await self.proc.stdout.readline()
        if not line:
            raise _WorkerDied("the worker closed its output")
        reply: dict[str, Any] = json.loads(line)
        if reply.get("id") != self.tasks:
            raise _WorkerDied("reply does not match the request")
        return reply

    def kill(self) -> None:
        """Send SIGKILL to the worker's process group: the worker and anything it started.

        Done even if the worker has already exited, since its children may still run (a
        process group's id is not reused while the group has members).
        """
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    async def stop(self) -> int:
        """Kill the worker, reap it and close its pipes; returns the exit code."""
        self.kill()
        code = await self.proc.wait()
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        return code


class _Slot:
    """A position in the pool: the task that (re)starts its worker."""

    def __init__(self, task: asyncio.Task[_Worker]) -> None:
        """Hold the start-up task of the slot's current worker."""
        self.task = task


class Evaluator:
    """A pool of worker processes that evaluates programs concurrently under a time limit.

    Use as ``async with Evaluator(workers=2, timeout=5.0) as ev: await ev.evaluate(code)``.
    At most ``workers`` programs run at once; further calls wait for a free worker.
    """

    def __init__(
        self,
        workers: int = 2,
        timeout: float = 5.0,
        *,
        memory_limit_mb: int = 1024,
        stdout_limit: int = 10_000,
        max_tasks_per_worker: int = 1000,
        startup_timeout: float = 60.0,
    ) -> None:
        """Configure the pool; ``memory_limit_mb`` is extra address space per program."""
        if workers < 1 or timeout <= 0 or max_tasks_per_worker < 1:
            raise ValueError("workers, timeout and max_tasks_per_worker must be positive")
        self.workers = workers
        self.timeout = timeout
        self.memory_limit_mb = memory_limit_mb
        self._max_tasks = max_tasks_per_worker
        self._startup_timeout = startup_timeout
        self._argv = [
            sys.executable,
            "-m",
            "genesis.workload._worker",
            str(memory_limit_mb),
            str(stdout_limit),
        ]
        self._env = _worker_env()
        self._idle: asyncio.Queue[_Slot] | None = None
        self._slots: list[_Slot] = []
        self._live: set[_Worker] = set()
        self._closed = False

    async def __aenter__(self) -> Evaluator:
        """Start the workers."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the workers."""
        await self.close()

    async def start(self) -> None:
        """Start all workers and wait until they are ready (idempotent)."""
        if self._closed:
            raise RuntimeError("this Evaluator has been closed")
        if self._idle is not None:
            return
        self._idle = asyncio.Queue()
        self._slots = [_Slot(asyncio.create_task(self._spawn())) for _ in range(self.workers)]
        try:
            await asyncio.gather(*(slot.task for slot in self._slots))
        except BaseException:
            await self.close()
            raise
        for slot in self._slots:
            self._idle.put_nowait(slot)

    async def close(self) -> None:
        """Kill and reap every worker process (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for slot in self._slots:
            slot.task.cancel()
        await asyncio.gather(*(slot.task for slot in self._slots), return_exceptions=True)
        await asyncio.gather(*(w.stop() for w in list(self._live)), return_exceptions=True)
        self._live.clear()

    async def evaluate(self, code: str, timeout: float | None = None) -> EvalResult:
        """Run ``code``'s ``construct_packing()`` in a worker and score the packing."""
        if not isinstance(code, str):
            raise TypeError(f"code must be str, not {type(code).__name__}")
        if self._idle is None or self._closed:
            raise RuntimeError("Evaluator is not running: use 'async with' or await start()")
        slot = await self._idle.get()
        try:
            return await self._run(slot, code, self.timeout if timeout is None else timeout)
        finally:
            self._idle.put_nowait(slot)

    async def _run(self, slot: _Slot, code: str, timeout: float) -> EvalResult:
        """Evaluate on the slot's worker, replacing the worker if it misbehaves."""
        if self._closed:
            raise RuntimeError("the Evaluator was closed")
        try:
            worker = await asyncio.shield(slot.task)
        except asyncio.CancelledError:
            if self._closed and slot.task.cancelled():
                raise RuntimeError("the Evaluator was closed") from None
            raise
        except Exception as exc:
            slot.task = asyncio.create_task(self._spawn())
            raise RuntimeError(f"could not start an evaluation worker: {exc}") from exc
        start = time.perf_counter()
        try:
            reply = await worker.request(code, timeout)
        except asyncio.TimeoutError:
            self._replace(slot, worker)
            return _failure(
                "timeout",
                f"Evaluation timed out after {timeout:g} s: the program has an infinite loop "
                "or is too slow. Make construct_packing() return faster.",
                time.perf_counter() - start,
            )
        except _WorkerDied:
            seconds = time.perf_counter() - start
            exit_code = await worker.stop()
            self._replace(slot, worker)
            if self._closed:
                raise RuntimeError("the Evaluator was closed during the evaluation") from None
            return _failure("crash", _crash_feedback(exit_code), seconds)
        except BaseException:
            self._replace(slot, worker)  # e.g. cancelled mid-request: worker state unknown
            raise
        if worker.tasks >= self._max_tasks:
            self._replace(slot, worker)
        return _from_reply(reply, time.perf_counter() - start, self.memory_limit_mb)

    async def _spawn(self, previous: _Worker | None = None) -> _Worker:
        """Reap ``previous`` (if any) and start a fresh worker."""
        if previous is not None:
            await previous.stop()
            self._live.discard(previous)
        worker = await _Worker.spawn(self._argv, self._env, self._startup_timeout)
        self._live.add(worker)
        return worker

    def _replace(self, slot: _Slot, worker: _Worker) -> None:
        """Kill ``worker`` now and start its replacement in the background."""
        worker.kill()
        if not self._closed:
            slot.task = asyncio.create_task(self._spawn(previous=worker))


def _worker_env() -> dict[str, str]:
    """Environment for workers: this source tree importable, one BLAS thread each."""
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = _PROJECT_ROOT + (os.pathsep + path if path else "")
    env.update({name: "1" for name in _SINGLE_THREAD_ENV})
    env["PYTHONHASHSEED"] = "0"
    return env


def _crash_feedback(exit_code: int) -> str:
    """Explain a worker that died while running a program."""
    if exit_code < 0:
        try:
            how = f"was killed by signal {signal.Signals(-exit_code).name}"
        except ValueError:
            how = f"was killed by signal {-exit_code}"
    else:
        how = f"exited with code {exit_code}"
    return (
        f"The process running the program {how} before construct_packing() returned. "
        "Typical causes: os._exit(), a crash in native code or running out of memory."
    )


def _finite(values: Mapping[str, Any], bad: list[str]) -> dict[str, float]:
    """Copy ``values`` as floats, replacing non-finite ones by 0.0 and noting their keys."""
    out: dict[str, float] = {}
    for key, value in values.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            bad.append(key)
            number = 0.0
        out[key] = number
    return out


def _failure(status: str, feedback: str, seconds: float) -> EvalResult:
    """Result for a program that produced no packing at all."""
    metrics = PackingScore.invalid(feedback).metrics()
    return EvalResult(False, 0.0, metrics, {"exec_seconds": seconds}, feedback, "", seconds, status)


_EXPLANATIONS = {
    "syntax_error": "The program could not be compiled:\n{error}",
    "exception": "The program raised an exception:\n{error}",
    "exit": "{error} construct_packing() must return (centers, radii) instead of exiting.",
    "missing_entry": "{error}",
}


def _from_reply(reply: dict[str, Any], seconds: float, memory_limit_mb: int) -> EvalResult:
    """Turn a worker reply into an :class:`EvalResult` with only finite numbers."""
    score = PackingScore(**reply["score"])
    status = str(reply["status"])
    if status == "ok":
        feedback = score.feedback
        status = "ok" if score.valid else "invalid"
    else:
        feedback = _EXPLANATIONS[status].format(error=reply["error"])
        if reply["error"].rstrip().endswith("MemoryError"):
            feedback += f"\nEach program may allocate about {memory_limit_mb} MB."
    bad: list[str] = []
    public = _finite(score.metrics(), bad)
    private = _finite({"exec_seconds": reply["exec_seconds"]}, bad)
    combined = _finite({"combined_score": score.score}, bad)["combined_score"]
    if bad:
        feedback += "\nNon-finite values (NaN or inf) were reported as 0.0: " + ", ".join(bad)
    correct = status == "ok" and "combined_score" not in bad
    return EvalResult(
        correct, combined, public, private, feedback, str(reply["stdout"]), seconds, status
    )
