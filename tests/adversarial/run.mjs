#!/usr/bin/env node
// CTest's entry to the attack suite: exit 77 (skipped) when the p2pmq binary or the
// pinned js-libp2p (tests/interop/node_modules, install.sh) is missing, else
// `node --test attacks.test.mjs` with its exit code.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { cppBin } from '../interop/lib.mjs'
import { HERE } from './harness.mjs'

const SKIPPED = 77
const { bin, reason } = cppBin()
if (bin == null) {
  console.log(`adversarial: skipped: ${reason}`)
  process.exit(SKIPPED)
}
if (!existsSync(join(HERE, '..', 'interop', 'node_modules', 'libp2p', 'package.json'))) {
  console.log('adversarial: skipped: tests/interop/node_modules is missing (run tests/interop/install.sh)')
  process.exit(SKIPPED)
}
const res = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...process.argv.slice(2), 'attacks.test.mjs'],
  { cwd: HERE, stdio: 'inherit' })
process.exit(res.status ?? 1)
