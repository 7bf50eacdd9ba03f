"""The one settings class: every limit and knob of the service, from O2V_* environment variables."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.index.config import INDEX_PARAM_MAX, Kind
from service.index.config import INDEX_PARAM_MIN as INDEX_PARAM_MIN  # re-exported: service/api reads it here

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_DIR = Path(str(resources.files("service") / "model" / "bundled" / "object2vec-sts-384"))
"""The bundled model, package data: inside the checkout and inside an installed wheel alike."""
PLACEHOLDER_KEYS = frozenset({
    "changeme", "changeit", "changemeplease", "replaceme", "secret", "secretkey", "mysecret", "supersecret",
    "password", "passwd", "passw0rd", "apikey", "yourapikey", "myapikey", "o2vapikey", "key", "token", "yourkeyhere",
    "insertkeyhere", "placeholder", "example", "default", "test", "testing", "dummy", "admin", "todo", "fixme",
    "none", "null", "foo", "bar", "foobar", "qwerty", "letmein", "123456", "12345678", "1234567890",
})  # fmt: skip
"""Values copied from examples, not keys: compared lower-case without punctuation ("Change-Me" is "changeme").
A key anyone can guess is no key, so the service refuses to start with one (as with one character repeated)."""

MIN_KEY_CHARS = 16
"""Shortest API key the service starts with: `secrets.token_urlsafe(12)` is 16 characters (96 random bits)."""
MAKE_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def default_data_dir() -> Path:
    """`indexes/` of a source checkout (the repository's data directory, whatever the working directory); for an
    installed package, where its user may write: $XDG_DATA_HOME/o2v (~/.local/share/o2v), %LOCALAPPDATA%\\o2v on
    Windows. Never next to site-packages, which is often read-only and shared."""
    if (REPO / "pyproject.toml").is_file():
        return REPO / "indexes"
    base = os.environ.get("LOCALAPPDATA") if os.name == "nt" else os.environ.get("XDG_DATA_HOME")
    return Path(base or Path.home() / ".local" / "share") / "o2v"


class Settings(BaseSettings):
    """Defaults suit one 2-core machine serving the bundled model; each can be set as O2V_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="O2V_", extra="ignore", hide_input_in_errors=True)
    """hide_input_in_errors: a validation error names the setting and the rule, never the value (a key's)."""

    # model and backend
    model_dir: Path = Field(DEFAULT_MODEL_DIR, description="the model directory served (default: the bundled model)")
    backend: Literal["onnx", "sagemaker"] = Field(
        "onnx", description="onnx: the model directory in onnxruntime; sagemaker: proxy a SageMaker Object2Vec endpoint"
    )
    onnx_intra_op_threads: int = Field(0, ge=0, description="0 = onnxruntime's choice")
    onnx_inter_op_threads: int = Field(1, ge=0, description="onnxruntime threads across independent graph nodes")
    onnx_max_batch_tokens: int = Field(16384, ge=1, description="padded tokens in one onnxruntime run")
    model_aliases: list[str] = Field(
        [], description="other names /v1/embeddings accepts as `model` (JSON list), e.g. an OpenAI model's"
    )
    default_model: str | None = Field(
        None,
        description="the model served when a request names none (default: the configured one); a promotion "
        "(POST /models/{name}/promote) overrides it",
    )
    models_loaded_max: int = Field(
        3, ge=1, description="adapted models kept loaded besides the configured one (least recently used unloaded)"
    )
    models_unload_grace_s: float = Field(
        30.0, ge=0, description="seconds an unloaded model stays open so requests in flight on it finish"
    )
    adapt_niceness: int = Field(10, ge=0, le=19, description="nice value of the adaptation training process")
    adapt_threads: int = Field(1, ge=1, description="torch threads of the adaptation training process")
    adapt_max_items: int = Field(200_000, ge=1, description="labelled items one adaptation job may train on")

    # HTTP server
    host: str = Field("127.0.0.1", description="address uvicorn listens on (0.0.0.0: every interface)")
    port: int = Field(8000, ge=0, le=65535, description="port uvicorn listens on")
    workers: int = Field(
        1, ge=1, description="uvicorn worker processes (each loads the model); > 1 needs the drift monitor off"
    )
    api_key: SecretStr | None = Field(
        None, description="Bearer key for write routes; unset = open (an empty or placeholder value refuses to start)"
    )
    read_api_key: SecretStr | None = Field(
        None,
        description="Bearer key for every other route too (the write key also reads; needs O2V_API_KEY); "
        "/healthz, /readyz, /ping and /metrics stay open; unset = reads open (and in a SageMaker container)",
    )
    readyz_timeout_s: float = Field(0.8, gt=0.0, description="/readyz answers 503 when its check takes longer")
    access_log: bool = Field(False, description="uvicorn's per-request log line; /metrics counts requests")
    retry_after_s: int = Field(1, ge=0, description="Retry-After on 503 answers (queue full, backend down)")
    # connection limits of `o2v serve` (service/api/connections.py): below the app, where a request is still bytes
    max_header_bytes: int = Field(
        65_536, ge=1024, description="request line and headers of one request; beyond it a 431, before buffering more"
    )
    max_headers: int = Field(100, ge=8, description="headers in one request; beyond it a 431")
    http_header_timeout_s: float = Field(
        10.0, gt=0.0, description="a request head must arrive whole within this of the connection or last answer (408)"
    )
    http_body_timeout_s: float = Field(
        60.0, gt=0.0, description="a request body must arrive whole within this of its head (408)"
    )
    max_connections: int = Field(
        1000,
        ge=8,
        description="open connections; past it the one waiting longest on its client is closed (never below the "
        "fd limit: lowered to ulimit -n minus 64 minus 3 per O2V_MAX_OPEN_COLLECTIONS)",
    )
    docs_open: bool | None = Field(
        None,
        description="serve /docs, /redoc and /openapi.json without a key; unset = open unless O2V_READ_API_KEY is set",
    )

    # request limits
    max_batch_size: int = Field(256, ge=1, description="texts in one request")
    max_text_chars: int = Field(8192, ge=1, description="characters in one text")
    max_body_bytes: int = Field(
        2_000_000, ge=1024, description="request body size (`o2v serve --sagemaker` raises it to 6 MiB)"
    )
    max_top_k: int = Field(1000, ge=1, description="top_k and k of one search or classify (and their sum in a batch)")
    max_invocation_instances: int = Field(
        1000, ge=1, description="instances in one /invocations request; 1000 384-d embeddings answer ~5 MB"
    )
    max_tokenize_tokens: int = Field(
        65_536, ge=1, description="tokens one /tokenize answer lists (~70 bytes each in JSON); beyond it a 422"
    )
    max_tokenize_in_flight: int = Field(
        4, ge=1, description="long-text tokenizations (over 512 characters) running at once, any route; others wait"
    )
    max_token_ids: int = Field(
        65_536,
        ge=1,
        description="OpenAI token ids (cl100k_base) in one /v1/embeddings request, decoded to text before embedding",
    )
    max_invocation_tokens: int = Field(
        1_048_576, ge=1, description="token ids in one /invocations request, in0+in1 (1000 instances × 2 × 512)"
    )

    # micro-batching
    batch_max_size: int = Field(64, ge=1, description="texts per encoder call")
    batch_max_wait_ms: float = Field(2.0, ge=0.0, description="how long a batch that is not full waits for more texts")
    queue_max_size: int = Field(1024, ge=1, description="texts waiting; beyond it requests get 503")
    embed_cache_bytes: int = Field(
        0, ge=0, description="LRU of embeddings by token ids, bounded in bytes (384-d: ~2 KB a text); 0 = off"
    )

    # SageMaker backend
    sagemaker_endpoint: str | None = Field(
        None, description="the endpoint --backend sagemaker calls; credentials come from boto3's usual chain"
    )
    sagemaker_region: str = Field("us-east-1", description="AWS region of the endpoint")
    sagemaker_endpoint_url: str | None = Field(
        None, description="another sagemaker-runtime URL (a VPC endpoint, a stand-in)"
    )
    sagemaker_connect_timeout_s: float = Field(2.0, gt=0, description="botocore connect timeout")
    sagemaker_read_timeout_s: float = Field(70.0, gt=0, description="AWS advises 70 s for a 60 s container")
    sagemaker_max_attempts: int = Field(3, ge=1, description="attempts per call, the first included (adaptive)")
    sagemaker_max_body_bytes: int = Field(6_291_456, ge=1024, description="InvokeEndpoint's 6 MiB limit")
    sagemaker_model_dir: Path = Field(
        Path("/opt/ml/model"), description="where SageMaker unpacks the model for `o2v serve --sagemaker`"
    )

    # data
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="collections and the service's own state (.o2v/): indexes/ in a source checkout, else "
        "$XDG_DATA_HOME/o2v (~/.local/share/o2v)",
    )
    shared_data: Path = Field(
        REPO.parent / "shared" / "data",
        description="the public datasets (STS-B, CLINC150, review sentences) benchmarks and `o2v eval` read in place",
    )

    # drift monitor (service/drift; the defaults and why: docs/drift.md)
    drift_enabled: bool = Field(
        True, description="the drift monitor and its /drift routes (off: O2V_WORKERS may be > 1)"
    )
    drift_window: int = Field(1000, ge=10, description="live scores kept per stream (last N)")
    drift_min_samples: int = Field(100, ge=10, description="live scores needed before any verdict")
    drift_check_every: int = Field(25, ge=1, description="new scores between two status checks")
    drift_check_interval_s: float = Field(
        1.0, ge=0.0, description="a score stream is checked at most once per this many seconds (bounds the cost)"
    )
    drift_cpu_budget: float = Field(
        0.1, gt=0.0, le=1.0, description="share of wall time the checking thread may work; it pauses to stay under"
    )
    drift_confirm_checks: int = Field(2, ge=1, description="consecutive checks needed to raise the status")
    drift_clear_checks: int = Field(3, ge=1, description="consecutive checks needed to lower the status")
    drift_hysteresis: float = Field(0.2, ge=0.0, lt=1.0, description="a raised status holds until 80% of a limit")
    drift_ks_pvalue_warning: float = Field(0.05, gt=0.0, lt=1.0, description="KS p-value below which a check may warn")
    drift_ks_pvalue_drift: float = Field(0.0002, gt=0.0, lt=1.0, description="KS p-value below which a check may drift")
    drift_linf_warning: float = Field(0.05, gt=0.0, description="KS statistic = SageMaker's L-infinity distance")
    drift_linf_drift: float = Field(0.1, gt=0.0, description="SageMaker Model Monitor's comparison_threshold")
    drift_psi_warning: float = Field(0.1, gt=0.0, description="population stability index over the baseline's bins")
    drift_psi_drift: float = Field(0.2, gt=0.0, description="the usual 'significant' PSI")
    drift_js_warning: float = Field(0.05, gt=0.0, description="Jensen-Shannon distance, base 2")
    drift_js_drift: float = Field(0.1, gt=0.0, description="Evidently's Jensen-Shannon threshold")
    drift_wasserstein_warning: float = Field(0.05, gt=0.0, description="in baseline standard deviations")
    drift_wasserstein_drift: float = Field(0.15, gt=0.0, description="W/σ; 0.1 σ gave 14 % false drift episodes")
    drift_psi_bins: int = Field(10, ge=2, description="baseline-quantile bins for PSI and Jensen-Shannon")
    drift_bucket_seconds: int = Field(300, ge=1, description="width of one history bucket")
    drift_history_buckets: int = Field(288, ge=1, description="history buckets kept per stream")
    drift_max_streams: int = Field(32, ge=1, description="streams at most; beyond it new names get a 422")
    drift_streams: list[str] = Field(
        [], description="streams that exist from the start besides the built-in ones (unkeyed callers may feed them)"
    )
    drift_live_baseline_streams: list[str] = Field(
        ["search_top1", "classify_confidence"], description="streams whose first full window becomes the baseline"
    )
    drift_persist_interval_s: float = Field(30.0, gt=0.0, description="seconds between writes of the drift state")
    drift_max_baseline_jobs: int = Field(
        1, ge=1, description="baseline uploads simulated at once, on threads of their own; more get 503"
    )
    drift_webhook_url: str | None = Field(None, description="status changes are POSTed here (redirects not followed)")
    drift_webhook_timeout_s: float = Field(2.0, gt=0.0, description="limit of one webhook call")
    drift_webhook_retries: int = Field(3, ge=0, description="webhook retries after the first call, with backoff")
    # the shift test (service/drift/shift.py): recent window vs baseline, thresholds simulated from the baseline
    drift_shift_window: int = Field(500, ge=0, description="recent scores the shift test looks at (0: off)")
    drift_shift_horizon: int = Field(5000, ge=100, description="normal run length the false-alarm rate is for")
    drift_shift_false_alarm: float = Field(0.002, gt=0.0, lt=1.0, description="share of normal runs ever in drift")
    drift_shift_warning_false_alarm: float = Field(0.05, gt=0.0, lt=1.0, description="the same, for warning")
    drift_shift_simulations: int = Field(10000, ge=100, description="simulated runs behind the thresholds")
    drift_shift_clip: float = Field(4.0, gt=0.0, description="efficient score clipped at mean ± this many sd")
    drift_shift_reference_max: int = Field(
        20000, ge=0, description="live scores from `ok` checks the shift test's reference may absorb (0: none)"
    )
    # baselines: `card` = the model card's validation scores; `learn` = each stream's own first live scores
    drift_baseline: Literal["card", "learn"] = Field(
        "card", description="card: the model card's validation scores; learn: each stream's own first live scores"
    )
    drift_learn_warmup: int = Field(100, ge=0, description="first live scores of a stream ignored when learning")
    drift_learn_size: int = Field(500, ge=10, description="live scores after the warm-up that become the baseline")
    drift_classify_reference_max: int = Field(
        2000, ge=20, description="collection items classified leave-one-out as a classify stream's reference"
    )
    drift_accuracy_fall_warning: float = Field(
        0.02, gt=0.0, le=1.0, description="fall of a classify stream's estimated accuracy below its label mix's"
    )
    drift_accuracy_fall_drift: float = Field(0.05, gt=0.0, le=1.0, description="e.g. 0.89 → 0.84 is drift")
    drift_max_labels: int = Field(50, ge=1, description="classify labels tracked one by one; the rest share a row")
    drift_label_min_count: int = Field(20, ge=2, description="live answers before labels are ranked")
    drift_label_alpha: float = Field(
        0.002, gt=0.0, lt=1.0, description="family-wise p-value below which a label is `moved` (Bonferroni)"
    )
    drift_token_margin_warning: float = Field(0.02, gt=0.0, le=1.0, description="rise of a token rate's mean")
    drift_token_margin_drift: float = Field(0.05, gt=0.0, le=1.0, description="e.g. 5 more unseen tokens in 100")
    drift_token_queue: int = Field(1000, ge=1, description="tokenized requests waiting for the checker; more dropped")
    drift_keep_texts: bool = Field(False, description="keep recent live texts for `o2v drift export` (personal data?)")
    drift_keep_texts_max: int = Field(1000, ge=1, description="kept texts at most (newest kept)")
    drift_keep_texts_max_age_s: float = Field(86400.0, gt=0.0, description="kept texts are forgotten after this")
    drift_embed_window: int = Field(500, ge=20, description="live embeddings per route family, and reference size")
    drift_embed_min_samples: int = Field(100, ge=10, description="live embeddings before the first MMD test")
    drift_embed_check_every: int = Field(100, ge=1, description="new embeddings of a family between two tests")
    drift_embed_check_interval_s: float = Field(
        5.0, ge=0.0, description="a route family's MMD test runs at most once per this many seconds"
    )
    drift_embed_permutations: int = Field(200, ge=20, description="permutations behind the MMD p-value")
    drift_embed_pvalue_warning: float = Field(0.05, gt=0.0, lt=1.0, description="MMD p-value below which a test warns")
    drift_embed_pvalue_drift: float = Field(
        0.01, gt=0.0, lt=1.0, description="MMD p-value below which a test drifts (above 1 / (permutations + 1))"
    )

    # collections (service/index): FAISS defaults a collection gets unless its PUT names others
    index_default: Kind = Field("flat", description="index of a collection whose PUT names none")
    hnsw_m: int = Field(
        16, ge=4, le=INDEX_PARAM_MAX["m"], description="graph neighbours per node (bench/search.py: docs/benchmarks.md)"
    )
    hnsw_ef_construction: int = Field(
        40, ge=8, le=INDEX_PARAM_MAX["ef_construction"], description="build-time beam; higher = better graph, slower"
    )
    hnsw_ef_search: int = Field(
        512, ge=8, le=INDEX_PARAM_MAX["ef_search"], description="query-time beam (≥ top_k); 512: recall@10 0.96 at 1M"
    )
    hnsw_rebuild_deleted_share: float = Field(0.2, gt=0.0, le=1.0, description="rebuild once this share is dead")
    ivf_nlist: int = Field(
        1024, ge=1, le=INDEX_PARAM_MAX["nlist"], description="inverted lists, capped at trained vectors / 39"
    )
    ivf_nprobe: int = Field(
        128,
        ge=1,
        le=INDEX_PARAM_MAX["nprobe"],
        description="lists scanned per query; 128 of 1024: recall@10 0.96 at 1M",
    )
    ivf_min_train: int = Field(
        20_000,
        ge=1,
        le=INDEX_PARAM_MAX["min_train"],
        description="vectors stored before IVF trains; exact search until then",
    )
    ivf_pq_m: int = Field(
        48,
        ge=1,
        le=INDEX_PARAM_MAX["pq_m"],
        description="ivf_pq: bytes per vector (the largest divisor of the dimension up to this many parts)",
    )
    index_rerank: int = Field(
        50,
        ge=1,
        le=INDEX_PARAM_MAX["rerank"],
        description="hnsw_sq8, ivf_pq: candidates beyond top_k re-ranked exactly from the stored float vectors",
    )
    index_snapshot_every: int = Field(10_000, ge=1, description="changes between FAISS snapshots")
    index_filter_exact_max: int = Field(20_000, ge=0, description="filter matches searched exactly up to this count")
    index_rebuild_inline_max: int = Field(
        20_000, ge=0, description="indexes up to this many vectors rebuild inside the write; larger ones aside"
    )
    index_busy_timeout_s: float = Field(
        60.0, gt=0.0, description="a write waits this long for another's SQLite write lock, then 503 + Retry-After"
    )
    classify_min_score: float = Field(0.0, description="support below which classify answers null (out of scope)")
    max_get_ids: int = Field(1000, ge=1, description="ids in one keyed batch get (POST /collections/{name}/get)")
    max_scroll_limit: int = Field(1000, ge=1, description="items in one scroll page")
    max_search_batch: int = Field(64, ge=1, description="queries in one search/batch request")
    max_clusters: int = Field(1000, ge=1, description="k of one cluster request (and at most the items stored)")
    max_cluster_work: int = Field(
        20_000_000, ge=1, description="k × items × k-means restarts one cluster request may cost; beyond it a 422"
    )
    max_heavy_jobs: int = Field(
        1, ge=1, description="cluster requests running at once, on their own threads; beyond it a 503"
    )
    max_filter_keys: int = Field(32, ge=1, le=256, description="keys in one search filter (SQLite: 500 terms)")
    metadata_max_depth: int = Field(16, ge=1, le=200, description="nesting of an item's metadata (objects, lists)")
    metadata_max_bytes: int = Field(
        65_536, ge=2, le=65_536, description="an item's metadata as UTF-8 JSON (Milvus' limit on one JSON value)"
    )
    max_open_collections: int = Field(
        64, ge=1, description="collections with open files (3 each); the least recently used close beyond it"
    )

    # collection engine: embedded FAISS + SQLite under data_dir, or Milvus (service/index/engines/milvus, [milvus])
    vector_store: Literal["faiss", "milvus"] = Field(
        "faiss", description="faiss: embedded SQLite + FAISS under data_dir; milvus: a Milvus server or Milvus Lite"
    )
    milvus_uri: str | None = Field(None, description="http(s)://host:19530 or a .db path (Lite); data_dir/milvus.db")
    milvus_token: SecretStr | None = Field(None, description="'user:password' or an API key")
    milvus_db: str | None = Field(None, description="database (it must exist); the server's default when unset")
    milvus_timeout_s: float = Field(10.0, gt=0, description="limit of one Milvus call; past it the request gets 503")

    @field_validator("api_key", "read_api_key")
    @classmethod
    def _real_key(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        """An empty or placeholder key used to leave the routes open or guessable; now it stops the start."""
        if value is None:
            return None
        env, key = f"O2V_{str(info.field_name).upper()}", value.get_secret_value()
        if not key.strip():
            raise ValueError(f"{env} is set but empty: give it a real key, or unset it to run without one")
        plain = re.sub(r"[^a-z0-9]", "", key.lower())
        if plain in PLACEHOLDER_KEYS or len(set(plain)) <= 1:
            raise ValueError(f"{env} is a placeholder, not a key: set a random one, e.g. {MAKE_KEY}")
        if len(key.strip()) < MIN_KEY_CHARS:
            chars = len(key.strip())
            raise ValueError(f"{env} has {chars} characters, fewer than {MIN_KEY_CHARS}: set a random one: {MAKE_KEY}")
        return value

    @model_validator(mode="after")
    def _reads_guarded_only_with_writes(self) -> Settings:
        """A read key with open writes would guard the lesser half: refuse the combination."""
        if self.read_api_key is not None and self.api_key is None:
            raise ValueError("O2V_READ_API_KEY is set but O2V_API_KEY is not: set the write key too")
        keys = (self.read_api_key, self.api_key)
        if keys[0] is not None and keys[1] is not None and keys[0].get_secret_value() == keys[1].get_secret_value():
            raise ValueError("O2V_READ_API_KEY is the same as O2V_API_KEY: readers would hold the write key")
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
