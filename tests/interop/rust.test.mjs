// Interoperability between the rust-libp2p reference peer (rust/, `$P2PMQ_RUST_PEER`:
// libp2p 0.57.1 with libp2p-gossipsub 0.50.1 and libp2p-kad 0.49.0) and the C++ `p2pmq`
// binary (`$P2PMQ_BIN`), in both directions. Loopback only.
//
// The cases every reference peer runs (host, identify push, direct peers, gossip chains
// and a 3+3 network, gossip-only delivery, kad, kad in gossip mode, large messages) are
// peer-suite.mjs's, registered here for rust. Only rust's:
//  connect: `connect MA` each way, and a peer that proves another id is refused;
//  burst:   2000 messages by IHAVE/IWANT through a relay of either kind, across rust's
//           16 KiB control limit;
//  seqnos:  rust numbers its publications from the unix time in nanoseconds, above 2^53:
//           the agent's stdio events carry them as decimal strings, digit for digit.
// No PX case (go.test.mjs and gossip.test.mjs have one each way against go and js):
// rust-libp2p's gossipsub 0.50.1 has no signed peer records in PX. Its PRUNE names peers by
// id only, which carries no address to dial, and it follows a PX entry only by dialing a
// peer id it already knows addresses for (behaviour.rs px_connect: "Until SignedRecords are
// spec'd this remains a stub"), so neither direction can exchange a peer that is not known.
// Every case skips (reported as skipped) without P2PMQ_RUST_PEER or P2PMQ_BIN.
// Run: P2PMQ_BIN=... P2PMQ_RUST_PEER=... node --test --test-concurrency=1 rust.test.mjs
// Needs no npm packages (lib.mjs and msgid.mjs use node builtins only).
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { stripP2p } from './lib.mjs'
import { DUPLICATE_WINDOW_MS, STABLE_NO_MESH_MS, defineSuite, expectedId, poll, sleep } from './peer-suite.mjs'

const { SKIP, TOPIC, startGossip, stopNodes, waitMeshLink } = defineSuite('rust')

describe('connect command', () => {
  test('rust and cpp nodes connect to each other on `connect MA`; a wrong peer id fails', { skip: SKIP, timeout: 300_000 }, async () => {
    const nodes = []
    try {
      const r = await startGossip('rust', 'rust', { topics: [] })
      nodes.push(r)
      const c = await startGossip('cpp', 'cpp', { topics: [] })
      nodes.push(c)
      assert.equal((await r.request(`connect ${c.addr}`, 'connected')).peer, c.peerId, 'rust -> cpp: connected to the cpp node')
      const c2 = await startGossip('cpp', 'cpp2', { topics: [] })
      nodes.push(c2)
      assert.equal((await c2.request(`connect ${r.addr}`, 'connected')).peer, r.peerId, 'cpp -> rust: connected to the rust node')
      // the cpp node's address with the rust node's id: Noise must refuse it
      const wrong = `${stripP2p(c.addr)}/p2p/${r.peerId}`
      await assert.rejects(r.request(`connect ${wrong}`, 'connected'), /failed/, 'rust refuses a peer that proves another id')
      await assert.rejects(c2.request(`connect ${stripP2p(r.addr)}/p2p/${c.peerId}`, 'connected'), /failed/, 'cpp refuses a peer that proves another id')
    } finally {
      await stopNodes(nodes)
    }
  })
})

// ---- a burst by gossip only -----------------------------------------------------------
// BURST messages published at once (pubn) reach a receiver without mesh peers by
// IHAVE/IWANT: many IWANTs answered at once (rust sends each message in an RPC of its
// own; go's one big RPC is H1 of wire-conformance.md).
// rust-libp2p fails the stream on an inbound RPC whose subscriptions and control exceed
// max_control_message_size (16 KiB by default, libp2p-gossipsub protocol.rs), so p2pmq cuts
// its IHAVE and IWANT lists of 2000 ids (~96 KiB) across RPCs of at most 16 KiB of control.
const BURST = Number(process.env.BURST ?? 2000)
const BURST_SIZE = 40

for (const [rk, xk] of [['rust', 'cpp'], ['cpp', 'rust']]) {
  describe(`gossip only, a burst: rust publisher -> ${rk} relay -> ${xk} receiver without mesh peers`, () => {
    test(`all ${BURST} messages reach the receiver, exactly once`, {
      skip: SKIP,
      timeout: 300_000
    }, async () => {
      const nodes = []
      try {
        const relay = await startGossip(rk, 'relay', { mesh: xk === 'cpp' ? 'meshOfOne' : undefined })
        nodes.push(relay)
        const pub = await startGossip('rust', 'publisher', { bootstrap: [relay.addr] })
        nodes.push(pub)
        await waitMeshLink(pub, relay)
        const receiver = await startGossip(xk, 'receiver', { bootstrap: [relay.addr], mesh: 'noMesh' })
        nodes.push(receiver)
        let since = null
        await poll(`the receiver connected to the relay, out of every mesh for ${STABLE_NO_MESH_MS} ms`, async () => {
          const [r, x, rm] = await Promise.all([relay.peers(), receiver.mesh(), relay.mesh()])
          if (!r.includes(receiver.peerId) || x.length !== 0 || rm.includes(receiver.peerId)) { since = null; return false }
          since ??= Date.now()
          return Date.now() - since >= STABLE_NO_MESH_MS
        })
        await pub.request(`pubn ${TOPIC} ${BURST} ${BURST_SIZE} 0`, 'pubn-done')
        const fromPub = n => n.messages().filter(m => m.from === pub.peerId)
        for (const n of [relay, receiver]) {
          await poll(`${n} holding ${BURST} messages of the burst`, async () => fromPub(n).length >= BURST,
            () => `${n}: ${fromPub(n).length} of ${BURST}\n${n.proc.describe().slice(-3000)}`)
        }
        await sleep(DUPLICATE_WINDOW_MS)
        for (const n of [relay, receiver]) {
          const got = fromPub(n)
          assert.equal(got.length, BURST, `${n}: ${got.length} messages, want ${BURST} (no duplicates)`)
          assert.equal(new Set(got.map(m => String(m.seqno))).size, BURST, `${n}: distinct seqnos`)
          for (const m of got) {
            assert.equal(m.id, expectedId(TOPIC, m.from, m.seqno), `${n}: ${JSON.stringify(m)} has the p2pmq id`)
            assert.equal(Buffer.byteLength(m.data), BURST_SIZE, `${n}: ${BURST_SIZE} bytes`)
            assert.match(m.data, /^\d+\.\d{3} x+$/, `${n}: pubn data`)
          }
        }
        assert.deepEqual(await receiver.mesh(), [], 'the receiver keeps no mesh peers')
      } finally {
        await stopNodes(nodes)
      }
    })
  })
}

// ---- seqnos above 2^53 -------------------------------------------------------------------
// The agent's stdio events print a seqno as a JSON number up to 2^53 - 1 and as a decimal
// string above (as the reference peers do), so a JavaScript reader keeps every digit: rust's
// seqnos (from the unix time in ns) are above 2^53, and a double would round them.
describe('seqnos above 2^53', () => {
  test('a rust origin\'s seqno reaches the agent\'s stdio `message` event as an exact decimal string',
    { skip: SKIP, timeout: 300_000 }, async () => {
      const nodes = []
      try {
        const x = await startGossip('cpp', 'receiver')
        nodes.push(x)
        const p = await startGossip('rust', 'publisher', { bootstrap: [x.addr] })
        nodes.push(p)
        await waitMeshLink(p, x)
        const ev = await p.pub('a seqno above 2^53')
        assert.equal(typeof ev.seqno, 'string', `rust's published seqno ${JSON.stringify(ev.seqno)}`)
        assert.ok(BigInt(ev.seqno) > 2n ** 53n, `rust's seqno ${ev.seqno} is above 2^53`)
        await x.waitMessages([ev.id])
        const [m] = x.messages().filter(e => e.id === ev.id)
        assert.equal(m.seqno, ev.seqno, `${x}: the seqno of ${JSON.stringify(m)}, digit for digit`)
        assert.equal(m.id, expectedId(TOPIC, m.from, m.seqno), 'the p2pmq id of (topic, from, seqno) as printed')
        // the agent's own seqnos (1, 2, 3 per topic) stay numbers
        const own = await x.pub('a small seqno')
        assert.equal(own.seqno, 1, `${x}: its first seqno on ${TOPIC}: ${JSON.stringify(own)}`)
      } finally {
        await stopNodes(nodes)
      }
    })
})
