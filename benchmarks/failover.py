"""Failover and standby reads on a real primary and streaming standby of this machine.

    python -m benchmarks.failover [--tasks 8] [--steps 1000]

For synchronous and asynchronous replication (``benchmarks/replication.py``), concurrent
tasks add programs through a multi-host URL while the primary is killed
(``pg_ctl stop -m immediate``) and the standby promoted: the table gives the time from the
primary's loss to the first add acknowledged after it, the promotion's own time, and the
acknowledged adds missing afterwards. Then the same evolution steps (sample a parent, add a
child) run with every query on the primary and with reads routed to the standby
(``read_hosts``), in the same run: on an asynchronous standby (a read right after the
worker's own add goes to the primary until the standby has replayed it) and on a
synchronous one with ``synchronous_commit=remote_apply`` (the standby has replayed every
acknowledged add).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import time
from typing import Any

import psycopg

from benchmarks.common import realistic_program
from benchmarks.replication import Replication, server_binaries
from genesis.database import AsyncProgramDatabase, DatabaseConfig, DatabaseURL, create_store
from genesis.database.backends.postgres_schema import schema_name

CONFIG = DatabaseConfig(pool_max_size=8, seed=11, write_retry_timeout=60)
WARMUP = 40  # adds acknowledged before the primary is killed


async def _failover(pair: Replication, tasks: int) -> dict[str, Any]:
    """Add from ``tasks`` tasks through a failover; time the outage, count the lost adds."""
    url = pair.url("failover")
    acked: list[tuple[float, str]] = []
    stop = asyncio.Event()
    async with create_store(url, CONFIG) as store:
        async def adder(index: int) -> None:
            rng = random.Random(index)
            while not stop.is_set():
                program_id = await store.add(realistic_program(rng))
                acked.append((time.perf_counter(), program_id))

        running = [asyncio.create_task(adder(i)) for i in range(tasks)]
        while len(acked) < WARMUP:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(pair.kill_primary)
        lost_at = time.perf_counter()
        await asyncio.to_thread(pair.promote)
        promoted_at = time.perf_counter()
        while not any(at > promoted_at for at, _ in acked):
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.gather(*running)
    with psycopg.connect(url.conninfo()) as conn:
        stored = {row[0] for row in conn.execute(
            f"SELECT id FROM {schema_name(url.run)}.programs").fetchall()}
    return {"outage": min(at for at, _ in acked if at > lost_at) - lost_at,
            "promotion": promoted_at - lost_at, "acked": len(acked),
            "lost": sum(program_id not in stored for _, program_id in acked)}


async def _steps(url: DatabaseURL, tasks: int, steps: int) -> tuple[float, int, int]:
    """Steps per second (sample a parent, add its child) from ``tasks`` tasks, and the reads
    that went to the standby and to the primary."""
    store = create_store(url, CONFIG)
    async with AsyncProgramDatabase(CONFIG, store=store) as db:
        rng = random.Random(3)
        for _ in range(20):
            await db.add(realistic_program(rng))
        done = 0

        async def worker(index: int) -> None:
            nonlocal done
            local = random.Random(index)
            while done < steps:
                done += 1
                parent = (await db.sample())[0]
                await db.add(realistic_program(local, parent=parent, generation=1))

        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(tasks)))
        rate = done / (time.perf_counter() - started)
        topology = (await store.stats())["topology"]  # type: ignore[attr-defined]
    return rate, topology.get("standby_reads", 0), topology.get("primary_reads", 0)


def _pair(synchronous: bool) -> Replication:
    folder = server_binaries()
    if folder is None:
        raise SystemExit("the PostgreSQL server binaries (initdb, pg_basebackup) are missing")
    return Replication(folder, synchronous=synchronous).start()


def main(argv: list[str] | None = None) -> None:
    """Run the failovers and the read-routing comparison; print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=8, help="concurrent tasks")
    parser.add_argument("--steps", type=int, default=1000, help="evolution steps per setup")
    args = parser.parse_args(argv)
    logging.getLogger("psycopg").setLevel(logging.CRITICAL)  # the outage's connect errors
    rows = []
    for synchronous in (True, False):
        pair = _pair(synchronous)
        try:
            rows.append((synchronous, asyncio.run(_failover(pair, args.tasks))))
        finally:
            pair.close()
    print(f"Failover ({args.tasks} tasks adding; the primary killed, the standby promoted)\n")
    print("| replication | primary lost -> first add | of which promotion | "
          "acknowledged | lost |")
    print("|---|---:|---:|---:|---:|")
    for synchronous, row in rows:
        print(f"| {'synchronous' if synchronous else 'asynchronous'} | "
              f"{row['outage']:.2f} s | {row['promotion']:.2f} s | {row['acked']:,} | "
              f"{row['lost']:,} |")
    rates = []
    for synchronous, options in ((False, ""), (True, "synchronous_commit=remote_apply")):
        pair = _pair(synchronous)
        try:
            for label, read in (("all on the primary", False), ("on the standby", True)):
                url = pair.url(f"steps_{int(read)}", read=read, options=options)
                rates.append((synchronous, label, asyncio.run(_steps(url, args.tasks,
                                                                     args.steps))))
        finally:
            pair.close()
    print(f"\nEvolution steps ({args.tasks} tasks, {args.steps} steps a setup)\n")
    print("| standby | reads | steps/s | vs all on the primary | reads on the standby / "
          "on the primary |")
    print("|---|---|---:|---:|---:|")
    for index, (synchronous, label, (rate, standby, primary)) in enumerate(rates):
        base = rates[index - index % 2][2][0]
        kind = "synchronous, remote_apply" if synchronous else "asynchronous"
        print(f"| {kind} | {label} | {rate:,.0f} | {rate / base:.2f}x | "
              f"{standby:,} / {primary:,} |")

if __name__ == "__main__":
    main()
