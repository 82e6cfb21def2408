#!/usr/bin/python3
"""Sybils on one network cannot fill an agent's DHT routing table (issue 10: routing-table
diversity, dht.max_peers_per_ip_group = 3 by default).

    P2PMQ_BIN=build/release/apps/p2pmq/p2pmq /usr/bin/python3 tests/agent/test_dht_diversity.py

Twelve DHT servers, each listening on an address of its own: eight Sybils in one public /16
(45.67.0.2-9) and four honest agents in four other /16s (91-94.1.0.1). A victim dials all twelve
at start (`--bootstrap`), so each connection's remote address is the peer's own. Once every peer
is identified, the victim's routing table must hold every honest peer and at most three Sybils.

The addresses are public-looking on purpose (loopback and private sources are not limited), so
the agents run in a network namespace this test creates, with those addresses on its loopback
interface; nothing reaches the real network. The namespace is removed afterwards, also when the
test fails. Without root or `ip netns`, or without gRPC for Python, the test exits 77.
"""
import os
import signal
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import DEADLINE, Processes, StdioAgent, wait_until  # noqa: E402

SYBILS = ["45.67.0.%d" % i for i in range(2, 10)]
HONEST = ["%d.1.0.1" % n for n in range(91, 95)]
MAX_PER_GROUP = 3  # dht.max_peers_per_ip_group's default


class SybilsOnOneNetwork(unittest.TestCase):
    def test_one_ip_group_holds_at_most_its_share_of_the_table(self):
        procs = Processes("dht-diversity")
        self.addCleanup(procs.close)
        sybils = [StdioAgent(procs, "sybil%d" % i, ["--listen", "/ip4/%s/tcp/0" % a])
                  for i, a in enumerate(SYBILS)]
        honest = [StdioAgent(procs, "honest%d" % i, ["--listen", "/ip4/%s/tcp/0" % a])
                  for i, a in enumerate(HONEST)]
        peers = sybils + honest
        wait_until(lambda: all(p.addr for p in peers), what="every peer listening")
        args = ["--listen", "/ip4/127.0.0.1/tcp/0"]
        for p in peers:
            args += ["--bootstrap", p.addr]
        victim = StdioAgent(procs, "victim", args)
        wait_until(lambda: victim.grpc_address is not None, what="the victim's gRPC address")
        pb, rpc = harness.stubs()
        chan = harness.channel(victim.grpc_address)
        procs.on_close(chan.close)
        admin = rpc.AdminStub(chan)

        # Every peer connected and identified (its agent version known): the table has ruled on
        # each of them.
        ids = {p.peer_id for p in peers}

        def identified():
            s = admin.Status(pb.StatusRequest(), timeout=10)
            return ids <= {p.peer_id for p in s.peers if p.agent_version}
        wait_until(identified, timeout=DEADLINE * 2, what="the victim identified all 12 peers")

        table = victim.ask("dht-table", "dht-table")
        in_table = set(table["peers"])
        sybil_ids = {p.peer_id for p in sybils}
        missing = [p.name for p in honest if p.peer_id not in in_table]
        self.assertEqual(missing, [], "honest peers of other networks left out of the table")
        self.assertLessEqual(len(in_table & sybil_ids), MAX_PER_GROUP,
                             "one /16 holds more than its share of the table: %s" % table)
        self.assertGreaterEqual(len(in_table & sybil_ids), 1, "no Sybil admitted at all: %s" % table)


def in_namespace():
    """Runs this file's tests inside a fresh network namespace; returns the exit code."""
    ns = "p2pmq-sybil-%d" % os.getpid()
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print("SKIP: needs root and `ip netns` (iproute2): %s" %
              (getattr(e, "stderr", b"") or str(e).encode()).decode().strip())
        return 77

    def stop(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, stop)
    try:
        ip = ["ip", "-n", ns]
        subprocess.run(ip + ["link", "set", "lo", "up"], check=True)
        for a in SYBILS + HONEST:
            subprocess.run(ip + ["addr", "add", a + "/32", "dev", "lo"], check=True)
        env = dict(os.environ, P2PMQ_IN_NETNS=ns)
        return subprocess.call(["ip", "netns", "exec", ns, sys.executable,
                                os.path.abspath(__file__)] + sys.argv[1:], env=env)
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


if __name__ == "__main__":
    missing = harness.missing_dependency()
    if missing is not None:
        print("SKIP: agent tests need gRPC for Python: " + missing)
        sys.exit(77)
    if os.environ.get("P2PMQ_BIN", None) == "":
        print("SKIP: P2PMQ_BIN is empty (no p2pmq target in this build)")
        sys.exit(77)
    if not os.environ.get("P2PMQ_IN_NETNS"):
        sys.exit(in_namespace())
    unittest.main()
