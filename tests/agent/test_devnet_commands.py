#!/usr/bin/env python3
"""`p2pmq devnet` prints commands that work from where the user stands (issue 15, item 5).

Starts a devnet from a scratch directory (so a relative path to the binary would not resolve),
reads the commands it prints under "try", and runs them as printed through a shell from another
directory: `sub` must receive what `pub` publishes, and `status` must answer. Every wait has a
deadline; nothing is timed. Stdlib only.

  P2PMQ_BIN=build/release/apps/p2pmq/p2pmq python3 tests/agent/test_devnet_commands.py
"""
import os
import selectors
import shlex
import signal
import subprocess
import sys
import tempfile
import time

BIN = os.environ.get("P2PMQ_BIN", "")
DEADLINE = 180  # seconds, generous: a loaded 2-core machine


def read_until(proc, sel, predicate, deadline, lines):
    """Reads proc's stdout lines into `lines` until predicate(line) or the deadline."""
    buf = b""
    while time.monotonic() < deadline:
        for _key, _ in sel.select(timeout=0.5):
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                return None
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                text = line.decode(errors="replace")
                lines.append(text)
                if predicate(text):
                    return text
        if proc.poll() is not None:
            return None
    return None


def main():
    if not BIN or not os.access(BIN, os.X_OK):
        print("skipped: P2PMQ_BIN not set or not executable")
        return 77
    failures = []
    with tempfile.TemporaryDirectory(prefix="p2pmq-devnet-cwd-") as start_dir, \
            tempfile.TemporaryDirectory(prefix="p2pmq-devnet-user-") as user_dir:
        # A relative invocation from start_dir, as scripts/run.sh does from the repository.
        relative = os.path.relpath(BIN, start_dir)
        devnet = subprocess.Popen([relative, "devnet", "--nodes", "3", "--messages", "2",
                                   "--topic", "news"], cwd=start_dir, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        sel = selectors.DefaultSelector()
        sel.register(devnet.stdout, selectors.EVENT_READ)
        lines = []
        deadline = time.monotonic() + DEADLINE
        try:
            if not read_until(devnet, sel, lambda l: l.startswith("devnet: running"), deadline,
                              lines):
                print("\n".join(lines))
                print("FAIL: the devnet did not report running")
                return 1
            commands = {}
            in_try = False
            for l in lines:
                if l.startswith("try"):
                    in_try = True
                    continue
                if in_try and l.startswith("  "):
                    words = shlex.split(l)
                    if len(words) > 1 and words[1] in ("sub", "pub", "status"):
                        commands[words[1]] = l.strip()
                else:
                    in_try = False
            print("printed:", *commands.values(), sep="\n  ")
            for name in ("sub", "pub", "status"):
                if name not in commands:
                    failures.append(f"no `{name}` command printed")
                    continue
                program = shlex.split(commands[name])[0]
                if not os.path.isabs(program):
                    failures.append(f"`{name}` names {program!r}, not an absolute path")
            if failures:
                raise RuntimeError("; ".join(failures))
            # Run them as a user would: through a shell, from another directory, no PATH help.
            env = dict(os.environ, PATH="/usr/bin:/bin")
            sub = subprocess.Popen(commands["sub"] + " --count 1", shell=True, cwd=user_dir,
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
            got = ""
            pub_deadline = time.monotonic() + 60
            # The Listen stream may open after a first publish: publish until sub has one.
            while sub.poll() is None and time.monotonic() < pub_deadline:
                pub = subprocess.run(commands["pub"], shell=True, cwd=user_dir, env=env,
                                     capture_output=True, text=True, timeout=60)
                if pub.returncode != 0:
                    failures.append(f"`pub` exited {pub.returncode}: {pub.stderr.strip()}")
                    break
                try:
                    got, err = sub.communicate(timeout=2)
                except subprocess.TimeoutExpired:
                    continue
            if sub.poll() is None:
                sub.kill()
                got, err = sub.communicate()
            if "hello" not in got:
                failures.append(f"`sub` did not print what `pub` sent: {got!r}")
            status = subprocess.run(commands["status"], shell=True, cwd=user_dir, env=env,
                                    capture_output=True, text=True, timeout=60)
            if status.returncode != 0 or not status.stdout.strip():
                failures.append(f"`status` exited {status.returncode}: {status.stderr.strip()}")
        except RuntimeError:
            pass
        finally:
            if devnet.poll() is None:
                devnet.send_signal(signal.SIGINT)
                read_until(devnet, sel, lambda l: l.startswith("devnet: stopped"),
                           time.monotonic() + 60, lines)
                if devnet.poll() is None:
                    try:
                        devnet.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        os.killpg(devnet.pid, signal.SIGKILL)
                        devnet.wait()
    for f in failures:
        print("FAIL:", f)
    if not failures:
        print("ok: the devnet's printed sub, pub and status commands work from another directory")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
