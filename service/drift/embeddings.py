"""Embedding drift: live embeddings per route family against the family's own reference, and the model card's.

Scores can stay level while the inputs wander (a new topic whose pairs happen to score like the old ones); the
embeddings themselves show it. Each family's window is tested with the kernel two-sample test (`mmd.py`) against its
reference (`embedding_reference.py`): the team's uploaded baseline texts, else the family's own first window of
traffic, grown with the traffic judged normal. Only that test moves the family's status. The model dir's validation
sample is the `domain` reference: tested once per window's worth of new embeddings and shown as `domain`
(`in_domain`, `borderline`, `other_domain`), never `drift`. The request path only appends vectors to a bounded window;
the checking thread tests. Windows and references go into the drift state as int8 rows: at most two of `window` ×
dim bytes per route family, and the families are a fixed set of names, so the state stays bounded (≈ 3 MB at
500 × 384 for all seven).
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
from service.drift.embedding_reference import LEARNED, UPLOADED, EmbeddingReference
from service.drift.mmd import mmd_test, unit_rows
from service.drift.models import EmbeddingReport, FamilyReport
from service.drift.status import PENDING, StatusTracker

SAMPLE_FILE = "embedding_sample.npy"  # int8 rows of unit vectors × 127
SAMPLE_META = "embedding_sample.json"  # the encoder.onnx it came from: a sample of another encoder is not used
ENCODER_FILE = "encoder.onnx"
SIMILARITY_FAMILY = "similarity"  # the family every /similarity stream's requests embed in
INGEST = "ingest"  # item upserts: the operator's corpus, written in bulk, not traffic the model answers
DOMAIN_STATUS = ("in_domain", "borderline", "other_domain")
"""The card comparison's level (ok, warning, drift at the embedding p-value limits) in its own words: another domain
than the validation texts is a fact about the team's traffic, not a change of it."""
HOLD = 0.8  # a raised status holds while its p-value stays within 1/0.8 of the threshold (hysteresis)

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


@dataclass
class _Family:
    vectors: deque[np.ndarray]
    tracker: StatusTracker
    added: int = 0
    checked: int = 0
    checked_at: float = -math.inf  # time.monotonic() of the last test
    result: dict[str, Any] | None = None  # the last test against `own`
    own: EmbeddingReference | None = None  # uploaded or learned: what judges the status (None: still learning)
    settled: int = 0  # embeddings numbered below this never join a learned reference (in it, or near a change)
    domain: dict[str, Any] | None = None  # the last test against the card's sample
    domain_at: int = -(10**18)  # `added` at that test


class EmbeddingMonitor:
    """Per route family, the last `window` unit embeddings (float16), its own reference and a status from the MMD
    test; the card's sample as every family's `domain` reference."""

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
        self.card = EmbeddingReference.card(reference, window, SAMPLE_FILE)
        self.reference = self.card.vectors  # its dimension is the one recorded embeddings must have
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

    def uploaded_reference(self, vectors: np.ndarray, source: str) -> EmbeddingReference | None:
        """A reference of a team's baseline texts (slow: its mix floor), nothing changed yet; None for vectors of
        another dimension (a SageMaker endpoint of another model) or too few to test against."""
        if vectors.ndim != 2 or vectors.shape[1] != self.reference.shape[1] or vectors.shape[0] < self.min_samples:
            return None
        return EmbeddingReference.of(vectors, self.window, source, UPLOADED)

    def set_reference(self, family: str, ref: EmbeddingReference) -> None:
        """Make `ref` (`uploaded_reference`) the family's own reference; the card's sample stays its `domain`
        reference. The family's status starts again."""
        with self.lock:
            f = self._family(family)
            f.own, f.tracker, f.result = ref, StatusTracker(self.confirm, self.clear), None
            f.checked = f.added - self.check_every

    def record(self, vectors: np.ndarray) -> bool:
        """The request's embeddings, counted in its route family: a copy into the window, no statistics. True
        when they made the family due by count (whatever its interval): the worker then wakes and waits out the
        rest of the interval itself, instead of the next request finding the interval past."""
        rows = unit_rows(vectors).astype(np.float16)
        name = _family.get()
        with self.lock:
            family = self._family(name)
            before = self._due(family, None)
            family.vectors.extend(rows)
            family.added += rows.shape[0]
            return not before and self._due(family, None)

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
                (f, np.array(f.vectors, dtype=np.float32), f.added)
                for f in self.families.values()
                if self._due(f, now if paced else None)
            ]
            for f, _, _ in due:
                f.checked, f.checked_at = f.added, now
        for f, live, added in due:
            self._check(f, live, added)  # off the lock: slow
        return len(due)

    def _check(self, f: _Family, live: np.ndarray, added: int) -> None:
        """The domain test (once per window's worth of new embeddings), then the family's own: learn its reference
        from a full first window, or test against it, step the status and let normal traffic join a learned one."""
        if added - f.domain_at >= self.window:
            domain, _, _ = self._test(self.card, live)
            raw = domain.pop("raw_status")  # the domain test says in/other domain, never a drift level
            domain = {**domain, "status": DOMAIN_STATUS[LEVELS.index(raw)]}
            with self.lock:
                f.domain, f.domain_at = {**domain, "reference": SAMPLE_FILE, "n_live": int(live.shape[0])}, added
        ref = f.own
        if ref is None:
            if live.shape[0] >= self.window:
                self._learn(f, live, added)
            return
        result, enter, hold = self._test(ref, live)
        with self.lock:  # status and result change together: a report never shows one without the other
            f.tracker.step(enter, hold)
            f.result = result
            rows = self._settle(f, live, added, enter)
        if rows.shape[0] and ref.kind == LEARNED:
            grown = ref.absorbed(rows)  # off the lock: a new bandwidth and floor
            with self.lock:
                if f.own is ref:
                    f.own = grown

    def _learn(self, f: _Family, live: np.ndarray, added: int) -> None:
        """The family's first full window becomes its reference (NannyML's reference period); the window keeps
        only what arrived since, so no live window is tested against itself."""
        ref = EmbeddingReference.of(live, self.window, f"first {live.shape[0]} embeddings of this family", LEARNED)
        with self.lock:
            since = min(f.added - added, len(f.vectors))
            newer = list(f.vectors)[len(f.vectors) - since :] if since else []
            f.vectors.clear()
            f.vectors.extend(newer)
            f.own, f.settled, f.result = ref, added, None
        log.info(json.dumps({"event": "drift_embedding_reference_learned", "n": int(live.shape[0])}))

    def _settle(self, f: _Family, live: np.ndarray, added: int, enter: int) -> np.ndarray:
        """The embeddings that may join a learned reference now: those about to leave the window (in it through
        `window − check_every` newer ones) with no check since they arrived at `warning` or above. A check that
        warns, or a raised status, keeps everything so far out, so the embeddings around a change never join."""
        if enter or f.tracker.status in LEVELS[1:]:
            f.settled = added
            return live[:0]
        first = added - live.shape[0]  # the number of live[0]
        upto = added - self.window + self.check_every
        lo = max(f.settled, first)
        if upto <= lo:
            return live[:0]
        f.settled = upto
        return live[lo - first : upto - first]

    def _test(self, ref: EmbeddingReference, live: np.ndarray) -> tuple[dict[str, Any], int, int]:
        mmd2, p = mmd_test(ref.vectors, live, ref.bandwidth, self.permutations, floor=ref.floor)
        enter = max((lvl for lvl in (1, 2) if self.limit.severity(p, lvl) >= 1.0), default=0)
        hold = max((lvl for lvl in (1, 2) if self.limit.severity(p, lvl) >= HOLD), default=0)
        return {"mmd2": round(mmd2, 6), "pvalue": round(p, 6), "raw_status": LEVELS[enter]}, enter, hold

    def state(self, pending: dict[str, EmbeddingReference] | None = None) -> dict[str, Any]:
        """Every family's window and own reference (int8 rows), counters, status and last results, tied to the
        card's sample: windows of another (another model's sample) are not restored. `pending`: uploaded
        references written before they are set (an upload is stored first, then used)."""
        with self.lock:
            families = {
                name: {
                    "vectors": pack_rows(np.array(f.vectors, dtype=np.float32)) if f.vectors else "",
                    "added": f.added,
                    "checked": f.checked,
                    "settled": f.settled,
                    "tracker": f.tracker.state(),
                    "result": f.result,
                    "domain": f.domain,
                    "domain_at": f.domain_at,
                }
                for name, f in self.families.items()
            }
            owns = {name: f.own for name, f in self.families.items() if f.own is not None}
            references = {
                name: {"vectors": pack_rows(ref.vectors), **ref.described()}
                for name, ref in {**owns, **(pending or {})}.items()
            }
        return {
            "reference": self.reference_id,
            "dim": int(self.reference.shape[1]),
            "families": families,
            "references": references,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Load `state` when it belongs to this card sample (else nothing: the saved vectors are another space).
        A state written before families learned references has `uploaded` ones only."""
        if state.get("reference") != self.reference_id or state.get("dim") != self.reference.shape[1]:
            return
        dim = self.reference.shape[1]
        saved_refs = {name: {**saved, "kind": UPLOADED} for name, saved in (state.get("uploaded") or {}).items()}
        saved_refs |= state.get("references") or {}
        with self.lock:
            for name, saved in (state.get("families") or {}).items():
                family = self._family(str(name))
                if saved.get("vectors"):
                    family.vectors.extend(unpack_rows(saved["vectors"], dim).astype(np.float16))
                family.added, family.checked = int(saved.get("added", 0)), int(saved.get("checked", 0))
                family.settled = int(saved.get("settled", family.added))
                tracker = saved.get("tracker") or {}
                family.tracker = StatusTracker(
                    self.confirm, self.clear, tracker.get("status", PENDING), tracker.get("recent")
                )
                family.result, family.domain = saved.get("result"), saved.get("domain")
                family.domain_at = int(saved.get("domain_at", family.domain_at))
            for name, saved in saved_refs.items():
                if saved.get("vectors") and saved.get("kind") in (UPLOADED, LEARNED):
                    self._family(str(name)).own = EmbeddingReference.restored(
                        saved, unpack_rows(saved["vectors"], dim), self.window
                    )

    def report(self) -> EmbeddingReport:
        with self.lock:
            families = {name: self._described(f) for name, f in sorted(self.families.items())}
        return EmbeddingReport(
            reference=self.card.described(),  # the domain reference; each family judged by its own
            test=f"MMD² beyond the reference's mix floor, Gaussian kernel, permutation p-value "
            f"({self.permutations} permutations); status against the family's own reference (uploaded, or learned "
            f"from its first {self.window} embeddings), `domain` against the model's validation sample",
            thresholds=self.limit.as_dict(),
            families=families,
        )

    def _described(self, f: _Family) -> FamilyReport:
        """Under the lock. `reference` is null while the family learns its own (`learning` says how far);
        `domain` once it was tested against the card's sample."""
        extra: dict[str, Any] = {**(f.result or {})}
        if f.own is None:
            extra["learning"] = f"its first {self.window} embeddings become its reference: {len(f.vectors)} so far"
        if f.domain is not None:
            extra["domain"] = f.domain
        return FamilyReport(
            status=f.tracker.status if f.result is not None else PENDING,
            reference=f.own.described() if f.own is not None else None,
            n_live=len(f.vectors),
            n_total=f.added,
            **extra,
        )
