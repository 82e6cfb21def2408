#!/usr/bin/env node
// Host benchmark, js-libp2p 2.10 vs the C++ p2pmq binary (not a test), for the pairs
// js->js, cpp->js, js->cpp, cpp->cpp (the cpp ones only when P2PMQ_BIN is a usable binary):
//
//   perf   single-stream throughput with the libp2p perf protocol (/perf/1.0.0): the client
//          uploads B bytes, then downloads B bytes, on one stream over TCP + Noise + Yamux
//          (`p2pmq perf` / `node peer.mjs perf` against `agent --perf` / `listen --perf`)
//   echo   single-stream echo (/p2pmq/echo/1.0.0): B bytes each way at once
//   dial   sequential fresh connections (TCP + multistream-select + Noise + Yamux, then close)
//
//   node bench.mjs [--bytes B] [--js-bytes B] [--dials N] [--reps R] [--only perf,echo,dial]
//                  [--timeout S] [--json FILE]
//
// Defaults: 256 MiB for perf and echo (--js-bytes: the size for any pair with a js end, default
// the same), 200 dials, 3 repetitions, 300 s per measurement. The repetitions interleave the
// pairs (rep 1: every pair, rep 2: every pair, ...) so that load from other processes hits them
// alike; the tables quote the median of the repetitions and ratios of medians. The load average
// is sampled before and after every repetition. Everything runs on 127.0.0.1; every process
// started is killed (by pid) before exit.
import { loadavg, cpus } from 'node:os'
import { writeFileSync } from 'node:fs'
import { NODE, PEER_JS, jsonLine, kinds, run, start, startListener, stopAll } from './lib.mjs'

function arg (name, dflt) {
  const i = process.argv.indexOf(`--${name}`)
  if (i < 0) return dflt
  const v = Number(process.argv[i + 1])
  if (!Number.isSafeInteger(v) || v <= 0) {
    process.stderr.write(`bench.mjs: --${name} needs a positive integer\n`)
    process.exit(2)
  }
  return v
}
function strArg (name, dflt) {
  const i = process.argv.indexOf(`--${name}`)
  return i < 0 ? dflt : process.argv[i + 1]
}

const BYTES = arg('bytes', 256 * 1024 * 1024)
const JS_BYTES = arg('js-bytes', BYTES)
const DIALS = arg('dials', 200)
const REPS = arg('reps', 3)
const TIMEOUT_MS = arg('timeout', 300) * 1000
const ONLY = new Set(strArg('only', 'perf,echo,dial').split(','))
const JSON_OUT = strArg('json', null)

const K = kinds()
const PAIRS = [['js', 'js'], ['cpp', 'js'], ['js', 'cpp'], ['cpp', 'cpp']]

const bytesFor = (d, l) => (d === 'js' || l === 'js') ? JS_BYTES : BYTES

// lib.mjs's listeners serve echo only; perf needs `--perf` on either side.
async function startPerfListener (kind) {
  const argv = kind.name === 'cpp'
    ? [process.env.P2PMQ_BIN, 'agent', '--listen', '/ip4/127.0.0.1/tcp/0', '--perf']
    : [NODE, PEER_JS, 'listen', '--perf']
  const proc = start(argv, { name: `${kind.name} perf listener` })
  try {
    const m = await proc.waitLine(/^listening (\/ip4\/127\.0\.0\.1\/tcp\/\d+\S*\/p2p\/(\S+))$/)
    proc.addr = m[1]
    return proc
  } catch (err) {
    await proc.stop()
    throw err
  }
}

const errText = r => r.timedOut ? 'timed out' : (r.stderr.trim().split('\n').pop() || `exit ${r.code}`)

async function measurePerf (dialer, listenerKind, bytes) {
  const listener = await startPerfListener(listenerKind)
  try {
    const r = await run(dialer.clientCmd('perf', listener.addr, '--upload', String(bytes), '--download', String(bytes),
      ...(dialer.name === 'js' ? ['--timeout', String(TIMEOUT_MS / 1000)] : [])), { timeoutMs: TIMEOUT_MS })
    if (r.code !== 0) return { error: errText(r) }
    const j = jsonLine(r)
    return { up: j.upload_MBps, down: j.download_MBps }
  } finally {
    await listener.stop()
  }
}

async function measureEcho (dialer, listenerKind, bytes) {
  const listener = await startListener(listenerKind, { echo: true })
  try {
    const e = await run(dialer.clientCmd('echo', listener.addr, '--streams', '1', '--bytes', String(bytes)), { timeoutMs: TIMEOUT_MS })
    if (e.code !== 0) return { error: errText(e) }
    const r = jsonLine(e)
    return r.ok ? { MBps: r.MBps } : { error: 'echo mismatch' }
  } finally {
    await listener.stop()
  }
}

async function measureDial (dialer, listenerKind) {
  const listener = await startListener(listenerKind, {})
  try {
    const d = await run(dialer.clientCmd('dialbench', listener.addr, '--count', String(DIALS)), { timeoutMs: TIMEOUT_MS })
    if (d.code !== 0) return { error: errText(d) }
    const r = jsonLine(d)
    return { perSecond: r.per_second, p50: r.p50_ms, p99: r.p99_ms }
  } finally {
    await listener.stop()
  }
}

const median = xs => {
  const v = xs.filter(x => typeof x === 'number').sort((a, b) => a - b)
  if (v.length === 0) return null
  const m = Math.floor(v.length / 2)
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2
}
const fmt = (x, digits = 1) => x == null ? 'n/a' : x.toFixed(digits)
const ratio = (x, base) => (x == null || base == null || base === 0) ? 'n/a' : `${(x / base).toFixed(2)}x`
const la = () => loadavg().map(x => x.toFixed(2)).join(' ')

async function main () {
  const pairs = PAIRS.filter(([d, l]) => K[d].available && K[l].available)
  const skipped = PAIRS.filter(p => !pairs.includes(p))
  // results[pair][metric] = [values per rep]
  const results = Object.fromEntries(pairs.map(([d, l]) => [`${d} -> ${l}`, { perf: [], echo: [], dial: [] }]))
  const loads = []
  const errors = []
  const t0 = Date.now()
  for (let rep = 1; rep <= REPS; rep++) {
    const before = la()
    for (const [d, l] of pairs) {
      const key = `${d} -> ${l}`
      const bytes = bytesFor(d, l)
      if (ONLY.has('perf')) {
        process.stderr.write(`bench: rep ${rep} perf ${key} (${bytes} B each way) ... `)
        const r = await measurePerf(K[d], K[l], bytes)
        process.stderr.write(r.error ? `error: ${r.error}\n` : `up ${fmt(r.up)} MB/s, down ${fmt(r.down)} MB/s\n`)
        if (r.error) errors.push(`perf ${key}: ${r.error}`)
        results[key].perf.push(r)
      }
      if (ONLY.has('echo')) {
        process.stderr.write(`bench: rep ${rep} echo ${key} ... `)
        const r = await measureEcho(K[d], K[l], bytes)
        process.stderr.write(r.error ? `error: ${r.error}\n` : `${fmt(r.MBps)} MB/s\n`)
        if (r.error) errors.push(`echo ${key}: ${r.error}`)
        results[key].echo.push(r)
      }
      if (ONLY.has('dial')) {
        process.stderr.write(`bench: rep ${rep} dial ${key} ... `)
        const r = await measureDial(K[d], K[l])
        process.stderr.write(r.error ? `error: ${r.error}\n` : `${fmt(r.perSecond)}/s p50 ${fmt(r.p50, 2)} p99 ${fmt(r.p99, 2)} ms\n`)
        if (r.error) errors.push(`dial ${key}: ${r.error}`)
        results[key].dial.push(r)
      }
    }
    loads.push({ rep, before, after: la() })
  }
  const seconds = (Date.now() - t0) / 1000

  const med = {}
  for (const [key, r] of Object.entries(results)) {
    med[key] = {
      up: median(r.perf.map(x => x.up)),
      down: median(r.perf.map(x => x.down)),
      echo: median(r.echo.map(x => x.MBps)),
      dials: median(r.dial.map(x => x.perSecond)),
      p50: median(r.dial.map(x => x.p50)),
      p99: median(r.dial.map(x => x.p99))
    }
  }
  const base = med['js -> js'] ?? {}
  const cc = med['cpp -> cpp']
  const mib = b => (b / 1048576).toFixed(0)
  const lines = [
    `node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), ${new Date().toISOString()}, ${REPS} repetitions (median), ${seconds.toFixed(0)} s in all.`,
    `Load average (1/5/15 min) before/after each repetition: ${loads.map(l => `rep ${l.rep}: ${l.before} / ${l.after}`).join('; ')}.`,
    ''
  ]
  if (ONLY.has('perf')) {
    lines.push(`Perf (/perf/1.0.0, 1 stream): ${mib(BYTES)} MiB up then ${mib(BYTES)} MiB down for cpp -> cpp, ${mib(JS_BYTES)} MiB each way for pairs with a js end. MB = 10^6 bytes.`,
      '',
      '| dialer -> listener | upload MB/s | vs js->js | download MB/s | vs js->js | runs (up/down) |',
      '|---|---:|---:|---:|---:|---|')
    for (const [key, m] of Object.entries(med)) {
      const runs = results[key].perf.map(x => x.error ? 'err' : `${fmt(x.up, 0)}/${fmt(x.down, 0)}`).join(', ')
      lines.push(`| ${key} | ${fmt(m.up)} | ${ratio(m.up, base.up)} | ${fmt(m.down)} | ${ratio(m.down, base.down)} | ${runs} |`)
    }
    if (cc) {
      const best = Math.max(cc.up ?? 0, cc.down ?? 0)
      const worst = Math.min(cc.up ?? 0, cc.down ?? 0)
      lines.push('', `Targets: cpp->cpp >= 600 MB/s on one stream: ${worst >= 600 ? 'met' : best >= 600 ? 'met one way only' : 'missed'} ` +
        `(up ${fmt(cc.up)}, down ${fmt(cc.down)}); >= 5x js->js: up ${ratio(cc.up, base.up)}, down ${ratio(cc.down, base.down)}.`)
    }
    lines.push('')
  }
  if (ONLY.has('echo')) {
    lines.push(`Echo (/p2pmq/echo/1.0.0, 1 stream, both directions at once; MB/s counts one direction).`,
      '',
      '| dialer -> listener | echo MB/s | vs js->js | runs |',
      '|---|---:|---:|---|')
    for (const [key, m] of Object.entries(med)) {
      lines.push(`| ${key} | ${fmt(m.echo)} | ${ratio(m.echo, base.echo)} | ${results[key].echo.map(x => x.error ? 'err' : fmt(x.MBps, 0)).join(', ')} |`)
    }
    lines.push('')
  }
  if (ONLY.has('dial')) {
    lines.push(`Dials: ${DIALS} sequential fresh connections (TCP + multistream-select + Noise + Yamux, then close).`,
      '',
      '| dialer -> listener | dials/s | vs js->js | dial p50 ms | dial p99 ms | runs (dials/s) |',
      '|---|---:|---:|---:|---:|---|')
    for (const [key, m] of Object.entries(med)) {
      lines.push(`| ${key} | ${fmt(m.dials)} | ${ratio(m.dials, base.dials)} | ${fmt(m.p50, 2)} | ${fmt(m.p99, 2)} | ${results[key].dial.map(x => x.error ? 'err' : fmt(x.perSecond, 0)).join(', ')} |`)
    }
    lines.push('')
  }
  if (skipped.length) lines.push(`skipped: ${skipped.map(([d, l]) => `${d} -> ${l}`).join(', ')} (${K.cpp.reason})`)
  if (errors.length) lines.push('errors:', ...errors.map(e => `- ${e}`))
  process.stdout.write(lines.join('\n') + '\n')
  if (JSON_OUT) writeFileSync(JSON_OUT, JSON.stringify({ results, medians: med, loads, seconds }, null, 1))
  return errors.length ? 1 : 0
}

main()
  .then(async code => { await stopAll(); process.exit(code) })
  .catch(async err => {
    process.stderr.write(`bench.mjs: ${err.stack ?? err}\n`)
    await stopAll()
    process.exit(1)
  })
