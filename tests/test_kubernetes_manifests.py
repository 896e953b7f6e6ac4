"""The Kubernetes manifests (deploy/kubernetes/): valid against Kubernetes' own schemas, offline, and in
agreement with the service they run: its settings, its port and probes, the image's user, and its drain.

kubernetes-validate ships the API server's OpenAPI schemas of each Kubernetes release; the manifests are
checked against the newest release it knows, strictly (a field Kubernetes does not define is an error, not
silently dropped as `kubectl apply` would).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version
from test_deployment_files import DOCKERFILE, env_of, read_stages

from app.cli import _parser
from app.http.server import UVICORN_OPTIONS
from app.settings import ENV_PREFIX, Settings, load_settings, variable_name

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "deploy" / "kubernetes"
KUSTOMIZATION = MANIFESTS / "kustomization.yaml"
OPENAPI = ROOT / "openapi" / "openapi.json"
APP_LABEL = {"app.kubernetes.io/name": "durable-state-store"}


def resources() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(MANIFESTS.glob("*.yaml")):
        if path != KUSTOMIZATION:
            for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
                yield path.name, document


RESOURCES = list(resources())


def one(kind: str) -> dict[str, Any]:
    found = [document for _, document in RESOURCES if document["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind}s in {MANIFESTS}"
    return found[0]


@pytest.fixture(scope="module")
def pod() -> dict[str, Any]:
    spec: dict[str, Any] = one("Deployment")["spec"]["template"]["spec"]
    return spec


@pytest.fixture(scope="module")
def container(pod: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod["containers"]
    return dict(only)


def environment(container: dict[str, Any]) -> dict[str, str]:
    variables = container["env"]
    assert all(set(variable) == {"name", "value"} for variable in variables), "plain values only"
    return {variable["name"]: variable["value"] for variable in variables}


def named_port(container: dict[str, Any], name: str) -> int:
    (port,) = [port["containerPort"] for port in container["ports"] if port["name"] == name]
    return int(port)


def image_environment() -> dict[str, str]:
    return env_of(read_stages(DOCKERFILE.read_text(encoding="utf-8"))[-1])


@pytest.mark.parametrize(
    ("file", "document"), RESOURCES, ids=[f"{name} {doc['kind']}" for name, doc in RESOURCES]
)
def test_each_manifest_is_valid_for_kubernetes(file: str, document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, latest_version(), strict=True)


def test_the_kustomization_lists_every_manifest_once() -> None:
    listed = yaml.safe_load(KUSTOMIZATION.read_text(encoding="utf-8"))["resources"]
    assert sorted(listed) == sorted({name for name, _ in RESOURCES})


def test_the_deployment_sets_only_settings_the_service_has_and_they_parse(
    container: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = environment(container)
    known = {variable_name(field) for field in Settings.model_fields}
    set_here = {name for name in env if name.startswith(ENV_PREFIX)}
    assert set_here <= known, f"not settings of app/settings.py: {sorted(set_here - known)}"
    keys = tmp_path / "keys"  # the Secret's file, which the settings read at start-up
    keys.write_text("a-key-of-the-secret-0001\n", encoding="utf-8")
    for name in known:
        monkeypatch.delenv(name, raising=False)
    for name in set_here:
        monkeypatch.setenv(name, env[name])
    monkeypatch.setenv(variable_name("api_keys_file"), str(keys))
    settings = load_settings()
    assert settings.backend == "dynamodb"  # so the SQLite path, on the read-only root, is unused
    assert settings.api_keys == ()
    assert settings.api_keys_file == keys
    assert env["AWS_REGION"], "the table's region: the AWS SDK reads it, not a setting of ours"


def test_the_api_keys_come_from_the_secret_mounted_as_a_whole(
    pod: dict[str, Any], container: dict[str, Any]
) -> None:
    key_file = Path(environment(container)[variable_name("api_keys_file")])
    (mount,) = [m for m in container["volumeMounts"] if key_file.parent == Path(m["mountPath"])]
    assert mount["readOnly"] is True
    assert "subPath" not in mount, "a subPath mount never sees the Secret change"
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    items = volume["secret"].get("items", [{"path": key_file.name}])
    assert key_file.name in {item["path"] for item in items}
    mode = volume["secret"]["defaultMode"]
    assert mode & 0o040, "readable by the image's group (fsGroup)"
    assert not mode & 0o007, "and by no one else"


def test_the_port_and_the_probes_are_the_services(container: dict[str, Any]) -> None:
    port = int(environment(container)[variable_name("port")])
    assert port == int(image_environment()["STATESTORE_PORT"]) == named_port(container, "http")
    paths = json.loads(OPENAPI.read_text(encoding="utf-8"))["paths"]
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        http_get = container[probe]["httpGet"]
        assert (http_get["path"], http_get["port"]) == (path, "http")
        assert "get" in paths[path]
        assert container[probe]["timeoutSeconds"] >= 1
    service_ports = one("Service")["spec"]["ports"]
    assert [(p["targetPort"], p["port"]) for p in service_ports] == [("http", port)]


def test_the_pod_runs_as_the_images_user_on_a_read_only_root(
    pod: dict[str, Any], container: dict[str, Any]
) -> None:
    user = read_stages(DOCKERFILE.read_text(encoding="utf-8"))[-1].last("USER").value
    uid, gid = (int(part) for part in user.split(":"))
    context = pod["securityContext"]
    assert context["runAsNonRoot"] is True
    assert (context["runAsUser"], context["runAsGroup"], context["fsGroup"]) == (uid, gid, gid)
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    writable = {
        Path(m["mountPath"])
        for m in container["volumeMounts"]
        if not m.get("readOnly") and any(v["name"] == m["name"] and "emptyDir" in v for v in pod["volumes"])
    }
    assert Path("/tmp") in writable, "tempfile and multiprocessing write under /tmp"
    samples = environment(container).get("PROMETHEUS_MULTIPROC_DIR")
    assert samples is None or any(Path(samples).is_relative_to(folder) for folder in writable)


def test_the_grace_period_covers_the_endpoint_removal_and_the_drain(
    pod: dict[str, Any], container: dict[str, Any]
) -> None:
    """Kubernetes counts the preStop hook in the grace period; SIGTERM comes after it, then the drain."""
    sleep, seconds = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep == "sleep"
    drain = UVICORN_OPTIONS["timeout_graceful_shutdown"]
    assert pod["terminationGracePeriodSeconds"] > int(seconds) + drain


def test_every_object_selects_the_deployments_pods(pod: dict[str, Any]) -> None:
    deployment = one("Deployment")
    assert deployment["spec"]["template"]["metadata"]["labels"] == APP_LABEL
    assert deployment["spec"]["selector"]["matchLabels"] == APP_LABEL
    assert one("Service")["spec"]["selector"] == APP_LABEL
    assert one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == APP_LABEL
    target = one("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert pod["serviceAccountName"] == one("ServiceAccount")["metadata"]["name"]


def test_the_autoscaler_scales_on_cpu_against_a_request(container: dict[str, Any]) -> None:
    spec = one("HorizontalPodAutoscaler")["spec"]
    assert [metric["resource"]["name"] for metric in spec["metrics"]] == ["cpu"]
    assert container["resources"]["requests"]["cpu"]
    assert spec["minReplicas"] >= 2, "with one pod, the disruption budget would block every node drain"
    assert one("PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_the_service_account_asks_for_a_web_identity_role() -> None:
    annotations = one("ServiceAccount")["metadata"]["annotations"]
    assert annotations["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")


# The large states' component (deploy/kubernetes/large-states/): the bucket for the service, and the sweep.
LARGE_STATES = MANIFESTS / "large-states"


def large_states_file(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((LARGE_STATES / name).read_text(encoding="utf-8"))
    return document


def test_the_large_states_component_lists_its_files_and_patches_the_deployment() -> None:
    component = large_states_file("kustomization.yaml")
    assert component["kind"] == "Component"
    listed = [*component["resources"], *(patch["path"] for patch in component["patches"])]
    assert sorted(listed) == sorted(
        path.name for path in LARGE_STATES.glob("*.yaml") if path.stem != "kustomization"
    )
    assert (
        large_states_file("deployment-patch.yaml")["metadata"]["name"]
        == one("Deployment")["metadata"]["name"]
    )


def test_the_patched_deployment_is_valid_and_its_settings_parse(
    container: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    (patch,) = large_states_file("deployment-patch.yaml")["spec"]["template"]["spec"]["containers"]
    assert patch["name"] == container["name"]
    patched = one("Deployment")
    merged = {**environment(container), **environment(patch)}  # a strategic merge of env, keyed by name
    patched["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": name, "value": value} for name, value in merged.items()
    ]
    kubernetes_validate.validate(patched, latest_version(), strict=True)
    for name in {variable_name(field) for field in Settings.model_fields}:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment(patch).items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.compression == "zstd"
    assert settings.large_states_bucket


def test_the_sweep_runs_the_command_on_the_services_image_table_bucket_and_role(
    pod: dict[str, Any], container: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    cronjob = large_states_file("cronjob.yaml")
    kubernetes_validate.validate(cronjob, latest_version(), strict=True)
    job_pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (sweep,) = job_pod["containers"]
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    assert (sweep["image"], job_pod["serviceAccountName"]) == (container["image"], pod["serviceAccountName"])
    assert job_pod["securityContext"]["runAsUser"] == pod["securityContext"]["runAsUser"]
    arguments = _parser().parse_args(sweep["args"])
    assert (arguments.command, arguments.grace_seconds) == ("sweep-large-states", 3600)
    service, patch = (
        environment(container),
        environment(large_states_file("deployment-patch.yaml")["spec"]["template"]["spec"]["containers"][0]),
    )
    env = environment(sweep)
    for name in ("STATESTORE_DYNAMODB_TABLE", "AWS_REGION"):
        assert env[name] == service[name], name
    for name in ("STATESTORE_LARGE_STATES_BUCKET", "STATESTORE_LARGE_STATES_PREFIX"):
        assert env[name] == patch[name], name
    for name in {variable_name(field) for field in Settings.model_fields}:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert load_settings().backend == "dynamodb"
