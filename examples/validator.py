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
from concurrent import futures

import grpc

import p2pmq_stubs

pb, rpc = p2pmq_stubs.load()


class Validator(rpc.MsgValidationServicer):
    def __init__(self, reject):
        self.reject = reject
        self.lock = threading.Lock()
        self.counts = {"accept": 0, "reject": 0}

    def ValidationChannel(self, request_iterator, context):
        # One stream per agent; verdicts go back in order, each carrying the message id.
        for msg in request_iterator:
            bad = self.reject is not None and self.reject.search(msg.data) is not None
            with self.lock:
                self.counts["reject" if bad else "accept"] += 1
            verdict = pb.VERDICT_REJECT if bad else pb.VERDICT_ACCEPT
            yield pb.ValidatedMessage(id=msg.id, verdict=verdict)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", default="127.0.0.1:0", help="host:port (port 0 picks one)")
    ap.add_argument("--reject-regex", default=None, help="REJECT messages whose data matches")
    ap.add_argument("--workers", type=int, default=16,
                    help="threads: one per connected agent stream")
    args = ap.parse_args()

    reject = re.compile(args.reject_regex.encode()) if args.reject_regex else None
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.workers))
    validator = Validator(reject)
    rpc.add_MsgValidationServicer_to_server(validator, server)
    port = server.add_insecure_port(args.listen)
    if port == 0:
        sys.exit("cannot listen on " + args.listen)
    server.start()
    host = args.listen.rsplit(":", 1)[0]
    print("listening %s:%d" % (host, port), flush=True)

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    server.stop(1).wait()
    print("validated: %d accepted, %d rejected" % (validator.counts["accept"],
                                                  validator.counts["reject"]), file=sys.stderr)


if __name__ == "__main__":
    main()
