"""Cosine similarity of a query embedding against an island's programs.

Embeddings are immutable once stored, so each island keeps its normalised vectors in
float32 matrices (one per vector length) that only grow: a call lists the island's
current ids together with the blobs of programs newer than any it has seen (one query;
on PostgreSQL only those newcomers while the island's counters show that no member left
and none arrived unseen), appends them, and computes every similarity with one
matrix-vector product (``einsum`` rather than BLAS, whose worker threads keep spinning
after each call and take a whole core
from the event loop). Programs that left the island leave unused rows behind, compacted
away when they outnumber the live ones. Islands are evicted least-recently-used beyond a
memory budget. As in ShinkaEvolve, a vector of another length, or a zero vector, has
similarity 0.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from genesis.database.protocol import StoreReader

__all__ = ["SimilarityIndex"]


@dataclass
class _Block:
    """Normalised float32 vectors of one length, in arrival order."""

    matrix: np.ndarray
    count: int = 0

    def append(self, vector: np.ndarray) -> int:
        if self.count == len(self.matrix):
            grown = np.empty((max(64, 2 * len(self.matrix)), self.matrix.shape[1]), np.float32)
            grown[: self.count] = self.matrix[: self.count]
            self.matrix = grown
        self.matrix[self.count] = vector
        self.count += 1
        return self.count - 1


@dataclass
class _Island:
    ids: list[str] = field(default_factory=list)
    where: dict[str, tuple[int, int]] = field(default_factory=dict)
    blocks: dict[int, _Block] = field(default_factory=dict)
    selection: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    seen_seq: int = -1  # every program of the run up to this sequence number has been seen
    departures: int | None = None  # the island's departures counter when ``ids`` were read

    @property
    def known(self) -> tuple[int, int] | None:
        """(departures, member count) as last read, if the store counts departures."""
        return None if self.departures is None else (self.departures, len(self.ids))

    @property
    def nbytes(self) -> int:
        return sum(block.matrix.nbytes for block in self.blocks.values())

    def add(self, pid: str, blob: bytes) -> None:
        vector = np.frombuffer(blob, dtype="<f8")
        norm = float(np.linalg.norm(vector))
        unit = (vector / norm if norm > 0 else np.zeros_like(vector)).astype(np.float32)
        block = self.blocks.setdefault(len(unit), _Block(np.empty((0, len(unit)), np.float32)))
        self.where[pid] = (len(unit), block.append(unit))

    def select(self, ids: list[str]) -> None:
        if sum(b.count for b in self.blocks.values()) > 2 * len(ids) + 1024:
            self._compact(ids)
        located = np.array([self.where.get(pid, (-1, -1)) for pid in ids],
                           dtype=np.int64).reshape(-1, 2)
        self.selection = {}
        for dim in self.blocks:
            positions = np.flatnonzero(located[:, 0] == dim)
            self.selection[dim] = (positions, located[positions, 1])
        self.ids = ids

    def _compact(self, ids: list[str]) -> None:
        live = [pid for pid in ids if pid in self.where]
        old_where, old_blocks = self.where, self.blocks
        self.where, self.blocks = {}, {}
        for pid in live:
            dim, row = old_where[pid]
            block = self.blocks.setdefault(dim, _Block(np.empty((0, dim), np.float32)))
            self.where[pid] = (dim, block.append(old_blocks[dim].matrix[row]))


class SimilarityIndex:
    """Per-process cache of island embedding matrices with a memory budget."""

    def __init__(self, max_bytes: int = 512 * 1024 * 1024) -> None:
        self._max_bytes = max_bytes
        self._islands: OrderedDict[int, _Island] = OrderedDict()

    async def similarities(
        self, reader: StoreReader, query: Sequence[float], island: int
    ) -> tuple[list[str], np.ndarray]:
        """Return the island's program ids (sorted) and their cosine similarity to ``query``.

        One round trip; a second one only for programs that migrated in since the last call
        (older than the newest seen, so their blobs did not come with the first).
        """
        cache = self._islands.setdefault(island, _Island())
        self._islands.move_to_end(island)
        (found,) = await reader.fetch(
            reader.q_island_embeddings(island, cache.seen_seq, cache.known))
        rows = found.members
        ids = [pid for pid, _, _ in rows] if found.full else \
            sorted([*cache.ids, *(pid for pid, _, _ in rows)])
        cache.departures = found.departures
        if cache.ids != ids:
            for pid, seq, blob in rows:
                if blob is not None and pid not in cache.where:
                    cache.add(pid, blob)
                cache.seen_seq = max(cache.seen_seq, seq)
            missing = [pid for pid in ids if pid not in cache.where]
            if missing:
                for pid, blob in (await reader.embeddings(missing)).items():
                    cache.add(pid, blob)
            cache.select(ids)
            self._evict()
        sims = np.zeros(len(ids), dtype=np.float64)
        q = np.asarray(query, dtype=np.float64)
        norm = float(np.linalg.norm(q))
        if len(q) in cache.selection and norm > 0:
            positions, rows_at = cache.selection[len(q)]
            block = cache.blocks[len(q)]
            unit = (q / norm).astype(np.float32)
            sims[positions] = np.einsum("ij,j->i", block.matrix[: block.count], unit)[rows_at]
        return ids, sims

    def _evict(self) -> None:
        while len(self._islands) > 1 and \
                sum(island.nbytes for island in self._islands.values()) > self._max_bytes:
            self._islands.popitem(last=False)

    def clear(self) -> None:
        """Forget every cached matrix."""
        self._islands.clear()
