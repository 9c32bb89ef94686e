"""Low-dimensional views of a run's embeddings: PCA projections and k-means clusters.

ShinkaEvolve stores, for every embedded program, its 2-D and 3-D PCA projection and a
cluster id (its web UI plots them). Here the principal axes come from streamed sums (the
count, the sum and ``X^T X`` of the vectors, batch by batch), so a run's embeddings never
need to be in memory at once; the clusters are k-means over the first principal components.
Only the vectors of the most common length take part.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["EmbeddingStats", "PrincipalAxes", "kmeans"]

COMPONENTS = 10  # principal components kept for clustering (2 and 3 of them are stored)


@dataclass
class EmbeddingStats:
    """Running count, sum and Gram matrix of embeddings, per vector length."""

    sums: dict[int, list[np.ndarray | int]] = field(default_factory=dict)

    def add(self, blobs: Sequence[bytes]) -> None:
        """Fold a batch of float64 blobs into the sums."""
        by_dim: dict[int, list[np.ndarray]] = {}
        for blob in blobs:
            vector = np.frombuffer(blob, dtype="<f8")
            by_dim.setdefault(vector.size, []).append(vector)
        for dim, vectors in by_dim.items():
            matrix = np.vstack(vectors)
            entry = self.sums.setdefault(dim, [0, np.zeros(dim), np.zeros((dim, dim))])
            entry[0] = int(entry[0]) + len(vectors)
            entry[1] = entry[1] + matrix.sum(axis=0)
            entry[2] = entry[2] + matrix.T @ matrix

    def axes(self, components: int = COMPONENTS) -> PrincipalAxes | None:
        """Return the principal axes of the most common length (None without embeddings)."""
        if not self.sums:
            return None
        dim, (count, total, gram) = max(self.sums.items(), key=lambda item: item[1][0])
        count = int(count)
        mean = np.asarray(total) / count
        covariance = np.asarray(gram) / count - np.outer(mean, mean)
        values, vectors = np.linalg.eigh(covariance)
        order = np.argsort(values)[::-1][:components]
        basis = vectors[:, order].T
        for row in basis:  # a deterministic sign: the largest coordinate is positive
            if row[np.argmax(np.abs(row))] < 0:
                row *= -1
        return PrincipalAxes(dim=dim, count=count, mean=mean, basis=basis)


@dataclass(frozen=True)
class PrincipalAxes:
    """The mean and the leading principal directions of one embedding length."""

    dim: int
    count: int
    mean: np.ndarray
    basis: np.ndarray

    def project(self, blobs: Sequence[bytes]) -> np.ndarray:
        """Coordinates of float64 blobs of this length on the axes (padded to 3 columns)."""
        matrix = np.vstack([np.frombuffer(blob, dtype="<f8") for blob in blobs])
        coords = (matrix - self.mean) @ self.basis.T
        if coords.shape[1] < 3:
            coords = np.hstack([coords, np.zeros((len(coords), 3 - coords.shape[1]))])
        return coords


def kmeans(points: np.ndarray, clusters: int, seed: int | None = None,
           iterations: int = 50) -> np.ndarray:
    """Label ``points`` with ``clusters`` k-means clusters (k-means++ start, seeded)."""
    rng = np.random.default_rng(seed)
    count = len(points)
    clusters = max(1, min(clusters, count))
    centres = [points[rng.integers(count)]]
    for _ in range(1, clusters):
        distance = np.min([((points - c) ** 2).sum(axis=1) for c in centres], axis=0)
        total = distance.sum()
        pick = rng.choice(count, p=distance / total) if total > 0 else rng.integers(count)
        centres.append(points[pick])
    centre = np.array(centres)
    labels = np.zeros(count, dtype=int)
    for _ in range(iterations):
        distances = ((points[:, None, :] - centre[None, :, :]) ** 2).sum(axis=2)
        new_labels = distances.argmin(axis=1)
        if np.array_equal(new_labels, labels) and _ > 0:
            break
        labels = new_labels
        for index in range(clusters):
            members = points[labels == index]
            if len(members):
                centre[index] = members.mean(axis=0)
    return labels
