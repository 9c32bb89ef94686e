"""Alternative circle-packing helpers, as Python source, for the programmatic mutator.

Each :class:`Strategy` is a small module whose top-level function named ``slot`` can
replace (or be inserted as) the function of the same name in an evolving program. The
evolving programs follow :data:`genesis.workload.circles.INITIAL_PROGRAM`: they define
``place_centers()``, ``compute_radii(centers)`` and ``construct_packing()`` and may gain a
``refine(centers)`` step, relying on the shared helpers ``wall_distances``,
``pairwise_distances`` and ``N_CIRCLES``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Strategy:
    """Source of one alternative implementation of the top-level function ``slot``."""

    slot: str
    name: str
    source: str


_HEX_ROWS = '''
def place_centers():
    """Staggered rows, like a hexagonal lattice squeezed into the square."""
    row_counts = [5, 6, 5, 5, 5]
    margin = 0.1
    shift = 0.05
    ys = np.linspace(margin, 1.0 - margin, len(row_counts))
    points = []
    for row, (count, y) in enumerate(zip(row_counts, ys)):
        offset = shift if row % 2 else -shift
        xs = np.linspace(margin, 1.0 - margin, count)
        if count < max(row_counts):
            xs = xs + offset
        points.extend((x, y) for x in xs)
    return np.clip(np.array(points[:N_CIRCLES]), 0.01, 0.99)
'''

_THREE_RINGS = '''
def place_centers():
    """A centre circle and three concentric rings with their own phases."""
    counts = [6, 9, 10]
    ring_radii = [0.17, 0.3, 0.43]
    phases = [0.0, 0.3, 0.15]
    points = [(0.5, 0.5)]
    for count, ring, phase in zip(counts, ring_radii, phases):
        for k in range(count):
            angle = phase + 2.0 * np.pi * k / count
            points.append((0.5 + ring * np.cos(angle), 0.5 + ring * np.sin(angle)))
    return np.clip(np.array(points[:N_CIRCLES]), 0.02, 0.98)
'''

_GREEDY = '''
def place_centers():
    """Add centres one by one at the grid point with the most free room."""
    resolution = 41
    wall_weight = 2.0
    ticks = np.linspace(0.02, 0.98, resolution)
    grid = np.array([(x, y) for y in ticks for x in ticks])
    room = wall_weight * wall_distances(grid)
    chosen = []
    for _ in range(N_CIRCLES):
        best = int(np.argmax(room))
        chosen.append(grid[best])
        room = np.minimum(room, np.sqrt(((grid - grid[best]) ** 2).sum(axis=1)))
    return np.array(chosen)
'''

_GROWTH = '''
def compute_radii(centers):
    """Grow circles one at a time into the room their neighbours leave, a few sweeps."""
    sweeps = 3
    dist = pairwise_distances(centers)
    wall = wall_distances(centers)
    radii = np.zeros(len(centers))
    order = np.argsort(-wall)
    for _ in range(sweeps):
        for i in order:
            radii[i] = max(0.0, min(wall[i], float((dist[i] - radii).min())))
    return radii
'''

_PAIR_SCALING = '''
def compute_radii(centers):
    """Start each circle touching its nearest wall, then shrink overlapping pairs."""
    radii = np.maximum(wall_distances(centers), 0.0)
    dist = pairwise_distances(centers)
    n = len(centers)
    for i in range(n):
        for j in range(i + 1, n):
            total = radii[i] + radii[j]
            if total > dist[i, j]:
                scale = dist[i, j] / total
                radii[i] *= scale
                radii[j] *= scale
    return radii
'''

_HILL_CLIMB = '''
def refine(centers):
    """Jitter one centre at a time and keep the move when the sum of radii grows."""
    iterations = 150
    step = 0.03
    cooling = 0.995
    rng = np.random.default_rng(0)
    best = np.array(centers, dtype=float)
    best_score = compute_radii(best).sum()
    for _ in range(iterations):
        trial = best.copy()
        i = rng.integers(len(trial))
        trial[i] = np.clip(trial[i] + rng.normal(0.0, step, 2), 0.0, 1.0)
        score = compute_radii(trial).sum()
        if score > best_score:
            best, best_score = trial, score
        step *= cooling
    return best
'''

_REPEL = '''
def refine(centers):
    """Push every centre away from its nearest neighbour while that helps."""
    rounds = 40
    step = 0.01
    best = np.array(centers, dtype=float)
    best_score = compute_radii(best).sum()
    for _ in range(rounds):
        dist = pairwise_distances(best)
        nearest = dist.argmin(axis=1)
        away = best - best[nearest]
        norm = np.maximum(np.linalg.norm(away, axis=1, keepdims=True), 1e-12)
        trial = np.clip(best + step * away / norm, 0.0, 1.0)
        score = compute_radii(trial).sum()
        if score <= best_score:
            step *= 0.5
            continue
        best, best_score = trial, score
    return best
'''

_RESCALED = '''
def construct_packing():
    """Try the layout at several scales about the centre and keep the best one."""
    base = place_centers()
    best_centers, best_radii = base, compute_radii(base)
    for scale in np.linspace(0.8, 2.0, 13):
        centers = np.clip(0.5 + scale * (base - 0.5), 0.0, 1.0)
        radii = compute_radii(centers)
        if radii.sum() > best_radii.sum():
            best_centers, best_radii = centers, radii
    return best_centers, best_radii
'''

_REFINED = (
    '''
def construct_packing():
    """Place the centres, improve them locally, then size the circles."""
    centers = refine(place_centers())
    radii = compute_radii(centers)
    return centers, radii
'''
    + _HILL_CLIMB
)

CIRCLE_STRATEGIES: tuple[Strategy, ...] = (
    Strategy("place_centers", "hex_rows", _HEX_ROWS),
    Strategy("place_centers", "three_rings", _THREE_RINGS),
    Strategy("place_centers", "greedy_room", _GREEDY),
    Strategy("compute_radii", "sweep_growth", _GROWTH),
    Strategy("compute_radii", "pair_scaling", _PAIR_SCALING),
    Strategy("refine", "hill_climb", _HILL_CLIMB),
    Strategy("refine", "repel", _REPEL),
    Strategy("construct_packing", "rescaled", _RESCALED),
    Strategy("construct_packing", "refined", _REFINED),
)
"""The built-in library used by :class:`~genesis.workload.mutate.ProgrammaticMutator`."""
