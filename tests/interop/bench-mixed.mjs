#!/usr/bin/env node
// Mixed gossipsub networks on loopback (a benchmark, not a test; issue 11): homogeneous networks
// of each implementation and mixed ones, the same scenario for each, in one run.
//
//   node bench-mixed.mjs [--networks cpp,go,rust,js,cpp+go,cpp+rust,cpp+go+rust+js]
//                        [--msgid p2pmq|default] [--nodes 10] [--rate 50] [--count 200]
//                        [--size 256] [--budget-s 600] [--json FILE]
//
// A network of --nodes nodes on one topic, node i of kind kinds[i % kinds.length] ("cpp+go":
// cpp, go, cpp, go ...), connected as bench-gossip.mjs does (ring + chords: i dials i+1, i+3,
// i+5 mod N). After the meshes form, one publisher of each kind in turn publishes --count
// messages of --size bytes at --rate msg/s. --msgid p2pmq: every node on p2pmq's message ids
// (a go, rust or js node configured to join a p2pmq network); default: every implementation
// on its own default ids and seqnos (stock for go and js, rust's for rust, p2pmq for cpp).
//
// Per network: delivery ratio (every message at every node but its publisher), p50/p99 latency
// (the publisher's stdin write to the receiver's message line, both in this process),
// duplicate copies received per delivery, IHAVEs sent, message ids asked for by IWANT and IWANT
// promises broken (from `stats`,
// where the implementation reports them; n/a when one kind does not), and the scores each kind gives each other kind (`scores` at the
// end: the minimum over scorers of a kind and scored peers of a kind). A mixed network should
// match the homogeneous ones on delivery and duplicates, and no score may be negative.
//
// Bounded: --budget-s in all; networks that would not fit are skipped. Every process started is
// killed by pid; loopback only.
import { writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { gossipArgv, killAll, now, startNode, cliOptions } from './gossip-nodes.mjs'

const TOPIC = 'p2pmq/bench/mixed'
const OFFSETS = [1, 3, 5]

const { opt, intOpt } = cliOptions('bench-mixed.mjs')

const NETWORKS = opt('networks', 'cpp,go,rust,js,cpp+go,cpp+rust,cpp+go+rust+js').split(',')
const MSGID = opt('msgid', 'p2pmq')
const N = intOpt('nodes', 10)
const RATE = intOpt('rate', 50)
const COUNT = intOpt('count', 200)
const SIZE = intOpt('size', 256)
const BUDGET_MS = intOpt('budget-s', 600) * 1000
const JSON_OUT = opt('json', null)
const T_START = Date.now()
const ENV_OF = { cpp: 'P2PMQ_BIN', go: 'P2PMQ_GO_PEER', rust: 'P2PMQ_RUST_PEER' }

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const pct = (sorted, p) => sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]
process.on('exit', killAll)
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { killAll(); process.exit(130) })

async function runNetwork (spec) {
  const kinds = spec.split('+')
  const deliveries = new Map() // message key -> Set(receiver index)
  const lat = []
  let tag = null
  const onMessage = (node, line, t) => {
    const m = /"data":"([0-9.]+):([a-z0-9]+)-(\d+):/.exec(line)
    if (m == null || m[2] !== tag) return
    const key = m[3]
    let set = deliveries.get(key)
    if (set == null) deliveries.set(key, set = new Set())
    if (set.has(node.index)) return
    set.add(node.index)
    lat.push(t - Number(m[1]))
  }
  const nodes = []
  for (let i = 0; i < N; i++) {
    const kind = kinds[i % kinds.length]
    nodes.push(startNode(kind, i, gossipArgv(kind, TOPIC, MSGID), onMessage))
  }
  await Promise.all(nodes.map(n => n.addr != null ? n.addr : n.waitFor(() => n.addr, 60_000, 'listening line')))
  for (let i = 0; i < N; i++) {
    for (const off of OFFSETS) nodes[i].send(`connect ${nodes[(i + off) % N].addr}`)
  }
  const meshDeadline = Date.now() + 30_000
  let meshSizes
  for (;;) {
    meshSizes = await Promise.all(nodes.map(n => n.ask(`mesh ${TOPIC}`, 'mesh').then(j => j.peers.length)))
    if (Math.min(...meshSizes) >= 4 || Date.now() > meshDeadline) break
    await sleep(500)
  }
  process.stderr.write(`[${spec}] mesh sizes: ${meshSizes.join(' ')}\n`)
  const before = await Promise.all(nodes.map(n => n.ask('stats', 'stats').catch(() => ({}))))

  const perKind = []
  for (const kind of kinds) {
    const publisher = nodes.find(n => n.impl === kind)
    tag = `${kind}${Date.now().toString(36)}`
    deliveries.clear()
    lat.length = 0
    const pad = 'x'.repeat(SIZE)
    const t0 = performance.now()
    for (let k = 0; k < COUNT; k++) {
      const due = t0 + k * 1000 / RATE
      const wait = due - performance.now()
      if (wait > 0) await sleep(wait)
      const head = `${now().toFixed(3)}:${tag}-${k}:`
      publisher.send(`pub ${TOPIC} ${head}${pad.slice(0, Math.max(0, SIZE - head.length))}`)
    }
    const expected = COUNT * (N - 1)
    const delivered = () => [...deliveries.values()].reduce((a, s) => a + s.size - (s.has(publisher.index) ? 1 : 0), 0)
    const drainEnd = performance.now() + 10_000
    while (delivered() < expected && performance.now() < drainEnd) await sleep(50)
    const sorted = Float64Array.from(lat).sort()
    const r = { publisher: kind, expected, delivered: delivered(), p50_ms: pct(sorted, 0.5), p99_ms: pct(sorted, 0.99) }
    r.delivery = r.delivered / expected
    perKind.push(r)
    process.stderr.write(`[${spec}] ${kind} publishes: ${(r.delivery * 100).toFixed(2)}% delivered, p50 ${r.p50_ms?.toFixed(1)} p99 ${r.p99_ms?.toFixed(1)} ms\n`)
  }
  await sleep(3000) // a few heartbeats: promises come due, scores settle
  const after = await Promise.all(nodes.map(n => n.ask('stats', 'stats').catch(() => ({}))))
  const scores = await Promise.all(nodes.map(n => n.ask('scores', 'scores').then(j => j.scores).catch(() => ({}))))
  const kindOf = new Map()
  for (const n of nodes) kindOf.set(n.peerId, n.impl)
  const minScore = {} // "scorer kind -> scored kind" -> min
  scores.forEach((map, i) => {
    for (const [peer, score] of Object.entries(map ?? {})) {
      const scored = kindOf.get(peer)
      if (scored == null) continue
      const k = `${nodes[i].impl}→${scored}`
      minScore[k] = Math.min(minScore[k] ?? Infinity, score)
    }
  })
  const sum = (field) => after.reduce((a, s, i) => a + ((s[field] ?? NaN) - (before[i][field] ?? 0)), 0)
  const totalDelivered = perKind.reduce((a, r) => a + r.delivered, 0)
  await Promise.all(nodes.map(n => n.stop()))
  return {
    network: spec,
    msgid: MSGID,
    meshSizes,
    perKind,
    duplicates_per_delivery: sum('duplicates') / totalDelivered,
    ihave_sent: sum('ihave_sent'),
    iwant_asked: sum('iwant_asked'),
    broken_promises: sum('broken_promises'),
    minScore
  }
}

async function main () {
  for (const spec of NETWORKS) {
    for (const kind of spec.split('+')) {
      if (ENV_OF[kind] && !process.env[ENV_OF[kind]]) throw new Error(`${ENV_OF[kind]} is not set (needed for ${kind})`)
    }
  }
  const results = []
  for (const spec of NETWORKS) {
    const kinds = spec.split('+').length
    const estimate = kinds * (COUNT / RATE * 1000 + 5000) + 45_000
    if (Date.now() - T_START + estimate > BUDGET_MS) {
      process.stderr.write(`budget: skipping ${spec}\n`)
      continue
    }
    results.push(await runNetwork(spec))
  }
  const fmt = (x, d = 1) => x == null || Number.isNaN(x) ? 'n/a' : x.toFixed(d)
  const lines = [
    `${new Date().toISOString()}, node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), load ${loadavg().map(x => x.toFixed(2)).join(' ')}.`,
    `${N} nodes (ring + chords), message ids: ${MSGID}; each kind publishes ${COUNT} × ${SIZE} B at ${RATE} msg/s in turn.`,
    '',
    '| network | publisher | delivered | p50 ms | p99 ms |',
    '|---|---|---:|---:|---:|'
  ]
  for (const r of results) {
    for (const p of r.perKind) lines.push(`| ${r.network} | ${p.publisher} | ${(p.delivery * 100).toFixed(2)}% | ${fmt(p.p50_ms)} | ${fmt(p.p99_ms)} |`)
  }
  lines.push('', '| network | duplicates per delivery | IHAVEs sent | ids asked by IWANT | broken IWANT promises | lowest score, scorer → scored |', '|---|---:|---:|---:|---:|---|')
  for (const r of results) {
    const scores = Object.entries(r.minScore).sort().map(([k, v]) => `${k} ${fmt(v)}`).join(', ')
    const count = x => Number.isNaN(x) ? 'n/a' : x
    lines.push(`| ${r.network} | ${fmt(r.duplicates_per_delivery, 2)} | ${count(r.ihave_sent)} | ${count(r.iwant_asked)} | ${count(r.broken_promises)} | ${scores} |`)
  }
  lines.push('', `total ${((Date.now() - T_START) / 1000).toFixed(0)} s`)
  process.stdout.write(lines.join('\n') + '\n')
  if (JSON_OUT) writeFileSync(JSON_OUT, JSON.stringify(results, null, 1))
}

setTimeout(() => { process.stderr.write('bench-mixed.mjs: hard deadline\n'); killAll(); process.exit(3) }, BUDGET_MS + 60_000).unref()
main()
  .then(() => { killAll(); process.exit(0) })
  .catch(err => { process.stderr.write(`bench-mixed.mjs: ${err.stack ?? err}\n`); killAll(); process.exit(1) })
