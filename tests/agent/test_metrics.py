"""The agent's HTTP listener (metrics.address): Prometheus metrics and the status page.

    P2PMQ_BIN=build/release/apps/p2pmq/p2pmq /usr/bin/python3 tests/agent/test_metrics.py [CLASS]

Each class is one CTest test (tests/agent/CMakeLists.txt):
  MetricsEndpoint  agents with traffic: /metrics counters move, meshes show, names follow the
                   Prometheus conventions, and a hostile client cannot hold the listener
  StatusPage       the page of an agent with traffic in headless Chromium: the peer and topic
                   tables fill and the rate chart draws; a screenshot is kept as an artifact
                   ($P2PMQ_ARTIFACT_DIR, else the test's log directory)
Without gRPC for Python (or, for StatusPage, without Debian's chromium) the test exits 77.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import unittest
import urllib.request

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import DEADLINE, Agent, Processes, wait_until  # noqa: E402

_missing = harness.missing_dependency()
if __name__ == "__main__":
    if _missing is not None:
        print("SKIP: agent tests need gRPC for Python: " + _missing)
        sys.exit(77)
    if os.environ.get("P2PMQ_BIN", None) == "":
        print("SKIP: P2PMQ_BIN is empty (no p2pmq target in this build)")
        sys.exit(77)

SAMPLE_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """{name: [(labels dict, value)]} and {name: type} from the text exposition format; any
    line that is neither a comment nor a sample fails the test."""
    samples, types = {}, {}
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
            continue
        if line.startswith("#"):
            continue
        m = SAMPLE_LINE.match(line)
        if m is None:
            raise AssertionError("not a sample line: %r" % line)
        labels = dict(LABEL.findall(m.group(3) or ""))
        samples.setdefault(m.group(1), []).append((labels, float(m.group(4))))
    return samples, types


def value(samples, name, **labels):
    """The sum of `name` over the series whose labels include `labels` (0 when none)."""
    return sum(v for l, v in samples.get(name, [])
               if all(l.get(k) == want for k, want in labels.items()))


def get(address, path, timeout=10):
    with urllib.request.urlopen("http://%s%s" % (address, path), timeout=timeout) as r:
        return r.status, r.headers.get("Content-Type", ""), r.read().decode("utf-8")


def scrape(address):
    status, ctype, body = get(address, "/metrics")
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4"), (status, ctype)
    return parse_metrics(body)[0]


def metrics_args(**settings):
    args = ["--set", "metrics.address=127.0.0.1:0"]
    for k, v in settings.items():
        args += ["--set", "metrics.%s=%s" % (k, v)]
    return args


class MetricsAgent(Agent):
    """An Agent with the HTTP listener on an OS-chosen port, read from its `metrics` line."""

    def __init__(self, procs, name, bootstrap=(), **settings):
        super().__init__(procs, name, bootstrap=bootstrap, extra=metrics_args(**settings))
        m = self.proc.wait_line(r"^metrics (\S+:\d+)$")
        self.http = m.group(1)


class MetricsTestCase(unittest.TestCase):
    def setUp(self):
        self.procs = Processes(self.__class__.__name__)
        self._problems_before = self._problems()
        self.addCleanup(self._close)

    def _problems(self):
        result = getattr(getattr(self, "_outcome", None), "result", None)
        if result is None:
            return None
        return len(result.failures) + len(result.errors)

    def _close(self):
        # Logs (in the directory named by failure messages) are kept when the test failed.
        now = self._problems()
        self.procs.close(keep_logs=now is None or now != self._problems_before)

    def ctx(self):
        return self.procs.context()

    def wait(self, predicate, what, timeout=DEADLINE):
        return wait_until(predicate, timeout=timeout, what=what, context=self.ctx)

    def network_with_traffic(self, n, **settings):
        """n agents in a chain, each listening on topic "t" with a connected mesh."""
        agents = []
        for i in range(n):
            agents.append(MetricsAgent(self.procs, "agent%d" % i,
                                       bootstrap=[agents[-1]] if agents else [], **settings))
        streams = [a.listen(["t"]) for a in agents]
        self.wait(lambda: all(value(scrape(a.http), "p2pmq_pubsub_mesh_peers", topic="t") > 0
                              for a in agents), "every agent with mesh peers in t")
        return agents, streams


class MetricsEndpoint(MetricsTestCase):
    def test_counters_move_with_traffic(self):
        agents, streams = self.network_with_traffic(3, max_connections=4,
                                                    request_timeout="1s")
        before = [scrape(a.http) for a in agents]
        for a in agents[:2]:
            for k in range(5):
                a.publish("t", "%s %d" % (a.name, k))
        for s in streams:
            s.wait_count(10, context=self.ctx)

        after = [scrape(a.http) for a in agents]
        for i, (b, a) in enumerate(zip(before, after)):
            name = agents[i].name
            delivered = (value(a, "p2pmq_pubsub_delivered_messages_total", topic="t") -
                         value(b, "p2pmq_pubsub_delivered_messages_total", topic="t"))
            self.assertGreaterEqual(delivered, 10, name + ": delivered on t")
            self.assertGreater(value(a, "p2pmq_pubsub_mesh_peers", topic="t"), 0, name)
            self.assertGreater(value(a, "p2pmq_connections"), 0, name)
            self.assertGreater(value(a, "p2pmq_streams", protocol="/meshsub/1.2.0"), 0, name)
            self.assertGreaterEqual(value(a, "p2pmq_grpc_listen_streams"), 1, name)
            self.assertGreaterEqual(value(a, "p2pmq_pubsub_peer_score_count"), 1, name)
            self.assertGreater(value(a, "p2pmq_resource_streams", scope="system"), 0, name)
            self.assertGreater(value(a, "p2pmq_process_cpu_seconds_total"), 0, name)
        for i in range(2):
            published = (value(after[i], "p2pmq_pubsub_published_messages_total", topic="t") -
                         value(before[i], "p2pmq_pubsub_published_messages_total", topic="t"))
            self.assertEqual(published, 5, agents[i].name + ": published on t")
        # Agent 2 published nothing: every message it delivered came from a peer and was
        # validated (the histogram counts one observation per validated message).
        self.assertEqual(value(after[2], "p2pmq_pubsub_published_messages_total", topic="t"), 0)
        self.assertGreaterEqual(
            value(after[2], "p2pmq_pubsub_validation_duration_seconds_count", topic="t"), 10)
        self.assertGreaterEqual(value(after[2], "p2pmq_dht_routing_table_peers"), 1)

        # Names follow the conventions: the prefix, _total on counters only.
        _, types = parse_metrics(get(agents[0].http, "/metrics")[2])
        self.assertTrue(types)
        for name, kind in types.items():
            self.assertTrue(name.startswith("p2pmq_"), name)
            self.assertEqual(kind == "counter", name.endswith("_total"), (name, kind))

        # Every family is documented in docs/operations.md, and every series the Grafana
        # dashboard queries exists (but those of roles and options these agents lack).
        with open(os.path.join(harness.ROOT, "docs", "operations.md")) as f:
            operations = f.read()
        for name in types:
            self.assertIn("`%s`" % name, operations, "undocumented metric")
        with open(os.path.join(harness.ROOT, "deploy", "grafana", "p2pmq.json")) as f:
            dashboard = json.load(f)
        conditional = {"p2pmq_sync_archive_messages"}  # archive role only
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                for name in re.findall(r"p2pmq_[a-z0-9_]+", target["expr"]):
                    family = re.sub(r"_(bucket|count|sum)$", "", name)
                    if family not in conditional:
                        self.assertIn(family, types, "dashboard panel %r" % panel["title"])

        # /status.json is built from the same probes and the backend's status.
        status = json.loads(get(agents[2].http, "/status.json")[2])
        self.assertEqual(status["status"]["peer_id"], agents[2].peer_id)
        self.assertIn("t", status["status"]["topics"])
        self.assertEqual(status["metrics"]["p2pmq_pubsub_delivered_messages_total"][0]["value"],
                         value(scrape(agents[2].http), "p2pmq_pubsub_delivered_messages_total",
                               topic="t"))

        # An operator finds the listener from the gRPC Status and from `p2pmq status`.
        self.assertEqual(agents[2].status().metrics_address, agents[2].http)
        self.assertEqual(harness.status_json(agents[2])["metrics_address"], agents[2].http)

    def test_hostile_client_cannot_hold_the_listener(self):
        [agent] = [MetricsAgent(self.procs, "agent", max_connections=4, request_timeout="1s",
                                max_request_bytes=1024)]
        host, port = agent.http.rsplit(":", 1)
        address = (host, int(port))

        def closed_by_server(sock):
            sock.settimeout(DEADLINE)
            try:
                return sock.recv(1 << 16) == b"" or closed_by_server(sock)
            except ConnectionResetError:
                return True

        # A head larger than max_request_bytes is answered 431, not buffered.
        with socket.create_connection(address) as s:
            s.sendall(b"GET / HTTP/1.1\r\nX: " + b"a" * 4096 + b"\r\n\r\n")
            s.settimeout(DEADLINE)
            self.assertTrue(s.recv(64).startswith(b"HTTP/1.1 431"))
        # Clients that connect and send nothing: at most max_connections are kept, and each is
        # cut off at the request timeout.
        idle = [socket.create_connection(address) for _ in range(8)]
        self.addCleanup(lambda: [s.close() for s in idle])
        for s in idle:
            self.assertTrue(closed_by_server(s))
        # The listener still answers.
        self.assertEqual(get(agent.http, "/metrics")[0], 200)
        with socket.create_connection(address) as s:
            s.sendall(b"DELETE / HTTP/1.1\r\n\r\n")
            s.settimeout(DEADLINE)
            self.assertTrue(s.recv(64).startswith(b"HTTP/1.1 405"))


def find_chromium():
    for name in (os.environ.get("CHROMIUM", ""), "chromium", "chromium-browser"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--no-first-run", "--disable-dev-shm-usage", "--hide-scrollbars"]


def tbody(dom, table_id):
    m = re.search(r'<table id="%s">.*?<tbody>(.*?)</tbody>' % table_id, dom, re.S)
    return m.group(1) if m else ""


class StatusPage(MetricsTestCase):
    def test_page_shows_peers_topics_and_rates(self):
        chromium = find_chromium()
        if chromium is None:
            self.skipTest("no chromium (apt install chromium)")
        agents, streams = self.network_with_traffic(2, sample_interval="500ms")
        page = agents[0]

        # Traffic until the history holds a nonzero rate on t (two samples apart).
        def rate_shows():
            agents[1].publish("t", "tick")
            h = json.loads(get(page.http, "/status.json")[2])["history"]
            d = [v for v in h["topics"].get("t", {}).get(
                "p2pmq_pubsub_delivered_messages_total", []) if v is not None]
            return len(d) >= 3 and d[-1] > d[0]
        self.wait(rate_shows, "a delivery rate on t in the status history")

        profile = self.procs.workdir("chromium")
        url = "http://%s/" % page.http

        def chromium_run(*args):
            return subprocess.run([chromium] + CHROMIUM_FLAGS + [
                "--user-data-dir=" + profile, "--virtual-time-budget=5000"] + list(args) + [url],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=120,
                cwd=profile).stdout.decode("utf-8", "replace")

        def page_filled():
            dom = chromium_run("--dump-dom")
            peers, topics = tbody(dom, "peers"), tbody(dom, "topics")
            chart = re.search(r'<svg id="chart".*?</svg>', dom, re.S)
            lines = re.findall(r'<polyline class="rate" data-topic="t"[^>]*points="([^"]*)"',
                               chart.group(0) if chart else "")
            ok = (agents[1].peer_id[-6:] in peers and peers.count("<tr>") >= 1 and
                  "<td>t</td>" in topics and lines and len(lines[0].split()) >= 2)
            return dom if ok else None
        dom = self.wait(page_filled, "the page with peers, topics and a rate line", timeout=180)
        self.assertIn(page.peer_id, dom)

        artifacts = os.environ.get("P2PMQ_ARTIFACT_DIR") or self.procs.dir
        os.makedirs(artifacts, exist_ok=True)
        shot = os.path.join(artifacts, "status_page.png")
        if os.path.exists(shot):
            os.remove(shot)
        chromium_run("--window-size=1000,1300", "--screenshot=" + shot)
        with open(shot, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        print("screenshot: " + shot)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "StatusPage" and find_chromium() is None:
        print("SKIP: no chromium (apt install chromium)")
        sys.exit(77)
    unittest.main(verbosity=2)
