// H3 of issue 11's wire-conformance review, between implementations: a node listening on
// 0.0.0.0 tells others (identify) the machine's addresses, never 0.0.0.0 itself, which a
// peer would then dial. Run in a network namespace this test creates, with two addresses of
// its own (a veth pair, 10.77.0.1 and 10.77.0.2, and lo), so "the machine's addresses" are
// known and are not only loopback. Removed afterwards, also on failure.
//
// cpp listens on 0.0.0.0 and is identified by go, rust, js and cpp; go and rust listen on
// 0.0.0.0 and are identified by cpp. Each kind whose binary is missing is skipped.
// Needs root and `ip` (iproute2): run through netns.sh, which reports skipped (77) otherwise.
// Run: P2PMQ_BIN=... [P2PMQ_GO_PEER=...] [P2PMQ_RUST_PEER=...] node --test netns.test.mjs
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { after, before, describe, test } from 'node:test'
import { cppBin, NODE, PEER_JS, run, start } from './lib.mjs'

const NS = `p2pmq-h3-${process.pid}`
const ADDRS = ['10.77.0.1', '10.77.0.2']
const { bin: CPP } = cppBin()
const GO = process.env.P2PMQ_GO_PEER
const RUST = process.env.P2PMQ_RUST_PEER
const have = f => f != null && f !== '' && existsSync(f)

const ip = (...args) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] })
const inNs = argv => ['ip', 'netns', 'exec', NS, ...argv]

let ready = false
before(() => {
  ip('netns', 'add', NS)
  ready = true
  ip('-n', NS, 'link', 'set', 'lo', 'up')
  ip('-n', NS, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1')
  ip('-n', NS, 'addr', 'add', `${ADDRS[0]}/24`, 'dev', 'v0')
  ip('-n', NS, 'addr', 'add', `${ADDRS[1]}/24`, 'dev', 'v1')
  ip('-n', NS, 'link', 'set', 'v0', 'up')
  ip('-n', NS, 'link', 'set', 'v1', 'up')
})
after(() => { if (ready) ip('netns', 'del', NS) })
process.on('exit', () => { if (ready) try { ip('netns', 'del', NS) } catch {} })

const LISTENERS = {
  cpp: () => [CPP, 'agent', '--listen', '/ip4/0.0.0.0/tcp/0', '--grpc', 'off'],
  go: () => [GO, 'listen', '--listen', '/ip4/0.0.0.0/tcp/0'],
  rust: () => [RUST, 'listen', '--listen', '/ip4/0.0.0.0/tcp/0']
}
const CLIENTS = {
  cpp: addr => [CPP, 'identify', addr],
  go: addr => [GO, 'identify', addr],
  rust: addr => [RUST, 'identify', addr],
  js: addr => [NODE, PEER_JS, 'identify', addr]
}
const available = { cpp: have(CPP), go: have(GO), rust: have(RUST), js: true }

/** The listener's TCP port and peer id, from its first `listening` line. */
async function startListener (kind) {
  const proc = start(inNs(LISTENERS[kind]()), { name: `${kind} listener on 0.0.0.0` })
  const m = await proc.waitLine(/^listening \/ip4\/[\d.]+\/tcp\/(\d+)\/p2p\/(\S+)$/)
  return { proc, port: Number(m[1]), peerId: m[2] }
}

const PAIRS = [['cpp', 'go'], ['cpp', 'rust'], ['cpp', 'js'], ['cpp', 'cpp'], ['go', 'cpp'], ['rust', 'cpp']]

describe('a listener on 0.0.0.0 advertises the namespace\'s addresses (identify)', () => {
  for (const [listener, client] of PAIRS) {
    const missing = [listener, client].find(k => !available[k])
    test(`${listener} on 0.0.0.0, identified by ${client}`, { skip: missing ? `${missing}: binary not built` : false, timeout: 120_000 }, async () => {
      const l = await startListener(listener)
      try {
        const res = await run(inNs(CLIENTS[client](`/ip4/${ADDRS[0]}/tcp/${l.port}/p2p/${l.peerId}`)), { timeoutMs: 60_000 })
        assert.equal(res.code, 0, res.describe())
        const line = res.stdout.find(s => s.trim().startsWith('{'))
        assert.ok(line, `no JSON from the client: ${res.describe()}`)
        const info = JSON.parse(line)
        const addrs = info.listenAddrs ?? info.listen_addrs ?? []
        assert.ok(addrs.length > 0, `no listen addresses: ${line}`)
        for (const a of addrs) assert.ok(!a.startsWith('/ip4/0.0.0.0/') && !a.startsWith('/ip6/::/'), `unspecified address advertised: ${a}`)
        for (const host of ADDRS) {
          assert.ok(addrs.some(a => a.startsWith(`/ip4/${host}/tcp/${l.port}`)), `${host}:${l.port} not advertised: ${addrs.join(' ')}`)
        }
      } finally {
        await l.proc.stop()
      }
    })
  }
})
