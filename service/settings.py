"""The one settings class: every limit and knob of the service, from O2V_* environment variables.

The settings are grouped (`settings.drift.window`, `settings.limits.max_top_k`), but every environment variable keeps
its flat name: a group's field is read from O2V_<prefix><field> (O2V_DRIFT_WINDOW, O2V_MAX_TOP_K), never with a
`__` delimiter, and `Settings(drift_window=…)` takes the same flat names. Names that were renamed are still read
(RENAMED); knobs that became module constants are still accepted, with a warning that names the fixed value (FIXED).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import typing
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from service.index.config import Kind

log = logging.getLogger(__name__)

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


GROUP_CONFIG = ConfigDict(extra="forbid", hide_input_in_errors=True)


class Shorthand(BaseModel):
    """An object setting that also takes one value alone, as the value of its field `alone`: O2V_DRIFT_KEEP_TEXTS=true
    is {"enabled": true}."""

    model_config = GROUP_CONFIG
    alone: ClassVar[str]

    @model_validator(mode="before")
    @classmethod
    def _value_alone(cls, value: Any) -> Any:
        return value if isinstance(value, Mapping | BaseModel) else {cls.alone: value}


class Group(BaseModel):
    """A group of settings; its fields are read from O2V_<prefix><field>."""

    model_config = GROUP_CONFIG
    prefix: ClassVar[str] = ""


class Levels(BaseModel):
    """A statistic's warning and drift thresholds; a larger value is worse, so drift is at least warning."""

    model_config = GROUP_CONFIG
    warning: float = Field(gt=0.0)
    drift: float = Field(gt=0.0)

    @model_validator(mode="after")
    def _ordered(self) -> Levels:
        if self.drift < self.warning:
            raise ValueError(f"the drift threshold {self.drift} is below the warning threshold {self.warning}")
        return self


class DriftThresholds(BaseModel):
    """Thresholds of the distances between a stream's recent scores and its baseline."""

    model_config = GROUP_CONFIG
    linf: Levels = Field(
        Levels(warning=0.05, drift=0.1),
        description="KS statistic = SageMaker's L-infinity distance; drift: Model Monitor's comparison_threshold",
    )
    psi: Levels = Field(
        Levels(warning=0.1, drift=0.2), description="population stability index; drift: the usual 'significant'"
    )
    js: Levels = Field(
        Levels(warning=0.05, drift=0.1), description="Jensen-Shannon distance, base 2; drift: Evidently's threshold"
    )
    wasserstein: Levels = Field(
        Levels(warning=0.05, drift=0.15),
        description="Wasserstein distance in baseline standard deviations; 0.1 σ gave 14 % false drift episodes",
    )
    accuracy_fall: Levels = Field(
        Levels(warning=0.02, drift=0.05),
        description="fall of a classify stream's estimated accuracy below its label mix's (e.g. 0.89 → 0.84 is "
        "drift); at most 1",
    )

    @model_validator(mode="after")
    def _accuracy_bounded(self) -> DriftThresholds:
        if self.accuracy_fall.drift > 1.0:
            raise ValueError("accuracy_fall: a fall of accuracy is at most 1")
        return self


class HttpTimeouts(BaseModel):
    """Seconds a slow client has to send a request, by part; past them the connection gets 408 and closes."""

    model_config = GROUP_CONFIG
    header: float = Field(10.0, gt=0.0, description="the head, from the connection or the last answer")
    body: float = Field(60.0, gt=0.0, description="the body, from its head")


class ServerSettings(Group):
    """HTTP server: uvicorn and the connection limits of `o2v serve` (service/api/connections.py), below the app,
    where a request is still bytes."""

    host: str = Field("127.0.0.1", description="address uvicorn listens on (0.0.0.0: every interface)")
    port: int = Field(8000, ge=0, le=65535, description="port uvicorn listens on")
    workers: int = Field(
        1, ge=1, description="uvicorn worker processes (each loads the model); > 1 needs the drift monitor off"
    )
    access_log: bool = Field(False, description="uvicorn's per-request log line; /metrics counts requests")
    http_timeouts_s: HttpTimeouts = Field(
        HttpTimeouts(), description="how long a request's head and body may take to arrive (slow clients get 408)"
    )
    max_connections: int = Field(
        1000,
        ge=8,
        description="open connections; past it the one waiting longest on its client is closed (never below the "
        "fd limit: lowered to ulimit -n minus 64 minus 3 per O2V_MAX_OPEN_COLLECTIONS)",
    )


class LimitSettings(Group):
    """Request limits: what one request may ask; beyond a limit the answer is a 4xx that names it."""

    max_request_texts: int = Field(256, ge=1, description="texts in one request")
    max_text_chars: int = Field(8192, ge=1, description="characters in one text")
    max_body_bytes: int = Field(
        2_000_000, ge=1024, description="request body size (`o2v serve --sagemaker` raises it to 6 MiB)"
    )
    max_top_k: int = Field(1000, ge=1, description="top_k and k of one search or classify (and their sum in a batch)")
    max_invocation_instances: int = Field(
        1000, ge=1, description="instances in one /invocations request; 1000 384-d embeddings answer ~5 MB"
    )
    max_invocation_tokens: int = Field(
        1_048_576, ge=1, description="token ids in one /invocations request, in0+in1 (1000 instances × 2 × 512)"
    )
    max_tokenize_tokens: int = Field(
        65_536, ge=1, description="tokens one /tokenize answer lists (~70 bytes each in JSON); beyond it a 422"
    )
    max_token_ids: int = Field(
        65_536,
        ge=1,
        description="OpenAI token ids (cl100k_base) in one /v1/embeddings request, decoded to text before embedding",
    )
    max_get_ids: int = Field(1000, ge=1, description="ids in one keyed batch get (POST /collections/{name}/get)")
    max_scroll_limit: int = Field(1000, ge=1, description="items in one scroll page")
    max_search_batch: int = Field(64, ge=1, description="queries in one search/batch request")
    max_clusters: int = Field(1000, ge=1, description="k of one cluster request (and at most the items stored)")
    max_cluster_work: int = Field(
        20_000_000, ge=1, description="k × items × k-means restarts one cluster request may cost; beyond it a 422"
    )
    max_heavy_jobs: int = Field(
        1,
        ge=1,
        description="requests of each heavy kind (cluster; drift baseline upload) running at once, on their own "
        "threads; beyond it a 503",
    )
    max_metadata_bytes: int = Field(
        65_536, ge=2, le=65_536, description="an item's metadata as UTF-8 JSON (Milvus' limit on one JSON value)"
    )
    max_open_collections: int = Field(
        64, ge=1, description="collections with open files (3 each); the least recently used close beyond it"
    )


class SageMakerSettings(Group):
    """SageMaker backend: `--backend sagemaker` proxies an Object2Vec endpoint."""

    prefix: ClassVar[str] = "sagemaker_"
    endpoint: str | None = Field(
        None, description="the endpoint --backend sagemaker calls; credentials come from boto3's usual chain"
    )
    region: str = Field("us-east-1", description="AWS region of the endpoint")
    endpoint_url: str | None = Field(None, description="another sagemaker-runtime URL (a VPC endpoint, a stand-in)")
    max_attempts: int = Field(3, ge=1, description="attempts per call, the first included (adaptive)")
    model_dir: Path = Field(
        Path("/opt/ml/model"),
        description="where SageMaker unpacks the model for `o2v serve --sagemaker` (another folder runs the "
        "container's scripts outside SageMaker)",
    )


class IndexSettings(Group):
    """Index defaults (service/index): the kind a collection gets unless its PUT names another, and SQLite upkeep."""

    prefix: ClassVar[str] = "index_"
    default: Kind = Field(
        "flat",
        description="index kind of a collection whose PUT names none (docs/collections.md); its parameters are the "
        "PUT's, else constants (service/index/config.py: ef_search 512 and nprobe 128 of 1024 give recall@10 0.96 "
        "at 1M)",
    )
    busy_timeout_s: float = Field(
        60.0, gt=0.0, description="a write waits this long for another's SQLite write lock, then 503 + Retry-After"
    )


class MilvusSettings(Group):
    """Milvus (O2V_VECTOR_STORE=milvus; service/index/engines/milvus, extra [milvus])."""

    prefix: ClassVar[str] = "milvus_"
    uri: str | None = Field(None, description="http(s)://host:19530 or a .db path (Lite); data_dir/milvus.db")
    token: SecretStr | None = Field(None, description="'user:password' or an API key")
    db: str | None = Field(None, description="database (it must exist); the server's default when unset")
    timeout_s: float = Field(10.0, gt=0, description="limit of one Milvus call; past it the request gets 503")


class KeptTexts(Shorthand):
    """Recent live texts kept for `o2v drift export`: a switch alone (`true`) or an object with its bounds."""

    alone: ClassVar[str] = "enabled"
    enabled: bool = Field(False, description="keep recent live texts (they may be personal data)")
    max: int = Field(1000, ge=1, description="kept texts at most (newest kept)")
    max_age_s: float = Field(86400.0, gt=0.0, description="kept texts are forgotten after this")


class DriftSettings(Group):
    """Drift monitor (service/drift; the defaults and why: docs/drift.md). An explicit value that contradicts
    another (a min_samples above the window) is refused; a default that would, shrinks to fit (noted per field)."""

    prefix: ClassVar[str] = "drift_"
    enabled: bool = Field(True, description="the drift monitor and its /drift routes (off: O2V_WORKERS may be > 1)")
    window: int = Field(1000, ge=10, description="live scores kept per stream (last N)")
    min_samples: int = Field(
        100, ge=10, description="live scores needed before any verdict (≤ window; the default shrinks to it)"
    )
    check_every: int = Field(25, ge=1, description="new scores between two status checks")
    thresholds: DriftThresholds = Field(
        DriftThresholds(), description="warning and drift thresholds of each distance (JSON object)"
    )
    max_streams: int = Field(32, ge=1, description="streams at most; beyond it new names get a 422")
    streams: list[str] = Field(
        [], description="streams that exist from the start besides the built-in ones (unkeyed callers may feed them)"
    )
    webhook_url: str | None = Field(None, description="status changes are POSTed here (redirects not followed)")
    baseline: Literal["card", "learn"] = Field(
        "card",
        description="card: the model card's validation scores; learn: each stream's own first live scores (scores "
        "that are not pair cosines, search_top1 and classify_confidence, learn their own either way)",
    )
    keep_texts: KeptTexts = Field(
        KeptTexts(), description="`true` keeps recent live texts for `o2v drift export`, or a JSON object"
    )
    embed_check_every: int = Field(
        100, ge=1, description="new embeddings of a route family between two tests of the embedding drift"
    )

    @model_validator(mode="after")
    def _consistent(self) -> DriftSettings:
        """min_samples at most the window: an explicit value past it is refused, naming both variables; the default
        shrinks to fit, so that O2V_DRIFT_WINDOW=50 alone is a working configuration. The default is shrunk past
        pydantic's assignment, so that it stays a default: a copy (`Settings.updated`) derives it again."""
        if self.min_samples <= self.window:
            return self
        if "min_samples" in self.model_fields_set:
            raise ValueError(f"O2V_DRIFT_MIN_SAMPLES={self.min_samples} is above O2V_DRIFT_WINDOW ({self.window})")
        self.__dict__["min_samples"] = self.window
        return self


GROUPS: dict[str, type[Group]] = {
    "server": ServerSettings,
    "limits": LimitSettings,
    "sagemaker": SageMakerSettings,
    "index": IndexSettings,
    "milvus": MilvusSettings,
    "drift": DriftSettings,
}


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
    model_aliases: list[str] = Field(
        [], description="other names /v1/embeddings accepts as `model` (JSON list), e.g. an OpenAI model's"
    )
    default_model: str | None = Field(
        None,
        description="the model served when a request names none (default: the configured one); a promotion "
        "(POST /models/{name}/promote) overrides it",
    )
    max_loaded_models: int = Field(
        3, ge=1, description="adapted models kept loaded besides the configured one (least recently used unloaded)"
    )
    adapt_threads: int = Field(1, ge=1, description="torch threads of the adaptation training process")
    adapt_max_items: int = Field(200_000, ge=1, description="labelled items one adaptation job may train on")

    # micro-batching: requests' texts are queued and encoded together
    max_batch_wait_ms: float = Field(
        2.0,
        ge=0.0,
        description="how long a batch that is not full waits for more texts (under load the next batch forms while "
        "the encoder runs anyway)",
    )
    max_queued_texts: int = Field(1024, ge=1, description="texts waiting; beyond it requests get 503")
    embed_cache_bytes: int = Field(
        0, ge=0, description="LRU of embeddings by token ids, bounded in bytes (384-d: ~2 KB a text); 0 = off"
    )

    # access
    api_key: SecretStr | None = Field(
        None, description="Bearer key for write routes; unset = open (an empty or placeholder value refuses to start)"
    )
    read_api_key: SecretStr | None = Field(
        None,
        description="Bearer key for every other route too (the write key also reads; needs O2V_API_KEY); "
        "/healthz, /readyz, /ping and /metrics stay open; unset = reads open (and in a SageMaker container)",
    )
    docs_open: bool | None = Field(
        None,
        description="serve /docs, /redoc and /openapi.json without a key; unset = open unless O2V_READ_API_KEY is set",
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
    cache: Path = Field(
        default_factory=lambda: Path.home() / ".cache" / "o2v",
        description="downloaded and derived models of training and benchmarks (all-mpnet-base-v2, model2vec); "
        "~/.cache/o2v",
    )
    mpnet: Path | None = Field(
        None, description="the all-mpnet-base-v2 teacher folder (unset: <O2V_CACHE>/all-mpnet-base-v2/…)"
    )

    # collections: the engine and what every engine shares
    vector_store: Literal["faiss", "milvus"] = Field(
        "faiss", description="faiss: embedded SQLite + FAISS under data_dir; milvus: a Milvus server or Milvus Lite"
    )

    server: ServerSettings = Field(default_factory=ServerSettings, description="")
    limits: LimitSettings = Field(default_factory=LimitSettings, description="")
    sagemaker: SageMakerSettings = Field(default_factory=SageMakerSettings, description="")
    index: IndexSettings = Field(default_factory=IndexSettings, description="")
    milvus: MilvusSettings = Field(default_factory=MilvusSettings, description="")
    drift: DriftSettings = Field(default_factory=DriftSettings, description="")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The environment is read by flat name (FlatEnvironment), never as one JSON value per group."""
        return init_settings, FlatEnvironment(settings_cls), dotenv_settings, file_secret_settings

    def __init__(self, **values: Any) -> None:
        with by_variable():
            super().__init__(**values)

    @model_validator(mode="before")
    @classmethod
    def _flat_names(cls, data: Any) -> Any:
        """`Settings(drift_window=5)`: flat names, current or former, go to their group."""
        return nest(data) if isinstance(data, dict) else data

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

    def updated(self, **flat: Any) -> Settings:
        """A validated copy with `flat` (flat names, as in the environment) changed; the environment is not re-read.
        Only what was set is copied: a default shrunk to fit (DriftSettings) fits the copy's values again."""
        token = ENVIRONMENT.set(False)  # validation runs __init__, whose sources include the environment
        try:
            return type(self).model_validate({**self.model_dump(exclude_unset=True), **flat})
        finally:
            ENVIRONMENT.reset(token)

    @classmethod
    def flat_defaults(cls) -> dict[str, Any]:
        """Every flat name a setting is read by (current and former, FLAT) → its default (not the environment's)."""
        return {name: default_at(path) for name, path in FLAT.items()}


ENVIRONMENT: ContextVar[bool] = ContextVar("o2v_settings_read_environment", default=True)
"""False while `Settings.updated` validates a copy: the copy holds the settings' values, not today's environment."""


class FlatEnvironment(PydanticBaseSettingsSource):
    """O2V_<flat name> variables (case-insensitive, as pydantic-settings reads them), placed into their groups;
    lists and objects are JSON (an object that is not JSON is passed on as text: O2V_DRIFT_KEEP_TEXTS=true)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ reads every variable at once

    def __call__(self) -> dict[str, Any]:
        if not ENVIRONMENT.get():
            return {}
        prefix = str(self.config.get("env_prefix", "")).lower()
        flat: dict[str, Any] = {}
        for key, raw in os.environ.items():
            name = key.lower().removeprefix(prefix) if key.lower().startswith(prefix) else None
            if name in SPLIT:
                flat[name] = decoded(raw, dict[str, Any])
            elif name in FLAT:
                flat[name] = decoded(raw, annotation_at(FLAT[name]))
            elif name in FIXED:
                flat[name] = raw
        split = {name: flat.pop(name) for name in SPLIT.keys() & flat.keys()}
        return {**nest(flat), **split}  # unpacked by _flat_names, where a bad field is a validation error


def decoded(raw: str, annotation: Any) -> Any:
    """JSON for a list or an object; text for the rest (pydantic parses it)."""
    complex_type = typing.get_origin(annotation) in (list, dict) or (
        isinstance(annotation, type) and issubclass(annotation, BaseModel)
    )
    if not complex_type:
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def paths() -> Iterator[tuple[str, tuple[str, ...]]]:
    """(flat name, path) of every current setting: top-level fields, and each group's fields under its prefix."""
    for name in Settings.model_fields:
        group = GROUPS.get(name)
        if group is None:
            yield name, (name,)
        else:
            for field in group.model_fields:
                yield group.prefix + field, (name, field)


def threshold_names(flat: str, path: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    return {f"{flat}_warning": (*path, "warning"), f"{flat}_drift": (*path, "drift")}


RENAMED: dict[str, tuple[str, ...]] = {
    "models_loaded_max": ("max_loaded_models",),
    "batch_max_wait_ms": ("max_batch_wait_ms",),
    "queue_max_size": ("max_queued_texts",),
    "http_header_timeout_s": ("server", "http_timeouts_s", "header"),
    "http_body_timeout_s": ("server", "http_timeouts_s", "body"),
    "max_batch_size": ("limits", "max_request_texts"),
    "metadata_max_bytes": ("limits", "max_metadata_bytes"),
    "drift_max_baseline_jobs": ("limits", "max_heavy_jobs"),
    **{f"drift_{name}": ("drift", "keep_texts", "max") for name in ("keep_texts_max", "max_kept_texts")},
    **{
        f"drift_{name}": ("drift", "keep_texts", "max_age_s")
        for name in ("keep_texts_max_age_s", "max_kept_text_age_s")
    },
    **threshold_names("drift_linf", ("drift", "thresholds", "linf")),
    **threshold_names("drift_psi", ("drift", "thresholds", "psi")),
    **threshold_names("drift_js", ("drift", "thresholds", "js")),
    **threshold_names("drift_wasserstein", ("drift", "thresholds", "wasserstein")),
    "drift_accuracy_fall": ("drift", "thresholds", "accuracy_fall"),
    **threshold_names("drift_accuracy_fall", ("drift", "thresholds", "accuracy_fall")),
}
"""Former flat names → where they are now (a setting renamed, merged into another with the same meaning, or made a
field of an object setting); still read, from the environment and as keywords."""
CURRENT: dict[tuple[str, ...], str] = {path: name for name, path in paths()}
"""The path of every setting → its one current flat name (O2V_<NAME>)."""


def setting_fields() -> list[str]:
    """What a user sets, counted per field: each variable, or each field of an object variable (O2V_DRIFT_KEEP_TEXTS
    is three: enabled, max, max_age_s; a threshold pair is one field). Issue 24's count, at most 70."""
    counted = []
    for path, name in CURRENT.items():
        annotation = annotation_at(path)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            counted += [f"O2V_{name.upper()}.{field}" for field in annotation.model_fields]
        else:
            counted.append(f"O2V_{name.upper()}")
    return counted


FLAT: dict[str, tuple[str, ...]] = {**RENAMED, **{name: path for path, name in CURRENT.items()}}
"""Every flat name a setting is read by, current and former, → its path in Settings."""
DRIFT_CONSTANTS = (
    *("CHECK_INTERVAL_S", "CONFIRM_CHECKS", "CLEAR_CHECKS", "HYSTERESIS", "PSI_BINS", "BUCKET_SECONDS"),
    *("HISTORY_BUCKETS", "WEBHOOK_TIMEOUT_S", "WEBHOOK_RETRIES", "SHIFT_HORIZON", "SHIFT_WARNING_FALSE_ALARM"),
    *("SHIFT_SIMULATIONS", "SHIFT_CLIP", "LABEL_MIN_COUNT", "LABEL_ALPHA", "TOKEN_QUEUE", "EMBED_CHECK_INTERVAL_S"),
    *("EMBED_PERMUTATIONS", "CPU_BUDGET", "PERSIST_INTERVAL_S", "SHIFT_FALSE_ALARM", "SHIFT_REFERENCE_MAX"),
    *("MAX_LABELS", "SHIFT_WINDOW", "LEARN_WARMUP", "LEARN_SIZE"),
)
INDEX_CONSTANTS = {
    **{f"hnsw_{name}": f"HNSW_{name.upper()}" for name in ("m", "ef_construction", "ef_search")},
    "hnsw_rebuild_deleted_share": "REBUILD_DELETED_SHARE",
    **{f"ivf_{name}": f"IVF_{name.upper()}" for name in ("nlist", "nprobe", "min_train", "pq_m")},
    "index_rerank": "RERANK",
}
"""Former flat names of O2V_INDEX_DEFAULT's parameters (<prefix>_<field>) → their constants in index/config.py."""
FIXED: dict[str, str] = {
    "models_unload_grace_s": "service.encoders.pool:UNLOAD_GRACE_S",
    "readyz_timeout_s": "service.api.health:READYZ_TIMEOUT_S",
    "max_headers": "service.api.connections:MAX_HEADERS",
    "onnx_inter_op_threads": "service.encoders.onnx:INTER_OP_THREADS",
    "onnx_max_batch_tokens": "service.encoders.onnx:MAX_BATCH_TOKENS",
    **{name: "service.encoders.batching:ENCODE_BATCH" for name in ("max_encode_batch", "batch_max_size")},
    "adapt_niceness": "service.model.adaptation:ADAPT_NICENESS",
    "sagemaker_connect_timeout_s": "service.encoders.sagemaker:CONNECT_TIMEOUT_S",
    **{name: "service.index.metadata:MAX_METADATA_DEPTH" for name in ("max_metadata_depth", "metadata_max_depth")},
    "max_header_bytes": "service.api.connections:MAX_HEADER_BYTES",
    "max_filter_keys": "service.index.metadata:MAX_FILTER_KEYS",
    "index_filter_exact_max": "service.index.engines.faiss.mirror:Options.filter_exact_max",
    "index_rebuild_inline_max": "service.index.engines.faiss.mirror:Options.rebuild_inline_max",
    "index_snapshot_every": "service.index.engines.faiss.mirror:SNAPSHOT_EVERY",
    **{name: f"service.index.config:{constant}" for name, constant in INDEX_CONSTANTS.items()},
    "classify_min_score": "service.index.classify:DEFAULT_MIN_SCORE",
    "retry_after_s": "service.api.errors:RETRY_AFTER_S",
    "max_tokenize_in_flight": "service.encoders.embedder:MAX_TOKENIZE_IN_FLIGHT",
    "sagemaker_max_body_bytes": "service.encoders.base:INVOKE_ENDPOINT_MAX_BYTES",
    "sagemaker_read_timeout_s": "service.encoders.sagemaker:READ_TIMEOUT_S",
    "drift_classify_reference_max": "service.drift.config:CLASSIFY_REFERENCE_MAX",
    "drift_live_baseline_streams": "service.drift.config:LIVE_BASELINE_STREAMS",
    "drift_embed_window": "service.drift.config:EMBED_WINDOW",
    "drift_embed_min_samples": "service.drift.config:EMBED_MIN_SAMPLES",
    **{f"drift_{name.lower()}": f"service.drift.config:{name}" for name in DRIFT_CONSTANTS},
    **{
        f"drift_{pair.lower()}_{level}": f"service.drift.config:{pair}.{level}"
        for pair in ("KS_PVALUE", "TOKEN_MARGIN", "EMBED_PVALUE")
        for level in ("warning", "drift")
    },
}
"""Former settings that became module constants (research knobs: simulation counts, bins, permutations, p-values of
internal tests, schedules, batching and thread tuning; limits fixed by a backend; index parameters a PUT sets per
collection): flat name → where the constant is, with its reason in a docstring. Still accepted, with a warning naming
the value."""
SPLIT: dict[str, dict[str, str]] = {
    "index_default": {"kind": "index_default", **{flat.split("_", 1)[1]: flat for flat in INDEX_CONSTANTS}},
    "drift_baseline": {
        "kind": "drift_baseline",
        "live_streams": "drift_live_baseline_streams",
        "warmup": "drift_learn_warmup",
        "size": "drift_learn_size",
    },
    "drift_embeddings": {f: f"drift_embed_{f}" for f in ("window", "min_samples", "check_every")},
}
"""Former object settings (a JSON object of fields), each field → the flat name it is read as now: the kind is a
variable alone, O2V_DRIFT_EMBEDDINGS' check_every is O2V_DRIFT_EMBED_CHECK_EVERY, the others are constants (FIXED:
accepted with a warning). A kind alone (O2V_INDEX_DEFAULT=hnsw) is read as it always was."""


def fixed_value(name: str) -> Any:
    """The value a former setting is fixed at, read from its module (imported late: they import this one)."""
    module, _, attribute = FIXED[name].partition(":")
    value: Any = importlib.import_module(module)
    for part in attribute.split("."):
        value = getattr(value, part)
    return value


@cache
def warn_fixed(name: str, field_of: str = "") -> None:
    """The warning for former setting `name`, set as O2V_<NAME> or as a field of object variable `field_of`."""
    where = f"O2V_{field_of.upper()} field `{SPLIT_FIELD[field_of, name]}`" if field_of else f"O2V_{name.upper()}"
    log.warning(
        "%s is no longer a setting: it is fixed at %s (%s); %s",
        where,
        fixed_value(name),
        FIXED[name].replace(":", "."),
        "leave it out" if field_of else "unset it",
    )


SPLIT_FIELD = {(variable, flat): field for variable, fields in SPLIT.items() for field, flat in fields.items()}
"""(former object variable, flat name) → the field of the object that the flat name stands for."""


def unpacked(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """`data` with the fields of former object settings (SPLIT) given as JSON objects moved to their flat names (a
    flat name given as well wins), and which object each moved name came from. A field that names nothing, or a
    value other than an object for a variable that is gone, is refused."""
    out, came_from = dict(data), {}
    for variable, fields in SPLIT.items():
        value = out.get(variable)
        if variable in out and variable not in FLAT and not isinstance(value, Mapping):
            raise ValueError(f"O2V_{variable.upper()} must be a JSON object of {', '.join(fields)}")
        if not isinstance(value, Mapping):
            continue
        del out[variable]
        unknown = sorted(value.keys() - fields.keys())
        if unknown:
            raise ValueError(f"O2V_{variable.upper()} has no field {', '.join(unknown)}: it takes {', '.join(fields)}")
        for field, item in value.items():
            if not given(out, fields[field]):
                out[fields[field]], came_from[fields[field]] = item, variable
    return out, came_from


def given(data: Mapping[str, Any], name: str) -> bool:
    """Whether `data` sets flat name `name`, by that name or (a source's output, already nested) at its path."""
    if name in data:
        return True
    node: Any = data
    for key in FLAT.get(name, ()):
        if not isinstance(node, Mapping) or key not in node:
            return False
        node = node[key]
    return name in FLAT


def variable(path: tuple[str | int, ...]) -> tuple[str, ...]:
    """The environment variable of a path in Settings and the rest of the path: (O2V_DRIFT_WINDOW,) for drift.window,
    (O2V_DRIFT_KEEP_TEXTS, max) for a field inside an object setting. A path no variable reads stays as it is."""
    for cut in range(len(path), 0, -1):
        name = CURRENT.get(tuple(str(key) for key in path[:cut]))
        if name is not None:
            return (f"O2V_{name.upper()}", *map(str, path[cut:]))
    return tuple(map(str, path))


def also(path: tuple[str | int, ...]) -> str:
    """The former variables that set exactly `path`, as a note (` (or O2V_DRIFT_LEARN_WARMUP)`), or nothing."""
    former = [f"O2V_{name.upper()}" for name, at in RENAMED.items() if at == path]
    return f" (or {', '.join(former)})" if former else ""


@contextmanager
def by_variable() -> Iterator[None]:
    """Validation errors located by environment variable (O2V_DRIFT_WINDOW), not by field path (drift.window): the
    variable is what a user sets. A group's own check (loc `drift`) names its variables in its message."""
    try:
        yield
    except ValidationError as exc:
        details: list[Any] = [{**error, "loc": located(error["loc"])} for error in exc.errors()]
        raise ValidationError.from_exception_data(exc.title, details, hide_input=True) from None


def located(loc: tuple[str | int, ...]) -> tuple[str, ...]:
    """The error's variable (and the field inside it); none for a check of several (Settings', a group's), whose
    message names them."""
    if not loc or (len(loc) == 1 and loc[0] in GROUPS):
        return ()
    *parts, last = variable(loc)
    return (*parts, last + also(loc))


def annotation_at(path: tuple[str, ...]) -> Any:
    """The type a path leads to (a group, an object such as Levels, or a leaf's annotation)."""
    model: Any = Settings
    annotation: Any = None
    for key in path:
        annotation = model.model_fields[key].annotation
        model = annotation
    return annotation


def default_at(path: tuple[str, ...]) -> Any:
    model: Any = Settings
    value: Any = None
    for key in path:
        field = model.model_fields[key]
        value = field.get_default(call_default_factory=True) if value is None else getattr(value, key)
        model = field.annotation
    return value


def nest(data: dict[str, Any]) -> dict[str, Any]:
    """`data` with its flat names (FLAT) moved to their paths: shallower paths first and former names before current
    ones, so that O2V_DRIFT_KEEP_TEXTS=true with O2V_DRIFT_KEEP_TEXTS_MAX=5 keeps 5 texts. FIXED names (also as
    fields of a former object setting, SPLIT) are dropped, with a warning. Keys that name no setting stay
    (extra="ignore" drops them)."""
    data, came_from = unpacked(data)
    for name in sorted(FIXED.keys() & data.keys()):
        warn_fixed(name, came_from.get(name, ""))
    out = {key: value for key, value in data.items() if key not in FLAT and key not in FIXED}
    flat = [name for name in data if name in FLAT]
    for name in sorted(flat, key=lambda n: (len(FLAT[n]), n not in RENAMED)):
        place(out, FLAT[name], data[name])
    return out


def place(out: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Set `value` at `path`, turning what is on the way into dicts: a group given as a model is dumped, an object
    not yet given starts from its default (a former name sets one half of a threshold pair). Only what was set is
    dumped, so that the fields left to their defaults stay defaults (DriftSettings shrinks those to fit)."""
    node: dict[str, Any] = out
    model: Any = Settings
    for key in path[:-1]:
        field = model.model_fields[key]
        model = field.annotation
        child = node.get(key)
        if child is None:
            default = field.get_default(call_default_factory=False)
            child = default.model_dump(exclude_unset=True) if isinstance(default, BaseModel) else {}
        elif isinstance(child, BaseModel):
            child = child.model_dump(exclude_unset=True)
        elif not isinstance(child, Mapping):
            child = model.model_validate(child).model_dump(exclude_unset=True)
        node[key] = child = dict(child)
        node = child
    node[path[-1]] = value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
