#!/usr/bin/env node
// Host benchmark, js-libp2p 2.10 vs the C++ p2pmq binary (not a test):
// single-stream echo throughput and sequential dial rate for the pairs
// js->js, cpp->js, js->cpp, cpp->cpp (the cpp ones only when P2PMQ_BIN is a
// usable binary). Prints a markdown table with ratios relative to js->js.
//
//   node bench.mjs [--bytes B] [--dials N] [--timeout S]
//
// Defaults: 256 MiB echo, 200 dials, 300 s per measurement. Everything runs on
// 127.0.0.1; every process started is killed (by pid) before exit.
import { jsonLine, kinds, run, startListener, stopAll } from './lib.mjs'

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

const BYTES = arg('bytes', 256 * 1024 * 1024)
const DIALS = arg('dials', 200)
const TIMEOUT_MS = arg('timeout', 300) * 1000

const K = kinds()
const PAIRS = [['js', 'js'], ['cpp', 'js'], ['js', 'cpp'], ['cpp', 'cpp']]

async function measure (dialer, listenerKind) {
  const out = { pair: `${dialer.name} -> ${listenerKind.name}` }
  const listener = await startListener(listenerKind, { echo: true })
  try {
    const e = await run(dialer.clientCmd('echo', listener.addr, '--streams', '1', '--bytes', String(BYTES)), { timeoutMs: TIMEOUT_MS })
    if (e.code === 0) {
      const r = jsonLine(e)
      out.MBps = r.ok ? r.MBps : null
    } else {
      out.echoError = e.timedOut ? 'timed out' : (e.stderr.trim().split('\n').pop() || `exit ${e.code}`)
    }
    const d = await run(dialer.clientCmd('dialbench', listener.addr, '--count', String(DIALS)), { timeoutMs: TIMEOUT_MS })
    if (d.code === 0) {
      const r = jsonLine(d)
      out.perSecond = r.per_second
      out.p50 = r.p50_ms
      out.p99 = r.p99_ms
    } else {
      out.dialError = d.timedOut ? 'timed out' : (d.stderr.trim().split('\n').pop() || `exit ${d.code}`)
    }
  } finally {
    await listener.stop()
  }
  return out
}

const fmt = (x, digits = 1) => x == null ? 'n/a' : x.toFixed(digits)
const ratio = (x, base) => (x == null || base == null || base === 0) ? 'n/a' : `${(x / base).toFixed(2)}x`

async function main () {
  const rows = []
  for (const [d, l] of PAIRS) {
    if (!K[d].available || !K[l].available) {
      rows.push({ pair: `${d} -> ${l}`, skipped: K.cpp.reason })
      continue
    }
    process.stderr.write(`bench: ${d} -> ${l} ...\n`)
    rows.push(await measure(K[d], K[l]))
  }
  const base = rows[0]
  const mib = (BYTES / 1048576).toFixed(0)
  const lines = [
    `Echo: 1 stream, ${mib} MiB each way; dials: ${DIALS} sequential fresh connections (TCP + multistream-select + Noise + Yamux, then close). Loopback, node ${process.version}.`,
    '',
    '| dialer -> listener | echo MB/s | vs js->js | dials/s | vs js->js | dial p50 ms | dial p99 ms |',
    '|---|---:|---:|---:|---:|---:|---:|'
  ]
  for (const r of rows) {
    if (r.skipped) {
      lines.push(`| ${r.pair} | skipped | | | | | |`)
      continue
    }
    lines.push(`| ${r.pair} | ${r.echoError ? `error: ${r.echoError}` : fmt(r.MBps)} | ${ratio(r.MBps, base.MBps)} | ` +
      `${r.dialError ? `error: ${r.dialError}` : fmt(r.perSecond)} | ${ratio(r.perSecond, base.perSecond)} | ${fmt(r.p50, 2)} | ${fmt(r.p99, 2)} |`)
  }
  if (rows.some(r => r.skipped)) lines.push('', `cpp pairs skipped: ${K.cpp.reason}`)
  process.stdout.write(lines.join('\n') + '\n')
  return rows.some(r => r.echoError || r.dialError) ? 1 : 0
}

main()
  .then(async code => { await stopAll(); process.exit(code) })
  .catch(async err => {
    process.stderr.write(`bench.mjs: ${err.stack ?? err}\n`)
    await stopAll()
    process.exit(1)
  })
