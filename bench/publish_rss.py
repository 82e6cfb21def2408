#!/usr/bin/python3
"""RSS of an agent after a burst of its own publishes (issue 10, item 6: memory comes back):

    /usr/bin/python3 bench/publish_rss.py P2PMQ_BIN [--messages 10000] [--size 1000] [--wait 40]

Starts `P2PMQ_BIN agent --stdio` alone on loopback, publishes MESSAGES x SIZE bytes through
stdin, waits for every `published` event, then prints the agent's RSS (MB) every 10 s for WAIT
seconds. Nothing the agent keeps for a message after its publish is large (ids, counters), so
RSS should come back near its start."""
import argparse
import subprocess
import threading
import time

from proc_stats import rss_mb


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--wait", type=int, default=40)
    args = ap.parse_args()
    agent = subprocess.Popen(
        [args.bin, "agent", "--listen", "/ip4/127.0.0.1/tcp/0", "--grpc", "off", "--stdio",
         "--topic", "t"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        bufsize=1)
    published = 0
    listening = threading.Event()
    done = threading.Event()

    def read():
        nonlocal published
        for line in agent.stdout:
            if line.startswith("listening"):
                listening.set()
            elif '"published"' in line:
                published += 1
                if published == args.messages:
                    done.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        if not listening.wait(30):
            raise SystemExit("the agent did not start")
        print("start: %.1f MB" % rss_mb(agent.pid), flush=True)
        pad = "v" * args.size
        t0 = time.monotonic()
        for k in range(args.messages):
            agent.stdin.write("pub t m-%d-%s\n" % (k, pad))
        agent.stdin.flush()
        if not done.wait(180):
            raise SystemExit("only %d of %d published" % (published, args.messages))
        print("%d published in %.1f s: %.1f MB" % (published, time.monotonic() - t0,
                                                   rss_mb(agent.pid)), flush=True)
        for s in range(10, args.wait + 1, 10):
            time.sleep(10)  # sampling interval of a measurement, not synchronisation
            print("%d s later: %.1f MB" % (s, rss_mb(agent.pid)), flush=True)
    finally:
        agent.kill()
        agent.wait()


if __name__ == "__main__":
    main()
