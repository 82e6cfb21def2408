#!/usr/bin/python3
"""Proof tests of the p2pmq agent (`p2pmq agent` with its gRPC API), run as processes on loopback.

    P2PMQ_BIN=build/apps/p2pmq/p2pmq /usr/bin/python3 tests/agent/test_agent.py [CLASS[.test]]

Each class is one CTest test (tests/agent/CMakeLists.txt):
  FiveAgents        five agents, every message on every Listen stream exactly once
  ValidatorRejects  an external validator's REJECTs: not delivered, not forwarded, sender penalised
  SlowListener      a Listen stream that is not read loses the oldest messages and says how many
  ValidatorKilled   a validator that dies: the no-validator policy applies, then it comes back
  BadInput          bad flags and bad gRPC requests are refused with the key / INVALID_ARGUMENT
  CliClients        p2pmq pub/sub/status, examples/client.py and examples/node/client.mjs
Without python3-grpcio (and python3-grpc-tools) it prints why and exits 0.
"""
import json
import os
import re
import shutil
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree (tests/agent, examples)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import DEADLINE, Agent, Processes, Validator, wait_until  # noqa: E402

_missing = harness.missing_dependency()
if __name__ == "__main__":
    if _missing is not None:
        print("SKIP: agent tests need gRPC for Python: " + _missing)
        sys.exit(77)  # CTest: SKIP_RETURN_CODE
    if os.environ.get("P2PMQ_BIN", None) == "":
        print("SKIP: P2PMQ_BIN is empty (no p2pmq target in this build)")
        sys.exit(77)  # CTest: SKIP_RETURN_CODE

if _missing is None:
    import grpc



# The largest payload (proto: PublishRequest.data): 1 MiB - 4 KiB, so that a one-message RPC
# fits go-libp2p's 1 MiB frame limit with any signed envelope.
MAX_PAYLOAD = (1 << 20) - (4 << 10)

class AgentTestCase(unittest.TestCase):
    def setUp(self):
        self.procs = Processes(self.__class__.__name__)
        self._problems_before = self._problems()
        self.addCleanup(self._close)
        self.pb, self.rpc = harness.stubs()

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

    def wait_mesh(self, agents, topic, timeout=DEADLINE):
        """Until every agent has mesh peers in `topic` and the mesh links connect all of them."""
        ids = {a.peer_id: a for a in agents}

        def converged():
            edges = {pid: set() for pid in ids}
            for a in agents:
                for p in a.mesh_peers(topic):
                    if p in ids:
                        edges[a.peer_id].add(p)
                        edges[p].add(a.peer_id)
                if not edges[a.peer_id]:
                    return False
            seen, todo = set(), [agents[0].peer_id]
            while todo:
                n = todo.pop()
                if n not in seen:
                    seen.add(n)
                    todo.extend(edges[n] - seen)
            return len(seen) == len(agents)

        self.wait(converged, "a connected mesh of %d agents in %r" % (len(agents), topic), timeout)


def datas(messages):
    return [m.data.decode("utf-8", "replace") for m in messages]


# ---------------------------------------------------------------------------------------------


class FiveAgents(AgentTestCase):
    """Five agents, each bootstrapping to one or two earlier ones; every agent publishes 4
    messages; every Listen stream of every agent gets every message exactly once, with the
    publisher's peer id as origin and seqnos 1..4 per origin."""

    BOOTSTRAP = {0: [], 1: [0], 2: [1, 0], 3: [2], 4: [3, 1]}

    def test_every_message_once_everywhere(self):
        agents = []
        for i in range(5):
            agents.append(Agent(self.procs, "agent%d" % i,
                                bootstrap=[agents[j] for j in self.BOOTSTRAP[i]]))
        # Status reports the same identity as the listen address.
        for a in agents:
            self.assertEqual(a.status().peer_id, a.peer_id)

        # Every agent listens on "t" (agent 2 twice: fan-out to every stream), and on "t-end"
        # (a barrier topic, published to after everything else).
        streams = []
        for a in agents:
            streams.append(a.listen(["t"], name="%s:t" % a.name))
        streams.append(agents[2].listen(["t"], name="agent2:t#2"))
        barriers = [a.listen(["t-end"], name="%s:t-end" % a.name) for a in agents]

        self.wait_mesh(agents, "t")
        self.wait_mesh(agents, "t-end")

        expected = {}  # (origin, seqno) -> data
        ids = {}  # (origin, seqno) -> PublishResponse.id
        for a in agents:
            for k in range(1, 5):
                data = "%s msg %d" % (a.name, k)
                r = a.publish("t", data)
                self.assertEqual(r.seqno, k, "%s's publication %d" % (a.name, k))
                self.assertTrue(r.id)
                expected[(a.peer_id, k)] = data
                ids[(a.peer_id, k)] = r.id

        for s in streams:
            s.wait_count(len(expected), context=self.ctx)
        # A settle point rather than a proof: a later message on another topic went round the
        # network, time enough for a stray duplicate on "t" to show up.
        agents[4].publish("t-end", "end")
        for b in barriers:
            b.wait_count(1, context=self.ctx)

        for s in streams:
            got = s.messages()
            keys = [(m.origin, m.seqno) for m in got]
            self.assertEqual(len(keys), len(set(keys)), "%s: duplicates in %s" % (s.name, keys))
            self.assertEqual(sorted(keys), sorted(expected), s.name)
            for m in got:
                self.assertEqual(m.topic, "t")
                self.assertEqual(m.data.decode(), expected[(m.origin, m.seqno)], s.name)
                self.assertFalse(m.synced)
                self.assertEqual(m.id, ids[(m.origin, m.seqno)], "%s: message id" % s.name)
            self.assertEqual(s.missed(), [], s.name)
            # Seqnos 1..4 per origin (arrival order is not promised by gossipsub).
            for a in agents:
                self.assertEqual(sorted(m.seqno for m in got if m.origin == a.peer_id),
                                 [1, 2, 3, 4], "%s: seqnos of %s" % (s.name, a.name))
        for b in barriers:
            self.assertEqual(datas(b.messages()), ["end"], b.name)


# ---------------------------------------------------------------------------------------------


class ValidatorRejects(AgentTestCase):
    """A — B — C in a line; B and C ask examples/validator.py, which REJECTs data matching ^bad.
    The bad messages reach only A's own listeners, the good ones everyone, and B scores A
    negatively (P4, invalid message deliveries)."""

    # Two bad messages: with the default scoring (P4 weight -10, graylist at -80) B's score of A
    # goes to about -40, negative but above the graylist threshold, so A's later messages (the
    # good ones after the bad ones) are still accepted by B.
    ROUNDS = 2

    def test_rejected_messages_stop_and_penalise(self):
        vb = Validator(self.procs, "validatorB", reject_regex="^bad")
        vc = Validator(self.procs, "validatorC", reject_regex="^bad")
        # Every topic is scored (unlisted ones with the default topic parameters); the config
        # below names "t" explicitly all the same. B and C score
        # "t" with the default topic parameters (P4 weight -10).
        config = "score:\n  topics:\n    t: {}\n" if harness.agent_supports("--config") else None
        # Each agent in a DHT of its own (a protocol prefix nobody else speaks): topic discovery
        # would otherwise connect A and C and close the line.
        own_dht = lambda n: ["--set", "dht.protocol_prefix=/line-" + n]  # noqa: E731
        a = Agent(self.procs, "A", extra=own_dht("a"))
        b = Agent(self.procs, "B", bootstrap=[a], validators=[vb.address], config=config,
                  extra=own_dht("b"))
        c = Agent(self.procs, "C", bootstrap=[b], validators=[vc.address], config=config,
                  extra=own_dht("c"))
        la, lb, lc = (x.listen(["t"]) for x in (a, b, c))
        self.wait_mesh([a, b, c], "t")
        # The line stays a line: A and C never meet.
        self.assertIsNone(a.peer(c.peer_id))

        # One burst, so all of it goes out before a heartbeat could let B prune A from its mesh
        # for its falling score.
        published = []
        for i in range(1, self.ROUNDS + 1):
            for kind in ("good", "bad"):
                published.append("%s %d" % (kind, i))
        published.append("good last")
        for data in published:
            a.publish("t", data)
        good = [d for d in published if d.startswith("good")]
        # A's listeners see all its own publications, the bad ones too.
        la.wait_count(len(published), context=self.ctx)
        for s in (lb, lc):
            s.wait_for(lambda s: set(good) <= set(datas(s.messages())), what="the good ones",
                       context=self.ctx)

        def check_deliveries():
            self.assertEqual(sorted(datas(la.messages())), sorted(published))
            for s in (lb, lc):
                self.assertEqual(sorted(datas(s.messages())), sorted(good), s.name)
                for m in s.messages():
                    self.assertEqual(m.origin, a.peer_id)

        check_deliveries()

        # B penalises A for the invalid messages: its score of A goes negative.
        def score_of_a():
            st = harness.status_json(b)
            for p in st["peers"]:
                if p["peer_id"] == a.peer_id:
                    return p["score"]
            return None

        scores = []

        def negative():
            s = score_of_a()
            scores.append(s)
            return s is not None and s < 0

        try:
            self.wait(negative, "B's score of A to become negative (P4)")
        except harness.Timeout as e:
            raise AssertionError("%s\nB's scores of A seen: %s" % (e, sorted(set(
                s for s in scores if s is not None)))) from None
        # Verdicts may come back in any order; by now the bad ones are long settled.
        check_deliveries()
        # C does not know A, so nothing of A's scores at C; C's view of B is not penalised
        # (B forwarded only valid messages).
        pc = c.peer(b.peer_id)
        self.assertIsNotNone(pc)
        self.assertGreaterEqual(pc.score, 0)


# ---------------------------------------------------------------------------------------------


class SlowListener(AgentTestCase):
    """Two Listen streams with an 8-message buffer; one is not read at all. The reading one gets
    all 200 messages; the other, once read, reports what it missed: received + missed = 200."""

    COUNT = 200
    SIZE = 4096  # well beyond the unread stream's HTTP/2 window (64 KiB) over 200 messages
    WINDOW = 4  # publications ahead of the reading listener

    def test_slow_listener_misses_and_counts(self):
        a = Agent(self.procs, "agent")
        # Own connections, so the unread stream's flow control does not hold the other back;
        # no BDP probing, so its HTTP/2 window stays at the initial 64 KiB.
        fast = a.listen(["t"], buffer_size=8, separate=True, name="fast")
        slow = a.listen(["t"], buffer_size=8, read=False, separate=True, name="slow",
                        options=[("grpc.http2.bdp_probe", 0)])
        pad = "x" * self.SIZE
        t0 = time.monotonic()
        for i in range(1, self.COUNT + 1):
            # The reader must keep up within its 8-message buffer: a Python thread on a loaded
            # machine may not when 200 publications are fired at once, so keep at most
            # WINDOW of them ahead of it (the unread stream falls behind all the same).
            fast.wait_count(i - self.WINDOW, context=self.ctx)
            r = a.publish("t", "%03d %s" % (i, pad))
            self.assertEqual(r.seqno, i)
        fast.wait_count(self.COUNT, context=self.ctx)
        took = time.monotonic() - t0
        got = fast.messages()
        self.assertEqual(fast.missed(), [], "the reading listener missed messages")
        self.assertEqual([m.seqno for m in got], list(range(1, self.COUNT + 1)))
        # "Promptly": the unread stream does not hold back the other one or the agent.
        self.assertLess(took, DEADLINE / 2)

        slow.start_reading()

        def total(s):
            return len(s.messages()) + sum(c for _, c in s.missed())

        slow.wait_for(lambda s: total(s) >= self.COUNT, what="received + missed = %d" % self.COUNT,
                      context=self.ctx)
        received = slow.messages()
        missed = slow.missed()
        print("\nslow listener: %d received, missed %s" % (len(received), missed), file=sys.stderr)
        self.assertTrue(missed, "the unread stream reported no Missed event")
        self.assertTrue(all(t == "t" and c > 0 for t, c in missed), missed)
        self.assertEqual(len(received) + sum(c for _, c in missed), self.COUNT,
                         "received %d, missed %s" % (len(received), missed))
        seqnos = [m.seqno for m in received]
        self.assertEqual(seqnos, sorted(set(seqnos)), "out of order or duplicated")
        # The newest messages are the ones kept (the oldest buffered are dropped).
        self.assertEqual(seqnos[-1], self.COUNT)
        # Every gap in the seqnos is announced by a Missed event in place, with its size.
        prev, pending = 0, 0
        for ev in slow.events:
            if ev[0] == "missed":
                pending += ev[2]
            else:
                self.assertEqual(ev[1].seqno - prev - 1, pending,
                                 "gap before seqno %d vs Missed %d" % (ev[1].seqno, pending))
                prev, pending = ev[1].seqno, 0
        # Nothing more arrives on either stream; the agent carries on.
        r = a.publish("t", "after")
        fast.wait_count(self.COUNT + 1, context=self.ctx)
        slow.wait_for(lambda s: "after" in datas(s.messages()), what="'after'", context=self.ctx)
        self.assertEqual(r.seqno, self.COUNT + 1)


# ---------------------------------------------------------------------------------------------


class ValidatorKilled(AgentTestCase):
    """An agent with one validator and --no-validator-policy accept, fed by a peer. The validator
    is SIGKILLed mid-stream: the agent keeps running and accepts per the policy; the validator
    comes back on the same port: the agent reconnects and its verdicts apply again."""

    def test_policy_then_reconnect(self):
        v = Validator(self.procs, "validator", reject_regex="^bad")
        port = int(v.address.rsplit(":", 1)[1])
        # A rejects P's "bad" messages again and again: with the default thresholds P would be
        # graylisted after a few (scoring at work, see ValidatorRejects). This test is about the
        # validator's lifecycle, so the thresholds are put out of reach.
        lenient = ("thresholds:\n  gossip_threshold: -1000000\n  publish_threshold: -2000000\n"
                   "  graylist_threshold: -3000000\n"
                   if harness.agent_supports("--config") else None)
        a = Agent(self.procs, "A", validators=[v.address],
                  extra=["--no-validator-policy", "accept"]
                  + harness.validation_timeout_args(2000), config=lenient)
        p = Agent(self.procs, "P", bootstrap=[a])
        listener = a.listen(["t"])
        p.control.Subscribe(self.pb.SubscribeRequest(topic="t"), timeout=30)
        self.wait_mesh([a, p], "t")

        # A steady flow of good messages from P through every phase.
        flow_sent = []
        stop_flow = threading.Event()
        flow_errors = []

        def flow():
            i = 0
            while not stop_flow.is_set():
                i += 1
                try:
                    p.publish("t", "flow %d" % i)
                    flow_sent.append("flow %d" % i)
                except Exception as e:  # reported below
                    flow_errors.append(e)
                    return
                stop_flow.wait(0.05)

        flow_thread = threading.Thread(target=flow, daemon=True)
        flow_thread.start()
        self.addCleanup(flow_thread.join, 10)
        self.addCleanup(stop_flow.set)

        def got():
            return datas(listener.messages())

        def has(data):
            return lambda s: data in datas(s.messages())

        def round_trip(tag):
            """P publishes "bad TAG" and "good TAG"; returns whether "bad TAG" was delivered by
            the time "good TAG" and then a later "fence TAG" were. (Verdicts may come back in
            any order, so "good TAG" alone does not settle "bad TAG"; a whole further round
            trip does in practice. Expected deliveries are waited for separately.)"""
            p.publish("t", "bad " + tag)
            p.publish("t", "good " + tag)
            listener.wait_for(has("good " + tag), what="'good %s'" % tag, context=self.ctx)
            p.publish("t", "fence " + tag)
            listener.wait_for(has("fence " + tag), what="'fence %s'" % tag, context=self.ctx)
            return "bad " + tag in got()

        dropped, accepted = [], []  # bad ones that must never be / must all be delivered

        # 1. The validator judges: bad ones are dropped.
        for i in range(3):
            tag = "before %d" % i
            self.assertFalse(round_trip(tag), "validator up: 'bad %s' delivered" % tag)
            dropped.append("bad " + tag)
        n_before = len(flow_sent)
        listener.wait_for(lambda s: len([d for d in datas(s.messages()) if d.startswith("flow")])
                          >= n_before, what="the flow so far", context=self.ctx)

        # 2. Kill it mid-stream: the policy (accept) applies, the agent keeps running.
        v.proc.kill()
        for i in range(3):
            tag = "down %d" % i
            p.publish("t", "bad " + tag)
            p.publish("t", "good " + tag)
            for data in ("bad " + tag, "good " + tag):
                listener.wait_for(has(data), what="%r with the validator down (policy accept)"
                                  % data, context=self.ctx)
            accepted.append("bad " + tag)
        self.assertTrue(a.proc.alive(), "the agent died with its validator")
        self.assertTrue(a.status().peer_id)

        # 3. Back on the same port: the agent reconnects and rejects again. Until it has
        # reconnected the policy still accepts, so probe until a bad one is dropped...
        v2 = Validator(self.procs, "validator", listen="127.0.0.1:%d" % port, reject_regex="^bad")
        self.assertEqual(v2.address, "127.0.0.1:%d" % port)
        probe = [0]

        def rejecting():
            probe[0] += 1
            return not round_trip("probe %d" % probe[0])

        self.wait(rejecting, "the agent to use the restarted validator again")
        # ...and from then on every bad one is.
        for i in range(3):
            tag = "after %d" % i
            self.assertFalse(round_trip(tag), "validator back: 'bad %s' delivered" % tag)
            dropped.append("bad " + tag)

        stop_flow.set()
        flow_thread.join(30)
        self.assertEqual(flow_errors, [])
        # Every flow message arrived exactly once, through all three phases.
        listener.wait_for(lambda s: set(flow_sent) <= set(datas(s.messages())),
                          what="all %d flow messages" % len(flow_sent), context=self.ctx)
        flows = [d for d in got() if d.startswith("flow")]
        self.assertEqual(sorted(flows), sorted(flow_sent))
        final = got()
        self.assertEqual([d for d in final if d in dropped], [], "rejected ones delivered")
        self.assertEqual(sorted(d for d in final if d in accepted), sorted(accepted))
        self.assertEqual(len(final), len(set(final)), "duplicates")
        self.assertTrue(a.proc.alive())


# ---------------------------------------------------------------------------------------------


class BadInput(AgentTestCase):
    """Bad configuration: non-zero exit and a message naming the key. Bad requests:
    INVALID_ARGUMENT."""

    def refused(self, args, key):
        """Starts `p2pmq agent ARGS`; it must exit non-zero (without serving) naming `key`."""
        proc = self.procs.start("agent", [harness.p2pmq_bin(), "agent", "--grpc", "127.0.0.1:0"]
                                + args, cwd=True)

        def ended():
            if re.search(r"^grpc ", proc.output(), re.M):
                raise AssertionError("`p2pmq agent %s` started serving:\n%s" % (
                    " ".join(args), proc.tail()))
            return not proc.alive()

        wait_until(ended, timeout=30, what="`p2pmq agent %s` to exit" % " ".join(args),
                   context=proc.tail)
        proc.stop()
        self.assertNotEqual(proc.popen.returncode, 0, proc.output())
        self.assertIn(key, proc.output())

    def test_bad_flags(self):
        cases = [
            (["--gossip", "D_lo=99"], "gossip.D_lo"),
            (["--gossip", "nope=1"], "gossip.nope"),
            (["--gossip", "heartbeat_interval=soon"], "gossip.heartbeat_interval"),
            (["--gossip", "D=x"], "gossip.D"),
            (["--no-validator-policy", "maybe", "--validator", "127.0.0.1:1"],
             "no_validator_policy"),
            # Without a validator the value is just as wrong.
            (["--no-validator-policy", "maybe"], "no_validator_policy"),
            (["--listen", "/ip4/nonsense"], "listen"),
            (["--bootstrap", "not-a-multiaddr"], "bootstrap"),
        ]
        for args, key in cases:
            with self.subTest(args=" ".join(args)):
                self.refused(args, key)

    def code_of(self, fn):
        try:
            fn()
        except grpc.RpcError as e:
            return e.code(), e.details()
        return grpc.StatusCode.OK, ""

    def test_bad_requests(self):
        a = Agent(self.procs, "agent")
        pb = self.pb
        INVALID = grpc.StatusCode.INVALID_ARGUMENT
        cases = {
            "Publish empty topic":
                lambda: a.messaging.Publish(pb.PublishRequest(topic="", data=b"x"), timeout=30),
            "Subscribe empty topic":
                lambda: a.control.Subscribe(pb.SubscribeRequest(topic=""), timeout=30),
            "Unsubscribe empty topic":
                lambda: a.control.Unsubscribe(pb.UnsubscribeRequest(topic=""), timeout=30),
            "Publish data over 1 MiB - 4 KiB":
                lambda: a.messaging.Publish(
                    pb.PublishRequest(topic="t", data=b"x" * (MAX_PAYLOAD + 1)), timeout=30),
            "Publish topic over 256 bytes":
                lambda: a.messaging.Publish(pb.PublishRequest(topic="t" * 257, data=b"x"),
                                            timeout=30),
            "Listen no topics":
                lambda: next(iter(a.messaging.Listen(pb.ListenRequest(topics=[]), timeout=30))),
            "Listen empty topic":
                lambda: next(iter(a.messaging.Listen(pb.ListenRequest(topics=["t", ""]),
                                                     timeout=30))),
            "Listen buffer_size over 65536":
                lambda: next(iter(a.messaging.Listen(
                    pb.ListenRequest(topics=["t"], buffer_size=65537), timeout=30))),
        }
        for name, fn in cases.items():
            with self.subTest(name):
                code, details = self.code_of(fn)
                self.assertEqual(code, INVALID, "%s: %s %s" % (name, code, details))
        # The topic limit is inclusive, and the agent still serves after the refusals.
        r = a.publish("t" * 256, b"")
        self.assertEqual(r.seqno, 1)
        self.assertTrue(a.proc.alive())

    def test_undecodable_requests_and_non_utf8_topics(self):
        """The proto promises INVALID_ARGUMENT with a message, not gRPC's bare UNIMPLEMENTED."""
        a = Agent(self.procs, "agent")
        raw = lambda method: a.channel.unary_unary(  # noqa: E731
            method, request_serializer=lambda b: b, response_deserializer=lambda b: b)
        cases = {
            "Publish non-UTF-8 topic": ("/p2pmq.v1.Messaging/Publish", b"\x0a\x02\xff\xfe"),
            "Subscribe non-UTF-8 topic": ("/p2pmq.v1.Control/Subscribe", b"\x0a\x01\xc0"),
            "Publish truncated": ("/p2pmq.v1.Messaging/Publish", b"\x0a\x7f\x61"),
            "Subscribe bad wire type": ("/p2pmq.v1.Control/Subscribe", b"\x07\x01"),
        }
        for name, (method, body) in cases.items():
            with self.subTest(name):
                code, details = self.code_of(lambda: raw(method)(body, timeout=30))
                self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, name)
                self.assertTrue(details, "%s: no message" % name)
        self.assertTrue(a.proc.alive())

    def test_topics_joined_are_capped(self):
        a = Agent(self.procs, "agent", extra=["--set", "grpc.max_topics=2"])
        pb = self.pb
        a.control.Subscribe(pb.SubscribeRequest(topic="one"), timeout=30)
        a.publish("two", b"x")
        code, details = self.code_of(
            lambda: a.control.Subscribe(pb.SubscribeRequest(topic="three"), timeout=30))
        self.assertEqual(code, grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertIn("grpc.max_topics", details)
        code, _ = self.code_of(lambda: a.publish("three", b"x"))
        self.assertEqual(code, grpc.StatusCode.RESOURCE_EXHAUSTED)
        code, details = self.code_of(
            lambda: next(iter(a.messaging.Listen(pb.ListenRequest(topics=["three"]),
                                                 timeout=30))))
        self.assertEqual(code, grpc.StatusCode.RESOURCE_EXHAUSTED, details)
        # Topics already joined stay usable.
        self.assertEqual(a.publish("one", b"x").seqno, 1)
        self.assertEqual(sorted(a.status().topics), ["one", "two"])

    def test_insecure_remote_api_refused(self):
        proc = self.procs.start("remote", [harness.p2pmq_bin(), "agent", "--grpc", "0.0.0.0:0"],
                                cwd=True)
        wait_until(lambda: not proc.alive(), timeout=30, what="the agent to refuse 0.0.0.0",
                   context=proc.tail)
        proc.stop()
        self.assertNotEqual(proc.popen.returncode, 0, proc.output())
        self.assertIn("allow_insecure_remote", proc.output())
        self.assertNotRegex(proc.output(), r"(?m)^grpc ")
        allowed = self.procs.start("allowed", [
            harness.p2pmq_bin(), "agent", "--grpc", "0.0.0.0:0",
            "--set", "grpc.allow_insecure_remote=true"], cwd=True)
        allowed.wait_line(r"^grpc (\S+:\d+)$", timeout=DEADLINE)
        self.assertTrue(allowed.alive())

    def test_bad_key_files(self):
        """A key path that is a directory, or a key others can read: a clear error, exit != 0
        (a directory used to abort with an uncaught std::ios_failure, exit 134)."""
        work = self.procs.workdir("keys")
        keydir = os.path.join(work, "a-directory")
        os.mkdir(keydir)
        self.refused(["--key", keydir], "is a directory")
        bin_ = harness.p2pmq_bin()
        key = os.path.join(work, "node.key")
        rc, out, err = harness.run([bin_, "keygen", "--out", key])
        self.assertEqual(rc, 0, err)
        self.assertEqual(os.stat(key).st_mode & 0o777, 0o600)
        os.chmod(key, 0o644)
        self.refused(["--key", key], "chmod 600")
        rc, out, err = harness.run([bin_, "id", "--key", key])
        self.assertNotEqual(rc, 0)
        self.assertIn("chmod 600", err)
        os.chmod(key, 0o600)
        rc, out, err = harness.run([bin_, "id", "--key", key])
        self.assertEqual(rc, 0, err)

    def test_power_loss_durability_and_corrupt_state(self):
        """power_loss: publishes wait for a batched fsync off the io thread and keep their
        seqnos across a restart. A corrupt state store: a clear error naming --repair-state,
        which salvages it."""
        data = os.path.join(self.procs.workdir("durable"), "data")
        extra = ["--data-dir", data, "--set", "sync.durability=power_loss"]
        a = Agent(self.procs, "durable", extra=extra)
        results = []
        threads = [threading.Thread(target=lambda: results.append(a.publish("t", b"x")))
                   for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(sorted(r.seqno for r in results), list(range(1, 21)))
        a.proc.stop()
        state = os.path.join(data, "state")
        for name in os.listdir(state):
            if name.startswith("MANIFEST-"):
                with open(os.path.join(state, name), "wb") as f:
                    f.write(b"\x5a" * 4096)
        self.refused(["--data-dir", data], "--repair-state")
        b = Agent(self.procs, "repaired", extra=extra + ["--repair-state"])
        self.assertEqual(b.publish("t", b"x").seqno, 21, "seqnos are never reused")

    def test_max_size_payload_accepted(self):
        """PublishRequest.data: "at most the agent's max message size (default 1 MiB - 4 KiB)"."""
        a = Agent(self.procs, "agent")
        listener = a.listen(["big"])
        code, details = self.code_of(lambda: a.publish("big", b"x" * MAX_PAYLOAD))
        self.assertEqual(code, grpc.StatusCode.OK,
                         "a payload of the documented limit is refused: %s" % details)
        self.assertEqual(len(listener.wait_count(1, context=self.ctx)[0].data), MAX_PAYLOAD)


# ---------------------------------------------------------------------------------------------


class StockMessageIds(AgentTestCase):
    """gossip.message_id_fn: stock (from || seqno, go's and js's default). The pubsub spec
    makes a seqno unique per origin; p2pmq counts per topic. Seqno 1 of topic B must not
    collide with seqno 1 of topic A (wire-conformance H4): every publication succeeds, reaches
    a second agent, and seqnos within a topic stay contiguous."""

    def test_two_topics_publish_without_collisions(self):
        stock = ["--set", "gossip.message_id_fn=stock"]
        a = Agent(self.procs, "a", extra=stock)
        b = Agent(self.procs, "b", bootstrap=[a], extra=stock)
        streams = {t: b.listen([t], name="b:" + t) for t in ("A", "B")}
        for t in ("A", "B"):
            a.publish(t, "warm-up")  # joins the topic
        self.wait_mesh([a, b], "A")
        self.wait_mesh([a, b], "B")
        seqnos = {"A": [], "B": []}
        for k in range(3):
            for t in ("A", "B"):
                r = a.publish(t, "%s %d" % (t, k))  # raises on "message already seen"
                seqnos[t].append(r.seqno)
        for t in ("A", "B"):
            self.assertEqual([s - seqnos[t][0] for s in seqnos[t]], [0, 1, 2], t)
        self.assertFalse(set(seqnos["A"]) & set(seqnos["B"]))
        for t in ("A", "B"):
            want = {"%s %d" % (t, k) for k in range(3)}
            streams[t].wait_for(lambda s, want=want: want <= {m.data.decode()
                                                              for m in s.messages()},
                                what="the 3 messages of " + t, context=self.ctx)


class CliClients(AgentTestCase):
    """p2pmq pub / sub --json --count / status, examples/client.py and examples/node/client.mjs
    against a running agent."""

    def setUp(self):
        super().setUp()
        self.agent = Agent(self.procs, "agent")

    def wait_listening(self, topic):
        # A Listen on a new topic joins it on the agent's io thread together with registering
        # the listener: once Status lists the topic, the listener is in place.
        self.wait(lambda: topic in self.agent.status().topics,
                  "the agent to list topic %r (the listener registered)" % topic)

    def test_p2pmq_pub_sub_status(self):
        a = self.agent
        bin_ = harness.p2pmq_bin()
        sub = self.procs.start("p2pmq-sub", [bin_, "sub", "--agent", a.grpc_address,
                                             "--topic", "cli", "--json", "--count", "4"])
        self.wait_listening("cli")
        for i in (1, 2):
            rc, out, err = harness.run([bin_, "pub", "--agent", a.grpc_address, "--topic", "cli",
                                        "--data", "hello %d" % i])
            self.assertEqual(rc, 0, err)
            self.assertRegex(out, r"^published seqno=%d id=[0-9a-f]+\n$" % i)
        # Without --data: one message per line of stdin.
        rc, out, err = harness.run([bin_, "pub", "--agent", a.grpc_address, "--topic", "cli"],
                                   input=b"line 3\nline 4\n")
        self.assertEqual(rc, 0, err)
        self.assertEqual(len(out.splitlines()), 2, out)
        self.assertRegex(out.splitlines()[1], r"^published seqno=4 id=[0-9a-f]+$")

        wait_until(lambda: not sub.alive(), what="p2pmq sub --count 4 to exit", context=self.ctx)
        self.assertEqual(sub.stop(), 0, sub.output())
        lines = [json.loads(l) for l in sub.lines if l.startswith("{")]
        self.assertEqual([l["data"] for l in lines], ["hello 1", "hello 2", "line 3", "line 4"])
        self.assertEqual([l["seqno"] for l in lines], [1, 2, 3, 4])
        for l in lines:
            self.assertEqual(l["topic"], "cli")
            self.assertEqual(l["origin"], a.peer_id)
            self.assertFalse(l["synced"])
            self.assertRegex(l["id"], r"^[0-9a-f]+$")

        st = harness.status_json(a)
        self.assertEqual(st["peer_id"], a.peer_id)
        self.assertIn("cli", st["topics"])
        self.assertIn(a.addr, st["listen_addrs"])
        self.assertEqual(st["peers"], [])

        # Errors: an unreachable agent, a refused request.
        rc, out, err = harness.run([bin_, "pub", "--agent", a.grpc_address, "--topic", "",
                                    "--data", "x"])
        self.assertNotEqual(rc, 0)
        self.assertIn("empty topic", err)

    def test_status_shows_peers(self):
        a = self.agent
        b = Agent(self.procs, "B", bootstrap=[a], topics=["s"])
        a.control.Subscribe(self.pb.SubscribeRequest(topic="s"), timeout=30)
        self.wait_mesh([a, b], "s")
        st = harness.status_json(a)
        self.assertEqual([p["peer_id"] for p in st["peers"]], [b.peer_id])
        peer = st["peers"][0]
        self.assertIn("s", peer["topics"])
        self.assertIn("s", peer["mesh_topics"])
        self.assertIsInstance(peer["score"], (int, float))
        self.assertTrue(peer["agent_version"].startswith("p2pmq/"), peer)
        self.assertTrue(peer["addrs"])
        # The resource manager's scopes: the system scope holds B's connection, and B has a
        # peer scope with the per-peer connection limit.
        scopes = {r["scope"]: r for r in st["resources"]}
        self.assertGreaterEqual(scopes["system"]["connections"], 1, st["resources"])
        self.assertGreater(scopes["system"]["memory_limit"], 0)
        self.assertEqual(scopes["peer:" + b.peer_id]["connections_limit"], 2, st["resources"])

    def example_pub_listen(self, cmd, topic):
        """`cmd listen TOPIC --count 2`, then `cmd pub TOPIC ...` twice."""
        a = self.agent
        lst = self.procs.start(os.path.basename(cmd[-1]) + "-listen",
                               cmd + ["--agent", a.grpc_address, "listen", topic, "--count", "2"])
        lst.wait_line(r"^listening$")
        for i in (1, 2):
            rc, out, err = harness.run(cmd + ["--agent", a.grpc_address, "pub", topic,
                                              "from %s %d" % (topic, i)])
            self.assertEqual(rc, 0, err)
            self.assertRegex(out, r"^published id=[0-9a-f]+ seqno=%d\n$" % i)
        wait_until(lambda: not lst.alive(), what="the listener to exit after 2", context=self.ctx)
        self.assertEqual(lst.stop(), 0, lst.output())
        msgs = [l for l in lst.lines if l.startswith("message ")]
        self.assertEqual(msgs, ["message %s %d %s from %s %d" % (topic, i, a.peer_id, topic, i)
                                for i in (1, 2)])

    def test_python_example_client(self):
        client = [harness.PYTHON, os.path.join(harness.EXAMPLES, "client.py")]
        self.example_pub_listen(client, "py")
        rc, out, err = harness.run(client + ["--agent", self.agent.grpc_address, "status"])
        self.assertEqual(rc, 0, err)
        self.assertIn(self.agent.peer_id, out)
        rc, out, err = harness.run(client + ["--agent", self.agent.grpc_address, "sub", "py2"])
        self.assertEqual((rc, out.strip()), (0, "subscribed py2"), err)
        self.assertIn("py2", self.agent.status().topics)

    def test_node_example_client(self):
        node = shutil.which("node") or shutil.which("nodejs")
        if node is None:
            self.skipTest("node is not installed")
        node_dir = os.path.join(harness.EXAMPLES, "node")
        # The example runs on clients/node, whose dependencies examples/node/install.sh installs.
        package = os.path.join(harness.ROOT, "clients", "node")
        if not os.path.isdir(os.path.join(package, "node_modules", "@grpc", "grpc-js")):
            if shutil.which("npm") is None:
                self.skipTest("npm is not installed (examples/node/install.sh needs it)")
            rc, out, err = harness.run(["bash", os.path.join(node_dir, "install.sh")],
                                       timeout=600)
            if rc != 0:
                self.skipTest("examples/node/install.sh failed: " + err[-500:])
        self.example_pub_listen([node, os.path.join(node_dir, "client.mjs")], "js")


if __name__ == "__main__":
    unittest.main(verbosity=2)
