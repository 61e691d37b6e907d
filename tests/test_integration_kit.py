"""The integration kit, run as an operator would run it (issue 22, part 5):

- the webhook signature checks of docs/integration/ (Python, Node.js, PHP, Go, Java), each run
  as its own CLI on a real delivery the service signed and sent to a loopback receiver;
- deploy/prometheus/alerts.yml under promtool (`check rules`, and the unit tests of
  alerts_test.yml);
- deploy/grafana/liveness-dashboard.json, whose every query names only series the service's
  /metrics exposes;
- a real Prometheus (Debian's) scraping the running service with the bearer key, loading the
  alert rules, and answering the dashboard's queries.

Every tool is installed by scripts/test.sh; a missing one fails here with the package to install
(a skip would count as a failure anyway, tests/conftest.py).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.serving import make_server

from webapp.delivery.webhooks import sign

from .conftest import AUTH, OPERATOR_KEY
from .loopback import Receiver
from .servers import free_port, stop_group
from .test_webhooks import finish_session

ROOT = Path(__file__).resolve().parent.parent
KIT = ROOT / "docs" / "integration"
RULES = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "liveness-dashboard.json"

# They start real processes (Prometheus, a JVM, node, php…): not in `scripts/test.sh fast`.
pytestmark = pytest.mark.service

NEW = "whsec-new-0123456789abcdef"
PREVIOUS = "whsec-old-fedcba9876543210"
WRONG = "whsec-wrong-000000000000"

LANGUAGES = ["python", "node", "php", "go", "java"]
# The command each needs, and the Debian package scripts/test.sh installs it from.
TOOLS = {"python": ("python3", "python3"), "node": ("node", "nodejs"), "php": ("php", "php-cli"),
         "go": ("go", "golang"), "java": ("java", "openjdk-17-jdk-headless"),
         "promtool": ("promtool", "prometheus"), "prometheus": ("prometheus", "prometheus")}


def tool(name: str) -> str:
    """The path of a tool the kit needs; fail (never skip) when it is missing."""
    command, package = TOOLS[name]
    path = shutil.which(command)
    if path is None:
        pytest.fail(f"`{command}` is not on PATH: bash scripts/test.sh installs it "
                    f"(apt-get install {package})", pytrace=False)
    return path


# -- webhook signature checks --------------------------------------------------------------------
@pytest.fixture(scope="module")
def verifiers(tmp_path_factory):
    """language → (command, extra environment) running that language's snippet as a CLI:
    `WEBHOOK_SECRET=… <command> '<X-Signature>' < body`, exit 0 valid, 1 invalid."""
    home = tmp_path_factory.mktemp("kit-home")
    go_env = {"HOME": str(home), "GOCACHE": str(home / "gocache"), "GOPATH": str(home / "gopath"),
              "GOTOOLCHAIN": "local", "GOPROXY": "off", "GOFLAGS": "", "CGO_ENABLED": "0"}
    commands = {"python": ([tool("python"), str(KIT / "verify_webhook.py")], {}),
                "node": ([tool("node"), str(KIT / "verify_webhook.js")], {}),
                "php": ([tool("php"), str(KIT / "verify_webhook.php")], {}),
                # As documented: a single-file source launch (JDK 11+).
                "java-source": ([tool("java"), str(KIT / "VerifyWebhook.java")], {"HOME": str(home)})}
    # Java and Go compiled once (as each launch of `java X.java` and `go run` would do again), so
    # the many cases take seconds; the Go binary's exit code is the program's own.
    classes = home / "classes"
    javac = shutil.which("javac") or pytest.fail("`javac` is not on PATH: bash scripts/test.sh installs it "
                                                 "(apt-get install openjdk-17-jdk-headless)", pytrace=False)
    compiled = subprocess.run([javac, "-d", str(classes), str(KIT / "VerifyWebhook.java")], capture_output=True,
                              text=True, timeout=300)
    assert compiled.returncode == 0, f"javac failed:\n{compiled.stdout}{compiled.stderr}"
    commands["java"] = ([tool("java"), "-cp", str(classes), "VerifyWebhook"], {"HOME": str(home)})
    binary = home / "verify_webhook"
    built = subprocess.run([tool("go"), "build", "-o", str(binary), str(KIT / "verify_webhook.go")],
                           cwd=home, env={**os.environ, **go_env}, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, f"go build failed:\n{built.stdout}{built.stderr}"
    commands["go"] = ([str(binary)], {})
    return commands


def check(verifiers, language: str, secret: str, header: str, body: bytes) -> int:
    """Run one snippet; its exit code (0 valid, 1 invalid; anything else fails the test)."""
    command, env = verifiers[language]
    done = subprocess.run([*command, header], input=body, capture_output=True, timeout=120,
                          env={**os.environ, **env, "WEBHOOK_SECRET": secret})
    assert done.returncode in (0, 1), (
        f"{language} snippet exited {done.returncode}:\n{done.stdout.decode()}{done.stderr.decode()}")
    return done.returncode


def delivered(make_app, media, **secrets) -> tuple[bytes, str]:
    """The body and X-Signature of a real delivery: a session ends, the service's dispatcher
    POSTs the event to a loopback receiver, which keeps exactly what came over the wire."""
    receiver = Receiver()
    try:
        app = make_app(**secrets)
        finish_session(app.test_client(), media, callback_url=receiver.url)
        assert app.extensions["liveness"].dispatcher.deliver_due() == 1
        assert len(receiver.received) == 1
        got = receiver.received[0]
        return got["body"], got["headers"]["X-Signature"]
    finally:
        receiver.stop()


@pytest.mark.parametrize("language", LANGUAGES)
def test_each_snippet_accepts_a_real_delivery_and_refuses_forgeries(language, verifiers, make_app, juhe, media):
    body, header = delivered(make_app, media, WEBHOOK_SECRET=NEW)
    assert header.count("v1=") == 1 and "张" in body.decode()   # raw UTF-8, as a receiver reads it
    tampered = body.replace(b'"status":"passed"', b'"status":"failed"')
    assert tampered != body
    stale = sign(NEW, body, int(time.time()) - 600)             # a replay 10 minutes later
    future = sign(NEW, body, int(time.time()) + 600)
    rotated_body, rotated = delivered(make_app, media, WEBHOOK_SECRET=NEW, WEBHOOK_SECRET_PREVIOUS=PREVIOUS)
    assert rotated.count("v1=") == 2
    cases = {
        "valid": (NEW, header, body, 0),
        "tampered body": (NEW, header, tampered, 1),
        "wrong secret": (WRONG, header, body, 1),
        "old timestamp": (NEW, stale, body, 1),
        "timestamp from the future": (NEW, future, body, 1),
        "rotation, receiver still on the previous secret": (PREVIOUS, rotated, rotated_body, 0),
        "rotation, receiver already on the new secret": (NEW, rotated, rotated_body, 0),
        "rotation, wrong secret": (WRONG, rotated, rotated_body, 1),
        "rotation, tampered body": (PREVIOUS, rotated, rotated_body + b" ", 1),
    }
    with ThreadPoolExecutor(4) as pool:
        codes = dict(zip(cases, pool.map(lambda c: check(verifiers, language, *c[:3]), cases.values())))
    assert codes == {name: case[3] for name, case in cases.items()}
    if language == "java":   # the command the snippet documents, too
        assert check(verifiers, "java-source", PREVIOUS, rotated, rotated_body) == 0
        assert check(verifiers, "java-source", NEW, header, tampered) == 1


# -- the service, busy, and what its /metrics says ----------------------------------------------
def busy_app(make_app, media):
    """The service after one passed session whose webhook was delivered: every labelled series
    the dashboard and the rules read has a value."""
    receiver = Receiver()
    try:
        app = make_app(WEBHOOK_SECRET=NEW)
        client = app.test_client()
        created = finish_session(client, media, callback_url=receiver.url)
        page = "/" + created["url"].split("://", 1)[1].split("/", 1)[1]
        assert client.post(f"{page}/events", data='{"name": "opened"}').status_code == 204  # the page's milestone
        assert app.extensions["liveness"].dispatcher.deliver_due() == 1
    finally:
        receiver.stop()
    return app


def exposed(app) -> dict[str, list[tuple[dict, float]]]:
    """Sample name → [(labels, value)] of the service's /metrics, read with the operator key."""
    response = app.test_client().get("/metrics", headers=AUTH)
    assert response.status_code == 200, response.data[:500]
    samples: dict[str, list[tuple[dict, float]]] = {}
    for family in text_string_to_metric_families(response.data.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


# PromQL words that are not series names (functions are recognised by their "(").
_PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
                 "unless", "offset", "inf", "nan"}


def series_names(expr: str) -> set[str]:
    """The series names a PromQL expression reads: label matchers, grouping labels, strings,
    durations, numbers and function names left out."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)                         # strings
    text = re.sub(r"\{[^}]*\}", "", text)                                   # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)                                  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word, rest = match.group(), text[match.end():].lstrip()
        if rest.startswith("(") or word.lower() in _PROMQL_WORDS:
            continue
        if match.start() and (text[match.start() - 1].isdigit() or text[match.start() - 1] == "."):
            continue                                                        # 1e3, 0.95
        names.add(word)
    return names


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expr) of every query of the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [(panel["title"], target["expr"]) for panel in dashboard["panels"]
               for target in panel.get("targets", [])]
    assert len(queries) >= len(dashboard["panels"]) >= 8
    assert all(expr.strip() for _, expr in queries)
    return queries


def test_series_names_reads_promql_as_prometheus_does():
    assert series_names('histogram_quantile(0.95, sum by (le) (rate(liveness_juhe_seconds_bucket{a="b,c"}[5m])))') \
        == {"liveness_juhe_seconds_bucket"}
    assert series_names('sum(rate(x_total{outcome=~"1|2"}[10m])) / sum(rate(y_total[1h])) * 60 > 1e3 and on (i) z') \
        == {"x_total", "y_total", "z"}


def test_every_dashboard_query_reads_series_the_service_exposes(make_app, juhe, media):
    names = set(exposed(busy_app(make_app, media)))
    unknown = {(title, name) for title, expr in dashboard_queries() for name in series_names(expr)
               if name not in names}
    assert not unknown, f"the dashboard reads series /metrics does not expose: {sorted(unknown)}"
    # …and it shows the service's own series, all of them but the client library's.
    read = {name for _, expr in dashboard_queries() for name in series_names(expr)}
    ours = {n for n in names if n.startswith("liveness_") and not n.endswith(("_created", "_count", "_sum"))}
    assert {n.removesuffix("_bucket") for n in ours} - {n.removesuffix("_bucket") for n in read} == set()


# -- alert rules -------------------------------------------------------------------------------
def test_the_alert_rules_pass_promtool_check_and_their_unit_tests():
    promtool = tool("promtool")
    checked = subprocess.run([promtool, "check", "rules", "alerts.yml"], cwd=RULES, capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 10 rules found" in checked.stdout
    tested = subprocess.run([promtool, "test", "rules", "alerts_test.yml"], cwd=RULES, capture_output=True,
                            text=True, timeout=120)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout + tested.stderr


def test_the_alert_rules_read_only_series_the_service_exposes(make_app, juhe, media):
    import yaml
    names = set(exposed(busy_app(make_app, media))) | {"up"}   # up: Prometheus's own, per target
    rules = yaml.safe_load((RULES / "alerts.yml").read_text())["groups"][0]["rules"]
    unknown = {(rule["alert"], name) for rule in rules for name in series_names(rule["expr"]) if name not in names}
    assert not unknown, f"alert rules read series /metrics does not expose: {sorted(unknown)}"
    for rule in rules:
        assert set(rule["annotations"]) >= {"summary", "description"}, rule["alert"]
        assert len(rule["annotations"]["description"]) > 120, f"{rule['alert']}: say what to do"


# -- a real Prometheus scraping the running service -------------------------------------------
class Prometheus:
    """Debian's prometheus, on a loopback port, storing in a temporary folder."""

    def __init__(self, folder: Path, target: str):
        self.folder, self.port = folder, free_port()
        self.config = folder / "prometheus.yml"
        self.config.write_text(json.dumps({   # JSON is YAML
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES / "alerts.yml")],
            "scrape_configs": [{
                "job_name": "liveness", "metrics_path": "/metrics",
                "authorization": {"type": "Bearer", "credentials": OPERATOR_KEY},
                "static_configs": [{"targets": [target]}]}]}))
        self.log_path = folder / "prometheus.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Prometheus:
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [tool("prometheus"), f"--config.file={self.config}", f"--storage.tsdb.path={self.folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            cwd=self.folder, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def api(self, path: str, **params) -> dict:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as answer:
            return json.load(answer)

    def until(self, what: str, found, timeout: float = 60.0):
        """Poll `found()` (None or an exception: not yet) until it gives something; fail with
        prometheus's log after `timeout` s, or at once if it exited."""
        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"prometheus exited with {self.proc.returncode}:\n{self.output()}", pytrace=False)
            try:
                if (result := found()) is not None:
                    return result
            except OSError as exc:   # not listening yet
                last = exc
            time.sleep(0.25)
        pytest.fail(f"{what}: not within {timeout} s (last error: {last})\ntargets: {self.targets()}\n"
                    f"prometheus's log:\n{self.output()}", pytrace=False)

    def targets(self) -> str:
        """Each scrape target's health and last error (a refused bearer key shows here)."""
        try:
            active = self.api("targets")["data"]["activeTargets"]
        except (OSError, ValueError, KeyError) as exc:
            return f"unknown ({exc!r})"
        return "; ".join(f"{t['scrapeUrl']}: {t['health']} {t.get('lastError', '')}" for t in active)

    def stop(self) -> None:
        stop_group(self.proc)
        if self.proc is not None:
            self.log.close()


def test_a_real_prometheus_scrapes_the_service_loads_the_rules_and_answers_the_dashboard(make_app, juhe, media,
                                                                                           tmp_path):
    app = busy_app(make_app, media)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    prometheus = Prometheus(tmp_path, f"127.0.0.1:{server.server_port}").start()
    try:
        def value(query: str):
            result = prometheus.api("query", query=query)["data"]["result"]
            return float(result[0]["value"][1]) if result else None

        def reported(name: str, **labels) -> float | None:
            return next((v for got, v in exposed(app).get(name, []) if got == labels), None)

        # What Prometheus stored is what the service reports.
        paid = 'liveness_juhe_calls_total{charged="true"}'
        scraped = prometheus.until(f"prometheus has {paid}", lambda: value(paid))
        service = reported("liveness_juhe_calls_total", charged="true")
        assert service is not None and service >= 1 and scraped == service, (scraped, service)
        delivered_ = value('liveness_webhook_deliveries_total{result="delivered"}')
        assert delivered_ == reported("liveness_webhook_deliveries_total", result="delivered") >= 1
        assert value('up{job="liveness"}') == 1.0

        # The alert rules are loaded and evaluate without error on the live series.
        def evaluated():
            groups = prometheus.api("rules")["data"]["groups"]
            rules = [rule for group in groups for rule in group["rules"]]
            done = all(rule.get("health", "unknown") != "unknown" for rule in rules)
            return rules if len(rules) == 10 and done else None
        rules = prometheus.until("the 10 alert rules evaluated", evaluated)
        assert {rule["name"]: rule["health"] for rule in rules} == {rule["name"]: "ok" for rule in rules}, \
            [(rule["name"], rule.get("lastError")) for rule in rules]

        # Every dashboard query is one Prometheus accepts.
        for title, expr in dashboard_queries():
            answer = prometheus.api("query", query=expr)
            assert answer["status"] == "success", (title, expr, answer)
    finally:
        prometheus.stop()
        server.shutdown()
        server.server_close()
