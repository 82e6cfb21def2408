#!/usr/bin/python3
"""An example p2pmq client: publish and listen through an agent's gRPC API.

    /usr/bin/python3 examples/client.py --agent 127.0.0.1:5001 pub TOPIC DATA
    /usr/bin/python3 examples/client.py --agent 127.0.0.1:5001 listen TOPIC [TOPIC...] --count N
    /usr/bin/python3 examples/client.py --agent 127.0.0.1:5001 sub|unsub TOPIC
    /usr/bin/python3 examples/client.py --agent 127.0.0.1:5001 status

pub prints "published id=HEX seqno=N". listen prints "listening" once the agent has registered
the stream (publishing after that line is seen by it), then one line per event:
"message TOPIC SEQNO ORIGIN DATA" (DATA as UTF-8, undecodable bytes replaced) or
"missed TOPIC COUNT" when the stream was too slow and the agent dropped messages, or
"gap TOPIC ORIGIN FROM-TO" for seqnos no archive could supply; it exits after N messages
(0: never).
"""
import argparse
import sys

import p2pmq_stubs

p2pmq = p2pmq_stubs.import_client()  # the client package, clients/python
pb = p2pmq.pb
grpc = p2pmq.grpc


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agent", default="127.0.0.1:5001", help="the agent's gRPC address")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds, for unary calls")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pub")
    p.add_argument("topic")
    p.add_argument("data")
    p = sub.add_parser("listen")
    p.add_argument("topics", nargs="+")
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--buffer", type=int, default=0, help="the stream's buffer (0: default)")
    for name in ("sub", "unsub"):
        sub.add_parser(name).add_argument("topic")
    sub.add_parser("status")
    args = ap.parse_args()

    client = p2pmq.Client(args.agent, timeout=args.timeout)
    try:
        if args.cmd == "pub":
            r = client.publish(args.topic, args.data)
            print("published id=%s seqno=%d" % (r.id.hex(), r.seqno), flush=True)
        elif args.cmd == "listen":
            stream = client.listen(args.topics, buffer_size=args.buffer)
            print("listening", flush=True)  # the agent has registered the stream
            got = 0
            for ev in stream:
                if isinstance(ev, pb.Missed):
                    print("missed %s %d" % (ev.topic, ev.count), flush=True)
                    continue
                if isinstance(ev, pb.Gap):  # seqnos of an origin that could not be recovered
                    print("gap %s %s %d-%d" % (ev.topic, ev.origin, ev.from_seqno, ev.to_seqno),
                          flush=True)
                    continue
                print("message %s %d %s %s" % (ev.topic, ev.seqno, ev.origin or "-",
                                               ev.data.decode("utf-8", "replace")), flush=True)
                got += 1
                if args.count and got >= args.count:
                    stream.cancel()
                    break
        elif args.cmd == "sub":
            client.subscribe(args.topic)
            print("subscribed " + args.topic)
        elif args.cmd == "unsub":
            client.unsubscribe(args.topic)
            print("unsubscribed " + args.topic)
        elif args.cmd == "status":
            print(client.status())
    except grpc.RpcError as e:
        sys.exit("%s: %s" % (e.code().name, e.details()))


if __name__ == "__main__":
    main()
