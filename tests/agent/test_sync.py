#!/usr/bin/python3
"""Sync end to end (issue: sequence numbers, archive nodes, ordered gap-free delivery).

    P2PMQ_BIN=build/apps/p2pmq/p2pmq /usr/bin/python3 tests/agent/test_sync.py [CLASS]

  Restart        a subscriber is stopped, two origins publish 500 messages, it restarts: its
                 ordered Listen stream gets all 500 exactly once, in per-origin order, marked
                 synced, and nothing it had delivered before the stop comes again
  Partition      six archiving agents split in two halves (each blocks the other half's peers),
                 both halves publish; after the split ends every agent has every message exactly
                 once, with no gap events
  ArchiveKilled  the first archive is killed with kill -9 in the middle of a catch-up: the agent
                 completes from the second; the killed archive, restarted on its data dir, still
                 serves everything it had acknowledged
  ArchivePatterns an archive with sync.archive_topics news.* and a cap of 2 keeps two of the
                 three news.* topics a peer announces (and not the others), warns about the
                 third, and stores exactly the messages of the topics it kept; an archive
                 without topics or patterns warns at start
Every process is ended by pid when the test ends. Waiting is on events with deadlines.
"""
import os
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import DEADLINE, Agent, Processes, StdioAgent, wait_until  # noqa: E402

_missing = harness.missing_dependency()
LONG = DEADLINE * 4  # catch-ups of hundreds of signed messages on a loaded machine, under ASan
GOSSIP = ["heartbeat_interval=300ms", "heartbeat_initial_delay=100ms"]
FAST = ["--set", "dht.discovery_interval=1s", "--set", "sync.gap_wait=1s"]


def gossip_args(extra=()):
    return sum((["--gossip", g] for g in list(GOSSIP) + list(extra)), [])


class SyncTestCase(unittest.TestCase):
    def setUp(self):
        self.procs = Processes(self.__class__.__name__)
        self.addCleanup(self.procs.close, keep_logs=False)

    def ctx(self):
        return self.procs.context()

    def data_dir(self, name):
        return self.procs.workdir(name)

    def stdio(self, name, args):
        a = StdioAgent(self.procs, name, args)
        wait_until(lambda: a.addr and a.grpc_address, what=name + " up", timeout=LONG)
        return a


class Restart(SyncTestCase):
    TOPIC = "orders"

    def test_restart_catches_up_exactly_once_in_order(self):
        archive = Agent(self.procs, "archive", gossip=GOSSIP, topics=[self.TOPIC],
                        extra=["--role", "archive", "--data-dir", self.data_dir("archive")] + FAST)
        origins = [Agent(self.procs, "origin%d" % i, bootstrap=[archive], gossip=GOSSIP,
                         topics=[self.TOPIC],
                         extra=["--data-dir", self.data_dir("origin%d" % i)] + FAST)
                   for i in range(2)]
        sub_dir = self.data_dir("subscriber")
        sub_args = ["--data-dir", sub_dir] + FAST
        sub = Agent(self.procs, "subscriber", bootstrap=[archive], gossip=GOSSIP,
                    topics=[self.TOPIC], extra=sub_args)
        stream = sub.listen([self.TOPIC], ordered=True)
        everyone = [archive, sub] + origins

        def meshed():
            return all(len(a.mesh_peers(self.TOPIC)) >= 1 for a in everyone)
        wait_until(meshed, what="every agent in the mesh", timeout=LONG, context=self.ctx)

        # Before the stop: 10 from each origin, delivered live.
        for o in origins:
            for k in range(10):
                o.publish(self.TOPIC, "%s before %d" % (o.name, k))
        before = stream.wait_count(20, timeout=LONG, context=self.ctx)
        self.assertTrue(all(not m.synced for m in before))

        def flushed():
            marks = {w.origin: w.delivered_seqno
                     for t in sub.status().topic_status if t.topic == self.TOPIC
                     for w in t.origins}
            return all(marks.get(o.peer_id) == 10 for o in origins)
        wait_until(flushed, what="the subscriber's watermarks at 10", timeout=LONG,
                   context=self.ctx)
        stream.cancel()
        self.assertEqual(sub.proc.stop(), 0, "the subscriber's exit code")

        # While it is down: 250 more from each origin, all archived.
        for o in origins:
            for k in range(250):
                r = o.publish(self.TOPIC, "%s while down %d" % (o.name, k))
                self.assertEqual(r.seqno, 11 + k)
        wait_until(lambda: archive.status().sync.archived_messages >= 520,
                   what="520 archived messages", timeout=LONG, context=self.ctx)

        # Restarted on the same data dir: the missed 500, once each, in order, synced.
        sub = Agent(self.procs, "subscriber", bootstrap=[archive], gossip=GOSSIP,
                    extra=sub_args)
        stream = sub.listen([self.TOPIC], ordered=True)
        got = stream.wait_count(500, timeout=LONG, context=self.ctx)
        # A settle point: publish one more live message and wait for it, so late duplicates
        # (a second archive answer, gossip) would have shown up.
        origins[0].publish(self.TOPIC, "after")
        got = stream.wait_count(501, timeout=LONG, context=self.ctx)
        keys = [(m.origin, m.seqno) for m in got]
        self.assertEqual(len(keys), len(set(keys)), "duplicates after the restart")
        synced = [m for m in got if m.synced]
        self.assertEqual(len(synced), 500)
        for o in origins:
            seqnos = [m.seqno for m in synced if m.origin == o.peer_id]
            self.assertEqual(seqnos, list(range(11, 261)), "per-origin order of " + o.name)
        self.assertEqual(stream.gaps(), [])
        self.assertEqual(got[-1].data, b"after")
        self.assertFalse(got[-1].synced)


class ArchivePatterns(SyncTestCase):
    NEWS = ["news.a", "news.b", "news.c"]

    def test_archive_keeps_announced_topics_matching_its_pattern_up_to_the_cap(self):
        archive = Agent(self.procs, "archive", gossip=GOSSIP,
                        extra=["--role", "archive", "--set", "sync.archive_topics=news.*",
                               "--set", "sync.max_archive_topics=2"] + FAST)
        publisher = Agent(self.procs, "publisher", bootstrap=[archive], gossip=GOSSIP,
                          topics=self.NEWS + ["prices"], extra=FAST)
        # The third news topic is refused at the cap (the publisher announces all at once).
        archive.proc.wait_line(r"archive: not keeping topic news\.", timeout=LONG)
        kept = [t for t in archive.status().topics]
        self.assertEqual(len(kept), 2, kept)
        self.assertTrue(set(kept) <= set(self.NEWS), kept)
        dropped = [t for t in self.NEWS if t not in kept]

        def meshed():
            return all(publisher.peer_id in archive.mesh_peers(t) for t in kept)
        wait_until(meshed, what="the archive in the kept topics' meshes", timeout=LONG,
                   context=self.ctx)
        for t in dropped + ["prices"] + kept:
            publisher.publish(t, "one on " + t)
        wait_until(lambda: archive.status().sync.archived_messages >= 2,
                   what="the kept topics' messages archived", timeout=LONG, context=self.ctx)
        # A settle point: one more on a kept topic; whatever else arrived would be counted too.
        publisher.publish(kept[0], "settle")
        wait_until(lambda: archive.status().sync.archived_messages >= 3,
                   what="the settle message archived", timeout=LONG, context=self.ctx)
        self.assertEqual(archive.status().sync.archived_messages, 3)
        self.assertEqual(sorted(archive.status().topics), sorted(kept))

    def test_archive_that_keeps_no_topic_warns_at_start(self):
        archive = Agent(self.procs, "archive", gossip=GOSSIP, extra=["--role", "archive"])
        archive.proc.wait_line(r"archive: keeps no topic", timeout=LONG)
        kept = Agent(self.procs, "kept", gossip=GOSSIP,
                     extra=["--role", "archive", "--set", "sync.archive_topics=*"])
        self.assertFalse(any("keeps no topic" in l for l in kept.proc.lines), kept.proc.tail())


class Partition(SyncTestCase):
    TOPIC = "ledger"
    N = 6
    PER_AGENT = 5

    def test_partition_heals_without_gaps(self):
        # Small degrees: three agents per half must still form a mesh.
        mesh = gossip_args(["D=3", "D_lo=2", "D_hi=5", "D_out=1", "D_score=1", "D_lazy=3"])
        agents = []
        for i in range(self.N):
            boot = ["--bootstrap", agents[0].addr] if agents else []
            agents.append(self.stdio("agent%d" % i, boot + mesh + FAST + [
                "--role", "agent", "--role", "archive", "--topic", self.TOPIC,
                "--data-dir", self.data_dir("agent%d" % i)]))
        halves = (agents[:self.N // 2], agents[self.N // 2:])

        def meshed():
            return all(len(a.ask("mesh " + self.TOPIC, "mesh")["peers"]) >= 1 for a in agents)
        wait_until(meshed, what="every agent in the mesh", timeout=LONG, context=self.ctx)

        # Split: every agent blocks every agent of the other half.
        for mine, theirs in (halves, halves[::-1]):
            for a in mine:
                for b in theirs:
                    self.assertEqual(a.ask("block " + b.peer_id, "blocked")["event"], "blocked")

        def split():
            for mine, theirs in (halves, halves[::-1]):
                others = {b.peer_id for b in theirs}
                for a in mine:
                    if others & set(a.ask("peers", "peers")["peers"]):
                        return False
                    if not a.ask("mesh " + self.TOPIC, "mesh")["peers"]:
                        return False  # each half keeps its own mesh
            return True
        wait_until(split, what="two halves, each meshed", timeout=LONG, context=self.ctx)

        for a in agents:
            for k in range(self.PER_AGENT):
                r = a.ask("pub %s %s-%d" % (self.TOPIC, a.name, k), "published")
                self.assertEqual(r["event"], "published", r)

        def half_delivered():
            return all(len(a.messages()) >= (len(half) - 1) * self.PER_AGENT
                       for half in halves for a in half)
        wait_until(half_delivered, what="each half's messages within it", timeout=LONG)

        for mine, theirs in (halves, halves[::-1]):
            for a in mine:
                for b in theirs:
                    a.ask("unblock " + b.peer_id, "unblocked")

        want = (self.N - 1) * self.PER_AGENT
        wait_until(lambda: all(len(a.messages()) >= want for a in agents),
                   what="every message at every agent after the split",
                   timeout=LONG, context=lambda: "counts: %s" % [
                       (a.name, len(a.messages())) for a in agents])
        for a in agents:
            got = [(m["from"], m["seqno"]) for m in a.messages()]
            self.assertEqual(len(got), len(set(got)), "%s: duplicates" % a.name)
            self.assertEqual(len(got), want, a.name)
            self.assertEqual(a.events_of("gap"), [], a.name)
        # The own half's messages came live; the other half's by sync, or by gossip (IHAVE)
        # when they were still in the senders' message caches as the split ended.
        for mine, theirs in (halves, halves[::-1]):
            others = {b.peer_id for b in theirs}
            for a in mine:
                for m in a.messages():
                    if m["from"] not in others:
                        self.assertFalse(m["synced"], (a.name, m))


class ArchiveKilled(SyncTestCase):
    TOPIC = "telemetry"
    COUNT = 2000

    def test_second_archive_completes_and_killed_archive_keeps_acked_data(self):
        dirs = {n: self.data_dir(n) for n in ("archive1", "archive2")}
        args = lambda n: ["--role", "archive", "--topic", self.TOPIC, "--data-dir", dirs[n]]  # noqa
        a1 = self.stdio("archive1", gossip_args() + FAST + args("archive1"))
        a2 = self.stdio("archive2", ["--bootstrap", a1.addr] + gossip_args() + FAST +
                        args("archive2"))
        origin = self.stdio("origin", ["--bootstrap", a1.addr, "--topic", self.TOPIC] +
                            gossip_args() + FAST)
        wait_until(lambda: len(origin.ask("mesh " + self.TOPIC, "mesh")["peers"]) >= 2,
                   what="the origin meshed with both archives", timeout=LONG, context=self.ctx)
        payload = "x" * 900
        for k in range(self.COUNT):
            origin.send("pub %s %d %s" % (self.TOPIC, k, payload))
        origin.wait_event(lambda e: e.get("event") == "published" and e.get("seqno") == self.COUNT,
                          "the last publication")
        for a in (a1, a2):
            wait_until(lambda: len(a.messages()) >= self.COUNT, timeout=LONG,
                       what="%s received everything" % a.name)

        # A fresh subscriber knowing the archives in order: archive1 first. archive1 dies
        # as soon as the first synced message arrives.
        sub = self.stdio("subscriber", ["--bootstrap", a2.addr, "--archive", a1.addr,
                                        "--archive", a2.addr, "--topic", self.TOPIC] +
                         gossip_args() + FAST)
        sub.wait_event(lambda e: e.get("event") == "message" and e.get("synced"),
                       "a first synced message", timeout=LONG)
        a1.kill9()
        wait_until(lambda: len(sub.messages()) >= self.COUNT, timeout=LONG,
                   what="the catch-up completed from archive2",
                   context=lambda: "subscriber has %d" % len(sub.messages()))
        got = [(m["from"], m["seqno"]) for m in sub.messages()]
        self.assertEqual(len(got), len(set(got)), "duplicates")
        self.assertEqual(sorted(s for _, s in got), list(range(1, self.COUNT + 1)))

        # archive1 after kill -9, on the same data dir: everything it had acknowledged (it had
        # delivered, so stored, all of it) is served to a newcomer that knows only archive1.
        a1b = self.stdio("archive1-restarted", gossip_args() + FAST + args("archive1"))
        late = self.stdio("late", ["--archive", a1b.addr, "--bootstrap", a1b.addr, "--topic",
                                   self.TOPIC] + gossip_args() + FAST)
        wait_until(lambda: len(late.messages()) >= self.COUNT, timeout=LONG,
                   what="the late subscriber served by the restarted archive1",
                   context=lambda: "late has %d" % len(late.messages()))
        seqnos = sorted(m["seqno"] for m in late.messages())
        self.assertEqual(seqnos, list(range(1, self.COUNT + 1)))
        self.assertTrue(all(m["synced"] for m in late.messages()))


if __name__ == "__main__":
    if _missing is not None:
        print("SKIP: sync tests need gRPC for Python: " + _missing)
        sys.exit(77)  # CTest: SKIP_RETURN_CODE
    if os.environ.get("P2PMQ_BIN", None) == "":
        print("SKIP: P2PMQ_BIN is empty (no p2pmq target in this build)")
        sys.exit(77)  # CTest: SKIP_RETURN_CODE
    unittest.main(verbosity=2)
