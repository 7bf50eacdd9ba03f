"""Settings: grouped in code, flat in the environment. Every variable name the service ever read still works: a
current one sets its field, a former one the field it was renamed to, and one that became a constant starts the
service with a warning that names the fixed value. Contradicting values are refused, naming both variables."""

from __future__ import annotations

import json
import logging
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import SecretStr, ValidationError

from service.drift.config import KS_PVALUE, LIVE_BASELINE_STREAMS, SHIFT_SIMULATIONS, SHIFT_WINDOW, DriftConfig
from service.index.config import HNSW_M, IndexConfig
from service.settings import (
    CURRENT,
    FIXED,
    FLAT,
    RENAMED,
    SPLIT,
    Settings,
    annotation_at,
    default_at,
    fixed_value,
    setting_fields,
    warn_fixed,
)

MAX_SETTINGS = 70
"""Issue 24: at most 70 settings, counted per field a user sets (`setting_fields`): each variable, and each field of
an object variable (O2V_DRIFT_KEEP_TEXTS is three: enabled, max, max_age_s). Former names (RENAMED), former settings
that are constants now (FIXED) and former object variables (SPLIT) are accepted but are not settings."""

VARIABLES = """
ACCESS_LOG ADAPT_MAX_ITEMS ADAPT_NICENESS ADAPT_THREADS API_KEY BACKEND BATCH_MAX_SIZE BATCH_MAX_WAIT_MS CACHE
CLASSIFY_MIN_SCORE DATA_DIR DEFAULT_MODEL DOCS_OPEN DRIFT_ACCURACY_FALL DRIFT_ACCURACY_FALL_DRIFT
DRIFT_ACCURACY_FALL_WARNING DRIFT_BASELINE DRIFT_BUCKET_SECONDS DRIFT_CHECK_EVERY DRIFT_CHECK_INTERVAL_S
DRIFT_CLASSIFY_REFERENCE_MAX DRIFT_CLEAR_CHECKS DRIFT_CONFIRM_CHECKS DRIFT_CPU_BUDGET DRIFT_EMBED_CHECK_EVERY
DRIFT_EMBED_CHECK_INTERVAL_S DRIFT_EMBED_MIN_SAMPLES DRIFT_EMBED_PERMUTATIONS DRIFT_EMBED_PVALUE_DRIFT
DRIFT_EMBED_PVALUE_WARNING DRIFT_EMBED_WINDOW DRIFT_ENABLED DRIFT_HISTORY_BUCKETS DRIFT_HYSTERESIS DRIFT_JS_DRIFT
DRIFT_JS_WARNING DRIFT_KEEP_TEXTS DRIFT_KEEP_TEXTS_MAX DRIFT_KEEP_TEXTS_MAX_AGE_S DRIFT_KS_PVALUE_DRIFT
DRIFT_KS_PVALUE_WARNING DRIFT_LABEL_ALPHA DRIFT_LABEL_MIN_COUNT DRIFT_LEARN_SIZE DRIFT_LEARN_WARMUP DRIFT_LINF_DRIFT
DRIFT_LINF_WARNING DRIFT_LIVE_BASELINE_STREAMS DRIFT_MAX_BASELINE_JOBS DRIFT_MAX_KEPT_TEXT_AGE_S
DRIFT_MAX_KEPT_TEXTS DRIFT_MAX_LABELS DRIFT_MAX_STREAMS DRIFT_MIN_SAMPLES DRIFT_PERSIST_INTERVAL_S DRIFT_PSI_BINS
DRIFT_PSI_DRIFT DRIFT_PSI_WARNING DRIFT_SHIFT_CLIP DRIFT_SHIFT_FALSE_ALARM DRIFT_SHIFT_HORIZON
DRIFT_SHIFT_REFERENCE_MAX DRIFT_SHIFT_SIMULATIONS DRIFT_SHIFT_WARNING_FALSE_ALARM DRIFT_SHIFT_WINDOW DRIFT_STREAMS
DRIFT_THRESHOLDS DRIFT_TOKEN_MARGIN_DRIFT DRIFT_TOKEN_MARGIN_WARNING DRIFT_TOKEN_QUEUE DRIFT_WASSERSTEIN_DRIFT
DRIFT_WASSERSTEIN_WARNING DRIFT_WEBHOOK_RETRIES DRIFT_WEBHOOK_TIMEOUT_S DRIFT_WEBHOOK_URL DRIFT_WINDOW
EMBED_CACHE_BYTES HNSW_EF_CONSTRUCTION HNSW_EF_SEARCH HNSW_M HNSW_REBUILD_DELETED_SHARE HOST HTTP_BODY_TIMEOUT_S
HTTP_HEADER_TIMEOUT_S INDEX_BUSY_TIMEOUT_S INDEX_DEFAULT INDEX_FILTER_EXACT_MAX INDEX_REBUILD_INLINE_MAX
INDEX_RERANK INDEX_SNAPSHOT_EVERY IVF_MIN_TRAIN IVF_NLIST IVF_NPROBE IVF_PQ_M MAX_BATCH_SIZE MAX_BATCH_WAIT_MS
MAX_BODY_BYTES MAX_CLUSTER_WORK MAX_CLUSTERS MAX_CONNECTIONS MAX_ENCODE_BATCH MAX_FILTER_KEYS MAX_GET_IDS
MAX_HEADER_BYTES MAX_HEADERS MAX_HEAVY_JOBS MAX_INVOCATION_INSTANCES MAX_INVOCATION_TOKENS MAX_LOADED_MODELS
MAX_METADATA_BYTES MAX_METADATA_DEPTH MAX_OPEN_COLLECTIONS MAX_QUEUED_TEXTS MAX_REQUEST_TEXTS MAX_SCROLL_LIMIT
MAX_SEARCH_BATCH MAX_TEXT_CHARS MAX_TOKEN_IDS MAX_TOKENIZE_IN_FLIGHT MAX_TOKENIZE_TOKENS MAX_TOP_K
METADATA_MAX_BYTES METADATA_MAX_DEPTH MILVUS_DB MILVUS_TIMEOUT_S MILVUS_TOKEN MILVUS_URI MODEL_ALIASES MODEL_DIR
MODELS_LOADED_MAX MODELS_UNLOAD_GRACE_S MPNET ONNX_INTER_OP_THREADS ONNX_INTRA_OP_THREADS ONNX_MAX_BATCH_TOKENS PORT
QUEUE_MAX_SIZE READ_API_KEY READYZ_TIMEOUT_S RETRY_AFTER_S SAGEMAKER_CONNECT_TIMEOUT_S SAGEMAKER_ENDPOINT
SAGEMAKER_ENDPOINT_URL SAGEMAKER_MAX_ATTEMPTS SAGEMAKER_MAX_BODY_BYTES SAGEMAKER_MODEL_DIR SAGEMAKER_READ_TIMEOUT_S
SAGEMAKER_REGION SHARED_DATA VECTOR_STORE WORKERS DRIFT_EMBEDDINGS HTTP_TIMEOUTS_S
""".split()  # noqa: SIM905 (a list of 153 names, one a line, would be long)
"""Every O2V_* variable the service read before the settings were cut to 70 (the 0.1 releases' 138 settings, the two
the teacher read from os.environ, and the names the grouped settings introduced): frozen, each stays accepted."""
KEY = "Zq8-settings-test-key-41vX"
SHORTHANDS: dict[str, tuple[str, Callable[[Settings], bool]]] = {
    "INDEX_DEFAULT": ('{"kind": "hnsw"}', lambda s: s.index.default == "hnsw"),
    "DRIFT_BASELINE": ('{"kind": "learn"}', lambda s: s.drift.baseline == "learn"),
    "DRIFT_EMBEDDINGS": ('{"check_every": 7}', lambda s: s.drift.embed_check_every == 7),
    "HTTP_TIMEOUTS_S": ('{"body": 30}', lambda s: s.server.http_timeouts_s.body == 30.0),
    "DRIFT_KEEP_TEXTS": ("true", lambda s: s.drift.keep_texts.enabled),
    "DRIFT_THRESHOLDS": ('{"psi": {"warning": 0.1, "drift": 0.3}}', lambda s: s.drift.thresholds.psi.drift == 0.3),
    "DRIFT_ACCURACY_FALL": (
        '{"warning": 0.03, "drift": 0.08}',
        lambda s: s.drift.thresholds.accuracy_fall.drift == 0.08,
    ),
}
"""Variables whose value is or was an object, in the form they were set before (a switch alone, a JSON object)."""


def test_there_are_at_most_70_settings_counted_per_field() -> None:
    current = sorted(FLAT.keys() - RENAMED.keys())
    assert len(current) == len(CURRENT) < len(setting_fields()) <= MAX_SETTINGS, setting_fields()
    assert "O2V_DRIFT_KEEP_TEXTS.max_age_s" in setting_fields() and "O2V_DRIFT_KEEP_TEXTS" not in setting_fields()


def test_every_variable_in_use_before_the_cut_is_still_read() -> None:
    assert len(VARIABLES) == 153
    unknown = [name for name in VARIABLES if not {name.lower()} & (FLAT.keys() | FIXED.keys() | SPLIT.keys())]
    assert unknown == []


def examples(name: str) -> list[tuple[str, Any]]:
    """Values of variable `name` other than its default, each as the environment holds it and as Settings does."""
    path = FLAT[name.lower()]
    default, annotation = default_at(path), annotation_at(path)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        (annotation,) = (a for a in typing.get_args(annotation) if a is not type(None))
    if typing.get_origin(annotation) is Literal:
        other = next(a for a in typing.get_args(annotation) if a != default)
        return [(other, other)]
    if annotation is bool:
        return [(json.dumps(not default), not default)]
    if annotation is int:
        return [(str(default + 1), default + 1), (str(default - 1), default - 1)]
    if annotation is float:
        return [(str(default + 0.01), default + 0.01), (str(default - 0.01), default - 0.01)]
    if annotation is Path:
        return [("/tmp/o2v-elsewhere", Path("/tmp/o2v-elsewhere"))]
    if annotation is str:
        return [("elsewhere-1", "elsewhere-1")]
    if typing.get_origin(annotation) is list:
        return [('["extra"]', ["extra"])]
    raise AssertionError(f"no example for O2V_{name}: {annotation}")


def value_at(settings: Settings, path: tuple[str, ...]) -> Any:
    value: Any = settings
    for key in path:
        value = getattr(value, key)
    return value.get_secret_value() if isinstance(value, SecretStr) else value


@pytest.mark.parametrize("name", VARIABLES)
def test_each_variable_in_use_before_the_cut_is_accepted(
    name: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A variable of a setting still sets it (a former name the field it became); one whose setting became a constant
    still starts the service, with a warning that says where the value is fixed now."""
    warn_fixed.cache_clear()
    variable = f"O2V_{name}"
    if name.lower() in FIXED:
        monkeypatch.setenv(variable, str(fixed_value(name.lower())))
        with caplog.at_level(logging.WARNING, logger="service.settings"):
            Settings()
        where = FIXED[name.lower()].replace(":", ".")
        assert f"{variable} is no longer a setting: it is fixed at" in caplog.text and where in caplog.text
        return
    if name in ("API_KEY", "READ_API_KEY", "MILVUS_TOKEN"):
        monkeypatch.setenv("O2V_API_KEY", KEY + "-write")
        candidates: list[tuple[str, Any]] = [(KEY, KEY)]
    else:
        candidates = [] if name in SHORTHANDS else examples(name)
    with caplog.at_level(logging.WARNING, logger="service.settings"):
        if name in SHORTHANDS:
            raw, holds = SHORTHANDS[name]
            monkeypatch.setenv(variable, raw)
            assert holds(Settings())
        else:
            refused = []
            for raw, expected in candidates:
                monkeypatch.setenv(variable, raw)
                try:
                    assert value_at(Settings(), FLAT[name.lower()]) == expected
                    break
                except ValidationError as exc:  # past a bound (default + 1 above a maximum): the other side
                    refused.append(exc)
            assert len(refused) < len(candidates), refused
    assert "no longer a setting" not in caplog.text


def test_groups_read_flat_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("O2V_DRIFT_WINDOW", "400")
    monkeypatch.setenv("O2V_MAX_TOP_K", "7")
    monkeypatch.setenv("O2V_SAGEMAKER_REGION", "eu-west-1")
    monkeypatch.setenv("O2V_PORT", "8123")
    monkeypatch.setenv("o2v_milvus_db", "lower")  # case-insensitive, as pydantic-settings reads variables
    monkeypatch.setenv("O2V_DRIFT_STREAMS", '["faq"]')
    monkeypatch.setenv("O2V_DRIFT__MIN_SAMPLES", "50")  # no `__` names: ignored
    s = Settings()
    assert (s.drift.window, s.limits.max_top_k, s.sagemaker.region, s.server.port) == (400, 7, "eu-west-1", 8123)
    assert (s.milvus.db, s.drift.streams, s.drift.min_samples) == ("lower", ["faq"], 100)


def test_keywords_take_flat_names_and_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("O2V_DRIFT_WINDOW", "400")
    monkeypatch.setenv("O2V_DRIFT_CHECK_EVERY", "5")
    s = Settings(drift_window=300, max_batch_size=4, drift={"min_samples": 20})
    assert (s.drift.window, s.drift.check_every, s.drift.min_samples) == (300, 5, 20)
    assert s.limits.max_request_texts == 4


def test_former_names_set_the_renamed_field_and_a_current_name_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("O2V_QUEUE_MAX_SIZE", "7")
    monkeypatch.setenv("O2V_METADATA_MAX_BYTES", "5000")
    monkeypatch.setenv("O2V_DRIFT_KEEP_TEXTS_MAX", "9")
    monkeypatch.setenv("O2V_HTTP_BODY_TIMEOUT_S", "5")
    s = Settings()
    assert (s.max_queued_texts, s.limits.max_metadata_bytes, s.drift.keep_texts.max) == (7, 5000, 9)
    assert (s.server.http_timeouts_s.body, s.server.http_timeouts_s.header) == (5.0, 10.0)
    monkeypatch.setenv("O2V_MAX_QUEUED_TEXTS", "8")
    assert Settings().max_queued_texts == 8


def test_the_index_default_is_a_kind_and_its_former_fields_are_constants(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """O2V_INDEX_DEFAULT's other fields are PUT parameters with constant defaults: given in its JSON object or by
    their former names, they warn where the value is fixed, and a PUT still sets them per collection."""
    warn_fixed.cache_clear()
    monkeypatch.setenv("O2V_INDEX_DEFAULT", "hnsw")
    monkeypatch.setenv("O2V_HNSW_M", "32")
    with caplog.at_level(logging.WARNING, logger="service.settings"):
        defaults = IndexConfig.defaults(Settings())
    assert (defaults.kind, defaults.m, defaults.ef_search) == ("hnsw", HNSW_M, 512)
    assert "O2V_HNSW_M is no longer a setting: it is fixed at 16 (service.index.config.HNSW_M); unset it" in caplog.text
    monkeypatch.setenv("O2V_INDEX_DEFAULT", '{"kind": "ivf", "nlist": 8}')
    monkeypatch.delenv("O2V_HNSW_M")
    with caplog.at_level(logging.WARNING, logger="service.settings"):
        assert Settings().index.default == "ivf"
    fixed = "O2V_INDEX_DEFAULT field `nlist` is no longer a setting: it is fixed at 1024 (service.index.config."
    fixed += "IVF_NLIST); leave it out"
    assert fixed in caplog.text
    assert defaults.with_params("ivf_pq", {"nlist": 8, "rerank": 30}).public() == {
        "index": "ivf_pq", "nlist": 8, "nprobe": 128, "min_train": 20_000, "pq_m": 48, "rerank": 30,
    }  # fmt: skip
    for refused in ('{"kind": "ivf", "lists": 8}', "ivfx"):
        monkeypatch.setenv("O2V_INDEX_DEFAULT", refused)
        with pytest.raises(ValidationError, match="O2V_INDEX_DEFAULT"):
            Settings()


def test_former_object_variables_set_what_is_left_of_them(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """O2V_DRIFT_BASELINE's kind and O2V_DRIFT_EMBEDDINGS' check_every are still read from their JSON objects (a
    variable of the field's own wins); their other fields are constants and warn."""
    warn_fixed.cache_clear()
    monkeypatch.setenv("O2V_DRIFT_BASELINE", '{"kind": "learn", "warmup": 20}')
    monkeypatch.setenv("O2V_DRIFT_EMBEDDINGS", '{"window": 300, "check_every": 50}')
    with caplog.at_level(logging.WARNING, logger="service.settings"):
        s = Settings()
    assert (s.drift.baseline, s.drift.embed_check_every) == ("learn", 50)
    config = DriftConfig.from_settings(s)
    assert (config.learn, config.learn_warmup, config.embed_window, config.embed_check_every) == (True, 100, 500, 50)
    assert "O2V_DRIFT_BASELINE field `warmup` is no longer a setting: it is fixed at 100" in caplog.text
    assert "O2V_DRIFT_EMBEDDINGS field `window` is no longer a setting: it is fixed at 500" in caplog.text
    monkeypatch.setenv("O2V_DRIFT_EMBED_CHECK_EVERY", "1000000")
    assert Settings().drift.embed_check_every == 1_000_000
    for refused in ('{"check_every": 5, "every": 5}', "5"):
        monkeypatch.setenv("O2V_DRIFT_EMBEDDINGS", refused)
        with pytest.raises(ValidationError, match="O2V_DRIFT_EMBEDDINGS"):
            Settings()


def test_threshold_halves_keep_the_other_half_and_an_inverted_pair_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("O2V_DRIFT_LINF_DRIFT", "0.3")
    linf = Settings().drift.thresholds.linf
    assert (linf.warning, linf.drift) == (0.05, 0.3)
    assert DriftConfig.from_settings(Settings()).limits["linf"].drift == 0.3
    monkeypatch.setenv("O2V_DRIFT_LINF_DRIFT", "0.01")
    with pytest.raises(ValidationError, match="below the warning threshold"):
        Settings()
    monkeypatch.delenv("O2V_DRIFT_LINF_DRIFT")
    monkeypatch.setenv("O2V_DRIFT_ACCURACY_FALL", '{"warning": 0.03, "drift": 0.08}')
    assert DriftConfig.from_settings(Settings()).accuracy_fall.as_dict() == {"warning": 0.03, "drift": 0.08}


def test_a_former_setting_now_constant_warns_with_its_value(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("O2V_DRIFT_SHIFT_SIMULATIONS", "200")
    with caplog.at_level(logging.WARNING, logger="service.settings"):
        config = DriftConfig.from_settings(Settings(drift_ks_pvalue_drift=0.01))
    assert config.shift is not None and config.shift.simulations == SHIFT_SIMULATIONS
    assert config.limits["ks_pvalue"] == KS_PVALUE
    text = caplog.text
    assert "O2V_DRIFT_SHIFT_SIMULATIONS is no longer a setting: it is fixed at 10000" in text
    assert "O2V_DRIFT_KS_PVALUE_DRIFT is no longer a setting: it is fixed at 0.0002" in text


def test_every_constant_resolves() -> None:
    values = {name: fixed_value(name) for name in FIXED}
    assert values["readyz_timeout_s"] == 0.8 and values["drift_psi_bins"] == 10
    assert all(isinstance(v, int | float | tuple) for v in values.values())


RETIRED_DEFAULTS = {
    "index_snapshot_every": 10_000, "classify_min_score": 0.0, "retry_after_s": 1, "max_tokenize_in_flight": 4,
    "sagemaker_max_body_bytes": 6_291_456, "sagemaker_read_timeout_s": 70.0, "drift_shift_window": 500,
    "drift_learn_warmup": 100, "drift_learn_size": 500, "drift_embed_window": 500, "drift_embed_min_samples": 100,
    "drift_live_baseline_streams": ("search_top1", "classify_confidence"), "hnsw_m": 16, "hnsw_ef_construction": 40,
    "hnsw_ef_search": 512, "hnsw_rebuild_deleted_share": 0.2, "ivf_nlist": 1024, "ivf_nprobe": 128,
    "ivf_min_train": 20_000, "ivf_pq_m": 48, "index_rerank": 50,
}  # fmt: skip
"""The 21 settings (counted per field) the second cut made constants, at the defaults they had as settings."""


def test_settings_made_constants_keep_their_former_defaults() -> None:
    assert {name: fixed_value(name) for name in RETIRED_DEFAULTS} == RETIRED_DEFAULTS


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"drift_window": 200, "drift_min_samples": 300},
            r"O2V_DRIFT_MIN_SAMPLES=300 is above O2V_DRIFT_WINDOW \(200\)",
        ),
        ({"drift_accuracy_fall_drift": 1.5}, "a fall of accuracy is at most 1"),
        ({"drift_linf_warning": 0.2}, "below the warning threshold"),
    ],
)
def test_contradicting_values_are_refused(values: dict[str, object], message: str) -> None:
    """These were clamped silently (`min(learn_warmup, window - 10)`): an explicit value is now an error."""
    with pytest.raises(ValidationError, match=message):
        Settings(**values)


def test_a_default_or_constant_shrinks_to_fit_a_smaller_window() -> None:
    """min_samples' default, the shift window and the learned baseline's warm-up and size (constants) fit the
    window: O2V_DRIFT_WINDOW alone is a working configuration."""
    config = DriftConfig.from_settings(Settings(drift_window=200))
    assert config.shift is not None and (config.min_samples, config.shift.window) == (100, 200)
    assert (config.learn_warmup, config.learn_size) == (100, 100)
    config = DriftConfig.from_settings(Settings(drift_window=50))
    assert config.shift is not None and (config.min_samples, config.shift.window) == (50, 50)
    assert (config.learn_warmup, config.learn_size) == (40, 10)


@pytest.mark.parametrize(
    ("values", "variable"),
    [
        ({"drift_window": 5}, "O2V_DRIFT_WINDOW"),
        ({"max_batch_size": 0}, "O2V_MAX_REQUEST_TEXTS (or O2V_MAX_BATCH_SIZE)"),
        (
            {"drift_keep_texts_max": 0},
            "O2V_DRIFT_KEEP_TEXTS.max (or O2V_DRIFT_KEEP_TEXTS_MAX, O2V_DRIFT_MAX_KEPT_TEXTS)",
        ),
        ({"drift_baseline": "sometimes"}, "O2V_DRIFT_BASELINE"),
        ({"index_default": "hnsw2"}, "O2V_INDEX_DEFAULT"),
        ({"port": 70000}, "O2V_PORT"),
    ],
)
def test_a_validation_error_names_the_environment_variable(values: dict[str, object], variable: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(**values)
    (error,) = refused.value.errors()
    assert ".".join(map(str, error["loc"])) == variable
    assert str(refused.value).splitlines()[1] == variable


def test_a_check_of_several_settings_names_them_in_its_message() -> None:
    with pytest.raises(ValidationError, match="O2V_READ_API_KEY is set but O2V_API_KEY is not") as refused:
        Settings(read_api_key=KEY)
    assert refused.value.errors()[0]["loc"] == ()
    with pytest.raises(ValidationError, match=r"O2V_DRIFT_MIN_SAMPLES=300 is above O2V_DRIFT_WINDOW \(200\)") as group:
        Settings(drift_window=200, drift_min_samples=300)
    assert group.value.errors()[0]["loc"] == ()


def test_the_environment_s_errors_name_its_variables_and_hide_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("O2V_DRIFT_MIN_SAMPLES", "3")
    monkeypatch.setenv("O2V_SAGEMAKER_MAX_ATTEMPTS", "zero-secret-ish")
    with pytest.raises(ValidationError) as refused:
        Settings()
    text = str(refused.value)
    assert "\nO2V_DRIFT_MIN_SAMPLES\n" in text and "\nO2V_SAGEMAKER_MAX_ATTEMPTS\n" in text
    assert "drift.min_samples" not in text and "zero-secret-ish" not in text


def test_drift_config_is_the_group_with_its_constants() -> None:
    s = Settings(drift_keep_texts=True, drift_keep_texts_max=5, drift_baseline="learn", drift_streams=["faq"])
    config = DriftConfig.from_settings(s)
    assert (config.keep_texts, config.learn, config.streams, config.window) == (5, True, ("faq",), 1000)
    assert set(config.limits) == {"ks_pvalue", "linf", "psi", "js", "wasserstein_norm"}
    assert DriftConfig.from_settings(Settings()).keep_texts == 0
    assert config.shift is not None and config.shift.window == SHIFT_WINDOW
    assert config.live_baseline_streams == LIVE_BASELINE_STREAMS


def test_updated_copies_with_flat_names_without_rereading_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings(drift_window=300)
    monkeypatch.setenv("O2V_DRIFT_CHECK_EVERY", "3")
    copy = s.updated(drift_min_samples=20, max_batch_size=9)
    assert (copy.drift.window, copy.drift.min_samples, copy.drift.check_every) == (300, 20, 25)
    assert copy.limits.max_request_texts == 9 and s.drift.min_samples == 100
    smaller = Settings(drift_window=50).updated(drift_window=80).drift  # the default shrunk to 50 fits 80 again
    assert smaller.min_samples == 80


def test_teacher_paths_go_through_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setenv("O2V_CACHE", str(tmp_path))
    monkeypatch.setenv("O2V_MPNET", "/models/mpnet")
    s = Settings()
    assert str(s.cache) == str(tmp_path) and str(s.mpnet) == "/models/mpnet"


def test_flat_defaults_cover_current_and_former_names() -> None:
    defaults = Settings.flat_defaults()
    assert defaults["max_cluster_work"] == 20_000_000 and defaults["drift_keep_texts_max"] == 1000
    assert defaults["drift_window"] == 1000 and defaults["max_batch_size"] == defaults["max_request_texts"] == 256
