"""Property tests: any valid Program round-trips exactly; invalid ones leave nothing behind."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genesis.database import (
    DatabaseConfig,
    DatabaseURL,
    InvalidProgramError,
    Program,
    create_store,
)
from genesis.database.protocol import ProgramStore
from tests.conftest import BACKENDS, drop_pg_run, new_pg_run_url

TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
               max_size=40)
FLOATS = st.floats(allow_nan=False, allow_infinity=False)
INT32 = st.integers(min_value=0, max_value=2**31 - 1)
JSON = st.recursive(
    st.none() | st.booleans() | FLOATS | st.integers(-(2**62), 2**62) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
JSON_DICT = st.dictionaries(TEXT, JSON, max_size=6)


@st.composite
def programs(draw: st.DrawFn) -> Program:
    """Draw a valid program with every field populated from its whole domain."""
    return Program(
        id=draw(TEXT.filter(bool)) + uuid.uuid4().hex,
        code=draw(st.text(st.characters(blacklist_categories=("Cs",),
                                        blacklist_characters="\x00"), max_size=300)),
        language=draw(st.sampled_from(["python", "cpp", "rust"])),
        parent_id=draw(st.none() | TEXT),
        archive_inspiration_ids=draw(st.lists(TEXT, max_size=3)),
        top_k_inspiration_ids=draw(st.lists(TEXT, max_size=3)),
        island_idx=draw(st.none() | st.integers(0, 50)),
        generation=draw(INT32),
        timestamp=draw(FLOATS),
        code_diff=draw(st.none() | TEXT),
        combined_score=draw(st.none() | FLOATS),
        public_metrics=draw(JSON_DICT),
        private_metrics=draw(JSON_DICT),
        text_feedback=draw(TEXT),
        correct=draw(st.booleans()),
        children_count=draw(INT32),
        complexity=draw(FLOATS),
        embedding=draw(st.lists(FLOATS, max_size=64)),
        embedding_pca_2d=draw(st.lists(FLOATS, max_size=2)),
        embedding_pca_3d=draw(st.lists(FLOATS, max_size=3)),
        embedding_cluster_id=draw(st.none() | st.integers(-5, 5000)),
        migration_history=draw(st.lists(JSON_DICT, max_size=2)),
        # A job id is a string (refusing anything else is tested in test_codec.py).
        metadata=draw(JSON_DICT.map(lambda d: {k: v for k, v in d.items()
                                               if k != "source_job_id"})),
        in_archive=draw(st.booleans()),
        system_prompt_id=draw(st.none() | TEXT),
    )


BAD_VALUES = {
    "combined_score": st.sampled_from([math.nan, math.inf, -math.inf, "1.0", [1.0]]),
    "timestamp": st.sampled_from([math.nan, None, "now"]),
    "complexity": st.sampled_from([math.inf, "high"]),
    "generation": st.sampled_from([-1, 2**40, 1.5, "3", True]),
    "public_metrics": st.sampled_from([{"x": math.nan}, {"x": {"y": [math.inf]}}, [1], "m",
                                       {"s": "\ud800"}, {"o": object()}]),
    "metadata": st.sampled_from([{"x": -math.inf}, {"s": "a\x00b"}, {"k": {1, 2}}]),
    "embedding": st.sampled_from([[1.0, math.nan], ["a"], "0.1"]),
    "code": st.sampled_from([None, 3, "bad\udc80", "nul\x00"]),
    "id": st.sampled_from(["", None, 17]),
    "correct": st.sampled_from(["yes", 2, None]),
}


@pytest.fixture(scope="module", params=BACKENDS)
def portal_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[tuple[BlockingPortal, ProgramStore]]:
    """A store opened once per module, driven from sync hypothesis tests through a portal."""
    if request.param == "sqlite":
        url = DatabaseURL.sqlite(tmp_path_factory.mktemp("props") / "props.db")
    else:
        url = new_pg_run_url()
    with start_blocking_portal() as portal:
        store = create_store(url, DatabaseConfig(pool_max_size=2, sqlite_readers=1))
        portal.call(store.open)
        try:
            yield portal, store
        finally:
            portal.call(store.close)
            if request.param != "sqlite":
                drop_pg_run(url)


async def _read_back(store: ProgramStore, program_id: str) -> Program | None:
    async with store.read() as reader:
        return await reader.get(program_id)


async def _count(store: ProgramStore) -> int:
    async with store.read() as reader:
        return await reader.count()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program=programs())
def test_valid_programs_round_trip_exactly(portal_store, program: Program) -> None:
    portal, store = portal_store
    assert portal.call(store.add, program) == program.id
    assert portal.call(_read_back, store, program.id) == program


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program=programs(), data=st.data())
def test_invalid_programs_are_refused_with_nothing_written(
    portal_store, program: Program, data: st.DataObject
) -> None:
    portal, store = portal_store
    field = data.draw(st.sampled_from(sorted(BAD_VALUES)))
    setattr(program, field, data.draw(BAD_VALUES[field]))
    before = portal.call(_count, store)
    with pytest.raises(InvalidProgramError) as info:
        portal.call(store.add, program)
    assert info.value.field.startswith(field)
    with pytest.raises(InvalidProgramError):
        portal.call(store.add_many, [Program(id=uuid.uuid4().hex, code="ok"), program])
    assert portal.call(_count, store) == before
