"""The process-pool evaluator survives bad programs and cleans up after itself."""

from __future__ import annotations

import asyncio
import math
import os
import sys
from pathlib import Path

import pytest

from genesis.workload import INITIAL_PROGRAM, EvalResult, Evaluator, score_result

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="uses /proc and process groups")

# Valid (if useless): 26 circles of radius zero.
TRIVIAL = "def construct_packing():\n    return [[0.5, 0.5]] * 26, [0.0] * 26\n"


def children_of(pid: int) -> set[int]:
    """Pids (zombies included) whose parent is ``pid``."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.add(int(entry))
    return found


def is_running(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def dies_soon(pid: int) -> bool:
    """Wait a while for a SIGKILLed process to disappear."""
    for _ in range(100):
        if not is_running(pid):
            return True
        await asyncio.sleep(0.05)
    return False


def assert_all_finite(result: EvalResult) -> None:
    """Every number in ``result`` is a finite float."""
    numbers = [result.combined_score, result.seconds]
    numbers += list(result.public_metrics.values()) + list(result.private_metrics.values())
    assert all(isinstance(x, float) and math.isfinite(x) for x in numbers)


async def test_initial_program_scores_as_in_process() -> None:
    namespace: dict[str, object] = {}
    exec(INITIAL_PROGRAM, namespace)
    expected = score_result(namespace["construct_packing"]())  # type: ignore[operator]
    async with Evaluator(workers=1, timeout=10.0) as ev:
        result = await ev.evaluate(INITIAL_PROGRAM)
    assert result.correct and result.status == "ok"
    assert result.combined_score == expected.score
    assert 0.9 < result.combined_score < 1.0
    assert result.public_metrics["num_circles"] == 26.0
    assert result.public_metrics == expected.metrics()
    assert "Valid packing" in result.text_feedback
    assert_all_finite(result)


BAD_PROGRAMS = {
    "syntax": ("def construct_packing(:\n    pass\n", "syntax_error", "SyntaxError"),
    "exception": (
        "def construct_packing():\n    return 1 / 0\n",
        "exception",
        "ZeroDivisionError",
    ),
    "loop": ("def construct_packing():\n    while True:\n        pass\n", "timeout", "timed out"),
    "sys_exit": (
        "import sys\n\ndef construct_packing():\n    sys.exit(3)\n",
        "exit",
        "sys.exit(3)",
    ),
    "os_exit": (
        "import os\n\ndef construct_packing():\n    os._exit(1)\n",
        "crash",
        "exited with code 1",
    ),
    "wrong_shape": (
        "def construct_packing():\n    return [[0.5, 0.5]] * 25, [0.01] * 25\n",
        "invalid",
        "shape",
    ),
    "not_a_pair": ("def construct_packing():\n    return None\n", "invalid", "pair"),
    "nan": (
        "import numpy as np\n\ndef construct_packing():\n"
        "    return np.random.rand(26, 2), np.full(26, np.nan)\n",
        "invalid",
        "NaN",
    ),
    "memory": (
        "import numpy as np\n\ndef construct_packing():\n    return np.ones((10**6, 10**5))\n",
        "exception",
        "MemoryError",
    ),
    "missing": ("x = 1\n", "missing_entry", "construct_packing"),
    "reads_stdin": ("def construct_packing():\n    return input()\n", "exception", "EOFError"),
}


@pytest.mark.parametrize("case", sorted(BAD_PROGRAMS))
async def test_bad_program_is_reported_and_worker_keeps_working(case: str) -> None:
    code, status, phrase = BAD_PROGRAMS[case]
    async with Evaluator(workers=1, timeout=1.0) as ev:
        result = await ev.evaluate(code)
        assert result.status == status
        assert not result.correct
        assert result.combined_score == 0.0
        assert phrase in result.text_feedback
        assert_all_finite(result)
        after = await ev.evaluate(INITIAL_PROGRAM)
    assert after.correct


async def test_huge_finite_values_are_reported_as_zero() -> None:
    code = (
        "import numpy as np\n\ndef construct_packing():\n"
        "    return np.full((26, 2), 0.5), np.full(26, 1e308)\n"
    )
    async with Evaluator(workers=1) as ev:
        result = await ev.evaluate(code)
    assert result.status == "invalid"
    assert result.public_metrics["sum_radii"] == 0.0
    assert "Non-finite values" in result.text_feedback
    assert_all_finite(result)


async def test_output_is_captured_and_truncated() -> None:
    code = (
        "import os\n\ndef construct_packing():\n"
        "    os.write(1, b'raw bytes on the protocol fd\\n')\n"
        "    for i in range(20000):\n        print('spam', i)\n"
        "    return None\n"
    )
    async with Evaluator(workers=1, stdout_limit=1000) as ev:
        result = await ev.evaluate(code)
    assert result.status == "invalid"
    assert result.stdout.startswith("spam 0\nspam 1\n")
    assert "truncated" in result.stdout
    assert len(result.stdout) < 1200


async def test_concurrent_evaluations_match_sequential_ones() -> None:
    programs = [INITIAL_PROGRAM, TRIVIAL, BAD_PROGRAMS["exception"][0]] * 3
    programs.append(BAD_PROGRAMS["os_exit"][0])
    async with Evaluator(workers=2, timeout=10.0) as ev:
        together = await asyncio.gather(*(ev.evaluate(code) for code in programs))
        alone = [await ev.evaluate(code) for code in programs]
    assert [r.status for r in together] == [r.status for r in alone]
    assert [r.combined_score for r in together] == [r.combined_score for r in alone]
    assert [r.status for r in together[:3]] == ["ok", "ok", "exception"]


def spawns_grandchild(pid_file: Path, then: str) -> str:
    """A program that starts ``sleep 60``, records its pid, then runs ``then``."""
    return (
        "import os, subprocess\n\ndef construct_packing():\n"
        "    child = subprocess.Popen(['sleep', '60'])\n"
        f"    with open({str(pid_file)!r}, 'w') as f:\n"
        "        f.write(str(child.pid))\n"
        f"    {then}\n"
    )


async def test_close_leaves_no_processes_even_after_timeouts(tmp_path: Path) -> None:
    hang, crash = tmp_path / "hang.pid", tmp_path / "crash.pid"
    before = children_of(os.getpid())
    async with Evaluator(workers=2, timeout=1.0) as ev:
        assert len(children_of(os.getpid()) - before) == 2
        results = await asyncio.gather(
            ev.evaluate(spawns_grandchild(hang, "while True: pass")),
            ev.evaluate(spawns_grandchild(crash, "os._exit(1)")),
        )
        assert [r.status for r in results] == ["timeout", "crash"]
        # The whole process group goes, not just the worker.
        assert await dies_soon(int(hang.read_text()))
        assert await dies_soon(int(crash.read_text()))
        assert (await ev.evaluate(TRIVIAL)).correct
    assert children_of(os.getpid()) == before


async def test_cancelled_evaluation_replaces_the_worker() -> None:
    before = children_of(os.getpid())
    async with Evaluator(workers=1, timeout=30.0) as ev:
        task = asyncio.create_task(ev.evaluate(BAD_PROGRAMS["loop"][0]))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await ev.evaluate(INITIAL_PROGRAM)).correct
    assert children_of(os.getpid()) == before


async def test_closing_interrupts_running_evaluations_and_blocks_new_ones() -> None:
    ev = Evaluator(workers=1, timeout=30.0)
    with pytest.raises(RuntimeError):
        await ev.evaluate(TRIVIAL)
    await ev.start()
    task = asyncio.create_task(ev.evaluate(BAD_PROGRAMS["loop"][0]))
    await asyncio.sleep(0.2)
    await ev.close()
    with pytest.raises(RuntimeError):
        await task
    with pytest.raises(RuntimeError):
        await ev.evaluate(TRIVIAL)
    await ev.close()  # idempotent


async def test_workers_are_recycled_after_max_tasks() -> None:
    async with Evaluator(workers=1, max_tasks_per_worker=2) as ev:
        statuses = [(await ev.evaluate(TRIVIAL)).status for _ in range(5)]
    assert statuses == ["ok"] * 5
