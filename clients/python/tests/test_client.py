#!/usr/bin/python3
"""Tests of the p2pmq Python client (clients/python) against real agents ($P2PMQ_BIN), started
and ended by tests/agent/harness.py. Debian's python3-grpcio and python3-grpc-tools; without them
this exits 77 (CTest: skipped).

    P2PMQ_BIN=build/release/apps/p2pmq/p2pmq /usr/bin/python3 clients/python/tests/test_client.py
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_ROOT = os.path.normpath(os.path.join(HERE, ".."))
ROOT = os.path.normpath(os.path.join(PACKAGE_ROOT, "..", ".."))
sys.path.insert(0, PACKAGE_ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "agent"))

import harness  # noqa: E402

if __name__ == "__main__":
    missing = harness.missing_dependency()
    if missing is not None:
        print("SKIP: the Python client needs gRPC for Python: " + missing)
        sys.exit(77)  # CTest: SKIP_RETURN_CODE

import p2pmq  # noqa: E402

pb = p2pmq.pb


def needs_agent(test):
    if not os.environ.get("P2PMQ_BIN"):
        test.skipTest("P2PMQ_BIN is not set: no p2pmq agent to test against")


class AgentCase(unittest.TestCase):
    def setUp(self):
        needs_agent(self)
        self.procs = harness.Processes(self.__class__.__name__)
        self._problems_before = self._problems()
        self.addCleanup(self._close)

    def _problems(self):
        result = getattr(getattr(self, "_outcome", None), "result", None)
        return None if result is None else len(result.failures) + len(result.errors)

    def _close(self):
        # The logs (their directory is in failure messages) are kept when the test failed.
        now = self._problems()
        self.procs.close(keep_logs=now is None or now != self._problems_before)

    def agent(self, name, **kw):
        a = harness.Agent(self.procs, name, **kw)
        client = p2pmq.Client(a.grpc_address)
        self.addCleanup(client.close)
        return a, client

    def listen(self, client, topics, **kw):
        stream = client.listen(topics, **kw)
        self.addCleanup(stream.cancel)
        return stream

    def wait_mesh(self, topic, *clients):
        for c in clients:
            harness.wait_until(lambda: any(topic in p.mesh_topics for p in c.status().peers),
                               what="a mesh peer on " + topic, context=self.procs.context)


class PublishAndListen(AgentCase):
    def test_published_message_reaches_listeners_of_both_agents(self):
        a, ca = self.agent("A")
        _, cb = self.agent("B", bootstrap=[a])
        streams = [self.listen(ca, "t"), self.listen(cb, ["t"], ordered=True)]
        self.wait_mesh("t", ca, cb)
        published = ca.publish("t", "hello")
        self.assertEqual(published.seqno, 1)
        for s in streams:
            m = next(s.messages())
            self.assertIsInstance(m, pb.Message)
            self.assertEqual((m.topic, m.data, m.origin, m.seqno, m.id),
                             ("t", b"hello", a.peer_id, 1, published.id))

    def test_subscribe_and_unsubscribe_show_in_status(self):
        a, c = self.agent("A")
        c.subscribe("news")
        st = c.status()
        self.assertEqual(st.peer_id, a.peer_id)
        self.assertIn("news", st.topics)
        c.unsubscribe("news")
        self.assertNotIn("news", c.status().topics)

    def test_listen_with_an_empty_topic_raises_invalid_argument(self):
        _, c = self.agent("A")
        # grpcio may report the end of a refused stream after its (empty) headers: the error
        # then comes with the first event.
        with self.assertRaises(p2pmq.grpc.RpcError) as e:
            next(iter(c.listen([""])))
        self.assertEqual(e.exception.code(), p2pmq.grpc.StatusCode.INVALID_ARGUMENT)


class ValidatorHelper(AgentCase):
    def test_rejected_messages_are_not_delivered_and_lower_the_senders_score(self):
        seen = []

        def judge(msg):
            seen.append(msg.data)
            return p2pmq.REJECT if msg.data.startswith(b"bad") else p2pmq.ACCEPT

        validator = p2pmq.serve_validator(judge)
        self.addCleanup(validator.stop)
        a, ca = self.agent("A")
        _, cb = self.agent("B", bootstrap=[a], validators=[validator.address])
        stream = self.listen(cb, "t")
        ca.subscribe("t")
        self.wait_mesh("t", ca, cb)
        # Two bad ones: B's score of A goes to about -40 (P4), above the graylist threshold.
        for data in ("good 1", "bad 1", "bad 2", "good 2"):
            ca.publish("t", data)
        got = []
        for m in stream.messages():
            got.append(m.data)
            if len(got) == 2:
                break
        self.assertEqual(sorted(got), [b"good 1", b"good 2"])

        def score_of_a():
            return [p.score for p in cb.status().peers if p.peer_id == a.peer_id and p.score < 0]

        harness.wait_until(score_of_a, what="B's score of A below zero",
                           context=self.procs.context)
        self.assertEqual(sorted(seen), [b"bad 1", b"bad 2", b"good 1", b"good 2"])


class FakeCall:
    """A Listen call's stand-in: iterates over given events."""

    def __init__(self, events):
        self.events = events

    def __iter__(self):
        return iter(self.events)

    def cancel(self):
        pass


class ListenEvents(unittest.TestCase):
    def test_events_come_out_as_message_missed_and_gap(self):
        events = [pb.ListenEvent(missed=pb.Missed(topic="t", count=3)),
                  pb.ListenEvent(message=pb.Message(topic="t", seqno=4)),
                  pb.ListenEvent(gap=pb.Gap(topic="t", origin="o", from_seqno=5, to_seqno=6))]
        got = list(p2pmq.ListenStream(FakeCall(events)))
        self.assertEqual([type(e) for e in got], [pb.Missed, pb.Message, pb.Gap])
        self.assertEqual((got[0].count, got[1].seqno, got[2].to_seqno), (3, 4, 6))
        self.assertEqual([m.seqno for m in p2pmq.ListenStream(FakeCall(events)).messages()], [4])


# A ListenRequest with a resume cursor, as a later API version may have it.
RESUME_FIELD = """
  repeated ResumePosition resume = 15;
}
message ResumePosition {
  string topic = 1;
  string origin = 2;
  uint64 after_seqno = 3;
"""


class ResumeCursor(unittest.TestCase):
    def test_without_the_field_a_cursor_is_refused(self):
        if any(f.message_type is not None and f.label == f.LABEL_REPEATED
               for f in pb.ListenRequest.DESCRIPTOR.fields):
            self.skipTest("this proto has a repeated message field in ListenRequest")
        request = pb.ListenRequest(topics=["t"])
        p2pmq.set_resume(request, {})  # no cursor: nothing to map
        with self.assertRaises(p2pmq.NoResumeCursor):
            p2pmq.set_resume(request, {("t", "origin"): 7})

    def test_cursor_advances_on_messages_and_gaps(self):
        cursor = {}
        for ev in (pb.Message(topic="t", origin="A", seqno=3),
                   pb.Gap(topic="t", origin="A", from_seqno=4, to_seqno=6),
                   pb.Message(topic="t", origin="A", seqno=2),  # late: no step back
                   pb.Message(topic="t", seqno=9),  # no origin
                   pb.Missed(topic="t", count=1)):
            p2pmq.advance(cursor, ev)
        self.assertEqual(cursor, {("t", "A"): 6})

    def test_with_the_field_the_cursor_is_mapped_onto_it(self):
        proto = os.path.join(ROOT, "proto", "p2pmq", "v1", "p2pmq.proto")
        with open(proto) as f:
            text = f.read()
        start = text.index("message ListenRequest {")
        end = text.index("\n}", start)
        text = text[:end] + RESUME_FIELD + text[end + 1:] if "ResumePosition" not in text \
            else text
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, "p2pmq", "v1"))
            with open(os.path.join(d, "p2pmq", "v1", "p2pmq.proto"), "w") as f:
                f.write(text)
            script = ("import p2pmq\n"
                      "r = p2pmq.pb.ListenRequest(topics=['t'])\n"
                      "p2pmq.set_resume(r, {('t', 'A'): 7, ('u', 'B'): 9})\n"
                      "print(sorted((e.topic, e.origin, e.after_seqno) for e in r.resume))\n")
            env = dict(os.environ, P2PMQ_PROTO_DIR=d, PYTHONPATH=PACKAGE_ROOT)
            out = subprocess.run([sys.executable, "-c", script], env=env, check=True,
                                 stdout=subprocess.PIPE, timeout=120).stdout.decode()
        self.assertEqual(out.strip(), "[('t', 'A', 7), ('u', 'B', 9)]")


class Install(unittest.TestCase):
    def test_pip_installs_a_package_that_works_outside_the_repository(self):
        import importlib.util
        if not all(importlib.util.find_spec(m) for m in ("pip", "setuptools")):
            self.skipTest("pip or setuptools is missing (python3-pip, python3-setuptools)")
        with tempfile.TemporaryDirectory() as d:
            target = os.path.join(d, "site")
            # From a copy (package and proto only), so that the build leaves nothing in the
            # source tree.
            copy = os.path.join(d, "repo", "clients", "python")
            shutil.copytree(PACKAGE_ROOT, copy,
                            ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
            shutil.copytree(os.path.join(ROOT, "proto"), os.path.join(d, "repo", "proto"))
            build = subprocess.run(
                [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                 "--no-build-isolation", "--no-index", "--target", target, copy],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300,
                env=dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1"))
            self.assertEqual(build.returncode, 0, build.stdout.decode(errors="replace"))
            env = {k: v for k, v in os.environ.items() if k != "P2PMQ_PROTO_DIR"}
            env["PYTHONPATH"] = target
            out = subprocess.run(
                [sys.executable, "-c", "import p2pmq; print(p2pmq.__file__, "
                 "p2pmq._stubs.proto_root(), p2pmq.pb.PublishRequest(topic='t').topic)"],
                cwd=d, env=env, stdout=subprocess.PIPE, check=True, timeout=120).stdout.decode()
        here, root, topic = out.split()
        self.assertTrue(here.startswith(target), here)
        self.assertTrue(root.startswith(target), root)  # the bundled copy of the proto
        self.assertEqual(topic, "t")


if __name__ == "__main__":
    result = unittest.main(verbosity=2, exit=False).result
    if result.testsRun and len(result.skipped) == result.testsRun:
        sys.exit(77)
    sys.exit(0 if result.wasSuccessful() else 1)
