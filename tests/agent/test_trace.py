#!/usr/bin/python3
"""The event trace (trace.file) of a running agent: NDJSON lines of go-libp2p-pubsub's tracer
events appear as the agent joins, meshes, publishes and receives.

    P2PMQ_BIN=$PWD/build/release/apps/p2pmq/p2pmq /usr/bin/python3 tests/agent/test_trace.py
"""
import json
import os
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import DEADLINE, Agent, Processes, wait_until  # noqa: E402

_missing = harness.missing_dependency()
TOPIC = "traced"


def events(path):
    """The trace's events (complete lines only: the writer may be mid-line)."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        text = f.read()
    return [json.loads(l) for l in text.split("\n")[:-1] if l]


class Trace(unittest.TestCase):
    def setUp(self):
        if _missing:
            self.skipTest(_missing)
        self.procs = Processes(self.__class__.__name__)
        self.addCleanup(self.procs.close, keep_logs=False)

    def test_events_of_a_running_agent_appear_in_the_trace_file(self):
        path = os.path.join(self.procs.workdir("trace"), "trace.ndjson")
        traced = Agent(self.procs, "traced", topics=[TOPIC],
                       extra=["--set", "trace.file=" + path])
        other = Agent(self.procs, "other", bootstrap=[traced], topics=[TOPIC])
        wait_until(lambda: other.peer_id in traced.mesh_peers(TOPIC), what="mesh",
                   context=self.procs.context)
        traced.publish(TOPIC, "mine")
        other.publish(TOPIC, "theirs")

        def seen(kind, **fields):
            body_key = {"PUBLISH_MESSAGE": "publishMessage", "DELIVER_MESSAGE": "deliverMessage",
                        "JOIN": "join", "GRAFT": "graft"}[kind]
            return any(e["type"] == kind and e["peerID"] == traced.peer_id and
                       all(e[body_key].get(k) == v for k, v in fields.items())
                       for e in events(path))
        wait_until(lambda: seen("DELIVER_MESSAGE", topic=TOPIC, receivedFrom=other.peer_id),
                   what="the received message's DELIVER_MESSAGE", timeout=DEADLINE,
                   context=self.procs.context)
        self.assertTrue(seen("JOIN", topic=TOPIC))
        self.assertTrue(seen("GRAFT", topic=TOPIC, peerID=other.peer_id))
        self.assertTrue(seen("PUBLISH_MESSAGE", topic=TOPIC))
        self.assertTrue(all(e["timestamp"] > 0 for e in events(path)))


if __name__ == "__main__":
    if _missing:
        print("SKIP: the trace test needs gRPC for Python: " + _missing)
        sys.exit(77)  # CTest: SKIP_RETURN_CODE
    if os.environ.get("P2PMQ_BIN", None) == "":
        print("SKIP: P2PMQ_BIN is empty (no p2pmq target in this build)")
        sys.exit(77)
    unittest.main(verbosity=2)
