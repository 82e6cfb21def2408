#!/usr/bin/env node
// Gossipsub end to end on loopback (a benchmark, not a test): the same scenario for a network of
// C++ agents (`$P2PMQ_BIN agent --stdio --topic T`), of js-libp2p gossipsub 14.1.2 nodes
// (`node peer.mjs gossip --topic T`), of go-libp2p-pubsub nodes ($P2PMQ_GO_PEER) and of
// rust-libp2p gossipsub nodes ($P2PMQ_RUST_PEER), one after the other in the same run.
//
//   node bench-gossip.mjs [--impl cpp,js,go,rust] [--nodes 10] [--publishers 1] [--size 256]
//                         [--rates 100,200,500,1000,2000,5000,10000] [--step-s 5]
//                         [--drain-ms 2000] [--budget-s 280] [--json FILE] [--offsets 1,3,5]
//
// Topology: N nodes on one topic, connected as a ring plus chords (node i dials i+1, i+3 and
// i+5 mod N, so every node has 5 neighbours for N = 10). After the meshes form (every node has
// at least D_lo - 1 = 4 mesh peers, or a deadline) and a warm-up, `--publishers` nodes (0, N/P,
// 2N/P, ...) publish `--size`-byte messages, the rate split evenly between them, in steps of
// --step-s seconds each. After each step publishing pauses for up to --drain-ms so stragglers
// can arrive (the step ends early once every copy is in). A step passes when >= 99.9% of the
// expected deliveries (every message at every node but its publisher) arrived and the p99
// latency is <= 100 ms; stepping stops at the first failing step. The "highest sustained rate"
// is the last passing step.
//
// Latency: each message's data starts with the wall-clock time it was written to the
// publisher's stdin (performance.timeOrigin + performance.now(), ms with µs digits); the
// harness takes the receive time when it reads the receiver's {"event":"message",...} line.
// Both ends of the measurement are in this process, and all processes share the machine
// clock. It therefore includes the stdin pipe and line parsing at the publisher and the JSON
// encoding and stdout pipe at the receiver, identical in kind for both implementations.
//
// CPU per delivered message: utime + stime (from /proc/<pid>/stat) of every node process over
// the step (publishing and drain), divided by the deliveries in it. It includes the stdio
// line protocol (a JSON line per delivery and per publication) on both sides alike. The
// harness's own CPU is reported apart. Peak RSS: VmHWM of each node process at the end.
//
// Bounded: --budget-s (default 280 s) for the whole run; each implementation gets its share,
// steps that would not fit are not started. Loopback only; every process started is killed
// by pid.
import { writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { cpuTicks, gossipArgv, killAll, now, startNode, vmHwmKiB, CLK_TCK, cliOptions } from './gossip-nodes.mjs'

const TOPIC = 'p2pmq/bench/gossip'

const { opt, intOpt } = cliOptions('bench-gossip.mjs')

const IMPLS = opt('impl', 'cpp,js').split(',')
const N = intOpt('nodes', 10)
const PUBLISHERS = intOpt('publishers', 1)
const SIZE = intOpt('size', 256)
const RATES = opt('rates', '100,200,500,1000,2000,5000,10000').split(',').map(Number)
const STEP_MS = intOpt('step-s', 5) * 1000
const DRAIN_MS = intOpt('drain-ms', 2000)
const BUDGET_MS = intOpt('budget-s', 280) * 1000
const JSON_OUT = opt('json', null)
const MIN_DELIVERY = 0.999
const MAX_P99_MS = 100
// Node i dials i+o mod N for each offset o: 1,3,5 is a ring + chords; 1,2,3,4,5 (N = 10) connects
// every pair, which the C++ agent's topic discovery reaches by itself (it dials providers until a
// topic has D peers), so the implementations compare on the same connections.
const OFFSETS = opt('offsets', '1,3,5').split(',').map(Number)
const T_START = Date.now()

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

// ---- processes ------------------------------------------------------------------------------
process.on('exit', killAll)
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { killAll(); process.exit(130) })

const pct = (sorted, p) => sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]
const median = xs => { const v = [...xs].sort((a, b) => a - b); return v.length ? (v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2) : null }

// ---- one implementation's run ------------------------------------------------------------------
async function runImpl (impl, deadline) {
  // per-step accounting
  let step = null // { tag, expected, delivered, dup, lat: [], seen: Map(receiver -> Set) }
  const onMessage = (node, line, t) => {
    const m = /"data":"([0-9.]+):([a-z0-9]+)-(\d+):/.exec(line)
    if (m == null || step == null || m[2] !== step.tag) return
    const key = m[2] + m[3]
    const seen = step.seen[node.index]
    if (seen.has(key)) { step.dup++; return }
    seen.add(key)
    step.delivered++
    step.lat.push(t - Number(m[1]))
  }

  process.stderr.write(`[${impl}] starting ${N} nodes\n`)
  const nodes = []
  for (let i = 0; i < N; i++) nodes.push(startNode(impl, i, gossipArgv(impl, TOPIC), onMessage))
  await Promise.all(nodes.map(n => n.addr != null ? n.addr : n.waitFor(() => n.addr, 30_000, 'listening line')))
  for (let i = 0; i < N; i++) {
    for (const off of OFFSETS) {
      const j = (i + off) % N
      if (off * 2 === N && j < i) continue // the chord across, once
      nodes[i].send(`connect ${nodes[j].addr}`)
    }
  }
  // meshes: every node has >= 4 mesh peers (or 20 s pass)
  const meshDeadline = Date.now() + 20_000
  let meshSizes = []
  for (;;) {
    meshSizes = await Promise.all(nodes.map(n => {
      const p = n.waitFor(l => l.includes('"event":"mesh"') && JSON.parse(l), 10_000, 'mesh answer')
      n.send(`mesh ${TOPIC}`)
      return p.then(j => j.peers.length)
    }))
    if (Math.min(...meshSizes) >= 4 || Date.now() > meshDeadline) break
    await sleep(500)
  }
  process.stderr.write(`[${impl}] mesh sizes: ${meshSizes.join(' ')}\n`)

  const publishers = Array.from({ length: PUBLISHERS }, (_, k) => nodes[Math.floor(k * N / PUBLISHERS)])
  let tagCounter = 0
  const runStep = async (rate, ms, drainMs) => {
    const tag = `s${(tagCounter++).toString(36)}`
    step = { tag, rate, published: 0, delivered: 0, dup: 0, lat: [], seen: nodes.map(() => new Set()) }
    const cpu0 = nodes.map(n => cpuTicks(n.pid))
    const self0 = process.cpuUsage()
    const t0 = performance.now()
    const perPub = new Array(PUBLISHERS).fill(0)
    const pad = 'x'.repeat(SIZE)
    // pacing: every 5 ms, each publisher catches up with rate/P * elapsed
    await new Promise(resolve => {
      const tick = () => {
        const el = Math.min(performance.now() - t0, ms)
        for (let k = 0; k < PUBLISHERS; k++) {
          const want = Math.floor(rate / PUBLISHERS * el / 1000)
          if (want <= perPub[k]) continue
          let batch = ''
          const ts = now().toFixed(3)
          for (; perPub[k] < want; perPub[k]++) {
            const head = `${ts}:${tag}-${k * 1e8 + perPub[k]}:`
            batch += `pub ${TOPIC} ${head}${pad.slice(0, Math.max(0, SIZE - head.length))}\n`
          }
          publishers[k].child.stdin.write(batch)
        }
        if (el >= ms) resolve()
        else setTimeout(tick, 5)
      }
      tick()
    })
    step.published = perPub.reduce((a, b) => a + b, 0)
    const expected = step.published * (N - 1)
    const drainEnd = performance.now() + drainMs
    while (step.delivered < expected && performance.now() < drainEnd) await sleep(20)
    const seconds = (performance.now() - t0) / 1000
    const cpu1 = nodes.map(n => cpuTicks(n.pid))
    const self1 = process.cpuUsage(self0)
    const cpuMs = cpu1.reduce((a, c, i) => a + (c - cpu0[i]), 0) * 1000 / CLK_TCK
    const lat = Float64Array.from(step.lat).sort()
    const r = {
      rate,
      published: step.published,
      expected,
      delivered: step.delivered,
      duplicates: step.dup,
      delivery: expected ? step.delivered / expected : 0,
      p50_ms: pct(lat, 0.5),
      p99_ms: pct(lat, 0.99),
      max_ms: lat.length ? lat[lat.length - 1] : null,
      // undelivered copies count as infinitely late: if more than 1% are missing, p99 is "inf"
      cpu_ms: cpuMs,
      cpu_us_per_delivery: step.delivered ? cpuMs * 1000 / step.delivered : null,
      harness_cpu_ms: (self1.user + self1.system) / 1000,
      seconds,
      load1: loadavg()[0]
    }
    r.pass = r.delivery >= MIN_DELIVERY && r.p99_ms != null && r.p99_ms <= MAX_P99_MS
    step = null
    return r
  }

  // warm-up (not reported): 2 s at 50 msg/s
  const warm = await runStep(50, 2000, 3000)
  process.stderr.write(`[${impl}] warm-up: ${(warm.delivery * 100).toFixed(2)}% delivered, p99 ${warm.p99_ms?.toFixed(1)} ms\n`)
  // idle baseline: CPU of the connected nodes with nothing published (heartbeats, gossip)
  const idle0 = nodes.map(n => cpuTicks(n.pid))
  await sleep(3000)
  const idleCpuMsPerS = nodes.reduce((a, n, i) => a + (cpuTicks(n.pid) - idle0[i]), 0) * 1000 / CLK_TCK / 3
  process.stderr.write(`[${impl}] idle: ${idleCpuMsPerS.toFixed(1)} ms CPU per s, all nodes together\n`)
  const steps = []
  for (const rate of RATES) {
    if (Date.now() + STEP_MS + DRAIN_MS + 2000 > deadline) {
      process.stderr.write(`[${impl}] budget: not starting the ${rate} msg/s step\n`)
      break
    }
    const r = await runStep(rate, STEP_MS, DRAIN_MS)
    steps.push(r)
    process.stderr.write(`[${impl}] ${rate} msg/s: published ${r.published}, delivered ${(r.delivery * 100).toFixed(3)}%` +
      ` p50 ${r.p50_ms?.toFixed(2)} p99 ${r.p99_ms?.toFixed(2)} ms, ${r.cpu_us_per_delivery?.toFixed(1)} µs CPU/delivery, load ${r.load1.toFixed(2)} ${r.pass ? 'PASS' : 'FAIL'}\n`)
    if (!r.pass) break
    // let the queues empty between steps
    await sleep(500)
  }
  const hwm = nodes.map(n => vmHwmKiB(n.pid))
  const errors = nodes.reduce((a, n) => a + n.errors, 0)
  const lastError = nodes.find(n => n.lastError)?.lastError ?? null
  await Promise.all(nodes.map(n => n.stop()))
  const passed = steps.filter(s => s.pass)
  return {
    impl,
    meshSizes,
    warm,
    idleCpuMsPerS,
    steps,
    best: passed.length ? passed[passed.length - 1] : null,
    vmhwm_kib: hwm,
    errors,
    lastError
  }
}

// ---- main -----------------------------------------------------------------------------------
const fmt = (x, d = 1) => x == null ? 'n/a' : x.toFixed(d)

async function main () {
  const needs = { cpp: 'P2PMQ_BIN', go: 'P2PMQ_GO_PEER', rust: 'P2PMQ_RUST_PEER' }
  for (const impl of IMPLS) {
    if (needs[impl] && !process.env[needs[impl]]) throw new Error(`${needs[impl]} is not set (needed for --impl ${impl})`)
  }
  const results = []
  for (let k = 0; k < IMPLS.length; k++) {
    const left = BUDGET_MS - (Date.now() - T_START)
    const deadline = Date.now() + left / (IMPLS.length - k)
    results.push(await runImpl(IMPLS[k], deadline))
  }
  const lines = [
    `${new Date().toISOString()}, node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), load average now ${loadavg().map(x => x.toFixed(2)).join(' ')}.`,
    `${N} nodes (node i dials i+o mod N, o in ${OFFSETS.join(',')}), ${PUBLISHERS} publisher(s), ${SIZE}-byte messages, ${STEP_MS / 1000} s steps (+ up to ${DRAIN_MS} ms drain); pass: >= ${MIN_DELIVERY * 100}% delivered and p99 <= ${MAX_P99_MS} ms.`,
    '',
    '| impl | rate msg/s | published | delivered | p50 ms | p99 ms | CPU µs/delivery | load1 | pass |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---|'
  ]
  for (const r of results) {
    for (const s of r.steps) {
      lines.push(`| ${r.impl} | ${s.rate} | ${s.published} | ${(s.delivery * 100).toFixed(3)}% | ${fmt(s.p50_ms, 2)} | ${fmt(s.p99_ms, 2)} | ${fmt(s.cpu_us_per_delivery)} | ${fmt(s.load1, 2)} | ${s.pass ? 'yes' : 'no'} |`)
    }
  }
  lines.push('', '| impl | highest sustained msg/s | p50 ms | p99 ms | CPU µs/delivery | idle CPU ms/s (all nodes) | peak RSS/node MiB (median, max) | mesh sizes |', '|---|---:|---:|---:|---:|---:|---|---|')
  for (const r of results) {
    const b = r.best
    const h = r.vmhwm_kib.filter(x => x != null)
    lines.push(`| ${r.impl} | ${b ? b.rate : 'none'} | ${fmt(b?.p50_ms, 2)} | ${fmt(b?.p99_ms, 2)} | ${fmt(b?.cpu_us_per_delivery)} | ${fmt(r.idleCpuMsPerS)} | ${fmt(median(h) / 1024)}, ${fmt(Math.max(...h) / 1024)} | ${r.meshSizes.join(' ')} |`)
    if (r.errors) lines.push(`|  | ${r.errors} error events, last: ${r.lastError?.slice(0, 200)} | | | | | | |`)
  }
  lines.push('', `total ${((Date.now() - T_START) / 1000).toFixed(0)} s`)
  process.stdout.write(lines.join('\n') + '\n')
  if (JSON_OUT) writeFileSync(JSON_OUT, JSON.stringify(results, null, 1))
}

// hard stop: never run past the budget by more than a minute
setTimeout(() => { process.stderr.write('bench-gossip.mjs: hard deadline\n'); killAll(); process.exit(3) }, BUDGET_MS + 60_000).unref()
main()
  .then(() => { killAll(); process.exit(0) })
  .catch(err => { process.stderr.write(`bench-gossip.mjs: ${err.stack ?? err}\n`); killAll(); process.exit(1) })
