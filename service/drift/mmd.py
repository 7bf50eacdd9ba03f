"""The kernel two-sample test behind embedding drift, and the floors that make it hold on ordered traffic.

Gretton et al., "A Kernel Two-Sample Test" (JMLR 13, 2012): the unbiased MMD² with a Gaussian kernel whose bandwidth
is the reference's median pairwise distance (alibi-detect's `MMDDrift` default, `configure_kernel_from_x_ref`), and
its p-value by permutation: the share of random relabellings of the pooled vectors with an MMD² at least as large.
One kernel matrix per test, the permutations reuse it. Pure functions: no state, no locks.
"""

from __future__ import annotations

import numpy as np

SEED = 20261130
FLOOR_DIRECTIONS = 3  # principal directions the reference is sorted along for its mix floor
FLOOR_PARTS = 10  # contiguous parts per direction (a window of one topic: a tenth of the reference)
FLOOR_PART_MIN = 50  # ... each of at least this many vectors where the reference allows (fewer parts, at least 2)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def mmd_test(
    x: np.ndarray, y: np.ndarray, bandwidth: float, permutations: int, seed: int = SEED, floor: float = 0.0
) -> tuple[float, float]:
    """(unbiased MMD² of x vs y, permutation p-value) with k(a, b) = exp(−‖a − b‖² / (2·bandwidth²)). `floor`: the
    MMD² that counts as no drift (the reference's own mix variation, `mix_floor`): the p-value is that of MMD² −
    floor, the share of relabellings whose MMD² reaches it."""
    n, m = x.shape[0], y.shape[0]
    rng = np.random.default_rng(seed)
    labels = np.zeros((permutations + 1, n + m))
    labels[0, :n] = 1.0  # row 0: the observed split; the others: random relabellings
    for row in labels[1:]:
        row[rng.permutation(n + m)[:n]] = 1.0
    mmd2 = split_mmd(kernel(np.concatenate([x, y]), bandwidth), labels)
    return float(mmd2[0]), float((1 + np.sum(mmd2[1:] >= mmd2[0] - floor)) / (1 + permutations))


def kernel(z: np.ndarray, bandwidth: float) -> np.ndarray:
    """The Gaussian kernel matrix of the rows of z, its diagonal zeroed (the unbiased estimator leaves i = j out)."""
    z = z.astype(np.float64)
    sq = np.maximum((z * z).sum(1)[:, None] + (z * z).sum(1)[None, :] - 2.0 * z @ z.T, 0.0)
    k = np.exp(-sq / (2.0 * bandwidth**2))
    np.fill_diagonal(k, 0.0)
    return k


def split_mmd(k: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Unbiased MMD² of every split of the kernel's rows: each row of `labels` marks one side with 1.0."""
    kx = labels @ k  # one matrix product serves every split
    n = labels.sum(1)
    m = k.shape[0] - n
    within_x = (kx * labels).sum(1)
    across = (kx * (1.0 - labels)).sum(1)
    within_y = k.sum() - within_x - 2.0 * across
    return within_x / (n * (n - 1)) + within_y / (m * (m - 1)) - 2.0 * across / (n * m)


def mix_floor(units: np.ndarray, bandwidth: float, ordered: bool = False) -> float:
    """How far a window of one topic of the reference's own domain can be from the reference: the largest MMD² of a
    part of it against the rest, the parts contiguous along each of its `FLOOR_DIRECTIONS` principal directions.

    Real traffic is ordered (a relatedness set in sections of one source, intents in runs, reviews by site); a window
    of it holds a few topics, and its MMD² against a reference of all of them is large however in-domain it is: the
    permutation test assumes a shuffled window. NannyML sets its limits from the reference's chunk-to-chunk variation
    in its natural order; a sample has no order to keep, so its topics are made contiguous by sorting it along its
    main directions of variation. A window counts as drift only by going significantly beyond that (`mmd_test`'s
    `floor`): another domain or language goes far beyond it, a change of mix within the domain does not.

    `ordered`: the reference has a natural order (learned from traffic, uploaded in file order), and its contiguous
    parts as they arrived count too: NannyML's chunk-to-chunk variation, taken as it is."""
    n = units.shape[0]
    parts = max(2, min(FLOOR_PARTS, n // FLOOR_PART_MIN))
    centred = units.astype(np.float64) - units.mean(axis=0)
    directions = np.linalg.svd(centred, full_matrices=False)[2][:FLOOR_DIRECTIONS]
    orders = [np.argsort(centred @ direction) for direction in directions] + ([np.arange(n)] if ordered else [])
    labels = np.zeros((len(orders) * parts, n))
    for i, part in enumerate(p for order in orders for p in np.array_split(order, parts)):
        labels[i, part] = 1.0
    return max(float(split_mmd(kernel(units, bandwidth), labels).max()), 0.0)


def centroid_test(x: np.ndarray, y: np.ndarray, permutations: int, seed: int = SEED) -> tuple[float, float]:
    """(distance between the mean vectors, permutation p-value): Evidently's `distance` method made a test; the
    cheaper alternative bench.drift compares the MMD test with."""
    z = np.concatenate([x, y]).astype(np.float64)
    n, rng = x.shape[0], np.random.default_rng(seed)
    splits = [np.arange(z.shape[0])] + [rng.permutation(z.shape[0]) for _ in range(permutations)]
    d = np.array([np.linalg.norm(z[s[:n]].mean(0) - z[s[n:]].mean(0)) for s in splits])
    return float(d[0]), float((1 + np.sum(d[1:] >= d[0])) / (1 + permutations))


def median_distance(x: np.ndarray) -> float:
    sq = np.maximum((x * x).sum(1)[:, None] + (x * x).sum(1)[None, :] - 2.0 * x @ x.T, 0.0)
    return float(np.sqrt(np.median(sq[np.triu_indices(x.shape[0], 1)]))) or 1.0
