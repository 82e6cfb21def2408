// Host-level interoperability between js-libp2p 2.10 (peer.mjs) and the C++
// p2pmq binary (P2PMQ_BIN): TCP + multistream-select + Noise + Yamux, identify,
// ping and a byte-exact echo protocol, in every dialer -> listener direction.
// js -> js checks the harness itself. Run: node --test --test-concurrency=1 host.test.mjs
import { after, before, describe, test as nodeTest } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ECHO_PROTOCOL, jsonLine, kinds, randomPeerId, run, startListener, stopAll, withPeerId, writeRandomKey } from './lib.mjs'

const K = kinds()
const PAIRS = [['js', 'cpp'], ['cpp', 'js'], ['js', 'js']]
const CLIENT_TIMEOUT_MS = 180_000
const ECHO_STREAMS = 64
const ECHO_BYTES = 1024 * 1024

const stripP2p = a => a.replace(/\/p2p\/[^/]+$/, '')
const agentPrefix = { js: 'js-libp2p/', cpp: 'p2pmq/' }

after(stopAll)

function skipReason (...names) {
  for (const n of names) {
    if (!K[n].available) return `${n} side unavailable: ${K[n].reason}`
  }
  return false
}

function assertExit0 (res, what) {
  assert.ok(!res.timedOut, `${what} timed out: ${res.describe()}`)
  assert.equal(res.code, 0, `${what} failed: ${res.describe()}\nstdout: ${res.stdout.join('\n')}`)
}

for (const [d, l] of PAIRS) {
  const dialer = K[d]
  const kind = K[l]
  const skip = skipReason(d, l)
  // the cpp cases are reported one by one as skipped, with the reason
  const test = (name, fn) => nodeTest(name, { skip }, fn)
  describe(`${d} dialer -> ${l} listener`, () => {
    let listener
    before(async () => { if (!skip) listener = await startListener(kind, { echo: true }) })
    after(async () => { await listener?.stop() })

    test('ping --count 3', async () => {
      const res = await run(dialer.clientCmd('ping', listener.addr, '--count', '3'), { timeoutMs: CLIENT_TIMEOUT_MS })
      assertExit0(res, 'ping')
      const pongs = res.stdout.map(line => line.match(/^pong (\d+) from (\S+) rtt=([\d.]+) ms$/)).filter(Boolean)
      assert.equal(pongs.length, 3, `expected 3 pong lines, got:\n${res.stdout.join('\n')}`)
      for (const m of pongs) {
        assert.equal(m[2], listener.peerId, 'pong from the listener')
        assert.ok(Number.isFinite(Number(m[3])) && Number(m[3]) >= 0, `rtt ${m[3]}`)
      }
    })

    test('identify', async () => {
      const res = await run(dialer.clientCmd('identify', listener.addr), { timeoutMs: CLIENT_TIMEOUT_MS })
      assertExit0(res, 'identify')
      const id = jsonLine(res)
      assert.equal(id.peer, listener.peerId, 'identify reports the listener\'s peer id')
      assert.equal(typeof id.agentVersion, 'string')
      assert.ok(id.agentVersion.startsWith(agentPrefix[l]), `agentVersion ${id.agentVersion} starts with ${agentPrefix[l]}`)
      assert.equal(typeof id.protocolVersion, 'string')
      for (const p of ['/ipfs/id/1.0.0', '/ipfs/ping/1.0.0', ECHO_PROTOCOL]) {
        assert.ok(id.protocols.includes(p), `protocols ${JSON.stringify(id.protocols)} include ${p}`)
      }
      assert.ok(id.listenAddrs.map(stripP2p).includes(stripP2p(listener.addr)),
        `listenAddrs ${JSON.stringify(id.listenAddrs)} contain ${stripP2p(listener.addr)}`)
      assert.equal(typeof id.observedAddr, 'string', 'observedAddr is present')
      assert.match(id.observedAddr, /^\/ip4\/127\.0\.0\.1\/tcp\/\d+(\/p2p\/\S+)?$/, 'observedAddr is on 127.0.0.1')
    })

    test(`echo ${ECHO_STREAMS} streams x ${ECHO_BYTES} bytes is byte-exact`, async () => {
      const res = await run(dialer.clientCmd('echo', listener.addr, '--streams', String(ECHO_STREAMS), '--bytes', String(ECHO_BYTES)),
        { timeoutMs: CLIENT_TIMEOUT_MS })
      assertExit0(res, 'echo')
      const r = jsonLine(res)
      assert.equal(r.ok, true, `echo result ${JSON.stringify(r)}`)
      assert.equal(r.streams, ECHO_STREAMS)
      assert.equal(r.bytes, ECHO_BYTES)
      assert.ok(r.seconds > 0 && r.MBps > 0, JSON.stringify(r))
    })

    test('dialing the listener with another peer\'s id fails', async () => {
      const wrong = withPeerId(listener.addr, await randomPeerId())
      const res = await run(dialer.clientCmd('ping', wrong, '--count', '1'), { timeoutMs: CLIENT_TIMEOUT_MS })
      assert.ok(!res.timedOut, `dial with a wrong peer id hung: ${res.describe()}`)
      assert.notEqual(res.code, 0, `dial with a wrong peer id succeeded: ${res.stdout.join('\n')}`)
      assert.ok(!res.stdout.some(line => line.startsWith('pong ')), 'no pong from the wrong peer')
      assert.ok(res.stderr.trim().length > 0, 'a failure message on stderr')
    })

    test('the listener is still serving and exits 0 on SIGTERM', async () => {
      assert.ok(!listener.exited, `listener died: ${listener.describe()}`)
      const st = await listener.stop(10_000)
      assert.equal(st.signal, null, `listener killed by ${st.signal}: ${listener.describe()}`)
      assert.equal(st.code, 0, `listener exit code: ${listener.describe()}`)
    })
  })
}

for (const d of ['js', 'cpp']) {
  describe(`${d} dialer failures`, () => {
    nodeTest('an unreachable peer fails with a non-zero exit', { skip: skipReason(d) }, async () => {
      const res = await run(K[d].clientCmd('ping', `/ip4/127.0.0.1/tcp/1/p2p/${await randomPeerId()}`, '--count', '1'),
        { timeoutMs: CLIENT_TIMEOUT_MS })
      assert.ok(!res.timedOut, `dial of a closed port hung: ${res.describe()}`)
      assert.notEqual(res.code, 0, 'dial of a closed port succeeded')
      assert.ok(res.stderr.trim().length > 0, 'a failure message on stderr')
    })
  })
}

for (const l of ['js', 'cpp']) {
  describe(`${l} listener without --echo, with --key FILE`, () => {
    nodeTest('keeps the key\'s peer id; identify lists identify and ping but not echo', { skip: skipReason('js', l) }, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'p2pmq-interop-'))
      const keyId = await writeRandomKey(join(dir, 'key'))
      let listener
      try {
        listener = await startListener(K[l], { key: join(dir, 'key') })
        assert.equal(listener.peerId, keyId, 'the listener\'s peer id is the key file\'s')
        const res = await run(K.js.clientCmd('identify', listener.addr), { timeoutMs: CLIENT_TIMEOUT_MS })
        assertExit0(res, 'identify')
        const id = jsonLine(res)
        assert.equal(id.peer, listener.peerId)
        assert.ok(id.protocols.includes('/ipfs/id/1.0.0') && id.protocols.includes('/ipfs/ping/1.0.0'), JSON.stringify(id.protocols))
        assert.ok(!id.protocols.includes(ECHO_PROTOCOL), JSON.stringify(id.protocols))
      } finally {
        await listener?.stop()
        rmSync(dir, { recursive: true, force: true })
      }
    })
  })
}
