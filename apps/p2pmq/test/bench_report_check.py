#!/usr/bin/env python3
"""Checks what `p2pmq bench --json FILE --plot FILE.svg` wrote: correctness, never a timing.

usage: bench_report_check.py REPORT.json PLOT.svg PUBLISHERS SUBSCRIBERS COUNT
Exit 0 when every rule holds, 1 with the broken rules on stderr.
"""
import json
import sys
import xml.etree.ElementTree as ET


def main():
    report_path, plot_path = sys.argv[1], sys.argv[2]
    publishers, subscribers, count = (int(a) for a in sys.argv[3:6])
    with open(report_path) as f:
        r = json.load(f)
    problems = []

    def rule(ok, what):
        if not ok:
            problems.append(what)

    pub, dlv, lat = r["publish"], r["delivery"], r["latency"]
    rule(r["config"]["publishers"] == publishers, "config.publishers")
    rule(r["config"]["subscribers"] == subscribers, "config.subscribers")
    rule(not r["interrupted"], "not interrupted")
    rule(pub["acked"] == count and pub["failed"] == 0, f"every publish acked: {pub}")
    rule(dlv["expected"] == pub["acked"] * subscribers, "expected = acked x subscribers")
    rule(dlv["ratio"] == 1.0, f"delivery ratio 1.0: {dlv['ratio']}")
    rule(dlv["delivered"] == dlv["expected"], "delivered = expected")
    rule(dlv["delivered"] + dlv["missed"] == dlv["expected"], "delivered + missed = expected")
    rule(dlv["duplicates"] == 0, f"no duplicates: {dlv['duplicates']}")
    rule(lat["count"] == dlv["delivered"], "one latency per delivery")
    order = ["min_ms", "p50_ms", "p90_ms", "p99_ms", "p99_9_ms", "max_ms"]
    values = [lat[k] for k in order]
    rule(all(v >= 0 for v in values), "latencies non-negative")
    rule(values == sorted(values), f"percentiles monotone: {values}")
    subs = r["subscribers"]
    rule(len(subs) == subscribers, "one entry per subscriber")
    rule(sum(s["delivered"] for s in subs) == dlv["delivered"], "subscribers sum to delivered")
    for s in subs:
        rule(s["delivered"] + s["missed"] == pub["acked"], f"subscriber {s['subscriber']} counts")
        rule(s["latency"]["count"] == s["delivered"], f"subscriber {s['subscriber']} latencies")
    cdf = r["latency_cdf"]
    rule(len(cdf) > 0 and cdf[-1][1] == 1.0, "the CDF ends at 1")
    rule(all(a[0] < b[0] and a[1] < b[1] for a, b in zip(cdf, cdf[1:])), "the CDF increases")
    timeline = r["timeline"]
    delivered_in_timeline = sum(timeline["delivered_per_s"]) * timeline["interval_s"]
    rule(abs(delivered_in_timeline - dlv["delivered"]) < 0.5, "the timeline sums to delivered")
    agents = r["agents"]
    rule(len(agents) == r["config"]["started_agents"], "one usage entry per started agent")
    for a in agents:
        rule(a["cpu_seconds_total"] >= a["cpu_seconds_measured"] >= 0, f"{a['name']} cpu")
        rule(a["peak_rss_bytes"] > 0, f"{a['name']} peak rss")

    svg = ET.parse(plot_path).getroot()
    rule(svg.tag == "{http://www.w3.org/2000/svg}svg", f"the plot is an SVG: {svg.tag}")
    polylines = svg.findall(".//{http://www.w3.org/2000/svg}polyline")
    rule(len(polylines) >= 2, "the plot has a CDF and a rate line")

    for p in problems:
        print("bench report: broken rule: " + p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
