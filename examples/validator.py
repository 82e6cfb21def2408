#!/usr/bin/python3
"""An example p2pmq validator: implements MsgValidation, which the agent dials.

    /usr/bin/python3 examples/validator.py --listen 127.0.0.1:0 --reject-regex '^spam'

Prints "listening 127.0.0.1:PORT" once it serves. Every message whose data matches
--reject-regex (a Python regex over the raw bytes) gets REJECT; every other one ACCEPT.
Configure the agent with the printed address as its validator endpoint.
"""
import argparse
import re
import signal
import sys
import threading

import p2pmq_stubs

p2pmq = p2pmq_stubs.import_client()  # the client package, clients/python


class Verdicts:
    """REJECTs data matching `reject` (a bytes regex), ACCEPTs the rest, and counts both."""

    def __init__(self, reject):
        self.reject = reject
        self.lock = threading.Lock()
        self.counts = {"accept": 0, "reject": 0}

    def __call__(self, msg):
        bad = self.reject is not None and self.reject.search(msg.data) is not None
        with self.lock:
            self.counts["reject" if bad else "accept"] += 1
        return p2pmq.REJECT if bad else p2pmq.ACCEPT


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", default="127.0.0.1:0", help="host:port (port 0 picks one)")
    ap.add_argument("--reject-regex", default=None, help="REJECT messages whose data matches")
    ap.add_argument("--workers", type=int, default=16,
                    help="threads: one per connected agent stream")
    args = ap.parse_args()

    reject = re.compile(args.reject_regex.encode()) if args.reject_regex else None
    verdicts = Verdicts(reject)
    try:
        validator = p2pmq.serve_validator(verdicts, address=args.listen, workers=args.workers)
    except OSError:
        sys.exit("cannot listen on " + args.listen)
    print("listening " + validator.address, flush=True)

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    validator.stop()
    print("validated: %d accepted, %d rejected" % (verdicts.counts["accept"],
                                                  verdicts.counts["reject"]), file=sys.stderr)


if __name__ == "__main__":
    main()
