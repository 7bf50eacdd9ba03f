"""The Kubernetes manifests under deploy/kubernetes: each validates (strict: no unknown field) against the API schemas
of the oldest and newest Kubernetes targeted, from kubernetes-validate's bundled copies (offline), and they fit
together: names, labels, ports, settings and the probes on the gateway's routes. No cluster is started here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import ValidationError

from service.settings import Settings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "kubernetes"
VERSIONS = ("1.29", "1.37")
"""1.29: the oldest release still commonly run with autoscaling/v2 and policy/v1; 1.37: the newest schemas shipped."""


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())


def manifests() -> dict[str, dict[str, Any]]:
    """Every resource the kustomization lists, by kind."""
    docs = [yaml.safe_load((DEPLOY / name).read_text()) for name in kustomization()["resources"]]
    return {doc["kind"]: doc for doc in docs}


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_validates_against_the_kubernetes_schemas(version: str) -> None:
    found = manifests()
    assert sorted(found) == [
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Secret",
        "Service",
    ]
    for doc in found.values():
        kubernetes_validate.validate(doc, version, strict=True)


def test_a_broken_manifest_is_caught() -> None:
    """The check has teeth: a misspelt field and a wrong type are both refused."""
    deployment = manifests()["Deployment"]
    deployment["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)
    deployment = manifests()["Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "8000"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


def test_the_kustomization_lists_every_manifest() -> None:
    assert sorted(kustomization()["resources"]) == sorted(
        p.name for p in DEPLOY.glob("*.yaml") if p.stem != "kustomization"
    )


def test_the_manifests_fit_together() -> None:
    m = manifests()
    deployment, pod = m["Deployment"], m["Deployment"]["spec"]["template"]
    labels = pod["metadata"]["labels"]
    for selector in (
        deployment["spec"]["selector"]["matchLabels"],
        m["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
        m["Service"]["spec"]["selector"],
    ):
        assert selector.items() <= labels.items()
    target = m["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    (container,) = pod["spec"]["containers"]
    assert {ref.get("configMapRef", ref.get("secretRef"))["name"] for ref in container["envFrom"]} == {
        m["ConfigMap"]["metadata"]["name"],
        m["Secret"]["metadata"]["name"],
    }
    config, secret = m["ConfigMap"]["data"], m["Secret"]["stringData"]
    assert config["O2V_VECTOR_STORE"] == "milvus"
    assert {"O2V_API_KEY", "O2V_READ_API_KEY", "O2V_MILVUS_TOKEN"} <= secret.keys()
    for name in [*config, *secret]:
        assert name.startswith("O2V_") and name[4:].lower() in Settings.flat_defaults(), name
    Settings(**{name[4:].lower(): value for name, value in config.items()})  # every value parses
    (port,) = container["ports"]
    assert (
        str(port["containerPort"]) == config["O2V_PORT"]
        and m["Service"]["spec"]["ports"][0]["targetPort"] == port["name"]
    )
    probes = {kind: container[kind]["httpGet"]["path"] for kind in ("readinessProbe", "livenessProbe", "startupProbe")}
    assert probes == {"readinessProbe": "/readyz", "livenessProbe": "/healthz", "startupProbe": "/healthz"}
    assert pod["spec"]["securityContext"]["runAsNonRoot"] and container["securityContext"]["readOnlyRootFilesystem"]
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys() & container["resources"]["limits"].keys()


def settings_of(env: dict[str, str]) -> Settings:
    return Settings(**{name[4:].lower(): value for name, value in env.items()})


def test_the_shipped_secret_fails_closed() -> None:
    """As shipped, the keys are empty: the pods refuse to start, naming the setting, rather than serve with a key
    anyone can read in this repository (such as `change-me`). With real keys the same manifests start."""
    m = manifests()
    config, secret = m["ConfigMap"]["data"], m["Secret"]["stringData"]
    with pytest.raises(ValidationError, match="O2V_API_KEY is set but empty"):
        settings_of({**config, **secret})
    keys = {"O2V_API_KEY": "Wm1x-real-write-key", "O2V_READ_API_KEY": "Qp7z-real-read-key"}
    settings = settings_of({**config, **secret, **keys})
    assert settings.api_key is not None and settings.read_api_key is not None
