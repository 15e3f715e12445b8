"""contrib/prometheus: the scrape config, rules and dashboard parse, and name only series the desk exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families
from support.fakenode import Outcome
from support.invoices import make_invoice

from hashpool_cln.plugin.metrics import DeskMetrics, call_started

CONTRIB = Path(__file__).resolve().parents[2] / "contrib" / "prometheus"
SERIES = re.compile(r"\bhashpool_[a-z_]+")


def exprs() -> list[str]:
    rules = yaml.safe_load((CONTRIB / "hashpool-rules.yml").read_text())
    found = [r["expr"] for group in rules["groups"] for r in group["rules"]]
    dashboard = json.loads((CONTRIB / "grafana-dashboard.json").read_text())
    found += [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    return found


def test_the_scrape_config_targets_the_documented_default() -> None:
    config = yaml.safe_load((CONTRIB / "prometheus.yml").read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "hashpool-redeem"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:9750"]
    assert config["rule_files"] == ["hashpool-rules.yml"] and (CONTRIB / "hashpool-rules.yml").exists()
    rules = yaml.safe_load((CONTRIB / "hashpool-rules.yml").read_text())
    for rule in (r for g in rules["groups"] for r in g["rules"]):
        assert ("record" in rule) != ("alert" in rule) and rule["expr"].strip()


async def test_rules_and_dashboard_use_only_exposed_series(make_desk, ehash, node) -> None:
    desk = await make_desk()
    metrics = DeskMetrics()
    desk.on_event(metrics.on_event)
    async with metrics.recovery():
        pass
    await metrics.probe_mint(desk.mint)
    inv = make_invoice(100_000)
    node.script(inv.payment_hash, Outcome.PENDING_THEN_COMPLETE)  # held in custody while it is in flight
    call_started()
    assert (await desk.redeem(await ehash.token(500), inv.bolt11))["state"] == "paying"
    text = (await metrics.render(desk)).decode()
    exposed = set()
    for family in text_string_to_metric_families(text):
        exposed |= {family.name} | {s.name for s in family.samples}
        if family.type == "counter":  # declared, even before its first labelled sample
            exposed.add(family.name + "_total")
    used = {name for expr in exprs() for name in SERIES.findall(expr)}
    assert used and used - exposed == set(), used - exposed
