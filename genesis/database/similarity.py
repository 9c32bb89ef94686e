"""Cosine similarity of a query embedding against an island's programs.

Embeddings are immutable once stored, so each island's normalised vectors are kept in a
float32 matrix and refreshed incrementally: a call lists the island's current ids (an
index-only query), fetches only the blobs it has not seen, and computes every similarity
in one matrix-vector product. Islands are evicted least-recently-used beyond a memory
budget. Results follow ShinkaEvolve's rules: a vector of another length, or a zero
vector, has similarity 0.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from genesis.database.protocol import StoreReader

__all__ = ["SimilarityIndex"]


@dataclass
class _IslandMatrix:
    ids: list[str]
    rows: dict[str, np.ndarray]
    groups: dict[int, tuple[np.ndarray, np.ndarray]]

    @property
    def nbytes(self) -> int:
        return sum(matrix.nbytes for _, matrix in self.groups.values())


def _unit(blob: bytes) -> np.ndarray:
    vector = np.frombuffer(blob, dtype="<f8")
    norm = float(np.linalg.norm(vector))
    return (vector / norm if norm > 0 else np.zeros_like(vector)).astype(np.float32)


class SimilarityIndex:
    """Per-process cache of island embedding matrices with a memory budget."""

    def __init__(self, max_bytes: int = 512 * 1024 * 1024) -> None:
        self._max_bytes = max_bytes
        self._islands: OrderedDict[int, _IslandMatrix] = OrderedDict()

    async def similarities(
        self, reader: StoreReader, query: Sequence[float], island: int
    ) -> tuple[list[str], np.ndarray]:
        """Return the island's program ids (sorted) and their cosine similarity to ``query``."""
        ids = await reader.embedding_ids(island)
        cached = self._islands.get(island)
        if cached is None or cached.ids != ids:
            cached = await self._refresh(reader, ids, cached)
            self._islands[island] = cached
            self._evict()
        self._islands.move_to_end(island)
        sims = np.zeros(len(ids), dtype=np.float64)
        q = np.asarray(query, dtype=np.float64)
        norm = float(np.linalg.norm(q))
        group = cached.groups.get(len(q))
        if group is not None and norm > 0:
            positions, matrix = group
            sims[positions] = matrix @ (q / norm).astype(np.float32)
        return ids, sims

    async def _refresh(
        self, reader: StoreReader, ids: list[str], old: _IslandMatrix | None
    ) -> _IslandMatrix:
        rows = {pid: old.rows[pid] for pid in ids if old is not None and pid in old.rows}
        missing = [pid for pid in ids if pid not in rows]
        if missing:
            blobs = await reader.embeddings(missing)
            rows.update({pid: _unit(blob) for pid, blob in blobs.items()})
        by_dim: dict[int, list[int]] = {}
        for position, pid in enumerate(ids):
            if pid in rows:
                by_dim.setdefault(len(rows[pid]), []).append(position)
        groups = {
            dim: (np.array(positions), np.stack([rows[ids[p]] for p in positions]))
            for dim, positions in by_dim.items()
        }
        for positions, matrix in groups.values():  # rows become views: one copy in memory
            for index, position in enumerate(positions):
                rows[ids[position]] = matrix[index]
        return _IslandMatrix(ids, rows, groups)

    def _evict(self) -> None:
        while len(self._islands) > 1 and \
                sum(m.nbytes for m in self._islands.values()) > self._max_bytes:
            self._islands.popitem(last=False)

    def clear(self) -> None:
        """Forget every cached matrix."""
        self._islands.clear()
