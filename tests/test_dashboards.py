"""deploy/grafana and deploy/prometheus: well formed, and every metric they name is one Roomcast exposes."""

import json
import re
import time
from urllib.parse import urlsplit

import pytest
import requests
import yaml
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from core import metrics
from devtools.embedded_redis import free_port
from tests.clients import SocketClient, StalledPolling, follow_to_the_end, register
from tests.helpers import create_room, flood
from tests.realstack import PROJECT_ROOT, running_stack
from tests.relay import LoopbackRelay

DASHBOARD = PROJECT_ROOT / "deploy" / "grafana" / "roomcast.json"
ALERTS = PROJECT_ROOT / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS_CONFIG = PROJECT_ROOT / "deploy" / "prometheus" / "prometheus.yml"
METRIC_NAME = re.compile(r"\broomcast_[a-zA-Z0-9_:]*")
# The series each kind of family exposes (created series are disabled in core/metrics.py).
SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("_count", "_sum", ""),
}
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$instance": ".*"}


# --- reading the files ---


def load_yaml(path):
    """Parse one of the YAML files."""
    return yaml.safe_load(path.read_text())


def dashboard():
    return json.loads(DASHBOARD.read_text())


def dashboard_exprs():
    """Return [(where, expr)] for every query of every panel, rows' panels included."""
    exprs = []
    for panel in all_panels(dashboard()["panels"]):
        for target in panel.get("targets", []):
            exprs.append((f"panel {panel['id']} {panel['title']!r} {target.get('refId')}", target.get("expr")))
    return exprs


def all_panels(panels):
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def alert_rules():
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def every_expr():
    return dashboard_exprs() + [(f"alert {rule['alert']}", rule["expr"]) for rule in alert_rules()]


def names_in(expr):
    """Return the roomcast_* names an expression reads."""
    return set(METRIC_NAME.findall(expr))


# --- what Roomcast defines ---


def defined_series():
    """Return {series name: family} for every series core/metrics.py can expose, read from its objects."""
    series = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                series.update((family.name + suffix, family.name) for suffix in SUFFIXES[family.type])
    shared = metrics.SharedStateCollector(
        lambda: {("kind", "status"): 1},
        lambda column, buckets: {"kind": ([0] * len(buckets), 0, 0.0)},
        lambda: 0,
    )
    for family in shared.collect():
        series.update((family.name + suffix, family.name) for suffix in SUFFIXES[family.type])
        series.update((sample.name, family.name) for sample in family.samples)
    return series


# --- unit: the files' structure and names ---


@pytest.mark.unit
def test_the_dashboard_is_a_grafana_dashboard_on_a_datasource_variable():
    board = dashboard()
    assert board["uid"] and board["title"] and 36 <= board["schemaVersion"] <= 41
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["instance"]["datasource"]["uid"] == "${datasource}"
    assert names_in(variables["instance"]["definition"]) <= set(defined_series())
    panels = list(all_panels(board["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids), ids
    for panel in panels:
        grid = panel["gridPos"]
        assert set(grid) == {"h", "w", "x", "y"} and all(isinstance(v, int) and v >= 0 for v in grid.values())
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        assert panel["title"] and panel["type"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert 'instance=~"$instance"' in target["expr"], f"{panel['title']} ignores the instance variable"
    # Panels do not overlap.
    cells = {}
    for panel in panels:
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


@pytest.mark.unit
def test_every_alert_rule_has_an_expression_a_duration_a_severity_and_a_summary():
    document = load_yaml(ALERTS)
    assert document["groups"] and all(group["name"] and group["rules"] for group in document["groups"])
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), names
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}, rule["alert"]
        assert rule["alert"].startswith("Roomcast") and rule["expr"].strip(), rule["alert"]
        assert re.fullmatch(r"(\d+[smhd])+", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


@pytest.mark.unit
def test_the_instance_down_alert_watches_the_example_scrape_job():
    config = load_yaml(PROMETHEUS_CONFIG)
    assert config["rule_files"] == ["alerts.yml"]
    jobs = [scrape["job_name"] for scrape in config["scrape_configs"]]
    up = [rule["expr"] for rule in alert_rules() if re.match(r"\s*up\b", rule["expr"])]
    assert up == [f'up{{job="{jobs[0]}"}} == 0\n'], up


@pytest.mark.unit
@pytest.mark.parametrize("where, expr", every_expr(), ids=[where for where, _ in every_expr()])
def test_every_expression_is_balanced_and_reads_roomcast_series(where, expr):
    assert isinstance(expr, str) and expr.strip()
    closing = {")": "(", "]": "[", "}": "{"}
    stack = []
    for char in re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr):  # brackets inside label values do not count
        if char in "([{":
            stack.append(char)
        elif char in closing:
            assert stack and stack.pop() == closing[char], f"unbalanced {char!r} in {expr}"
    assert not stack, f"unclosed {stack} in {expr}"
    assert names_in(expr) or re.match(r"\s*up\b", expr), f"{where} reads no roomcast_* series"


@pytest.mark.unit
def test_every_series_named_is_one_roomcast_defines():
    series = defined_series()
    # Sanity of the derivation: a histogram family is read through its _bucket series, a counter's through _total.
    assert series["roomcast_delivery_seconds_bucket"] == "roomcast_delivery_seconds"
    assert series["roomcast_socket_events_total"] == "roomcast_socket_events"
    assert series["roomcast_job_run_seconds_bucket"] == "roomcast_job_run_seconds"
    assert "roomcast_celery_queue_length" in series and "roomcast_delivery_seconds" not in series
    unknown = {(where, name) for where, expr in every_expr() for name in names_in(expr) if name not in series}
    assert not unknown, f"series Roomcast does not expose: {sorted(unknown)}"
    # Every family core/metrics.py defines is on the dashboard.
    graphed = {series[name] for _, expr in dashboard_exprs() for name in names_in(expr)}
    assert set(series.values()) - graphed == set()


# --- integration: every series named has samples on a real stack with traffic ---


def series_on(url):
    """Return the names of the series in a /metrics page that have at least one sample."""
    page = requests.get(f"{url}/metrics", timeout=5).text
    return {sample.name for family in text_string_to_metric_families(page) for sample in family.samples}


@pytest.mark.integration
def test_every_series_named_has_samples_on_a_real_stack_with_traffic(tmp_root, redis_url):
    needed = {name for _, expr in every_expr() for name in names_in(expr)}
    target = urlsplit(redis_url)
    relay = LoopbackRelay(target.port)  # the first process's Redis, to be cut
    env = {
        "SOCKET_MAX_PENDING_BYTES": str(64 * 1024),
        "SOCKET_RATE_PER_SECOND": "100000",
        "SOCKET_RATE_BURST": "100000",
    }
    through_relay = target._replace(netloc=f"{target.hostname}:{relay.port}").geturl()
    if target.username or target.password:
        through_relay = redis_url.replace(f":{target.port}", f":{relay.port}", 1)
    with running_stack(tmp_root, redis_url, "dashboards", **env) as stack:
        stack.env["REDIS_URL"] = through_relay
        stack.start_web()
        stack.env["REDIS_URL"] = redis_url
        other = f"http://127.0.0.1:{free_port()}"  # delivers what the first publishes, through Redis
        stack.start_web(port=int(other.rsplit(":", 1)[1]))
        stack.start_worker()
        token = register(stack.url, "alice")
        room = create_room(stack.url, token)
        chat = SocketClient(stack.url, token, "websocket").connect()
        listening = SocketClient(other, token, "websocket").connect()
        jobs = SocketClient(stack.url, token, "websocket", namespace="/jobs").connect()
        stalled = None
        try:
            assert chat.call("join", {"room": room})["ok"] and listening.call("join", {"room": room})["ok"]
            chat.call("send", {"room": room, "text": "hi"})
            listening.wait_for("message")
            assert not chat.call("join", {"room": "no such room"})["ok"]  # a non-ok outcome
            job = jobs.call("start", {"kind": "sleep", "params": {"seconds": 0.2, "steps": 2}})["job"]
            assert follow_to_the_end(jobs, job["id"])[1]["status"] == "succeeded"
            # A client that stops polling is dropped; the first process's listener loses Redis and resyncs.
            stalled = StalledPolling(stack.url, token, room)
            flood(chat, room, 200, until=lambda: "roomcast_slow_clients_dropped_total" in series_on(stack.url))
            relay.reset()
            deadline, found = time.monotonic() + 30, set()
            while time.monotonic() < deadline and not needed <= found:
                found = series_on(stack.url) | series_on(other)
                time.sleep(0.2)
        finally:
            relay.close()
            for client in (stalled, chat, listening, jobs):
                if client is not None:
                    client.close()
    assert needed - found == set(), f"named but with no sample on either process: {sorted(needed - found)}"
