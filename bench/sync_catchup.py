#!/usr/bin/python3
"""Sync and DHT end to end with real `p2pmq agent --stdio` processes on loopback
(docs/benchmarks.md, "Sync and DHT end to end"). Three measurements:

  catchup  An archive (--role archive) and an origin; a subscriber with a data dir gets 10 live
           messages, is stopped, the origin publishes N (default 5 000, 256 B) that the archive
           stores; the subscriber is restarted on its data dir (--archive ARCHIVE). Measured:
           process start -> all N delivered as "synced" message events (and first synced ->
           last synced). --validator also runs examples/validator.py and gives its address to
           the subscriber (every synced message then goes through it).
  write    An archive and an origin; the origin publishes N as fast as its stdin takes them;
           `p2pmq status --agent ARCHIVE` is polled every --poll s for sync.archived_messages.
           Rates: archived messages/s between 10% and 90% of N, and first publish -> all
           archived. --durability power_loss sets sync.durability.
  dht      2 bootstrappers (--role bootstrapper) + (--nodes - 2) agents, each knowing only the
           bootstrappers and subscribed to one of (nodes/10) topics. Once the routing tables
           settled, --askers agents each run up to --lookups `dht-find-peer` of random agents
           they are not connected to at that moment (the agent answers a connected peer from
           its connection without a lookup; answers under 0.5 ms are counted apart as such) and
           a `dht-find-topic` of every topic. Latency = command written -> answer event read. --js N adds N js-libp2p kad-dht nodes (tests/interop/peer.mjs dht, server
           mode) to the same network and runs the same lookups from them.

    P2PMQ_BIN=build-bench2/apps/p2pmq/p2pmq /usr/bin/python3 bench/sync_catchup.py catchup
    ... catchup --validator;  ... write --messages 20000;  ... dht --nodes 50 --js 2

Every process is started here, in its own session, and ended by pid (SIGTERM, then SIGKILL)
when the run ends, also on errors and on SIGINT/SIGTERM. Every wait has a deadline (--timeout).
Each run prints its numbers and one `RESULT key=value ...` line.
"""
import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "agent"))
import harness  # noqa: E402
from harness import Processes, StdioAgent, Validator, wait_until  # noqa: E402

LOOPBACK = ["--listen", "/ip4/127.0.0.1/tcp/0"]
FAST = ["--set", "dht.discovery_interval=1s", "--set", "sync.gap_wait=1s"]
GOSSIP = sum((["--gossip", g] for g in ("heartbeat_interval=300ms",
                                         "heartbeat_initial_delay=100ms")), [])
TOPIC = "bench"


class Stop(Exception):
    pass


def _on_signal(signum, frame):
    raise Stop("signal %d" % signum)


class TimedAgent(StdioAgent):
    """A StdioAgent that also timestamps message events (monotonic), counting them without
    rescanning the event list."""

    def __init__(self, procs, name, args):
        self.msg_times = []  # (t, synced)
        self.published = 0
        super().__init__(procs, name, LOOPBACK + args)

    def _read(self):
        for raw in self.popen.stdout:
            t = time.monotonic()
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self.cond:
                if line.startswith("listening ") and self.addr is None:
                    self.addr = line.split(" ", 1)[1]
                elif line.startswith("grpc ") and self.grpc_address is None:
                    self.grpc_address = line.split(" ", 1)[1]
                elif line.startswith("{"):
                    try:
                        e = json.loads(line)
                    except ValueError:
                        e = None
                    if e is not None:
                        kind = e.get("event")
                        if kind == "message":
                            self.msg_times.append((t, bool(e.get("synced"))))
                            self.events.append({"event": "message", "from": e.get("from"),
                                                "seqno": e.get("seqno"),
                                                "synced": e.get("synced")})
                        elif kind == "published":
                            self.published += 1
                        else:
                            self.log.write(line + "\n")
                            self.events.append(e)
                self.cond.notify_all()


def start(procs, name, args, timeout):
    a = TimedAgent(procs, name, args)
    wait_until(lambda: a.addr and a.grpc_address, what=name + " up", timeout=timeout)
    return a


def archived(agent):
    return harness.status_json(agent)["sync"]["archived_messages"]


def loadavg():
    return "%.2f %.2f %.2f" % os.getloadavg()


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def pct(xs, p):
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


def publish_blast(origin, n, size, tag):
    """Writes n pub lines to the origin's stdin (blocks when its pipe is full)."""
    pad = "x" * max(0, size - 16)
    for k in range(n):
        origin.send("pub %s %s-%09d%s" % (TOPIC, tag, k, pad))


# ---------------------------------------------------------------------------------------------


def run_catchup(args, procs):
    T = args.timeout
    print("load average at start: %s" % loadavg(), flush=True)
    archive = start(procs, "archive", GOSSIP + FAST + [
        "--role", "archive", "--topic", TOPIC, "--data-dir", procs.workdir("archive"),
        "--set", "sync.retention_messages=%d" % (args.messages + 1000)], T)
    origin = start(procs, "origin", ["--bootstrap", archive.addr, "--topic", TOPIC] +
                   GOSSIP + FAST, T)
    validator_args = []
    if args.validator:
        v = Validator(procs)
        validator_args = ["--validator", v.address]
    sub_dir = procs.workdir("subscriber")
    sub_args = ["--bootstrap", archive.addr, "--archive", archive.addr, "--topic", TOPIC,
                "--data-dir", sub_dir] + GOSSIP + FAST + validator_args
    sub = start(procs, "subscriber", sub_args, T)

    def meshed():
        return all(a.ask("mesh " + TOPIC, "mesh")["peers"] for a in (archive, origin, sub))
    wait_until(meshed, what="everyone in the mesh", timeout=T)
    live = 10
    publish_blast(origin, live, args.size, "live")
    wait_until(lambda: len(sub.msg_times) >= live, what="10 live messages", timeout=T)
    time.sleep(1.5)  # the subscriber persists its watermarks (delivery state) in the data dir
    sub.close()

    t_pub = time.monotonic()
    publish_blast(origin, args.messages, args.size, "down")
    wait_until(lambda: origin.published >= live + args.messages, what="all published",
               timeout=T, interval=0.1)
    t_published = time.monotonic()
    wait_until(lambda: len(archive.msg_times) >= live + args.messages,
               what="everything at the archive", timeout=T, interval=0.1)
    stored = wait_until(lambda: archived(archive) >= live + args.messages and
                        archived(archive), what="everything archived", timeout=T, interval=0.2)
    t_archived = time.monotonic()
    print("published %d in %.2f s (%.0f/s); archived %d after %.2f s" % (
        args.messages, t_published - t_pub, args.messages / (t_published - t_pub), stored,
        t_archived - t_pub), flush=True)
    time.sleep(1.0)
    load = loadavg()

    t0 = time.monotonic()
    sub2 = TimedAgent(procs, "subscriber-restarted", sub_args)
    wait_until(lambda: sub2.addr, what="restarted subscriber up", timeout=T, interval=0.01)
    t_up = time.monotonic()
    n = args.messages
    wait_until(lambda: sum(1 for _, s in sub2.msg_times if s) >= n,
               what="%d synced messages" % n, timeout=T, interval=0.02,
               context=lambda: "got %d" % len(sub2.msg_times))
    synced_times = [t for t, s in sub2.msg_times if s]
    t_first, t_last = synced_times[0], synced_times[n - 1]
    keys = [(e["from"], e["seqno"]) for e in sub2.messages()]
    dups = len(keys) - len(set(keys))
    total = t_last - t0
    rate = n / total
    transfer = (n - 1) / (t_last - t_first) if t_last > t_first else float("nan")
    print("restart -> listening %.3f s, -> first synced %.3f s, -> all %d synced %.3f s: "
          "%.0f msg/s from start, %.0f msg/s first->last; %d duplicates; load %s" % (
              t_up - t0, t_first - t0, n, total, rate, transfer, dups, load), flush=True)
    print("RESULT bench=catchup validator=%d messages=%d size=%d start_to_all_s=%.3f "
          "msgs_per_s=%.0f first_to_last_msgs_per_s=%.0f up_s=%.3f first_s=%.3f dups=%d "
          "load=%s" % (int(args.validator), n, args.size, total, rate, transfer, t_up - t0,
                       t_first - t0, dups, load.split()[0]), flush=True)


def run_write(args, procs):
    T = args.timeout
    print("load average at start: %s" % loadavg(), flush=True)
    archive = start(procs, "archive", GOSSIP + FAST + [
        "--role", "archive", "--topic", TOPIC, "--data-dir", procs.workdir("archive"),
        "--set", "sync.retention_messages=%d" % (args.messages + 1000),
        "--set", "sync.durability=%s" % args.durability], T)
    origin = start(procs, "origin", ["--bootstrap", archive.addr, "--topic", TOPIC] +
                   GOSSIP + FAST, T)
    wait_until(lambda: origin.ask("mesh " + TOPIC, "mesh")["peers"], what="mesh", timeout=T)
    n = args.messages
    series = []
    t0 = time.monotonic()
    blaster = threading.Thread(target=publish_blast, args=(origin, n, args.size, "w"),
                               daemon=True)
    blaster.start()
    deadline = t0 + T
    t_published = None
    while True:
        a = archived(archive)
        now = time.monotonic()
        series.append((now - t0, a))
        if t_published is None and origin.published >= n:
            t_published = now - t0
        if a >= n:
            break
        if now > deadline:
            raise harness.Timeout("archived %d of %d after %.0f s" % (a, n, T))
        time.sleep(args.poll)
    if t_published is None:
        wait_until(lambda: origin.published >= n, what="publish acks", timeout=T)
        t_published = time.monotonic() - t0
    # The archive-side rate between 10% and 90% of n (interpolated on the polled series).
    def when(level):
        for (ta, a), (tb, b) in zip(series, series[1:]):
            if b >= level:
                return ta + (tb - ta) * (level - a) / (b - a) if b > a else tb
        return series[-1][0]
    t10, t90 = when(0.1 * n), when(0.9 * n)
    mid_rate = 0.8 * n / (t90 - t10) if t90 > t10 else float("nan")
    total = series[-1][0]
    load = loadavg()
    print("series (s, archived): " + " ".join("%.1f:%d" % p for p in series[::max(1, len(
        series) // 12)]))
    print("published %d in %.2f s (%.0f/s); all archived at %.2f s (%.0f/s); 10%%->90%%: "
          "%.0f/s; load %s" % (n, t_published, n / t_published, total, n / total, mid_rate,
                               load), flush=True)
    print("RESULT bench=write durability=%s messages=%d size=%d publish_per_s=%.0f "
          "archived_per_s=%.0f mid_per_s=%.0f load=%s" % (
              args.durability, n, args.size, n / t_published, n / total, mid_rate,
              load.split()[0]), flush=True)


class JsDht:
    """tests/interop/peer.mjs dht: a js-libp2p kad-dht server node with the same stdio
    commands as the agent."""

    def ask(self, command, event, timeout):
        start = len(self.proc.lines)
        self.proc.popen.stdin.write((command + "\n").encode())
        self.proc.popen.stdin.flush()
        m = self.proc.wait_line(r'"event":"(%s|error)"' % event, timeout=timeout, start=start)
        return json.loads(m.string)


def start_js(procs, name, bootstrap):
    # harness.Process gives the child /dev/null as stdin; peer.mjs needs a pipe.
    argv = ["node", os.path.join(HERE, "..", "tests", "interop", "peer.mjs"), "dht",
            "--mode", "server"] + sum((["--bootstrap", b] for b in bootstrap), [])
    name = procs.unique(name)
    p = harness.Process.__new__(harness.Process)
    p.name, p.argv = name, argv
    p.log_path = os.path.join(procs.dir, "%s.log" % name)
    p._log = open(p.log_path, "w", buffering=1)
    p.lines = []
    p._cond = threading.Condition()
    p.popen = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True,
                               cwd=os.path.join(HERE, "..", "tests", "interop"))
    p.pid = p.popen.pid
    p._reader = threading.Thread(target=p._read, daemon=True)
    p._reader.start()
    procs.procs.append(p)
    js = JsDht.__new__(JsDht)
    js.name, js.proc = name, p
    p.wait_line(r"^listening ", timeout=120)
    js.addr = [l.split(" ", 1)[1] for l in p.lines if l.startswith("listening ")][0]
    js.peer_id = js.addr.rsplit("/", 1)[1]
    return js


def run_dht(args, procs):
    T = args.timeout
    rng = random.Random(args.seed)
    print("load average at start: %s" % loadavg(), flush=True)
    boots = [start(procs, "boot%d" % i, ["--role", "bootstrapper"], T) for i in range(2)]
    via = sum((["--bootstrap", b.addr] for b in boots), [])
    topics = max(1, args.nodes // 10)
    agents = []
    t_start = time.monotonic()
    for i in range(args.nodes - 2):
        agents.append(start(procs, "agent%03d" % i, via + GOSSIP + [
            "--set", "dht.discovery_interval=1s", "--topic", "topic-%d" % (i % topics)], T))
    print("%d agents up in %.1f s" % (len(agents), time.monotonic() - t_start), flush=True)
    js = []
    for i in range(args.js):
        try:
            js.append(start_js(procs, "js%d" % i, [b.addr for b in boots]))
        except AssertionError as err:  # e.g. it exited during start-up
            print("js node %d did not start: %s" % (i, str(err).splitlines()[0]), flush=True)
    want = min(20, args.nodes // 2)

    def tables():
        return [len(a.ask("dht-table", "dht-table", T)["peers"]) for a in agents]
    sizes = wait_until(lambda: (lambda s: s if min(s) >= want else None)(tables()),
                       what="every routing table >= %d" % want, timeout=T, interval=1.0)
    time.sleep(args.settle)
    sizes = tables()
    print("routing tables: min %d, median %d, max %d (of %d nodes); load %s" % (
        min(sizes), median(sizes), max(sizes), args.nodes + args.js, loadavg()), flush=True)

    ids = [a.peer_id for a in agents]
    results = {}  # (impl, kind) -> list of (ms, ok)
    askers = rng.sample(agents, min(args.askers, len(agents)))
    load_lookups = loadavg()

    def timed(node, command, event):
        t = time.monotonic()
        e = node.ask(command, event, T)
        return (time.monotonic() - t) * 1000.0, e

    shortcut = []  # cpp find-peer answered in < 0.5 ms: from an open connection, no lookup
    for a in askers:
        asked = set()
        for _ in range(args.lookups):
            # A lookup dials the peers it queries, so the connected set grows as lookups run:
            # pick each target among the peers not connected right now.
            connected = set(a.ask("peers", "peers", T)["peers"])
            candidates = [p for p in ids if p != a.peer_id and p not in connected and
                          p not in asked]
            if not candidates:
                break
            target = rng.choice(candidates)
            asked.add(target)
            ms, e = timed(a, "dht-find-peer " + target, "dht-peer")
            if ms < 0.5:
                shortcut.append(ms)
                continue
            results.setdefault(("cpp", "find-peer"), []).append((ms, bool(e.get("found"))))
        for t in rng.sample(range(topics), topics):
            ms, e = timed(a, "dht-find-topic topic-%d" % t, "dht-providers")
            results.setdefault(("cpp", "find-topic"), []).append(
                (ms, len(e.get("providers", [])) > 0))
    for j in js:
        try:
            for target in rng.sample(ids, min(args.lookups, len(ids))):
                ms, e = timed(j, "dht-find-peer " + target, "dht-peer")
                results.setdefault(("js", "find-peer"), []).append((ms, bool(e.get("found"))))
            for t in rng.sample(range(topics), topics):
                ms, e = timed(j, "dht-find-topic topic-%d" % t, "dht-providers")
                results.setdefault(("js", "find-topic"), []).append(
                    (ms, len(e.get("providers", [])) > 0))
        except (OSError, AssertionError) as err:  # a js node that died: report the rest
            print("js node %s failed: %s\n%s" % (j.name, str(err).splitlines()[0],
                                                  j.proc.tail(5)), flush=True)
    print("lookups ran at load %s -> %s; cpp find-peer answered from an open connection "
          "(< 0.5 ms, not counted below): %d" % (load_lookups, loadavg(), len(shortcut)))
    print("| nodes | lookup client | lookup | n | success | p50 ms | p90 ms | max ms |")
    print("|---:|---|---|---:|---:|---:|---:|---:|")
    for (impl, kind), rows in sorted(results.items()):
        ms = [r[0] for r in rows]
        ok = sum(1 for r in rows if r[1])
        print("| %d | %s | %s | %d | %d%% | %.1f | %.1f | %.1f |" % (
            args.nodes + args.js, impl, kind, len(rows), round(100.0 * ok / len(rows)),
            pct(ms, 50), pct(ms, 90), max(ms)))
        print("RESULT bench=dht nodes=%d impl=%s kind=%s n=%d ok=%d p50_ms=%.1f p90_ms=%.1f "
              "max_ms=%.1f" % (args.nodes + args.js, impl, kind, len(rows), ok, pct(ms, 50),
                               pct(ms, 90), max(ms)), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("bench", choices=["catchup", "write", "dht"])
    p.add_argument("--p2pmq", help="the p2pmq binary (default: $P2PMQ_BIN)")
    p.add_argument("--messages", type=int, default=5000)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--validator", action="store_true", help="catchup: external validator")
    p.add_argument("--durability", default="process_crash",
                   choices=["process_crash", "power_loss"])
    p.add_argument("--poll", type=float, default=0.25)
    p.add_argument("--nodes", type=int, default=50)
    p.add_argument("--askers", type=int, default=6)
    p.add_argument("--lookups", type=int, default=15, help="dht: find-peer lookups per asker")
    p.add_argument("--js", type=int, default=0, help="dht: js-libp2p kad-dht nodes to add")
    p.add_argument("--settle", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=float, default=240.0, help="deadline of every wait, s")
    p.add_argument("--keep-logs", action="store_true")
    args = p.parse_args()
    if args.p2pmq:
        os.environ["P2PMQ_BIN"] = os.path.abspath(args.p2pmq)
    harness.p2pmq_bin()  # fails early without a binary
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    procs = Processes("bench-" + args.bench)
    ok = False
    try:
        {"catchup": run_catchup, "write": run_write, "dht": run_dht}[args.bench](args, procs)
        ok = True
    except Exception as e:  # Stop, a Timeout, an agent that exited, a broken pipe
        print("FAILED: %s: %s\nlogs in %s" % (type(e).__name__, e, procs.dir), file=sys.stderr)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        procs.close(keep_logs=args.keep_logs or not ok)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
