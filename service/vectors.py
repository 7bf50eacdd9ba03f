"""Unit rows, and cosines of embedding rows by the one rule every route, monitor, evaluation and benchmark uses:
rows scaled to unit length first (a zero row stays zero, cosine 0), the dot product clipped to [-1, 1] (float
rounding can pass 1)."""

from __future__ import annotations

import numpy as np


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; an all-zero row stays zero instead of becoming NaN."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def pair_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of each row of `a` with the same row of `b` ([n]); a single row of `b` meets every row of `a`."""
    return np.clip((l2_normalize(a) * l2_normalize(b)).sum(axis=1), -1.0, 1.0)


def cosine_matrix(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Cosine of every row of `a` with every row of `b` ([len(a), len(b)]), or of `a` with itself."""
    unit_a = l2_normalize(a)
    unit_b = unit_a if b is None else l2_normalize(b)
    cosines = unit_a @ unit_b.T
    return np.clip(cosines, -1.0, 1.0, out=cosines)
