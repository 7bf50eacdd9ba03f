"""Settings: grouped in code, flat in the environment. Every variable name the service ever read still works: a
current one sets its field, a former one the field it was renamed to, and one that became a constant starts the
service with a warning that names the fixed value. Contradicting values are refused, naming both variables."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from service.drift.config import KS_PVALUE, SHIFT_SIMULATIONS, DriftConfig
from service.settings import FIXED, FLAT, Settings, fixed_value

FORMER_VARIABLES = """
MODEL_DIR BACKEND ONNX_INTRA_OP_THREADS ONNX_INTER_OP_THREADS ONNX_MAX_BATCH_TOKENS MODEL_ALIASES DEFAULT_MODEL
MODELS_LOADED_MAX MODELS_UNLOAD_GRACE_S ADAPT_NICENESS ADAPT_THREADS ADAPT_MAX_ITEMS HOST PORT WORKERS API_KEY
READ_API_KEY READYZ_TIMEOUT_S ACCESS_LOG RETRY_AFTER_S MAX_HEADER_BYTES MAX_HEADERS HTTP_HEADER_TIMEOUT_S
HTTP_BODY_TIMEOUT_S MAX_CONNECTIONS DOCS_OPEN MAX_BATCH_SIZE MAX_TEXT_CHARS MAX_BODY_BYTES MAX_TOP_K
MAX_INVOCATION_INSTANCES MAX_TOKENIZE_TOKENS MAX_TOKENIZE_IN_FLIGHT MAX_TOKEN_IDS MAX_INVOCATION_TOKENS
BATCH_MAX_SIZE BATCH_MAX_WAIT_MS QUEUE_MAX_SIZE EMBED_CACHE_BYTES SAGEMAKER_ENDPOINT SAGEMAKER_REGION
SAGEMAKER_ENDPOINT_URL SAGEMAKER_CONNECT_TIMEOUT_S SAGEMAKER_READ_TIMEOUT_S SAGEMAKER_MAX_ATTEMPTS
SAGEMAKER_MAX_BODY_BYTES SAGEMAKER_MODEL_DIR DATA_DIR SHARED_DATA DRIFT_ENABLED DRIFT_WINDOW DRIFT_MIN_SAMPLES
DRIFT_CHECK_EVERY DRIFT_CHECK_INTERVAL_S DRIFT_CPU_BUDGET DRIFT_CONFIRM_CHECKS DRIFT_CLEAR_CHECKS DRIFT_HYSTERESIS
DRIFT_KS_PVALUE_WARNING DRIFT_KS_PVALUE_DRIFT DRIFT_LINF_WARNING DRIFT_LINF_DRIFT DRIFT_PSI_WARNING DRIFT_PSI_DRIFT
DRIFT_JS_WARNING DRIFT_JS_DRIFT DRIFT_WASSERSTEIN_WARNING DRIFT_WASSERSTEIN_DRIFT DRIFT_PSI_BINS
DRIFT_BUCKET_SECONDS DRIFT_HISTORY_BUCKETS DRIFT_MAX_STREAMS DRIFT_STREAMS DRIFT_LIVE_BASELINE_STREAMS
DRIFT_PERSIST_INTERVAL_S DRIFT_MAX_BASELINE_JOBS DRIFT_WEBHOOK_URL DRIFT_WEBHOOK_TIMEOUT_S DRIFT_WEBHOOK_RETRIES
DRIFT_SHIFT_WINDOW DRIFT_SHIFT_HORIZON DRIFT_SHIFT_FALSE_ALARM DRIFT_SHIFT_WARNING_FALSE_ALARM
DRIFT_SHIFT_SIMULATIONS DRIFT_SHIFT_CLIP DRIFT_SHIFT_REFERENCE_MAX DRIFT_BASELINE DRIFT_LEARN_WARMUP
DRIFT_LEARN_SIZE DRIFT_CLASSIFY_REFERENCE_MAX DRIFT_ACCURACY_FALL_WARNING DRIFT_ACCURACY_FALL_DRIFT DRIFT_MAX_LABELS
DRIFT_LABEL_MIN_COUNT DRIFT_LABEL_ALPHA DRIFT_TOKEN_MARGIN_WARNING DRIFT_TOKEN_MARGIN_DRIFT DRIFT_TOKEN_QUEUE
DRIFT_KEEP_TEXTS DRIFT_KEEP_TEXTS_MAX DRIFT_KEEP_TEXTS_MAX_AGE_S DRIFT_EMBED_WINDOW DRIFT_EMBED_MIN_SAMPLES
DRIFT_EMBED_CHECK_EVERY DRIFT_EMBED_CHECK_INTERVAL_S DRIFT_EMBED_PERMUTATIONS DRIFT_EMBED_PVALUE_WARNING
DRIFT_EMBED_PVALUE_DRIFT INDEX_DEFAULT HNSW_M HNSW_EF_CONSTRUCTION HNSW_EF_SEARCH HNSW_REBUILD_DELETED_SHARE
IVF_NLIST IVF_NPROBE IVF_MIN_TRAIN IVF_PQ_M INDEX_RERANK INDEX_SNAPSHOT_EVERY INDEX_FILTER_EXACT_MAX
INDEX_REBUILD_INLINE_MAX INDEX_BUSY_TIMEOUT_S CLASSIFY_MIN_SCORE MAX_GET_IDS MAX_SCROLL_LIMIT MAX_SEARCH_BATCH
MAX_CLUSTERS MAX_CLUSTER_WORK MAX_HEAVY_JOBS MAX_FILTER_KEYS METADATA_MAX_DEPTH METADATA_MAX_BYTES
MAX_OPEN_COLLECTIONS VECTOR_STORE MILVUS_URI MILVUS_TOKEN MILVUS_DB MILVUS_TIMEOUT_S MPNET CACHE
""".split()  # noqa: SIM905 (a list of 140 names, one a line, would be long)
"""Every O2V_* variable of the 0.1 releases (138 settings, and the two the teacher read from os.environ)."""


def test_every_former_variable_is_still_read() -> None:
    assert len(FORMER_VARIABLES) == 140
    unknown = [name for name in FORMER_VARIABLES if name.lower() not in FLAT and name.lower() not in FIXED]
    assert unknown == []


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
    monkeypatch.setenv("O2V_BATCH_MAX_SIZE", "7")
    monkeypatch.setenv("O2V_METADATA_MAX_DEPTH", "5")
    monkeypatch.setenv("O2V_DRIFT_KEEP_TEXTS_MAX", "9")
    s = Settings()
    assert (s.max_encode_batch, s.limits.max_metadata_depth, s.drift.max_kept_texts) == (7, 5, 9)
    monkeypatch.setenv("O2V_MAX_ENCODE_BATCH", "8")
    assert Settings().max_encode_batch == 8


def test_the_index_default_is_a_kind_or_an_object_and_former_names_set_one_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("O2V_INDEX_DEFAULT", "hnsw")
    monkeypatch.setenv("O2V_HNSW_M", "32")
    index = Settings().index.default
    assert (index.kind, index.m, index.ef_search) == ("hnsw", 32, 512)
    monkeypatch.setenv("O2V_INDEX_DEFAULT", '{"kind": "ivf", "nlist": 8}')
    monkeypatch.delenv("O2V_HNSW_M")
    index = Settings().index.default
    assert (index.kind, index.nlist, index.m) == ("ivf", 8, 16)
    assert Settings(index_rerank=30).index.default.rerank == 30
    with pytest.raises(ValidationError, match="m"):
        Settings(hnsw_m=3)


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
    assert all(isinstance(v, int | float) for v in values.values())


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"drift_window": 200, "drift_min_samples": 300}, "O2V_DRIFT_MIN_SAMPLES=300 is above the window"),
        ({"drift_window": 200, "drift_shift_window": 500}, "O2V_DRIFT_SHIFT_WINDOW=500 is above the window"),
        ({"drift_window": 100, "drift_learn_warmup": 95}, "O2V_DRIFT_LEARN_WARMUP=95 is above the window minus 10"),
        (
            {"drift_window": 400, "drift_learn_warmup": 100, "drift_learn_size": 301},
            "O2V_DRIFT_LEARN_SIZE=301 is above the window minus learn_warmup",
        ),
        ({"drift_embed_window": 50, "drift_embed_min_samples": 60}, "O2V_DRIFT_EMBED_MIN_SAMPLES=60"),
        ({"drift_shift_false_alarm": 0.1}, "shift_false_alarm"),
    ],
)
def test_contradicting_values_are_refused(values: dict[str, object], message: str) -> None:
    """These were clamped silently (`min(learn_warmup, window - 10)`): an explicit value is now an error."""
    with pytest.raises(ValidationError, match=message):
        Settings(**values)


def test_a_default_shrinks_to_fit_a_smaller_window() -> None:
    drift = Settings(drift_window=200).drift
    assert (drift.min_samples, drift.shift_window, drift.learn_warmup, drift.learn_size) == (100, 200, 100, 100)
    config = DriftConfig.from_settings(Settings(drift_window=200, drift_embed_window=50))
    assert config.shift is not None and config.shift.window == 200 and config.embed_min_samples == 50


def test_drift_config_is_the_group_with_its_constants() -> None:
    s = Settings(drift_keep_texts=True, drift_keep_texts_max=5, drift_baseline="learn", drift_streams=["faq"])
    config = DriftConfig.from_settings(s)
    assert (config.keep_texts, config.learn, config.streams, config.window) == (5, True, ("faq",), 1000)
    assert set(config.limits) == {"ks_pvalue", "linf", "psi", "js", "wasserstein_norm"}
    assert DriftConfig.from_settings(Settings()).keep_texts == 0
    assert DriftConfig.from_settings(Settings(drift_shift_window=0)).shift is None


def test_updated_copies_with_flat_names_without_rereading_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings(drift_window=300)
    monkeypatch.setenv("O2V_DRIFT_CHECK_EVERY", "3")
    copy = s.updated(drift_shift_window=0, max_batch_size=9)
    assert (copy.drift.window, copy.drift.shift_window, copy.drift.check_every) == (300, 0, 25)
    assert copy.limits.max_request_texts == 9 and s.drift.shift_window == 300


def test_teacher_paths_go_through_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setenv("O2V_CACHE", str(tmp_path))
    monkeypatch.setenv("O2V_MPNET", "/models/mpnet")
    s = Settings()
    assert str(s.cache) == str(tmp_path) and str(s.mpnet) == "/models/mpnet"


def test_flat_defaults_cover_current_and_former_names() -> None:
    defaults = Settings.flat_defaults()
    assert defaults["max_cluster_work"] == 20_000_000 and defaults["hnsw_m"] == 16
    assert defaults["drift_window"] == 1000 and defaults["max_batch_size"] == defaults["max_request_texts"] == 256
