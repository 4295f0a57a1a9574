"""deploy/: Kubernetes manifests valid against the Kubernetes schemas (offline,
kubernetes-validate), compose and Dockerfiles consistent with the repository,
Prometheus config and rules accepted by promtool, and every metric the dashboard
and alerts use defined by the pipeline. No Docker engine or cluster is needed."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from prometheus_client import Counter, Gauge, Histogram

from stream.metrics import PipelineMetrics
from tests.support.deploy import (
    DASHBOARD,
    DEPLOY,
    K8S,
    PROMETHEUS,
    ROOT,
    by_kind,
    kustomize_resources,
    metric_names_used,
    tool,
)

KUSTOMIZATIONS = [K8S / "base", K8S / "overlays" / "gpu"]
DOCKERFILES = sorted((DEPLOY / "docker").glob("*.Dockerfile"))
COMPOSE_FILES = [DEPLOY / "compose.yaml", DEPLOY / "compose.gpu.yaml"]
KUBERNETES_VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]
# Custom resources have no schema in kubernetes-validate; they get structural checks below.
CUSTOM_KINDS = {"PodMonitor"}


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    pod = workload["spec"]["template"]["spec"]
    return pod.get("initContainers", []) + pod["containers"]


def python_snippets(node: Any) -> list[str]:
    """Every `python -c CODE` command found anywhere in a parsed manifest."""
    found: list[str] = []
    if isinstance(node, dict):
        for value in node.values():
            found += python_snippets(value)
    elif isinstance(node, list):
        for i in range(len(node) - 2):
            if node[i] == "python" and node[i + 1] == "-c" and isinstance(node[i + 2], str):
                found.append(node[i + 2])
        for value in node:
            found += python_snippets(value)
    return found


# ----------------------------------------------------------------------------- Kubernetes


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: p.name)
def test_kustomization_files_exist(directory: Path) -> None:
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    listed = list(spec.get("resources", []))
    listed += [p["path"] for p in spec.get("patches", []) if "path" in p]
    listed += [f for g in spec.get("configMapGenerator", []) for f in g["files"]]
    assert listed
    for entry in listed:
        assert (directory / entry).exists(), f"{directory.name}: {entry} is listed but missing"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: p.name)
def test_every_manifest_validates_against_kubernetes_schemas(directory: Path, version: str) -> None:
    docs = kustomize_resources(directory)
    kinds = {doc["kind"] for doc in docs}
    assert {"StatefulSet", "Service", "Deployment", "ConfigMap", "PodMonitor"} <= kinds
    for doc in docs:
        if doc["kind"] in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(doc, version, strict=True)


def test_schema_validation_catches_a_broken_manifest() -> None:
    """The validator is strict for real: a misspelt field is refused."""
    statefulset = by_kind(kustomize_resources(K8S / "base"), "StatefulSet")[0]
    statefulset["spec"]["replica"] = statefulset["spec"].pop("replicas")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, KUBERNETES_VERSIONS[-1], strict=True)


def test_services_podmonitor_and_probes_point_at_real_pods_and_ports() -> None:
    docs = kustomize_resources(K8S / "base")
    workloads = by_kind(docs, "StatefulSet") + by_kind(docs, "Deployment")
    for service in by_kind(docs, "Service"):
        selector = service["spec"]["selector"]
        targets = [
            w
            for w in workloads
            if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(targets) == 1, f"service {service['metadata']['name']} selects {len(targets)}"
        ports = {p["name"] for c in containers(targets[0]) for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports
    for workload in workloads:
        for container in workload["spec"]["template"]["spec"]["containers"]:
            ports = {p["name"] for p in container.get("ports", [])}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                for handler in ("httpGet", "tcpSocket"):
                    port = container.get(probe, {}).get(handler, {}).get("port")
                    assert port is None or port in ports, f"{probe} uses unknown port {port}"
    (monitor,) = by_kind(docs, "PodMonitor")
    (worker,) = by_kind(docs, "StatefulSet")
    probes = worker["spec"]["template"]["spec"]["containers"][0]
    assert probes["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert probes["readinessProbe"]["httpGet"]["path"] == "/healthz"
    labels = worker["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    worker_ports = {p["name"] for c in containers(worker) for p in c.get("ports", [])}
    assert {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]} <= worker_ports
    annotations = worker["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"


def test_workers_shard_by_ordinal_and_the_proxy_reaches_them_all() -> None:
    docs = kustomize_resources(K8S / "base")
    (worker,) = by_kind(docs, "StatefulSet")
    env = {
        e["name"]: e.get("value")
        for e in worker["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert int(env["ADAFOCUS_SHARD_COUNT"]) == worker["spec"]["replicas"]
    headless = next(
        s
        for s in by_kind(docs, "Service")
        if s["metadata"]["name"] == worker["spec"]["serviceName"]
    )
    assert headless["spec"]["clusterIP"] == "None"
    pub_port = next(p["port"] for p in headless["spec"]["ports"] if p["targetPort"] == "pub")
    (proxy,) = by_kind(docs, "Deployment")
    args = proxy["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "proxy"
    assert args[args.index("--connect") + 1] == f"tcp://{headless['metadata']['name']}:{pub_port}"


def test_workers_run_non_root_with_secrets_and_a_read_only_config() -> None:
    docs = kustomize_resources(K8S / "base")
    (worker,) = by_kind(docs, "StatefulSet")
    pod = worker["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["terminationGracePeriodSeconds"] > 30
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["curve"]["secret"]["secretName"] == "adafocus-curve"
    assert volumes["config-template"]["configMap"]["name"].startswith("adafocus-config")
    init = pod["initContainers"][0]
    assert init["envFrom"][0]["secretRef"]["name"] == "adafocus-rtsp"
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["/etc/adafocus"]["readOnly"] is True
    assert pod["containers"][0]["args"][-1] == "/etc/adafocus/config.yaml"


def test_gpu_overlay_requests_a_gpu_and_the_cuda_image() -> None:
    (worker,) = by_kind(kustomize_resources(K8S / "overlays" / "gpu"), "StatefulSet")
    container = worker["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["image"].endswith(":cuda")


def test_config_template_renders_to_a_valid_pipeline_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the init container does: ${VARS} from the RTSP Secret, then a config
    the pipeline accepts, with the password never shown."""
    from stream.config import load_config

    monkeypatch.setenv("RTSP_USER", "viewer")
    monkeypatch.setenv("RTSP_PASSWORD", "s%40cret")
    rendered = os.path.expandvars((K8S / "base" / "config.yaml").read_text())
    (tmp_path / "config.yaml").write_text(rendered)
    config = load_config(tmp_path / "config.yaml")
    assert "s%40cret" in config.streams[0].uri
    assert "s%40cret" not in repr(config)


def test_every_inline_python_snippet_compiles() -> None:
    docs = [d for k in KUSTOMIZATIONS for d in kustomize_resources(k)]
    docs += [yaml.safe_load(p.read_text()) for p in COMPOSE_FILES]
    snippets = python_snippets(docs)
    for dockerfile in DOCKERFILES:
        for line in dockerfile.read_text().splitlines():
            if line.strip().startswith("CMD [") and '"-c"' in line:
                snippets += python_snippets(json.loads(line.strip()[4:]))
    assert len(snippets) >= 4
    for code in snippets:
        compile(code, "<manifest>", "exec")


# ----------------------------------------------------------------------------- Docker


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    result = subprocess.run(
        [tool("hadolint"), str(dockerfile)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_flags_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && apt-get install curl\n")
    result = subprocess.run(
        [tool("hadolint"), str(bad)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            rows.append((word.upper(), rest.strip()))
    return rows


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_copies_existing_files_and_runs_non_root(dockerfile: Path) -> None:
    rows = dockerfile_instructions(dockerfile)
    ignore = (dockerfile.parent / f"{dockerfile.name}.dockerignore").read_text().splitlines()
    for word, rest in rows:
        if word == "COPY":
            *sources, _ = shlex.split(rest)
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                assert f"!{source}" in ignore, f"COPY {source}: excluded by the .dockerignore"
    users = [rest for word, rest in rows if word == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    last_run = max(i for i, (word, _) in enumerate(rows) if word == "RUN")
    assert last_run < [i for i, (word, _) in enumerate(rows) if word == "USER"][-1]
    healthcheck = next(rest for word, rest in rows if word == "HEALTHCHECK")
    assert "/livez" in healthcheck  # liveness: a camera that is down must not fail it
    assert json.loads(next(rest for word, rest in rows if word == "ENTRYPOINT")) == [
        "adafocus-stream"
    ]


# ----------------------------------------------------------------------------- compose


def test_compose_services_build_from_existing_files_and_mount_existing_paths() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"pipeline", "proxy", "prometheus", "grafana"} <= services.keys()
    for overlay in COMPOSE_FILES:
        for name, service in yaml.safe_load(overlay.read_text())["services"].items():
            assert name in services, f"{overlay.name}: unknown service {name}"
            build = service.get("build")
            if build is not None:
                context = DEPLOY / build["context"]
                assert context.is_dir()
                assert (context / build["dockerfile"]).is_file()
            for volume in service.get("volumes", []):
                source = volume.split(":")[0]
                if source.startswith("."):
                    assert (DEPLOY / source).exists(), f"{name}: {source} missing"
                else:
                    assert source in compose["volumes"], f"{name}: undeclared volume {source}"
            for port in service.get("ports", []):
                assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_compose_wiring_matches_the_demo_config() -> None:
    from stream.config import load_config

    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    pipeline = compose["services"]["pipeline"]
    mount = next(v for v in pipeline["volumes"] if v.endswith(":ro"))
    source, target, _ = mount.split(":")
    assert target == pipeline["command"][-1]
    config = load_config(DEPLOY / source)
    pub_port = config.publish.bind.rsplit(":", 1)[1]
    assert f"tcp://pipeline:{pub_port}" in compose["services"]["proxy"]["command"]
    scrape = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    targets = scrape["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == [f"pipeline:{config.metrics.port}"]
    datasource = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"
    provider = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/dashboards/adafocus.yml").read_text()
    )["providers"][0]
    dash_mount = next(v for v in compose["services"]["grafana"]["volumes"] if "dashboards" in v)
    assert dash_mount.split(":")[1] == provider["options"]["path"]


# ----------------------------------------------------------------------------- Prometheus


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [tool("promtool"), *args], capture_output=True, text=True, timeout=60, cwd=PROMETHEUS
    )


def test_promtool_accepts_the_scrape_config_and_the_rules() -> None:
    for args in (("check", "config", "prometheus.yml"), ("check", "rules", "alerts.yml")):
        result = promtool(*args)
        assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_fire_as_their_unit_tests_say() -> None:
    result = promtool("test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def defined_series() -> set[str]:
    names: set[str] = set()
    for metric in vars(PipelineMetrics()).values():
        if isinstance(metric, Counter):
            names.add(metric._name + "_total")
        elif isinstance(metric, Gauge):
            names.add(metric._name)
        elif isinstance(metric, Histogram):
            names |= {metric._name + s for s in ("_bucket", "_sum", "_count")}
    return names


def test_dashboard_and_alerts_use_only_metrics_the_pipeline_defines() -> None:
    used = metric_names_used()
    assert len(used) >= 14
    assert used <= defined_series(), f"undefined: {sorted(used - defined_series())}"


def test_dashboard_panels_are_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    titles = {p["title"] for p in dashboard["panels"]}
    for wanted in ("Streams up", "Compute saved", "Latency capture to publish", "Drops / s"):
        assert wanted in titles
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        for target in panel["targets"]:
            used = set(re.findall(r"\$(\w+)", target["expr"])) - {"__rate_interval"}
            assert used <= variables
