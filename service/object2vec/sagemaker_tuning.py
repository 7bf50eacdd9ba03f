"""The same tuning on SageMaker: a CreateHyperParameterTuningJob request for the built-in Object2Vec algorithm.

Static hyperparameters come from the training config, ranges and objective from TUNING.json (unchanged), the
training image from SageMaker's per-region registry for object2vec (sagemaker SDK image_uri_config/object2vec.json).
The request is checked against botocore's own service model before it is written or sent, so a field AWS would
refuse fails here, offline. No torch: this runs where only boto3 is installed.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.object2vec.tuning_config import (
    METRICS,
    SAGEMAKER_TUNABLE,
    TuningError,
    TuningSpec,
    load_tuning,
    model_problems,
    sagemaker_shape,
)

# Account that serves the object2vec:1 image in each region (sagemaker-python-sdk image_uri_config/object2vec.json).
REGISTRIES = {
    "af-south-1": "455444449433",
    "ap-east-1": "286214385809",
    "ap-northeast-1": "351501993468",
    "ap-northeast-2": "835164637446",
    "ap-northeast-3": "364406365360",
    "ap-south-1": "991648021394",
    "ap-southeast-1": "475088953585",
    "ap-southeast-2": "712309505854",
    "ca-central-1": "469771592824",
    "cn-north-1": "390948362332",
    "cn-northwest-1": "387376663083",
    "eu-central-1": "664544806723",
    "eu-north-1": "669576153137",
    "eu-south-1": "257386234256",
    "eu-west-1": "438346466558",
    "eu-west-2": "644912444149",
    "eu-west-3": "749696950732",
    "me-south-1": "249704162688",
    "sa-east-1": "855470959533",
    "us-east-1": "382416733822",
    "us-east-2": "404615174143",
    "us-gov-west-1": "226302683700",
    "us-west-1": "632365934929",
    "us-west-2": "174872318107",
}

# Config keys that steer `o2v train` only; SageMaker's algorithm has no such hyperparameters.
LOCAL_ONLY = ("cosine_loss_weight", "early_stopping", "early_stopping_metric", "align_unseen_tokens", "evaluate_train")


def training_image(region: str) -> str:
    """The built-in Object2Vec training image URI (`object2vec:1`) for a region."""
    if region not in REGISTRIES:
        raise TuningError([f"no Object2Vec image is listed for region '{region}'; known: {', '.join(REGISTRIES)}"])
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"{REGISTRIES[region]}.dkr.ecr.{region}.{domain}/object2vec:1"


@dataclass(frozen=True)
class Target:
    """Where the SageMaker tuning job runs and reads/writes."""

    role_arn: str
    s3_train: str
    s3_validation: str
    s3_output: str
    region: str
    s3_auxiliary: str | None = None
    instance_type: str = "ml.m5.2xlarge"
    volume_gb: int = 30
    max_runtime_s: int = 86400
    job_name: str | None = None


def _channel(name: str, uri: str, content_type: str) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}
        },
        "ContentType": content_type,
        "CompressionType": "None",
    }


def build_request(spec: TuningSpec, config: Mapping[str, Any], target: Target) -> dict[str, Any]:
    """CreateHyperParameterTuningJob's parameters; raises TuningError where SageMaker would refuse the job."""
    problems = []
    if not METRICS[spec.metric][2]:
        problems.append(
            f"objective '{spec.metric}' is o2v's own: SageMaker's Object2Vec emits only "
            + ", ".join(m for m, v in METRICS.items() if v[2])
        )
    problems += [f"'{n}' is not tunable on SageMaker's Object2Vec" for n in spec.names if n not in SAGEMAKER_TUNABLE]
    hp = {str(k): str(v) for k, v in config.get("hyperparameters", {}).items() if k not in spec.names}
    uses_aux = any(hp.get(f"enc{i}_pretrained_embedding_file") or hp.get(f"enc{i}_vocab_file") for i in (0, 1))
    if uses_aux and not target.s3_auxiliary:
        problems.append("the config reads an auxiliary channel (pretrained embeddings / vocab): give --s3-auxiliary")
    if problems:
        raise TuningError(problems)
    channels = [
        _channel("train", target.s3_train, "application/jsonlines"),
        _channel("validation", target.s3_validation, "application/jsonlines"),
    ]
    if target.s3_auxiliary:
        channels.append(_channel("auxiliary", target.s3_auxiliary, "application/json"))
    name = target.job_name or "o2v-" + dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    request = {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": spec.raw,
        "TrainingJobDefinition": {
            "StaticHyperParameters": hp,
            "AlgorithmSpecification": {"TrainingImage": training_image(target.region), "TrainingInputMode": "File"},
            "RoleArn": target.role_arn,
            "InputDataConfig": channels,
            "OutputDataConfig": {"S3OutputPath": target.s3_output},
            "ResourceConfig": {
                "InstanceType": target.instance_type,
                "InstanceCount": 1,
                "VolumeSizeInGB": target.volume_gb,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": target.max_runtime_s},
        },
    }
    validate_request(request)
    return request


def validate_request(request: Mapping[str, Any]) -> None:
    """botocore's own check of CreateHyperParameterTuningJob's input (field names, types, enums, patterns)."""
    problems = model_problems(dict(request), sagemaker_shape("CreateHyperParameterTuningJob"))
    if problems:
        raise TuningError(["not a valid CreateHyperParameterTuningJob request: " + p for p in problems])


def local_only_options(config: Mapping[str, Any]) -> list[str]:
    """Config options the SageMaker job cannot honour (they are `o2v train`'s, not the algorithm's)."""
    return [key for key in LOCAL_ONLY if key in config]


def submit(request: Mapping[str, Any], region: str, client: Any = None) -> str:
    """Send the request with boto3; returns the tuning job's ARN."""
    if client is None:
        import boto3

        client = boto3.client("sagemaker", region_name=region)
    return client.create_hyper_parameter_tuning_job(**request)["HyperParameterTuningJobArn"]


def write_request(config_path: str | Path, tuning_path: str | Path, target: Target, out: str | Path) -> dict[str, Any]:
    """Check both files, build the request, write it as JSON; returns it."""
    config = json.loads(Path(config_path).read_text())
    spec = load_tuning(tuning_path, config.get("hyperparameters", {}))
    request = build_request(spec, config, target)
    Path(out).write_text(json.dumps(request, indent=1) + "\n")
    return request
