#!/usr/bin/python3
"""The network forms by itself through the DHT (issue: Kademlia DHT, topic discovery).

    P2PMQ_BIN=build/apps/p2pmq/p2pmq /usr/bin/python3 tests/agent/test_discovery.py [CLASS]

Fifty agents on loopback know only two bootstrappers (`--role bootstrapper`); each subscribes to
one of five topics. Discovery (provider records under each topic's key, looked up while a topic
has fewer than D_lo peers) must bring every agent to at least D_lo mesh peers in its topic, and
then every message published must reach every other subscriber of its topic exactly once.

The agents are driven through `--stdio` (JSON lines), which is far lighter than 50 gRPC clients.
Every process is ended by pid when the test ends.
"""
import os
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Processes, StdioAgent, wait_until  # noqa: E402

AGENTS = int(os.environ.get("P2PMQ_DISCOVERY_AGENTS", "50"))
TOPICS = max(1, AGENTS // 10)  # 10 subscribers per topic
D_LO = 4  # gossip.D_lo for this test (D = 6): 9 other subscribers per topic, room to spare
# Fifty processes starting on two loaded cores (and under ASan in one CI flavour).
DEADLINE = float(os.environ.get("P2PMQ_TEST_DEADLINE", "60")) * 4
GOSSIP = ["heartbeat_interval=300ms", "heartbeat_initial_delay=100ms", "D_lo=%d" % D_LO]


class FiftyAgents(unittest.TestCase):
    def setUp(self):
        self.procs = Processes(self.__class__.__name__)
        self.addCleanup(self.procs.close, keep_logs=False)

    def start(self, name, args):
        a = StdioAgent(self.procs, name, args)
        wait_until(lambda: a.addr, what=name + " listening", timeout=DEADLINE)
        return a

    def test_discovery_meshes_and_delivery(self):
        gossip = sum((["--gossip", g] for g in GOSSIP), [])
        fast = ["--set", "dht.discovery_interval=1s"] if harness.agent_supports("--set") and os.environ.get("P2PMQ_NO_SET") is None else []
        boots = [self.start("boot%d" % i, ["--role", "bootstrapper"]) for i in range(2)]
        via = sum((["--bootstrap", b.addr] for b in boots), [])
        agents = []
        for i in range(AGENTS):
            topic = "topic-%d" % (i % TOPICS)
            agents.append((self.start("agent%02d" % i, via + gossip + fast + ["--topic", topic]),
                           topic))

        # Every agent reaches D_lo mesh peers in its topic, having been told of two peers only.
        def meshed():
            short = []
            for a, topic in agents:
                peers = a.ask("mesh " + topic, "mesh").get("peers", [])
                if len(peers) < D_LO:
                    short.append("%s:%d" % (a.name, len(peers)))
            self.short = short
            return not short

        self.short = []
        wait_until(meshed, timeout=DEADLINE, interval=1.0,
                   what="every agent with >= %d mesh peers" % D_LO,
                   context=lambda: "short of mesh peers: %s" % self.short)

        # Nobody was given more than the bootstrappers: the rest came from the DHT.
        table = agents[0][0].ask("dht-table", "dht-table")["peers"]
        self.assertGreater(len(table), 2, "routing table of agent00")

        for a, topic in agents:
            r = a.ask("pub %s hello from %s" % (topic, a.name), "published")
            self.assertEqual(r.get("event"), "published", r)

        subscribers = {}
        for a, topic in agents:
            subscribers.setdefault(topic, []).append(a)

        def everything_delivered():
            for a, topic in agents:
                if len(a.messages()) < len(subscribers[topic]) - 1:
                    return False
            return True

        wait_until(everything_delivered, timeout=DEADLINE, interval=0.5,
                   what="every message at every other subscriber")
        for a, topic in agents:
            got = [(m["from"], m["seqno"]) for m in a.messages()]
            self.assertEqual(len(got), len(set(got)), "%s: duplicates" % a.name)
            want = sorted((b.peer_id, 1) for b in subscribers[topic] if b is not a)
            self.assertEqual(sorted(got), want, a.name)
            for m in a.messages():
                self.assertEqual(m["topic"], topic)


class ConnectionManager(unittest.TestCase):
    """Above connmgr.high_water the hub closes connections down to low_water, keeping its mesh
    peers: eight peers connect to it, two of them share its topic."""

    def setUp(self):
        self.procs = Processes(self.__class__.__name__)
        self.addCleanup(self.procs.close, keep_logs=False)

    def start(self, name, args):
        a = StdioAgent(self.procs, name, args)
        wait_until(lambda: a.addr, what=name + " listening", timeout=DEADLINE)
        return a

    def test_trims_to_low_water_and_keeps_mesh_peers(self):
        gossip = sum((["--gossip", g] for g in GOSSIP[:2]), [])
        hub = self.start("hub", gossip + ["--topic", "t", "--set", "connmgr.low_water=3",
                                          "--set", "connmgr.high_water=4",
                                          "--set", "connmgr.grace=0s"])
        via = ["--bootstrap", hub.addr]
        mesh = [self.start("mesh%d" % i, via + gossip + ["--topic", "t"]) for i in range(2)]
        others = [self.start("other%d" % i, via + gossip + ["--topic", "u"]) for i in range(6)]

        def mesh_ids():
            return set(hub.ask("mesh t", "mesh")["peers"])
        wanted = {m.peer_id for m in mesh}
        wait_until(lambda: wanted <= mesh_ids(), what="the hub's mesh with both topic peers",
                   timeout=DEADLINE)

        def trimmed():
            r = hub.ask("peers", "peers")
            peers = set(r["peers"])
            return (r["trimmed"] >= 1 and len(peers) <= 4 and wanted <= peers
                    and wanted <= mesh_ids())
        wait_until(trimmed, what="the hub at or below high_water with its mesh peers kept",
                   timeout=DEADLINE, interval=0.5)
        self.assertTrue(all(o.popen.poll() is None for o in others))


if __name__ == "__main__":
    if os.environ.get("P2PMQ_BIN", None) == "":
        print("SKIP: P2PMQ_BIN is empty (no p2pmq target in this build)")
        sys.exit(77)  # CTest: SKIP_RETURN_CODE
    unittest.main(verbosity=2)
