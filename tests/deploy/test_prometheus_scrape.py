"""A real Prometheus server (Debian's) scrapes a running pipeline with the config
from deploy/prometheus (target rewritten to this test's port, 1 s intervals):
the dashboard's compute-saved expression evaluates to a ratio in (0, 1), the
alert rules load, the Kubernetes liveness probe's path answers 200, and every
metric the dashboard and the alerts name exists in the live /metrics, so no
panel can silently show "no data"."""

from __future__ import annotations

import json
import math
import shutil
import signal
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.deploy import (
    DASHBOARD,
    K8S,
    PROMETHEUS,
    by_kind,
    kustomize_resources,
    metric_names_used,
)
from tests.support.net import free_port, http_get, wait_until
from tests.support.pipeline import Pipeline, pipeline_config, sweep_shared_memory, tiny_checkpoint
from tests.support.processes import Process

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]


def dashboard_expr(title: str) -> str:
    """A panel's first query with Grafana's variables filled as Grafana would."""
    panel = next(p for p in json.loads(DASHBOARD.read_text())["panels"] if p["title"] == title)
    expr = panel["targets"][0]["expr"]
    return expr.replace("$__rate_interval", "15s").replace("$stream", ".*")


def prometheus_config(directory: Path, target: str) -> Path:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    (job,) = config["scrape_configs"]
    job["static_configs"] = [{"targets": [target]}]
    for rules in config["rule_files"]:
        shutil.copy(PROMETHEUS / rules, directory / rules)
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def query(base: str, expr: str) -> list[dict]:
    status, body = http_get(f"{base}/api/v1/query?query={urllib.parse.quote(expr)}")
    assert status == 200, body
    return json.loads(body)["data"]["result"]


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for proc in reversed(started):
        proc.stop()
    sweep_shared_memory()


def test_prometheus_scrapes_the_pipeline_and_the_dashboard_queries_have_data(
    tmp_path: Path, processes: list[Process]
) -> None:
    prometheus_bin = shutil.which("prometheus")
    if prometheus_bin is None:
        pytest.fail("prometheus is not installed: run tests/system-deps.sh")
    config = pipeline_config(
        tiny_checkpoint(tmp_path),
        [{"id": f"cam-{i}", "uri": f"synthetic://digits?fps=15&seed={i}"} for i in (1, 2)],
    )
    metrics_port = int(config["metrics"]["bind"].rsplit(":", 1)[1])
    pipeline = Pipeline(tmp_path, config, collect=False)
    processes.append(pipeline)

    web = f"127.0.0.1:{free_port()}"
    (tmp_path / "tsdb").mkdir()
    prometheus = Process(
        [
            prometheus_bin,
            f"--config.file={prometheus_config(tmp_path, f'127.0.0.1:{metrics_port}')}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address={web}",
        ],
        tmp_path / "prometheus.log",
    )
    processes.append(prometheus)
    base = f"http://{web}"

    pipeline.wait_serving(60)
    saved_expr = dashboard_expr("Compute saved")
    deadline = time.monotonic() + 60
    result: list[dict] = []
    while time.monotonic() < deadline and not result:
        time.sleep(1)
        assert pipeline.proc.poll() is None, f"pipeline exited:\n{pipeline.log_tail()}"
        try:
            result = query(base, saved_expr)
        except OSError:
            continue
    assert result, f"no data for {saved_expr}\n{prometheus.log_tail()}\n{pipeline.log_tail()}"
    saved = float(result[0]["value"][1])
    assert math.isfinite(saved) and 0.0 < saved < 1.0, saved

    assert query(base, 'up{job="adafocus"}')[0]["value"][1] == "1"
    # The "worker not ticking" alert's input is fresh (a gauge stuck at 0 would fire it).
    (tick_age,) = query(base, dashboard_expr("Worker tick age"))
    assert 0 <= float(tick_age["value"][1]) < 10, tick_age
    _, body = http_get(f"{base}/api/v1/rules")
    rules = [r for g in json.loads(body)["data"]["groups"] for r in g["rules"]]
    assert len(rules) == 5 and all(r["health"] == "ok" for r in rules), rules

    # The Kubernetes liveness probe's path answers 200 on this live pipeline.
    (worker,) = by_kind(kustomize_resources(K8S / "base"), "StatefulSet")
    liveness = worker["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]
    status, body = http_get(pipeline.metrics_url + liveness["path"])
    assert status == 200 and json.loads(body)["alive"] is True, body

    _, text = http_get(f"{pipeline.metrics_url}/metrics")
    live = {
        sample.name
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }
    missing = metric_names_used() - live
    assert not missing, f"named in the dashboard/alerts but absent from /metrics: {sorted(missing)}"

    # A real start, a reload and a stop, evaluated every second: no alert was ever
    # even pending (ALERTS holds a sample for every pending or firing alert).
    pipeline.signal(signal.SIGHUP)
    wait_until(lambda: "reload: 0 stream(s) added" in pipeline.log_text(), 30, "the reload")
    assert pipeline.terminate(timeout=60) == 0
    wait_until(lambda: query(base, 'up{job="adafocus"}')[0]["value"][1] == "0", 30,
               "Prometheus to see the pipeline gone")
    time.sleep(3)  # a few more evaluations with the target down
    assert query(base, "max_over_time(ALERTS[10m])") == [], prometheus.log_tail()
