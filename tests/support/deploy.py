"""What the deploy tests share: where deploy/ keeps each kind of file, the real
tools that read them (kubectl kustomize, the venv's linters), and the metric names
the dashboard and the alerts depend on."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import ROOT

DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
PROMETHEUS = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "adafocus.json"


def tool(name: str) -> str:
    """A tool from the venv (pip-installed test extra) or PATH; the test fails,
    never skips, when it is missing."""
    venv_tool = Path(sys.executable).parent / name
    found = str(venv_tool) if venv_tool.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed (pip install -e '.[test]', tests/system-deps.sh)")
    return found


def kustomize_resources(directory: Path) -> list[dict[str, Any]]:
    """The resources a kustomization produces, rendered by the real kustomize
    (`kubectl kustomize`, patches and image rewrites applied)."""
    out = subprocess.run(
        [tool("kubectl"), "kustomize", str(directory)],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def metric_names_used() -> set[str]:
    """Every adafocus_* series name in the dashboard's and the alerts' expressions."""
    texts = [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"]]
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    texts += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    return {name for text in texts for name in re.findall(r"\badafocus_[a-z0-9_]+", text)}
