"""The Kubernetes manifests, rendered by kustomize (kubectl's built-in one, or a kustomize binary)
and validated offline: every resource against the Kubernetes API's JSON schemas (strict, from
the kubernetes-validate package) at the oldest and newest versions we support, the
ServiceMonitor against tests/e2e/schemas/; then held to what a platform team expects (probes,
limits, non-root read-only pods, secrets only by reference, Services that select their pods)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from services.common import health

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy/kubernetes"
TREES = {"base": KUBE / "base", "example overlay": KUBE / "overlays/example"}
# gRPC probes are GA from 1.27; the newest schemas the package ships are checked as well.
VERSIONS = ("1.27.0", kubernetes_validate.latest_version())
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): Path(__file__).parent
    / "schemas/servicemonitor-v1.json"
}
SECRET_SETTINGS = {"PARLEY_DATABASE_URL", "PARLEY_JWT_SECRET", "PARLEY_INTERNAL_SECRET"}


def _kustomize() -> list[str]:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    pytest.skip(
        "neither kubectl nor kustomize is installed: the Kubernetes manifests were NOT rendered "
        "or validated"
    )


def _render(tree: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [*_kustomize(), str(tree)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module", params=list(TREES), ids=list(TREES))
def resources(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return _render(TREES[request.param])


def _kind(resources: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in resources if r["kind"] == kind]


def _workloads(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return _kind(resources, "Deployment") + _kind(resources, "Job")


def _name(resource: dict[str, Any]) -> str:
    return f"{resource['kind']}/{resource['metadata']['name']}"


def test_every_resource_passes_its_schema(resources: list[dict[str, Any]]) -> None:
    for resource in resources:
        crd_schema = CRD_SCHEMAS.get((resource["apiVersion"], resource["kind"]))
        if crd_schema is not None:
            jsonschema.validate(resource, json.loads(crd_schema.read_text()))
            continue
        for version in VERSIONS:  # raises on anything the API would refuse, unknown fields too
            kubernetes_validate.validate(resource, version, strict=True)


def test_the_crd_schema_refuses_what_the_operator_would() -> None:
    schema = json.loads(CRD_SCHEMAS["monitoring.coreos.com/v1", "ServiceMonitor"].read_text())
    (monitor,) = _kind(_render(TREES["base"]), "ServiceMonitor")
    monitor["spec"]["endpoints"][0]["interval"] = 30  # a number, not a duration
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(monitor, schema)


def test_the_base_has_each_part(resources: list[dict[str, Any]]) -> None:
    names = {_name(r) for r in resources}
    for expected in [
        "Deployment/parley-api",
        "Service/parley-api",
        "Deployment/parley-gateway",
        "Service/parley-gateway",
        "Deployment/parley-tooling",
        "Deployment/parley-runner-shared",
        "Service/parley-runner",
        "Job/parley-migrate",
        "ServiceMonitor/parley",
    ]:
        assert expected in names, (expected, sorted(names))
    assert not _kind(resources, "Secret")  # the operator creates it; no value is committed


def test_one_runner_deployment_per_execution_cluster(resources: list[dict[str, Any]]) -> None:
    runners = {
        d["metadata"]["name"]: d
        for d in _kind(resources, "Deployment")
        if d["metadata"]["name"].startswith("parley-runner-")
    }
    for name, deployment in runners.items():
        cluster = name.removeprefix("parley-runner-")
        pod = deployment["spec"]["template"]
        (container,) = pod["spec"]["containers"]
        assert container["args"] == ["serve", "runner", "--cluster", cluster], name
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector["parley.dev/execution-cluster"] == cluster, name  # no two overlap
        assert pod["metadata"]["labels"]["parley.dev/execution-cluster"] == cluster
    assert "parley-runner-shared" in runners


def test_every_workload_is_probed_limited_and_unprivileged(
    resources: list[dict[str, Any]],
) -> None:
    for workload in _workloads(resources):
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, _name(workload)
        assert pod["securityContext"]["runAsUser"] == 10001  # the image's USER
        assert pod["automountServiceAccountToken"] is False, _name(workload)
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, _name(workload)
            assert security["allowPrivilegeEscalation"] is False, _name(workload)
            assert security["capabilities"]["drop"] == ["ALL"], _name(workload)
            for bound in ("requests", "limits"):
                assert set(container["resources"][bound]) == {"cpu", "memory"}, _name(workload)
            if workload["kind"] == "Deployment":
                assert "readinessProbe" in container and "livenessProbe" in container


def test_grpc_probes_ask_for_the_service_parley_health_asks_for(
    resources: list[dict[str, Any]],
) -> None:
    ports = {"api": 50051, "runner": 50052, "tooling": 50053}
    for deployment in _kind(resources, "Deployment"):
        component = deployment["spec"]["template"]["metadata"]["labels"][
            "app.kubernetes.io/component"
        ]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        if component == "gateway":
            assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
            continue
        for probe in ("readinessProbe", "livenessProbe"):
            grpc = container[probe]["grpc"]
            assert grpc == {
                "port": ports[component],
                "service": health.health_service_name(component),
            }


def test_secrets_only_by_reference(resources: list[dict[str, Any]]) -> None:
    for workload in _workloads(resources):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            env = {e["name"]: e for e in container.get("env", [])}
            for name in SECRET_SETTINGS & set(env):
                ref = env[name]["valueFrom"]["secretKeyRef"]
                assert ref["name"] == "parley" and "value" not in env[name], (_name(workload), name)
    (job,) = _kind(resources, "Job")
    (migrate,) = job["spec"]["template"]["spec"]["containers"]
    assert migrate["args"] == ["migrate"]
    assert [e["name"] for e in migrate["env"]] == ["PARLEY_DATABASE_URL"]  # nothing else needed
    for config in _kind(resources, "ConfigMap"):  # the settings (and the overlay's catalogue)
        assert not SECRET_SETTINGS & set(config["data"])


def test_services_select_their_pods_and_the_monitor_selects_the_services(
    resources: list[dict[str, Any]],
) -> None:
    pods = [d["spec"]["template"] for d in _kind(resources, "Deployment")]
    for service in _kind(resources, "Service"):
        selector = service["spec"]["selector"]
        matched = [p for p in pods if selector.items() <= p["metadata"]["labels"].items()]
        assert matched, _name(service)
        for port in service["spec"]["ports"]:  # a named targetPort some matched pod declares
            declared = {
                p["name"] for pod in matched for c in pod["spec"]["containers"] for p in c["ports"]
            }
            assert port["targetPort"] in declared, (_name(service), port)
    (monitor,) = _kind(resources, "ServiceMonitor")
    wanted = monitor["spec"]["selector"]["matchLabels"]
    scraped = {
        s["metadata"]["name"]
        for s in _kind(resources, "Service")
        if wanted.items() <= s["metadata"]["labels"].items()
        and {p["name"] for p in s["spec"]["ports"]}
        & {e["port"] for e in monitor["spec"]["endpoints"]}
    }
    assert scraped == {"parley-api", "parley-gateway", "parley-runner", "parley-tooling"}


def test_the_overlay_changes_what_it_says(resources: list[dict[str, Any]]) -> None:
    namespaces = {r["metadata"].get("namespace") for r in resources}
    images = {
        c["image"]
        for w in _workloads(resources)
        for c in w["spec"]["template"]["spec"]["containers"]
    }
    if namespaces == {None}:  # the base
        assert images == {"parley:0.1.0"}
        return
    assert namespaces == {"parley"}
    assert images == {"registry.example.com/platform/parley:0.1.0"}
    assert "Deployment/parley-runner-local" in {_name(r) for r in resources}


def test_every_runner_serves_a_cluster_of_the_catalogue_its_pods_read() -> None:
    """A runner Deployment's `--cluster` must name a cluster of the catalogue (else the runner
    stops at start); the example overlay mounts its own catalogue into every Deployment."""
    from services.common import catalogue

    for tree_name, tree in TREES.items():
        resources = _render(tree)
        configs = [
            c for c in _kind(resources, "ConfigMap") if "catalogue.toml" in c.get("data", {})
        ]
        known = (
            catalogue.parse(configs[0]["data"]["catalogue.toml"], tree_name)
            if configs
            else catalogue.packaged()
        )
        for deployment in _kind(resources, "Deployment"):
            spec = deployment["spec"]["template"]["spec"]
            args = spec["containers"][0].get("args", [])
            if "--cluster" in args:
                cluster = args[args.index("--cluster") + 1]
                assert cluster in known.clusters, (tree_name, _name(deployment), cluster)
            if configs:
                mounts = spec["containers"][0]["volumeMounts"]
                assert {"name": "catalogue", "mountPath": "/etc/parley", "readOnly": True} in mounts
