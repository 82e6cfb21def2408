#!/usr/bin/env node
// Runs the attack suite and prints its figures as the markdown table of docs/security.md
// (## Attack suite). Needs P2PMQ_BIN and tests/interop/node_modules (install.sh).
//
//   P2PMQ_BIN=build/release/apps/p2pmq/p2pmq node tests/adversarial/report.mjs [--from FILE]
//
// --from FILE prints the table of an earlier run's ADVERSARIAL_REPORT file instead of
// running the suite. Extra arguments go to `node --test` (e.g. --test-name-pattern=IHAVE).
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { HERE } from './harness.mjs'

const args = process.argv.slice(2)
let file
let scratch = null
const from = args.indexOf('--from')
if (from >= 0) {
  file = args[from + 1]
} else {
  scratch = mkdtempSync(join(tmpdir(), 'p2pmq-adv-report-'))
  file = join(scratch, 'report.jsonl')
  const res = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...args, 'attacks.test.mjs'], {
    cwd: HERE,
    env: { ...process.env, ADVERSARIAL_REPORT: file },
    stdio: ['ignore', 'inherit', 'inherit']
  })
  if (res.status !== 0) process.stderr.write(`report.mjs: the suite exited with ${res.status}; the table has what was measured\n`)
}

let rows = []
try {
  rows = readFileSync(file, 'utf8').split('\n').filter(Boolean).map(l => JSON.parse(l))
} catch (err) {
  process.stderr.write(`report.mjs: no figures in ${file}: ${err.message}\n`)
}
if (scratch) rmSync(scratch, { recursive: true, force: true })

const mb = x => x == null ? 'n/a' : `${x >= 0 ? '+' : ''}${x.toFixed(1)}`
const ms = x => x == null ? 'never' : `${(x / 1000).toFixed(1)} s`
console.log('| attack | scale | baseline RSS (MiB) | peak over baseline (MiB) | after, over baseline (MiB) | honest delivery | p99 (ms) | honest pings | victim CPU (s) | attacker cut off after | notes |')
console.log('|---|---|---|---|---|---|---|---|---|---|---|')
for (const r of rows) {
  console.log(`| ${r.attack} | ${r.scale} | ${r.baseline_mb?.toFixed(1)} | ${mb(r.peak_over_baseline_mb)} | ${mb(r.after_over_baseline_mb)} | ` +
    `${(r.delivery_ratio * 100).toFixed(1)} % (${r.delivered}) | ${r.p99_ms ?? 'n/a'} | ${r.pings} | ${r.victim_cpu_s?.toFixed(1) ?? 'n/a'} | ${ms(r.cut_off_ms)} | ${String(r.notes).replace(/\|/g, '/')} |`)
}
