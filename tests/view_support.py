"""A small seeded run for the view's tests: lineage, islands, archive, a hostile program."""

from __future__ import annotations

import random
import time

from genesis.database import (
    AsyncProgramDatabase,
    DatabaseConfig,
    DatabaseURL,
    Program,
    create_store,
)

SCRIPT = "<script>window.__pwned = 1</script>"
CONFIG = dict(num_islands=2, archive_size=8, migration_interval=0, pool_max_size=2,
              sqlite_readers=2, seed=7)


def _code(rng: random.Random, generation: int) -> str:
    lines = [f"    x{i} = {rng.random():.4f} * {generation + 1}" for i in range(rng.randint(4, 9))]
    return "def construct():\n" + "\n".join(lines) + "\n    return x0\n"


def program(rng: random.Random, parent: Program | None, index: int, **fields: object) -> Program:
    """Return a program descending from ``parent`` (a root when None)."""
    generation = parent.generation + 1 if parent else 0
    values: dict[str, object] = dict(
        id=f"prog-{index:04d}", code=_code(rng, generation),
        parent_id=parent.id if parent else None, generation=generation,
        island_idx=parent.island_idx if parent else None,
        combined_score=round(0.5 + 0.05 * generation + rng.random() * 0.3, 4),
        correct=rng.random() < 0.8 or parent is None,
        public_metrics={"sum_radii": rng.random() * 2.6, "valid": 1},
        private_metrics={"eval_seconds": rng.random()},
        text_feedback="fine" if rng.random() < 0.5 else "",
        timestamp=time.time() - 540 + 9 * index)
    values.update(fields)
    return Program(**values)  # type: ignore[arg-type]


async def seed_run(url: DatabaseURL, count: int = 60, seed: int = 3) -> dict[str, object]:
    """Write ``count`` programs (one of them with ``<script>`` in code and feedback)."""
    rng = random.Random(seed)
    config = DatabaseConfig(**CONFIG)
    async with AsyncProgramDatabase(config, store=create_store(url, config)) as db:
        root = program(rng, None, 0)
        await db.add(root)
        lines = [[p] for p in await db.get_programs_by_generation(0)]  # the root and its copies
        stored = [root]
        for index in range(1, count):
            line = lines[index % len(lines)]
            parent = rng.choice(line[-6:])
            extra = {}
            if index == count // 2:
                extra = dict(code=f"# {SCRIPT}\n" + parent.code, text_feedback=f"saw {SCRIPT}",
                             public_metrics={"note": SCRIPT})
            child = program(rng, parent, index, **extra)
            await db.add(child)
            line.append(child)
            stored.append(child)
        best = await db.get_best_program()
        summary = await db.summary()
    return {"ids": [p.id for p in stored], "hostile": stored[count // 2].id,
            "best": best.id if best else None, "programs": summary["programs"],
            "correct": summary["correct"]}

