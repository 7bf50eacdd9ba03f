"""Embedding drift: live embeddings per route family against a sample of the validation texts' embeddings.

Scores can stay level while the inputs wander (a new topic whose pairs happen to score like the old ones); the
embeddings themselves show it. The test is the kernel two-sample test of Gretton et al., "A Kernel Two-Sample Test"
(JMLR 13, 2012): the unbiased MMD² with a Gaussian kernel whose bandwidth is the reference's median pairwise
distance (alibi-detect's `MMDDrift` default, `configure_kernel_from_x_ref`), and its p-value by permutation: the
share of random relabellings of the pooled vectors with an MMD² at least as large. One kernel matrix per check, the
permutations reuse it. The request path only appends vectors to a bounded window; the checking thread tests.
The windows go into the drift state as int8 rows (like the sample): at most one window of `window` × dim bytes per
route family, and the families are a fixed set of names, so the state stays bounded (≈ 1.5 MB at 500 × 384 for
all seven).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from service.datasets import file_sha256
from service.drift.config import LEVELS, DriftConfig, Limit
from service.drift.models import EmbeddingReference, EmbeddingReport, FamilyReport
from service.drift.status import PENDING, StatusTracker

SAMPLE_FILE = "embedding_sample.npy"  # int8 rows of unit vectors × 127
SAMPLE_META = "embedding_sample.json"  # the encoder.onnx it came from: a sample of another encoder is not used
ENCODER_FILE = "encoder.onnx"
SIMILARITY_FAMILY = "similarity"  # the family every /similarity stream's requests embed in
INGEST = "ingest"  # item upserts: the operator's corpus, written in bulk, not traffic the model answers
SEED = 20261130
FLOOR_DIRECTIONS = 3  # principal directions the reference is sorted along for its mix floor
FLOOR_PARTS = 10  # contiguous parts per direction (a window of one topic: a tenth of the reference)
FLOOR_PART_MIN = 50  # ... each of at least this many vectors where the reference allows (fewer parts, at least 2)

log = logging.getLogger("service.drift")
_family: ContextVar[str] = ContextVar("o2v_route_family", default="other")


@contextmanager
def in_family(name: str) -> Iterator[None]:
    """Embeddings and token rows recorded inside the block belong to route family `name` (the API sets it per
    request: service/api/route_family.py)."""
    token = _family.set(name)
    try:
        yield
    finally:
        _family.reset(token)


def current_family() -> str:
    return _family.get()


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def to_int8(units: np.ndarray) -> np.ndarray:
    """Unit rows as int8 (×127): 1/4 of float32, cosines within about 1 % — enough for a kernel test."""
    return np.round(units * 127).astype(np.int8)


def from_int8(rows: np.ndarray) -> np.ndarray:
    """to_int8's rows back as float32 unit rows."""
    return unit_rows(rows.astype(np.float32) / 127.0)


def write_sample(model_dir: str | Path, vectors: np.ndarray, texts: str) -> Path:
    """The validation sample as to_int8 rows, and which encoder made it."""
    folder = Path(model_dir)
    np.save(folder / SAMPLE_FILE, to_int8(unit_rows(vectors)))
    meta = {"encoder_sha256": _encoder_sha(folder), "n": int(vectors.shape[0]), "texts": texts}
    (folder / SAMPLE_META).write_text(json.dumps(meta))
    return folder / SAMPLE_FILE


def load_sample(model_dir: str | Path | None) -> np.ndarray | None:
    """The sample, or None without one or when it came from another encoder.onnx (a re-exported model): its
    embeddings live in another space, and every window would read as drift."""
    folder = Path(model_dir) if model_dir is not None else None
    if folder is None or not (folder / SAMPLE_FILE).is_file() or not (folder / SAMPLE_META).is_file():
        return None
    if json.loads((folder / SAMPLE_META).read_text()).get("encoder_sha256") != _encoder_sha(folder):
        log.warning(json.dumps({"event": "drift_embedding_sample_stale", "path": str(folder / SAMPLE_FILE)}))
        return None
    return from_int8(np.load(folder / SAMPLE_FILE, allow_pickle=False))


def pack_rows(vectors: np.ndarray) -> str:
    """Unit rows as int8 (×127), base64: how a window goes into the JSON state."""
    return base64.b64encode(to_int8(unit_rows(vectors)).tobytes()).decode("ascii")


def unpack_rows(text: str, dim: int) -> np.ndarray:
    return from_int8(np.frombuffer(base64.b64decode(text), dtype=np.int8).reshape(-1, dim))


def _encoder_sha(folder: Path) -> str | None:
    return file_sha256(folder / ENCODER_FILE) if (folder / ENCODER_FILE).is_file() else None


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
    mmd2 = _split_mmd(_kernel(np.concatenate([x, y]), bandwidth), labels)
    return float(mmd2[0]), float((1 + np.sum(mmd2[1:] >= mmd2[0] - floor)) / (1 + permutations))


def _kernel(z: np.ndarray, bandwidth: float) -> np.ndarray:
    """The Gaussian kernel matrix of the rows of z, its diagonal zeroed (the unbiased estimator leaves i = j out)."""
    z = z.astype(np.float64)
    sq = np.maximum((z * z).sum(1)[:, None] + (z * z).sum(1)[None, :] - 2.0 * z @ z.T, 0.0)
    k = np.exp(-sq / (2.0 * bandwidth**2))
    np.fill_diagonal(k, 0.0)
    return k


def _split_mmd(k: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Unbiased MMD² of every split of the kernel's rows: each row of `labels` marks one side with 1.0."""
    kx = labels @ k  # one matrix product serves every split
    n = labels.sum(1)
    m = k.shape[0] - n
    within_x = (kx * labels).sum(1)
    across = (kx * (1.0 - labels)).sum(1)
    within_y = k.sum() - within_x - 2.0 * across
    return within_x / (n * (n - 1)) + within_y / (m * (m - 1)) - 2.0 * across / (n * m)


def mix_floor(units: np.ndarray, bandwidth: float) -> float:
    """How far a window of one topic of the reference's own domain can be from the reference: the largest MMD² of a
    part of it against the rest, the parts contiguous along each of its `FLOOR_DIRECTIONS` principal directions.

    Real traffic is ordered (a relatedness set in sections of one source, intents in runs, reviews by site); a window
    of it holds a few topics, and its MMD² against a reference of all of them is large however in-domain it is: the
    permutation test assumes a shuffled window. NannyML sets its limits from the reference's chunk-to-chunk variation
    in its natural order; a sample has no order to keep, so its topics are made contiguous by sorting it along its
    main directions of variation. A window counts as drift only by going significantly beyond that (`mmd_test`'s
    `floor`): another domain or language goes far beyond it, a change of mix within the domain does not."""
    n = units.shape[0]
    parts = max(2, min(FLOOR_PARTS, n // FLOOR_PART_MIN))
    centred = units.astype(np.float64) - units.mean(axis=0)
    directions = np.linalg.svd(centred, full_matrices=False)[2][:FLOOR_DIRECTIONS]
    labels = []
    for direction in directions:
        for part in np.array_split(np.argsort(centred @ direction), parts):
            row = np.zeros(n)
            row[part] = 1.0
            labels.append(row)
    return max(float(_split_mmd(_kernel(units, bandwidth), np.array(labels)).max()), 0.0)


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


@dataclass(frozen=True)
class _Reference:
    """What a family's windows are tested against: unit rows, the kernel's bandwidth, and where they came from."""

    vectors: np.ndarray
    bandwidth: float
    source: str
    kind: str  # `card` (the model's validation sample) or `uploaded` (a team's baseline texts)
    floor: float  # MMD² of a window of one of its own topics: a change of mix, not drift (`mix_floor`)

    @classmethod
    def of(cls, vectors: np.ndarray, size: int, source: str, kind: str) -> _Reference:
        rng = np.random.default_rng(SEED)
        keep = np.sort(rng.choice(vectors.shape[0], min(size, vectors.shape[0]), replace=False))
        units = unit_rows(vectors[keep])
        bandwidth = median_distance(units)
        return cls(units, bandwidth, source, kind, mix_floor(units, bandwidth))


@dataclass
class _Family:
    vectors: deque[np.ndarray]
    tracker: StatusTracker
    added: int = 0
    checked: int = 0
    checked_at: float = -math.inf  # time.monotonic() of the last test
    result: dict[str, Any] | None = None


class EmbeddingMonitor:
    """Per route family, the last `window` unit embeddings (float16) and a status from the MMD test."""

    def __init__(
        self,
        reference: np.ndarray,
        window: int,
        min_samples: int,
        check_every: int,
        permutations: int,
        limit: Limit,
        confirm: int,
        clear: int,
        interval_s: float = 0.0,
    ) -> None:
        self.card = _Reference.of(reference, window, SAMPLE_FILE, "card")
        self.reference, self.bandwidth = self.card.vectors, self.card.bandwidth
        self.uploaded: dict[str, _Reference] = {}  # per family: a team's own texts (an uploaded baseline's pairs)
        self.window, self.min_samples, self.check_every = window, min_samples, check_every
        self.permutations, self.limit, self.confirm, self.clear = permutations, limit, confirm, clear
        self.interval_s = interval_s  # a family is tested at most this often: the test's cost is bounded in time
        self.lock = threading.Lock()
        self.checking = threading.Lock()
        """Held through a whole round of checks (claim and test): a caller that comes while another thread
        checks waits for its results, so `run_due_checks()` returning means every due test is reported."""
        self.families: dict[str, _Family] = {}
        self.reference_id = hashlib.sha256(to_int8(self.reference).tobytes()).hexdigest()[:16]

    @classmethod
    def of(cls, reference: np.ndarray, c: DriftConfig) -> EmbeddingMonitor:
        """With the O2V_DRIFT_EMBED_* settings."""
        return cls(
            reference,
            c.embed_window,
            c.embed_min_samples,
            c.embed_check_every,
            c.embed_permutations,
            c.embed_limit,
            c.confirm_checks,
            c.clear_checks,
            c.embed_check_interval_s,
        )

    def _family(self, name: str) -> _Family:
        family = self.families.get(name)
        if family is None:
            family = _Family(deque(maxlen=self.window), StatusTracker(self.confirm, self.clear))
            self.families[name] = family
        return family

    def uploaded_reference(self, vectors: np.ndarray, source: str) -> _Reference | None:
        """A reference of a team's baseline texts (slow: its mix floor), nothing changed yet; None for vectors of
        another dimension (a SageMaker endpoint of another model) or too few to test against."""
        if vectors.ndim != 2 or vectors.shape[1] != self.reference.shape[1] or vectors.shape[0] < self.min_samples:
            return None
        return _Reference.of(vectors, self.window, source, "uploaded")

    def set_reference(self, family: str, ref: _Reference) -> None:
        """Make `ref` (`uploaded_reference`) the family's reference; the card's sample stays its `domain`
        reference. The family's status starts again."""
        with self.lock:
            self.uploaded[family] = ref
            f = self._family(family)
            f.tracker, f.result, f.checked = StatusTracker(self.confirm, self.clear), None, f.added - self.check_every

    def record(self, vectors: np.ndarray) -> None:
        """The request's embeddings, counted in its route family: a copy into the window, no statistics."""
        rows = unit_rows(vectors).astype(np.float16)
        name = _family.get()
        with self.lock:
            family = self._family(name)
            family.vectors.extend(rows)
            family.added += rows.shape[0]

    def _due(self, f: _Family, now: float | None) -> bool:
        if f.added - f.checked < self.check_every or len(f.vectors) < self.min_samples:
            return False
        return now is None or now - f.checked_at >= self.interval_s

    def due(self) -> bool:
        """Some family may be tested now (enough new embeddings, its interval passed)."""
        now = time.monotonic()
        with self.lock:
            return any(self._due(f, now) for f in self.families.values())

    def next_check_in(self) -> float | None:
        """Seconds until a family with enough new embeddings may be tested (None: none has enough)."""
        now = time.monotonic()
        with self.lock:
            waits = [
                max(f.checked_at + self.interval_s - now, 0.0) for f in self.families.values() if self._due(f, None)
            ]
        return min(waits, default=None)

    def run_due_checks(self, paced: bool = False) -> int:
        """Test every family with `check_every` new embeddings; `paced` (the worker): only those whose last test is
        `interval_s` old."""
        with self.checking:
            return self._check_due(paced)

    def _check_due(self, paced: bool) -> int:
        now = time.monotonic()
        with self.lock:
            due = [
                (name, f, np.array(f.vectors, dtype=np.float32))
                for name, f in self.families.items()
                if self._due(f, now if paced else None)
            ]
            for _, f, _ in due:
                f.checked, f.checked_at = f.added, now
        for name, f, live in due:
            ref = self.uploaded.get(name, self.card)
            result, enter, hold = self._test(ref, live)  # off the lock: slow
            if ref is not self.card:  # the card's sample as the domain reference: shown, not judged
                domain, _, _ = self._test(self.card, live)
                result["domain"] = {**domain, "status": domain.pop("raw_status"), "reference": SAMPLE_FILE}
            with self.lock:  # status and result change together: a report never shows one without the other
                f.tracker.step(enter, hold)
                f.result = result
        return len(due)

    def _test(self, ref: _Reference, live: np.ndarray) -> tuple[dict[str, Any], int, int]:
        mmd2, p = mmd_test(ref.vectors, live, ref.bandwidth, self.permutations, floor=ref.floor)
        enter = max((lvl for lvl in (1, 2) if self.limit.severity(p, lvl) >= 1.0), default=0)
        hold = max((lvl for lvl in (1, 2) if self.limit.severity(p, lvl) >= 0.8), default=0)
        return {"mmd2": round(mmd2, 6), "pvalue": round(p, 6), "raw_status": LEVELS[enter]}, enter, hold

    def state(self, pending: dict[str, _Reference] | None = None) -> dict[str, Any]:
        """Every family's window (int8 rows), counters, status and last result, tied to the reference: windows
        of another reference (another model's sample) are not restored. `pending`: uploaded references written
        before they are set (an upload is stored first, then used)."""
        with self.lock:
            families = {
                name: {
                    "vectors": pack_rows(np.array(f.vectors, dtype=np.float32)) if f.vectors else "",
                    "added": f.added,
                    "checked": f.checked,
                    "tracker": f.tracker.state(),
                    "result": f.result,
                }
                for name, f in self.families.items()
            }
            uploaded = {
                name: {"vectors": pack_rows(ref.vectors), "source": ref.source}
                for name, ref in {**self.uploaded, **(pending or {})}.items()
            }
        return {
            "reference": self.reference_id,
            "dim": int(self.reference.shape[1]),
            "families": families,
            "uploaded": uploaded,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Load `state` when it belongs to this reference (else nothing: the saved vectors are another space)."""
        if state.get("reference") != self.reference_id or state.get("dim") != self.reference.shape[1]:
            return
        dim = self.reference.shape[1]
        for name, saved in (state.get("uploaded") or {}).items():
            if saved.get("vectors"):
                vectors = unpack_rows(saved["vectors"], dim)
                self.uploaded[str(name)] = _Reference.of(vectors, self.window, str(saved.get("source")), "uploaded")
        with self.lock:
            for name, saved in (state.get("families") or {}).items():
                family = self._family(str(name))
                if saved.get("vectors"):
                    family.vectors.extend(unpack_rows(saved["vectors"], self.reference.shape[1]).astype(np.float16))
                family.added, family.checked = int(saved.get("added", 0)), int(saved.get("checked", 0))
                tracker = saved.get("tracker") or {}
                family.tracker = StatusTracker(
                    self.confirm, self.clear, tracker.get("status", PENDING), tracker.get("recent")
                )
                family.result = saved.get("result")

    def report(self) -> EmbeddingReport:
        with self.lock:
            families = {
                name: FamilyReport(
                    status=f.tracker.status if f.result is not None else PENDING,
                    reference=self._described(self.uploaded.get(name, self.card)),
                    n_live=len(f.vectors),
                    n_total=f.added,
                    **(f.result or {}),
                )
                for name, f in sorted(self.families.items())
            }
        return EmbeddingReport(
            reference=self._described(self.card),  # the domain reference; a family may have its own
            test=f"MMD² beyond the reference's mix floor, Gaussian kernel, permutation p-value "
            f"({self.permutations} permutations)",
            thresholds=self.limit.as_dict(),
            families=families,
        )

    @staticmethod
    def _described(ref: _Reference) -> EmbeddingReference:
        return EmbeddingReference(
            n=int(ref.vectors.shape[0]),
            source=ref.source,
            kind=ref.kind,
            bandwidth=ref.bandwidth,
            mix_floor=round(ref.floor, 6),
        )
