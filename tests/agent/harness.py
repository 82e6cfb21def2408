"""Helpers for the agent tests (test_agent.py): agent and validator processes, gRPC clients,
Listen streams read on background threads, and waiting for conditions with a deadline.

Everything runs on loopback with OS-chosen ports. Every process started here is registered with
a Processes object and killed by pid when it is closed (tests register that with addCleanup, so it
also happens when a test fails). Waiting is always "poll or wait on an event until a deadline";
nothing sleeps to synchronise.

The binary is $P2PMQ_BIN (CTest sets it to the p2pmq target). Python: Debian's /usr/bin/python3
with python3-grpcio and python3-grpc-tools; the stubs come from examples/p2pmq_stubs.py.
"""
import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
EXAMPLES = os.path.join(ROOT, "examples")
PYTHON = sys.executable or "/usr/bin/python3"

# Generous: the tests run on a loaded two-core machine.
DEADLINE = float(os.environ.get("P2PMQ_TEST_DEADLINE", "60"))
POLL = 0.05

# Faster convergence for small test networks.
FAST_GOSSIP = ["heartbeat_interval=200ms", "heartbeat_initial_delay=100ms"]


def missing_dependency():
    """A sentence naming what is missing to run these tests, or None."""
    try:
        import grpc  # noqa: F401
    except ImportError:
        return "python3-grpcio is not installed (apt install python3-grpcio python3-grpc-tools)"
    try:
        import grpc_tools  # noqa: F401
    except ImportError:
        return "python3-grpc-tools is not installed (apt install python3-grpc-tools)"
    return None


_stubs = None


def stubs():
    """(pb, rpc) for p2pmq.v1, generated once per process."""
    global _stubs
    if _stubs is None:
        sys.path.insert(0, EXAMPLES)
        import p2pmq_stubs
        _stubs = p2pmq_stubs.load()
    return _stubs


_agent_help = None


def agent_supports(flag):
    """Whether `p2pmq agent --help` lists `flag` (the flags are still moving)."""
    global _agent_help
    if _agent_help is None:
        out = subprocess.run([p2pmq_bin(), "agent", "--help"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, timeout=60).stdout
        _agent_help = out.decode("utf-8", "replace")
    return re.search(r"(^|\s)%s(\s|$)" % re.escape(flag), _agent_help, re.M) is not None


def validation_timeout_args(ms):
    """--validation-timeout-ms MS, or --validation-timeout MSms in the YAML-config CLI."""
    if agent_supports("--validation-timeout-ms"):
        return ["--validation-timeout-ms", str(ms)]
    return ["--validation-timeout", "%dms" % ms]


def p2pmq_bin():
    path = os.environ.get("P2PMQ_BIN", "")
    if not path:
        path = os.path.join(ROOT, "build-agenttest", "apps", "p2pmq", "p2pmq")
    if not os.access(path, os.X_OK):
        raise RuntimeError("no p2pmq binary at %r (set P2PMQ_BIN)" % path)
    return path


class Timeout(AssertionError):
    pass


def wait_until(predicate, timeout=DEADLINE, what="condition", interval=POLL, context=None):
    """Polls predicate() until it returns a truthy value (returned) or the deadline passes
    (Timeout, naming `what` and adding context() when given). Exceptions from predicate() count
    as "not yet" (a service may not be up yet), except AssertionError, which fails at once."""
    end = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except AssertionError:
            raise  # a verdict, not a transient failure
        except Exception as e:  # a predicate may call a service that is not up yet
            last_error = e
        if time.monotonic() >= end:
            msg = "timed out after %.0fs waiting for %s" % (timeout, what)
            if last_error is not None:
                msg += " (last error: %r)" % (last_error,)
            if context is not None:
                msg += "\n" + context()
            raise Timeout(msg)
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# Processes


class Process:
    """A child process whose stdout (and stderr, merged) is read line by line on a thread and
    kept, so it never blocks on a full pipe and the lines can be waited for."""

    def __init__(self, name, argv, log_dir, env=None, cwd=None):
        self.name = name
        self.argv = argv
        self.log_path = os.path.join(log_dir, "%s.log" % name)
        self._log = open(self.log_path, "w", buffering=1)
        self._log.write("$ %s\n" % " ".join(argv))
        self.lines = []
        self._cond = threading.Condition()
        self.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                      start_new_session=True)
        self.pid = self.popen.pid
        self._reader = threading.Thread(target=self._read, name="out-" + name, daemon=True)
        self._reader.start()

    def _read(self):
        for raw in self.popen.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self._log.write(line + "\n")
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_line(self, pattern, timeout=DEADLINE, start=0):
        """The first match of regex `pattern` in the output lines from index `start`."""
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        with self._cond:
            i = start
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i])
                    if m:
                        return m
                    i += 1
                if self.popen.poll() is not None and not self._reader.is_alive():
                    raise AssertionError("%s exited (rc %s) before printing /%s/:\n%s" % (
                        self.name, self.popen.returncode, pattern, self.tail()))
                left = end - time.monotonic()
                if left <= 0:
                    raise Timeout("%s: no line matching /%s/ within %.0fs:\n%s" % (
                        self.name, pattern, timeout, self.tail()))
                self._cond.wait(min(left, 0.5))

    def output(self):
        with self._cond:
            return "\n".join(self.lines)

    def tail(self, n=25):
        with self._cond:
            lines = self.lines[-n:]
        return "\n".join("  [%s] %s" % (self.name, l) for l in lines)

    def alive(self):
        return self.popen.poll() is None

    def signal(self, sig):
        if self.popen.poll() is None:
            os.kill(self.pid, sig)

    def stop(self, timeout=15):
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        if self.popen.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.popen.wait()
            except ProcessLookupError:
                pass
        self._reader.join(5)
        return self.popen.returncode

    def kill(self):
        if self.popen.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait()
        self._reader.join(5)

    def close_log(self):
        for f in (self.popen.stdout, self._log):
            try:
                f.close()
            except Exception:
                pass


class Processes:
    """Starts processes and ends every one of them (by pid) on close()."""

    def __init__(self, label):
        self.dir = tempfile.mkdtemp(prefix="p2pmq-agenttest-%s-" % label)
        self.procs = []
        self.closers = []  # gRPC channels, streams
        self._names = collections.Counter()

    def unique(self, name):
        self._names[name] += 1
        return name if self._names[name] == 1 else "%s.%d" % (name, self._names[name])

    def workdir(self, name):
        """A directory of its own for process `name` (unique()d), under this test's."""
        d = os.path.join(self.dir, name + ".d")
        os.makedirs(d, exist_ok=True)
        return d

    def start(self, name, argv, env=None, cwd=None):
        """Starts argv; cwd=True gives it a directory of its own under this test's."""
        name = self.unique(name)
        if cwd is True:
            cwd = self.workdir(name)
        p = Process(name, argv, self.dir, env, cwd)
        self.procs.append(p)
        return p

    def on_close(self, fn):
        self.closers.append(fn)

    def context(self):
        """The tail of every process's output, for failure messages."""
        parts = ["logs in " + self.dir]
        for p in self.procs:
            state = "running" if p.alive() else "exited rc=%s" % p.popen.returncode
            parts.append("--- %s (pid %d, %s)\n%s" % (p.name, p.pid, state, p.tail(15)))
        return "\n".join(parts)

    def close(self, keep_logs=True):
        """Ends everything started here; removes the logs unless keep_logs."""
        for fn in reversed(self.closers):
            try:
                fn()
            except Exception:
                pass
        self.closers = []
        # TERM everything first so they shut down in parallel, then wait / KILL each.
        for p in self.procs:
            try:
                p.signal(signal.SIGTERM)
            except Exception:
                pass
        for p in self.procs:
            try:
                p.stop(timeout=15)
            except Exception:
                p.kill()
            p.close_log()
        if not keep_logs and not os.environ.get("P2PMQ_TEST_KEEP_LOGS"):
            shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Listen streams


class ListenStream:
    """A Messaging.Listen call read on a background thread into `events`.

    open() returns once the response headers arrived (the agent registered the listener). With
    read=False the stream is opened but not read until start_reading() (a slow consumer)."""

    def __init__(self, channel, topics, buffer_size=0, read=True, name="listen", ordered=False):
        import grpc
        pb, rpc = stubs()
        self._grpc = grpc
        self.name = name
        self.topics = list(topics)
        self.events = []  # ("message", Message) or ("missed", topic, count)
        self.error = None
        self.ended = False
        self._cond = threading.Condition(threading.RLock())  # predicates re-enter it
        self._opened = threading.Event()
        self._go = threading.Event()
        if read:
            self._go.set()
        self.call = rpc.MessagingStub(channel).Listen(
            pb.ListenRequest(topics=self.topics, buffer_size=buffer_size, ordered=ordered))
        self._thread = threading.Thread(target=self._run, name="listen-" + name, daemon=True)
        self._thread.start()

    def _run(self):
        try:
            self.call.initial_metadata()
            self._opened.set()
            self._go.wait()
            for ev in self.call:
                with self._cond:
                    if ev.HasField("missed"):
                        self.events.append(("missed", ev.missed.topic, ev.missed.count))
                    elif ev.HasField("gap"):
                        self.events.append(("gap", ev.gap.topic, ev.gap.origin,
                                            ev.gap.from_seqno, ev.gap.to_seqno))
                    else:
                        self.events.append(("message", ev.message))
                    self._cond.notify_all()
        except self._grpc.RpcError as e:
            with self._cond:
                self.error = e
        finally:
            self._opened.set()
            with self._cond:
                self.ended = True
                self._cond.notify_all()

    def wait_open(self, timeout=DEADLINE):
        if not self._opened.wait(timeout):
            raise Timeout("Listen %s: no response headers within %.0fs" % (self.name, timeout))
        if self.error is not None and not self.events:
            raise AssertionError("Listen %s failed: %s %s" % (
                self.name, self.error.code(), self.error.details()))
        return self

    def start_reading(self):
        self._go.set()

    def cancel(self):
        self._go.set()
        self.call.cancel()
        self._thread.join(10)

    def messages(self):
        with self._cond:
            return [e[1] for e in self.events if e[0] == "message"]

    def missed(self):
        with self._cond:
            return [(e[1], e[2]) for e in self.events if e[0] == "missed"]

    def gaps(self):
        with self._cond:
            return [e[1:] for e in self.events if e[0] == "gap"]

    def wait_for(self, predicate, timeout=DEADLINE, what="events", context=None):
        """Waits until predicate(self) holds; fails early if the stream ended."""
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                if predicate(self):
                    return
                if self.ended:
                    raise AssertionError("Listen %s ended (%s) while waiting for %s" % (
                        self.name, self._describe_error(), what))
                left = end - time.monotonic()
                if left <= 0:
                    msg = "Listen %s: timed out after %.0fs waiting for %s (%d messages, " \
                          "missed %s)" % (self.name, timeout, what, len(self.messages()),
                                          self.missed())
                    if context is not None:
                        msg += "\n" + context()
                    raise Timeout(msg)
                self._cond.wait(min(left, 0.5))

    def wait_count(self, n, timeout=DEADLINE, context=None):
        self.wait_for(lambda s: len([e for e in s.events if e[0] == "message"]) >= n, timeout,
                      "%d messages" % n, context)
        return self.messages()

    def _describe_error(self):
        if self.error is None:
            return "end of stream"
        return "%s %s" % (self.error.code(), self.error.details())


# ---------------------------------------------------------------------------------------------
# Agents and validators


def channel(address, separate=False, options=()):
    """An insecure channel; separate=True gives it its own connection (a local subchannel pool),
    so its flow control is not shared with other channels to the same agent."""
    import grpc
    opts = list(options)
    if separate:
        opts.append(("grpc.use_local_subchannel_pool", 1))
    return grpc.insecure_channel(address, options=opts)


class Agent:
    """A `p2pmq agent` process with its gRPC clients."""

    def __init__(self, procs, name, bootstrap=(), gossip=FAST_GOSSIP, topics=(), validators=(),
                 extra=(), config=None, start_timeout=DEADLINE):
        """config: YAML text for --config (written to the agent's own directory)."""
        self.procs = procs
        self.name = name = procs.unique(name)
        # Its own working directory: nothing an agent writes (a data dir) lands in another's.
        self.dir = procs.workdir(name)
        argv = [p2pmq_bin(), "agent", "--listen", "/ip4/127.0.0.1/tcp/0",
                "--grpc", "127.0.0.1:0"]
        if config is not None:
            path = os.path.join(self.dir, "agent.yaml")
            with open(path, "w") as f:
                f.write(config)
            argv += ["--config", path]
        for b in bootstrap:
            argv += ["--bootstrap", b.addr if isinstance(b, Agent) else b]
        for g in gossip:
            argv += ["--gossip", g]
        for t in topics:
            argv += ["--topic", t]
        for v in validators:
            argv += ["--validator", v]
        argv += list(extra)
        self.proc = procs.start(name, argv, cwd=self.dir)
        m = self.proc.wait_line(r"^grpc (\S+:\d+)$", timeout=start_timeout)
        self.grpc_address = m.group(1)
        self.addrs = [re.match(r"^listening (\S+)$", l).group(1)
                      for l in self.proc.lines if l.startswith("listening ")]
        if not self.addrs:
            raise AssertionError("%s printed no listening address:\n%s" % (name, self.proc.tail()))
        self.addr = self.addrs[0]
        self.peer_id = self.addr.rsplit("/p2p/", 1)[1]
        pb, rpc = stubs()
        self.pb = pb
        self.channel = channel(self.grpc_address)
        procs.on_close(self.channel.close)
        self.messaging = rpc.MessagingStub(self.channel)
        self.control = rpc.ControlStub(self.channel)
        self.admin = rpc.AdminStub(self.channel)

    def status(self, timeout=10):
        return self.admin.Status(self.pb.StatusRequest(), timeout=timeout)

    def publish(self, topic, data, timeout=30):
        if isinstance(data, str):
            data = data.encode()
        return self.messaging.Publish(self.pb.PublishRequest(topic=topic, data=data),
                                      timeout=timeout)

    def listen(self, topics, buffer_size=0, read=True, separate=False, options=(), name=None,
               ordered=False):
        """A Listen stream, returned once its headers arrived (the listener is registered)."""
        ch = channel(self.grpc_address, separate=separate, options=options) \
            if separate or options else self.channel
        s = ListenStream(ch, topics, buffer_size=buffer_size, read=read, ordered=ordered,
                         name=name or "%s:%s" % (self.name, ",".join(topics)))
        self.procs.on_close(s.cancel)
        if ch is not self.channel:
            self.procs.on_close(ch.close)
        return s.wait_open()

    def mesh_peers(self, topic):
        return [p.peer_id for p in self.status().peers if topic in p.mesh_topics]

    def peer(self, peer_id):
        """This agent's PeerInfo of peer_id, or None."""
        for p in self.status().peers:
            if p.peer_id == peer_id:
                return p
        return None


class StdioAgent:
    """`p2pmq agent --stdio`: commands on stdin, JSON events on stdout (kept in `events`)."""

    def __init__(self, procs, name, args):
        self.name = name
        self.grpc_address = None
        argv = [p2pmq_bin(), "agent", "--stdio", "--grpc", "127.0.0.1:0"] + args
        self.log = open(os.path.join(procs.dir, name + ".log"), "w", buffering=1)
        env = dict(os.environ, P2PMQ_LOG=os.environ.get("P2PMQ_LOG", "warn"))
        self.popen = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=self.log, env=env, start_new_session=True)
        self.pid = self.popen.pid
        self.addr = None
        self.events = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        procs.on_close(self.close)

    def _read(self):
        for raw in self.popen.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.log.write(line + "\n")
            with self.cond:
                if line.startswith("listening ") and self.addr is None:
                    self.addr = line.split(" ", 1)[1]
                elif line.startswith("grpc ") and self.grpc_address is None:
                    self.grpc_address = line.split(" ", 1)[1]
                elif line.startswith("{"):
                    try:
                        self.events.append(json.loads(line))
                    except ValueError:
                        pass
                self.cond.notify_all()

    @property
    def peer_id(self):
        return self.addr.rsplit("/", 1)[1]

    def send(self, line):
        self.popen.stdin.write((line + "\n").encode())
        self.popen.stdin.flush()

    def wait_event(self, predicate, what, timeout=DEADLINE * 4, start=0):
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                for i in range(start, len(self.events)):
                    if predicate(self.events[i]):
                        return i, self.events[i]
                if self.popen.poll() is not None:
                    raise AssertionError("%s exited (rc %s) waiting for %s" % (
                        self.name, self.popen.returncode, what))
                left = end - time.monotonic()
                if left <= 0:
                    raise Timeout("%s: no %s within %.0fs" % (self.name, what, timeout))
                self.cond.wait(min(left, 0.5))

    def ask(self, command, event, timeout=DEADLINE * 4):
        with self.cond:
            start = len(self.events)
        self.send(command)
        return self.wait_event(lambda e: e.get("event") in (event, "error"), event, timeout,
                               start)[1]

    def messages(self):
        with self.cond:
            return [e for e in self.events if e.get("event") == "message"]

    def events_of(self, kind):
        with self.cond:
            return [e for e in self.events if e.get("event") == kind]

    def kill9(self):
        """kill -9, as a crash: no shutdown, nothing flushed."""
        if self.popen.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.popen.wait()

    def close(self):
        try:
            self.popen.stdin.close()
        except OSError:
            pass
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.reader.join(5)
        self.popen.stdout.close()
        self.log.close()


class Validator:
    """examples/validator.py on loopback."""

    def __init__(self, procs, name="validator", listen="127.0.0.1:0", reject_regex=None):
        argv = [PYTHON, os.path.join(EXAMPLES, "validator.py"), "--listen", listen]
        if reject_regex is not None:
            argv += ["--reject-regex", reject_regex]
        self.proc = procs.start(name, argv)
        m = self.proc.wait_line(r"^listening (\S+:\d+)$")
        self.address = m.group(1)


def run(argv, timeout=DEADLINE, input=None):
    """Runs a command to completion: (returncode, stdout, stderr). Kills it on timeout."""
    p = subprocess.Popen(argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = p.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        raise Timeout("%s did not finish within %.0fs\nstdout: %s\nstderr: %s" % (
            " ".join(argv), timeout, out.decode(errors="replace")[-2000:],
            err.decode(errors="replace")[-2000:]))
    return p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def status_json(agent):
    """`p2pmq status --agent ADDR`, parsed."""
    rc, out, err = run([p2pmq_bin(), "status", "--agent", agent.grpc_address], timeout=30)
    if rc != 0:
        raise AssertionError("p2pmq status failed (rc %d): %s" % (rc, err))
    return json.loads(out)
