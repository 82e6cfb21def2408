// The status page served at / by AgentHttp: one HTML document with an inline script that polls
// /status.json every two seconds and draws the message rates as an SVG chart. No build step and
// no external assets, so it works on an air-gapped machine and under a strict CSP.
#include "agent_http.hpp"

namespace p2pmq::cli {

const char* const kStatusPageHtml = R"html(<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>p2pmq agent</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.3em;margin:0 0 .3em}h2{font-size:1.05em;margin:1.4em 0 .4em}
code,.mono{font-family:ui-monospace,monospace;font-size:12px}
table{border-collapse:collapse;background:#fff;min-width:40%}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f0f0f0}td.n{text-align:right}
.neg{color:#b00}.muted{color:#777}#err{color:#b00}
svg{background:#fff;border:1px solid #ddd}
.legend span{display:inline-block;margin-right:1em}
.legend i{display:inline-block;width:12px;height:3px;vertical-align:middle;margin-right:4px}
</style></head>
<body>
<h1>p2pmq agent <span id="version" class="muted"></span></h1>
<div>peer id <code id="peer-id">…</code></div>
<div id="addrs" class="mono"></div>
<div id="summary" class="muted"></div>
<div id="err"></div>

<h2>Message rates (delivered per second, by topic)</h2>
<svg id="chart" width="720" height="220" viewBox="0 0 720 220" role="img"
     aria-label="delivered messages per second"></svg>
<div id="legend" class="legend"></div>

<h2>Topics</h2>
<table id="topics"><thead><tr><th>topic</th><th>mesh</th><th>peers</th><th>published</th>
<th>delivered</th><th>duplicates</th><th>rejected</th><th>ignored</th><th>throttled</th>
<th>validation queue</th></tr></thead><tbody></tbody></table>

<h2>Peers</h2>
<table id="peers"><thead><tr><th>peer</th><th>agent version</th><th>score</th>
<th>mesh topics</th><th>address</th></tr></thead><tbody></tbody></table>

<h2>Sync</h2>
<div id="sync"></div>
<table id="archives"><thead><tr><th>archive</th><th>source</th><th>addresses</th></tr></thead>
<tbody></tbody></table>
<table id="origins" style="margin-top:.6em"><thead><tr><th>topic</th><th>origin</th>
<th>delivered seqno</th></tr></thead><tbody></tbody></table>

<script>
"use strict";
const COLORS = ["#1f77b4","#ff7f0e","#2ca02c","#d62728","#9467bd","#8c564b","#e377c2","#7f7f7f"];
function esc(s) {
  return String(s).replace(/[&<>"']/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;","'":"&#39;"}[c]));
}
function metric(all, name, labels) {
  for (const s of all[name] || []) {
    let ok = true;
    for (const k in labels || {}) if (s.labels[k] !== labels[k]) ok = false;
    if (ok) return s.value;
  }
  return 0;
}
function short(id) { return id.length > 16 ? id.slice(0, 8) + "…" + id.slice(-6) : id; }
function rows(id, list) {
  document.querySelector("#" + id + " tbody").innerHTML =
    list.map(cells => "<tr>" + cells.map(c => "<td" + (typeof c === "number" ? " class=n" : "") +
      ">" + (c && c.html !== undefined ? c.html : esc(c)) + "</td>").join("") + "</tr>").join("");
}
function drawChart(history) {
  const svg = document.getElementById("chart");
  const W = 720, H = 220, L = 48, R = 10, T = 10, B = 24;
  const t = history.t || [];
  const series = [];
  Object.keys(history.topics || {}).forEach((topic, i) => {
    const v = history.topics[topic]["p2pmq_pubsub_delivered_messages_total"] || [];
    const pts = [];
    for (let k = 1; k < t.length; k++)
      if (v[k] !== null && v[k - 1] !== null && t[k] > t[k - 1])
        pts.push([t[k], Math.max(0, (v[k] - v[k - 1]) / (t[k] - t[k - 1]))]);
    series.push({topic, pts, color: COLORS[i % COLORS.length]});
  });
  let parts = [];
  const t0 = t.length ? t[0] : 0, t1 = t.length ? t[t.length - 1] : 1;
  let max = 1;  // then 10% headroom above the highest rate
  series.forEach(s => s.pts.forEach(p => { if (p[1] > max) max = p[1]; }));
  max *= 1.1;
  const x = tt => L + (W - L - R) * (t1 > t0 ? (tt - t0) / (t1 - t0) : 1);
  const y = v => H - B - (H - T - B) * v / max;
  for (let g = 0; g <= 4; g++) {
    const v = max * g / 4;
    parts.push(`<line x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/>`);
    parts.push(`<text x="${L - 4}" y="${y(v) + 4}" font-size="10" text-anchor="end">${v.toFixed(v < 10 ? 1 : 0)}</text>`);
  }
  const span = Math.round(t1 - t0);
  parts.push(`<text x="${L}" y="${H - 6}" font-size="10">-${span}s</text>`);
  parts.push(`<text x="${W - R}" y="${H - 6}" font-size="10" text-anchor="end">now</text>`);
  series.forEach(s => {
    if (s.pts.length < 1) return;
    const pts = s.pts.length === 1 ? [[t0, s.pts[0][1]], s.pts[0]] : s.pts;
    parts.push(`<polyline class="rate" data-topic="${esc(s.topic)}" fill="none" stroke="${s.color}"` +
      ` stroke-width="2" points="${pts.map(p => x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1)).join(" ")}"/>`);
  });
  if (!series.some(s => s.pts.length))
    parts.push(`<text x="${W / 2}" y="${H / 2}" text-anchor="middle" fill="#777">collecting samples…</text>`);
  svg.innerHTML = parts.join("");
  document.getElementById("legend").innerHTML = series.map(s =>
    `<span><i style="background:${s.color}"></i>${esc(s.topic)}</span>`).join("");
}
function render(j) {
  const s = j.status, m = j.metrics;
  document.getElementById("version").textContent = j.agent_version || "";
  document.getElementById("peer-id").textContent = s.peer_id;
  document.getElementById("addrs").innerHTML = s.listen_addrs.map(esc).join("<br>");
  document.getElementById("summary").textContent = s.connected_peers + " peers connected, DHT " +
    (s.dht_mode || "off") + " with " + s.dht_table_size + " peers in its table";
  rows("topics", s.topics.map(t => [t,
    metric(m, "p2pmq_pubsub_mesh_peers", {topic: t}),
    metric(m, "p2pmq_pubsub_topic_peers", {topic: t}),
    metric(m, "p2pmq_pubsub_published_messages_total", {topic: t}),
    metric(m, "p2pmq_pubsub_delivered_messages_total", {topic: t}),
    metric(m, "p2pmq_pubsub_duplicate_messages_total", {topic: t}),
    metric(m, "p2pmq_pubsub_rejected_messages_total", {topic: t}),
    metric(m, "p2pmq_pubsub_ignored_messages_total", {topic: t}),
    metric(m, "p2pmq_pubsub_throttled_messages_total", {topic: t}),
    metric(m, "p2pmq_pubsub_validation_queue_depth", {topic: t})]));
  const peers = s.peers.slice().sort((a, b) => b.score - a.score);
  rows("peers", peers.map(p => [{html: `<code title="${esc(p.peer_id)}">${esc(short(p.peer_id))}</code>`},
    p.agent_version, {html: `<span class="${p.score < 0 ? "neg" : ""}">${p.score.toFixed(2)}</span>`},
    p.mesh_topics.join(", "), p.addrs.join(" ")]));
  const y = s.sync;
  document.getElementById("sync").textContent = (y.archive_role ? "archive, " +
    y.archived_messages + " messages held; " : "") + "fetches " + y.fetches + " (" +
    y.fetch_failures + " failed, " + y.fetched_messages + " messages); served " +
    y.served_requests + " requests, " + y.served_messages + " messages";
  rows("archives", s.archives.map(a => [{html: `<code>${esc(short(a.peer_id))}</code>`}, a.source,
    a.addrs.join(" ")]));
  const origins = [];
  s.topic_status.forEach(t => t.origins.forEach(o =>
    origins.push([t.topic, {html: `<code>${esc(short(o.origin))}</code>`}, o.delivered_seqno])));
  rows("origins", origins);
  drawChart(j.history);
  document.body.dataset.updated = String(j.time);
}
async function poll() {
  try {
    const r = await fetch("status.json", {cache: "no-store"});
    if (!r.ok) throw new Error("HTTP " + r.status);
    render(await r.json());
    document.getElementById("err").textContent = "";
  } catch (e) {
    document.getElementById("err").textContent = "cannot reach the agent: " + e.message;
  }
  setTimeout(poll, 2000);
}
poll();
</script>
</body></html>
)html";

}  // namespace p2pmq::cli
