"""docs/operations.md and the Grafana dashboard name only metrics winmdm exports, and every one."""

from __future__ import annotations

import json
import re
from pathlib import Path

from winmdm.metrics import Metrics

DOCS = Path(__file__).resolve().parents[2] / "docs"
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "gauge": ("",),
    "info": ("_info",),
}


def exported() -> dict[str, set[str]]:
    """winmdm's metric families, each with the sample names a query can use."""
    families = {}
    for family in Metrics().registry.collect():
        if family.name.startswith("winmdm_"):
            families[family.name] = {family.name + s for s in SUFFIXES[family.type]}
    return families


def test_every_metric_is_documented() -> None:
    text = (DOCS / "operations.md").read_text(encoding="utf-8")
    for family, samples in exported().items():
        shown = min(samples, key=len) if not family.endswith("_seconds") else family
        assert f"`{shown}`" in text, f"{shown} is not in docs/operations.md"


def test_the_dashboard_queries_only_exported_metrics() -> None:
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text(encoding="utf-8"))
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert queries
    known = set().union(*exported().values())
    used = {name for q in queries for name in re.findall(r"\bwinmdm_[a-z_]+", q)}
    assert used <= known, used - known
    # Every family winmdm exports has a panel.
    assert all(samples & used for samples in exported().values())
