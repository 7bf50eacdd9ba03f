"""`o2v tune`: a tiny model tuned for a few trials end to end, ranges refused before any trial, resume after a
kill, two processes on one study, the SageMaker request against botocore's model, the report in a browser."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import optuna
import pytest
from botocore.session import get_session
from botocore.stub import Stubber

from service.cli import main
from service.model.hyperparameters import parse_hyperparameters
from service.object2vec.sagemaker_tuning import submit, training_image, validate_request
from service.object2vec.tuning import JOURNAL, TuneOptions, TuningJob, open_storage, trial_threads
from service.object2vec.tuning_config import TuningError, check_tuning
from service.object2vec.tuning_report import render_report
from tests.object2vec_fixtures import tiny_config

ROLE = "arn:aws:iam::123456789012:role/o2v-tuning"


def tuning(
    trials: int = 4, parallel: int = 1, strategy: str = "Bayesian", stopping: str = "Auto", **ranges: Any
) -> dict[str, Any]:
    """A HyperParameterTuningJobConfig over the three kinds of range (overridable by keyword)."""
    parameter_ranges = ranges or {
        "ContinuousParameterRanges": [
            {"Name": "learning_rate", "MinValue": "0.001", "MaxValue": "0.05", "ScalingType": "Logarithmic"},
            {"Name": "dropout", "MinValue": "0.0", "MaxValue": "0.5", "ScalingType": "Auto"},
        ],
        "IntegerParameterRanges": [{"Name": "mlp_dim", "MinValue": "8", "MaxValue": "32"}],
        "CategoricalParameterRanges": [{"Name": "mlp_activation", "Values": ["relu", "tanh"]}],
    }
    return {
        "Strategy": strategy,
        "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "validation:mean_squared_error"},
        "ResourceLimits": {"MaxNumberOfTrainingJobs": trials, "MaxParallelTrainingJobs": parallel},
        "ParameterRanges": parameter_ranges,
        "TrainingJobEarlyStoppingType": stopping,
    }


def write(tmp: Path, spec: dict[str, Any], epochs: int = 3, **hp: Any) -> tuple[str, str]:
    (tmp / "config.json").write_text(json.dumps(tiny_config(tmp, epochs=str(epochs), **hp)))
    (tmp / "tuning.json").write_text(json.dumps(spec))
    return str(tmp / "config.json"), str(tmp / "tuning.json")


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def cli(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "service.cli", "tune", *args, "--quiet"], stdout=subprocess.PIPE)


def test_tune_writes_coherent_outputs_and_the_best_checkpoint_exports(tmp_path: Path) -> None:
    config, spec = write(tmp_path, tuning(trials=4))
    out = tmp_path / "tune"
    assert main(["tune", config, spec, "--out", str(out), "--quiet"]) == 0

    rows = read_rows(out / "trials.csv")
    assert [r["trial"] for r in rows] == ["0", "1", "2", "3"]
    assert {"objective", "epochs_run", "pruned", "seconds", "learning_rate", "mlp_activation"} <= set(rows[0])
    complete = [r for r in rows if r["state"] == "complete"]
    best_row = min(complete, key=lambda r: float(r["objective"]))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best"]["trial"] == int(best_row["trial"])
    assert sum(summary["trials"].values()) == 4

    hp = json.loads((out / "best" / "hyperparameters.json").read_text())
    assert all(isinstance(v, str) for v in hp.values())  # SageMaker's string map
    assert {k: hp[k] for k in ("learning_rate", "dropout", "mlp_dim", "mlp_activation")} == {
        k: best_row[k] for k in ("learning_rate", "dropout", "mlp_dim", "mlp_activation")
    }
    assert parse_hyperparameters(hp).enc0_network == "pooled_embedding"  # static ones kept
    log = json.loads((out / "best" / "checkpoint" / "training_log.json").read_text())
    assert log["validation"]["mean_squared_error"] == pytest.approx(float(best_row["objective"]))
    assert log["hyperparameters"]["mlp_dim"] == best_row["mlp_dim"]
    assert sorted(p.parent.name for p in (out / "trials").glob("*/checkpoint.pt")) == [f"{int(best_row['trial']):04d}"]
    retrain = json.loads((out / "best" / "config.json").read_text())
    assert retrain["hyperparameters"] == hp and Path(retrain["channels"]["train"]).is_file()

    assert main(["export", str(out / "best" / "checkpoint"), str(tmp_path / "model")]) == 0
    assert (tmp_path / "model" / "encoder.onnx").is_file()
    page = (out / "report.html").read_text()
    assert len(re.findall(r"<svg", page)) == 3 + 4  # objective, importances, curves + one per tuned parameter
    # A second run into the same folder is refused: only --resume continues a study.
    assert main(["tune", config, spec, "--out", str(out), "--quiet"]) == 2


BAD_RANGES = {
    "out of range": (
        {"ContinuousParameterRanges": [{"Name": "dropout", "MinValue": "0.1", "MaxValue": "1.5"}]},
        "invalid value '1.5' for 'dropout': expected float in [0, 1]",
    ),
    "unknown": ({"IntegerParameterRanges": [{"Name": "hidden", "MinValue": "1", "MaxValue": "2"}]}, "unknown"),
    "l1": (
        {"ContinuousParameterRanges": [{"Name": "l1", "MinValue": "0", "MaxValue": "1"}]},
        "Object2Vec has no L1 regularization",
    ),
    "wrong kind": (
        {"ContinuousParameterRanges": [{"Name": "mlp_dim", "MinValue": "8", "MaxValue": "64"}]},
        "put it under IntegerParameterRanges",
    ),
    "log of zero": (
        {
            "ContinuousParameterRanges": [
                {"Name": "weight_decay", "MinValue": "0", "MaxValue": "1", "ScalingType": "Logarithmic"}
            ]
        },
        "Logarithmic scaling needs MinValue > 0",
    ),
    "bad choice": (
        {"CategoricalParameterRanges": [{"Name": "optimizer", "Values": ["adam", "lion"]}]},
        "invalid value 'lion' for 'optimizer'",
    ),
    "not SageMaker's shape": (
        {"ContinuousParameterRanges": [{"Name": "dropout", "MinValue": 0.1, "MaxValue": "0.5"}]},
        "not a valid SageMaker HyperParameterTuningJobConfig: Invalid type for parameter "
        "ParameterRanges.ContinuousParameterRanges[0].MinValue",
    ),
    "not SageMaker's enum": (
        {"IntegerParameterRanges": [{"Name": "mlp_dim", "MinValue": "8", "MaxValue": "64", "ScalingType": "Log"}]},
        "ScalingType: 'Log', valid values: Auto, Linear, Logarithmic, ReverseLogarithmic",
    ),
}


@pytest.mark.parametrize("case", BAD_RANGES)
def test_invalid_ranges_exit_2_with_the_reason_before_any_trial(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ranges, reason = BAD_RANGES[case]
    config, spec = write(tmp_path, tuning(**ranges))
    assert main(["tune", config, spec, "--out", str(tmp_path / "tune")]) == 2
    assert reason in capsys.readouterr().err
    assert not (tmp_path / "tune" / "trials").exists()


def test_objective_and_strategy_problems_are_listed_together(tmp_path: Path) -> None:
    spec = tuning(strategy="Hyperband", stopping="Auto")
    spec["HyperParameterTuningJobObjective"] = {"Type": "Maximize", "MetricName": "validation:accuracy"}
    hp = tiny_config(tmp_path)["hyperparameters"]
    with pytest.raises(TuningError) as err:
        check_tuning(spec, hp)
    reasons = "\n".join(err.value.reasons)
    assert "needs output_layer softmax; output_layer=mean_squared_error emits validation:mean_squared_error" in reasons
    assert "Hyperband stops trials itself" in reasons
    spec["HyperParameterTuningJobObjective"] = {"Type": "Maximize", "MetricName": "validation:mean_squared_error"}
    with pytest.raises(TuningError, match="must be Minimized"):
        check_tuning({**spec, "Strategy": "Random", "TrainingJobEarlyStoppingType": "Off"}, hp)
    grid = tuning(strategy="Grid", IntegerParameterRanges=[{"Name": "mlp_dim", "MinValue": "8", "MaxValue": "9"}])
    with pytest.raises(TuningError, match="Grid strategy searches CategoricalParameterRanges only"):
        check_tuning(grid, hp)


def test_grid_runs_every_combination_once(tmp_path: Path) -> None:
    ranges = {
        "CategoricalParameterRanges": [
            {"Name": "mlp_activation", "Values": ["relu", "tanh"]},
            {"Name": "mlp_dim", "Values": ["8", "16"]},
        ]
    }
    spec = tuning(trials=99, strategy="Grid", stopping="Off", **ranges)
    del spec["ResourceLimits"]["MaxNumberOfTrainingJobs"]  # SageMaker computes it for Grid
    config, path = write(tmp_path, spec, epochs=1)
    assert main(["tune", config, path, "--out", str(tmp_path / "tune"), "--quiet"]) == 0
    rows = read_rows(tmp_path / "tune" / "trials.csv")
    assert sorted((r["mlp_activation"], r["mlp_dim"]) for r in rows) == [
        ("relu", "16"),
        ("relu", "8"),
        ("tanh", "16"),
        ("tanh", "8"),
    ]


def test_trials_share_the_cores_and_omp_num_threads_caps_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cores = os.cpu_count() or 1
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert trial_threads(1) == cores and trial_threads(2) == max(1, cores // 2) and trial_threads(cores + 1) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert trial_threads(1) == 1
    config, spec = write(tmp_path, tuning(parallel=2))
    assert TuningJob(config, spec, TuneOptions(tmp_path / "tune")).threads == 1  # what each trial's train() sets
    monkeypatch.setenv("OMP_NUM_THREADS", str(cores * 4))
    assert trial_threads(1) == cores  # a cap, never more threads than cores
    monkeypatch.setenv("OMP_NUM_THREADS", "")
    assert trial_threads(1) == cores
    (tmp_path / "config.json").write_text(json.dumps({**tiny_config(tmp_path), "threads": 3}))
    assert TuningJob(config, spec, TuneOptions(tmp_path / "tune")).threads == 3  # the config's own count wins


def _finished(storage: str, name: str) -> int:
    try:
        study = optuna.load_study(study_name=name, storage=open_storage(storage, Path()))
    except KeyError:
        return 0
    return sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))


def test_resume_continues_a_killed_study(tmp_path: Path) -> None:
    config, spec = write(tmp_path, tuning(trials=5, stopping="Off"), epochs=6)
    out = tmp_path / "tune"
    proc = cli(config, spec, "--out", str(out))
    deadline = time.time() + 120
    while _finished(str(out / JOURNAL), "tune") < 2 and time.time() < deadline:
        assert proc.poll() is None, "the run ended before it could be interrupted"
        time.sleep(0.02)
    proc.kill()  # like a lost machine or Ctrl-\: no outputs written, a trial may be left RUNNING
    proc.wait()
    assert not (out / "trials.csv").exists()
    assert main(["tune", config, spec, "--out", str(out), "--resume", "--quiet"]) == 0
    rows = read_rows(out / "trials.csv")
    counted = [r for r in rows if r["state"] in ("complete", "pruned", "failed")]
    assert len(counted) == 5
    assert {r["state"] for r in rows} <= {"complete", "interrupted"}
    pids = {r["trial"]: r["pid"] for r in rows}
    assert len(set(pids.values())) == 2, "the first two trials come from the killed run, the rest from the resume"
    assert pids["0"] == pids["1"] == str(proc.pid)


def test_two_processes_share_one_study(tmp_path: Path) -> None:
    """Workers on several machines each run `o2v tune --storage SHARED`: here two processes started together on
    one journal file, the second with MaxParallelTrainingJobs=2, so it starts a worker process of its own."""
    config, spec = write(tmp_path, tuning(trials=6, stopping="Off"), epochs=10)
    spec2 = tmp_path / "tuning2.json"
    spec2.write_text(json.dumps(tuning(trials=6, parallel=2, stopping="Off")))
    shared = str(tmp_path / "shared.journal")
    procs = [
        cli(config, path, "--out", str(tmp_path / out), "--storage", shared, "--study-name", "sts")
        for path, out in ((spec, "a"), (str(spec2), "b"))
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]

    study = optuna.load_study(study_name="sts", storage=open_storage(shared, tmp_path))
    trials = [t for t in study.get_trials() if "hyperparameters" in t.user_attrs]
    assert len(trials) == 6 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs["pid"] for t in trials}) >= 2, "more than one process ran trials"
    rows = [r for d in ("a", "b") for r in read_rows(tmp_path / d / "trials.csv") if r["state"] == "complete"]
    assert {r["trial"] for r in rows} == {str(t.number) for t in trials}
    # Another search under the same study name is refused instead of mixing two searches.
    other = tmp_path / "tuning3.json"
    other.write_text(json.dumps(tuning(trials=7, stopping="Off")))
    args = ["--out", str(tmp_path / "c"), "--storage", shared, "--study-name", "sts"]
    assert main(["tune", config, str(other), *args]) == 2


def test_sagemaker_request_validates_against_botocores_model(tmp_path: Path) -> None:
    config, spec = write(tmp_path, tuning(trials=20, parallel=2))
    request_file = tmp_path / "request.json"
    args = [
        "--role-arn",
        ROLE,
        "--s3-train",
        "s3://bucket/o2v/train/",
        "--s3-validation",
        "s3://bucket/o2v/validation/",
        "--s3-output",
        "s3://bucket/o2v/output/",
        "--region",
        "eu-west-1",
        "--job-name",
        "o2v-sts-1",
    ]
    assert main(["tune", config, spec, "--sagemaker-request", str(request_file), *args]) == 0
    request = json.loads(request_file.read_text())
    assert request["HyperParameterTuningJobConfig"] == json.loads(Path(spec).read_text())  # the same file, unchanged
    job = request["TrainingJobDefinition"]
    assert job["AlgorithmSpecification"]["TrainingImage"] == "438346466558.dkr.ecr.eu-west-1.amazonaws.com/object2vec:1"
    assert training_image("cn-north-1").endswith(".amazonaws.com.cn/object2vec:1")
    static = job["StaticHyperParameters"]
    assert static["enc0_vocab_size"] == "60" and "learning_rate" not in static and "mlp_dim" not in static
    assert [c["ChannelName"] for c in job["InputDataConfig"]] == ["train", "validation"]

    client = get_session().create_client(
        "sagemaker", region_name="eu-west-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    arn = "arn:aws:sagemaker:eu-west-1:123456789012:hyper-parameter-tuning-job/o2v-sts-1"
    with Stubber(client) as stub:
        stub.add_response("create_hyper_parameter_tuning_job", {"HyperParameterTuningJobArn": arn}, request)
        assert submit(request, "eu-west-1", client) == arn
        stub.assert_no_pending_responses()

    wrong = json.loads(json.dumps(request))
    wrong["TrainingJobDefinition"]["ResourceConfig"]["InstanceCount"] = "1"
    wrong["TrainingJobDefinition"]["StoppingCondition"]["MaxRuntime"] = 60
    with pytest.raises(TuningError) as err:
        validate_request(wrong)
    assert any("InstanceCount" in r for r in err.value.reasons) and any("MaxRuntime" in r for r in err.value.reasons)


def test_sagemaker_request_refuses_what_sagemaker_cannot_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tuning(CategoricalParameterRanges=[{"Name": "enc0_network", "Values": ["hcnn", "bilstm"]}])
    spec["HyperParameterTuningJobObjective"] = {"Type": "Maximize", "MetricName": "validation:spearman_cosine"}
    config, path = write(tmp_path, spec)
    args = ["--role-arn", ROLE, "--s3-train", "s3://b/t", "--s3-validation", "s3://b/v", "--s3-output", "s3://b/o"]
    assert (
        main(["tune", config, path, "--sagemaker-request", str(tmp_path / "r.json"), *args, "--region", "us-east-1"])
        == 2
    )
    err = capsys.readouterr().err
    assert "'validation:spearman_cosine' is o2v's own" in err and "'enc0_network' is not tunable" in err
    assert not (tmp_path / "r.json").exists()


def _report_rows() -> list[dict[str, Any]]:
    rows = []
    for i in range(12):
        pruned = i % 4 == 3
        curve = {e: 0.08 - 0.004 * e + 0.002 * (i % 5) for e in range(1, (3 if pruned else 8))}
        rows.append(
            {
                "trial": i,
                "state": "pruned" if pruned else "complete",
                "pruned": pruned,
                "objective": None if pruned else min(curve.values()),
                "epochs_run": len(curve),
                "best_epoch": 7,
                "seconds": 3.0,
                "curve": curve,
                "learning_rate": f"{0.001 * (i + 1):.4g}",
                "mlp_activation": "<relu>",
            }
        )
    return rows


def test_report_renders_in_a_headless_browser(tmp_path: Path) -> None:
    ranges = {
        "ContinuousParameterRanges": [{"Name": "learning_rate", "MinValue": "0.0001", "MaxValue": "0.1"}],
        "CategoricalParameterRanges": [{"Name": "mlp_activation", "Values": ["relu", "tanh"]}],
    }
    spec = check_tuning(tuning(trials=12, **ranges), tiny_config(tmp_path)["hyperparameters"])
    rows = _report_rows()
    rows[0]["mlp_activation"] = "relu"
    summary = {
        "study": "sts <b>",
        "max_trials": 12,
        "seconds": 36.0,
        "trials": {"complete": 9, "pruned": 3, "failed": 0, "interrupted": 0},
        "best": {
            "trial": 0,
            "objective": rows[0]["objective"],
            "tuned": {"learning_rate": "0.001", "mlp_activation": "relu"},
        },
    }
    page = render_report(summary, rows, {"learning_rate": 0.7, "mlp_activation": 0.3}, spec)
    for svg in re.findall(r"<svg.*?</svg>", page, flags=re.S):
        ET.fromstring(svg)  # well-formed, so every browser draws it
    assert "<script" not in page and "sts <b>" not in page and "sts &lt;b&gt;" in page and "&lt;relu&gt;" in page
    html = tmp_path / "report.html"
    html.write_text(page)
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no headless Chromium here (apt-get install chromium)")
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1320,1800",
            f"--screenshot={shot}",
            html.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1320, 1800)
    assert len(data) > 40_000  # charts and tables drawn, not a blank page
