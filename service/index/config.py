"""Index kinds, their parameters and bounds, and `IndexConfig`: what every engine, the API and the CLI agree on.

The one list of index kinds (`KINDS`) and of the parameters each reads (`PARAMS`). Importing this module loads
neither FAISS nor the settings, so the settings class, the CLI's argument parser and the engine-neutral interface
(base.py) can use it; both engines map these kinds onto their own index types.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, get_args

from service.index.errors import InvalidRequest, Unusable

if TYPE_CHECKING:
    from service.settings import Settings

Kind = Literal["flat", "hnsw", "ivf", "hnsw_sq8", "ivf_pq"]
KINDS: tuple[Kind, ...] = get_args(Kind)
PARAMS: dict[str, tuple[str, ...]] = {
    "flat": (),
    "hnsw": ("m", "ef_construction", "ef_search"),
    "ivf": ("nlist", "nprobe", "min_train"),
    "hnsw_sq8": ("m", "ef_construction", "ef_search", "rerank"),
    "ivf_pq": ("nlist", "nprobe", "min_train", "pq_m", "rerank"),
}
"""The parameters each kind reads, the ones a create request may set for it."""
SEARCH_PARAMS = frozenset({"ef_search", "nprobe"})
"""Index parameters read at each search rather than at build (HNSW's beam, the IVF lists probed): both engines
can change them on an open collection without rebuilding anything."""
INDEX_PARAM_MAX = {
    "m": 256,
    "ef_construction": 4096,
    "ef_search": 32_768,
    "nlist": 65_536,
    "nprobe": 65_536,
    "min_train": 100_000_000,
    "pq_m": 384,
    "rerank": 16_384,
}
"""Largest index parameter a collection may ask for (and a default may be): Milvus' own bounds for the IVF lists,
generous ones elsewhere (past them FAISS only spends memory and time); a bound at all keeps every stored parameter
a 64-bit integer, which the JSON answers and SQLite need."""
INDEX_PARAM_MIN = {
    "m": 2,
    "ef_construction": 1,
    "ef_search": 1,
    "nlist": 1,
    "nprobe": 1,
    "min_train": 1,
    "pq_m": 1,
    "rerank": 1,
}
"""Smallest index parameter a collection may ask for: what FAISS and Milvus really take (an HNSW graph with M=1
crashes libfaiss on the first add; Milvus also wants M >= 2)."""


HNSW_M = 16
"""HNSW graph neighbours per node: recall@10 0.96 at 1M with ef_search 512 (docs/benchmarks.md); M=12 saves a
quarter of the graph's memory for hnsw_sq8 (a PUT sets it per collection)."""
HNSW_EF_CONSTRUCTION = 40
"""HNSW build beam, FAISS' own default: the 1M benchmark's graph (docs/benchmarks.md) took 755 s to build with it."""
HNSW_EF_SEARCH = 512
"""HNSW query beam: recall@10 0.96 at 1M, 19.8× exact search in batches (docs/benchmarks.md); at least top_k
anyway. A PUT sets it per collection, and it can change on an open collection (search-time)."""
IVF_NLIST = 1024
"""IVF lists: about √N for the 1M benchmark; fewer are trained while there are under 39 vectors a list."""
IVF_NPROBE = 128
"""IVF lists scanned per query: recall@10 0.955 at 1M with 1024 lists (docs/benchmarks.md); search-time."""
IVF_MIN_TRAIN = 20_000
"""Vectors stored before IVF trains (exact search until then): k-means on fewer gives lists too small to matter."""
IVF_PQ_M = 48
"""ivf_pq bytes per vector (rounded down to a divisor of the dimension): 384-d in 48 parts of 8 dimensions."""
RERANK = 50
"""Candidates beyond top_k that the compressed kinds re-rank exactly: hnsw_sq8 recall@10 0.957 at 1M with 50."""
REBUILD_DELETED_SHARE = 0.2
"""HNSW cannot delete: tombstoned vectors are skipped, and once they are this share of the graph it is rebuilt from
the store (a fifth of the graph's memory spent on the dead at most, a rebuild per fifth of the data deleted)."""


@cache
def _default_kind() -> Kind:
    """The settings' declared default kind (not the environment's), read on first use: this module is imported by
    the settings class itself."""
    from service.settings import Settings

    return Settings.model_construct().index.default


@dataclass(frozen=True)
class IndexConfig:
    """A collection's index kind and the parameters that kind reads; stored with the collection. A kind not given
    is the settings' declared default and every parameter not given its constant above, so `IndexConfig()` is the
    service's out-of-the-box config."""

    kind: Kind = field(default_factory=_default_kind)
    m: int = HNSW_M
    ef_construction: int = HNSW_EF_CONSTRUCTION
    ef_search: int = HNSW_EF_SEARCH
    nlist: int = IVF_NLIST
    nprobe: int = IVF_NPROBE
    min_train: int = IVF_MIN_TRAIN
    pq_m: int = IVF_PQ_M
    rerank: int = RERANK
    rebuild_deleted_share: float = REBUILD_DELETED_SHARE

    @classmethod
    def defaults(cls, settings: Settings) -> IndexConfig:
        """The service-wide default: O2V_INDEX_DEFAULT's kind with the constants above (a PUT sets any of them)."""
        return cls(kind=settings.index.default)

    def with_params(self, kind: str | None, params: dict[str, Any]) -> IndexConfig:
        """Defaults overridden by a create request; names a bad field rather than ignoring it. The bounds are what
        FAISS and Milvus really take (INDEX_PARAM_MIN/MAX): out of them FAISS may crash the process, not raise."""
        kind = kind or self.kind
        if kind not in KINDS:
            raise InvalidRequest(f"index must be one of {', '.join(KINDS)}", "index")
        for key, value in params.items():
            if key not in PARAMS[kind]:
                raise InvalidRequest(f"{key} is not a parameter of a {kind} index", key)
            low, high = INDEX_PARAM_MIN[key], INDEX_PARAM_MAX[key]
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise InvalidRequest(f"{key} must be an integer from {low} to {high}", key)
        return replace(self, kind=kind, **params)

    def public(self) -> dict[str, Any]:
        """The kind and only the parameters it uses."""
        full = asdict(self)
        return {"index": self.kind, **{k: full[k] for k in PARAMS[self.kind]}}

    def search_params(self) -> dict[str, int]:
        """The search-time parameters of this kind and their values (none for flat)."""
        return {key: getattr(self, key) for key in PARAMS[self.kind] if key in SEARCH_PARAMS}

    def from_public(self, data: Any, name: str) -> IndexConfig:
        """Collection `name`'s stored `public()` dict read back over these defaults; Unusable (409, naming the
        collection and the parameter) when the engines cannot run it (a hand-edited m=1, say)."""
        if not isinstance(data, dict):
            raise Unusable(f"collection {name!r} has no readable index settings; drop it and create it again", "index")
        try:
            return self.with_params(data.get("index"), {k: v for k, v in data.items() if k != "index"})
        except InvalidRequest as exc:
            message = f"collection {name!r} is stored with settings this server cannot use: {exc.message}; drop it"
            raise Unusable(message + " and create it again", exc.field) from exc


def pq_parts(dim: int, pq_m: int) -> int:
    """Product-quantizer parts: the largest divisor of `dim` up to pq_m, as FAISS and Milvus split a vector."""
    return max(p for p in range(1, min(pq_m, dim) + 1) if dim % p == 0)
