// Gossipsub interoperability between js-libp2p gossipsub 14.1.2 (`node peer.mjs
// gossip`) and the C++ agent (`$P2PMQ_BIN agent --stdio`), which speak the same
// line protocol on stdin/stdout (peer.mjs, cmdGossip). Loopback only.
//
//  1. a sparse mixed network (5 cpp + 5 js, each node bootstrapping to the 2
//     nodes started before it, which are one of each kind): wait for a connected
//     mesh, every node publishes 3 messages (short UTF-8, empty, 1500 bytes), every
//     other node receives each one exactly once, with the right origin, seqno,
//     data and p2pmq message id;
//  2. a receiver that keeps no mesh peers on a chain publisher - relay - receiver
//     still gets every message, by IHAVE/IWANT from the relay; every combination of
//     kinds (see MESH for the settings).
// js-only variants run without P2PMQ_BIN (they check the harness and peer.mjs).
// Run: node --test --test-concurrency=1 gossip.test.mjs
import './polyfill.mjs'
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { NODE, PEER_JS, cppAgentSupport, start, stopAll } from './lib.mjs'
import { p2pmqMsgIdFromParts, toHex } from './msgid.mjs'

const TOPIC = 'p2pmq/interop/gossip'
const DEADLINE_MS = 60_000 // a loaded 2-core machine: generous
const POLL_MS = 500
const MESSAGES_PER_NODE = 3
// after the last expected message arrived: how long to keep watching for duplicates
// (two js heartbeats, so gossip and late mesh forwards would show)
const DUPLICATE_WINDOW_MS = 2_500
// the receiver of the gossip-only test must have stayed out of every mesh for this
// long (several heartbeats of 1 s) before anything is published
const STABLE_NO_MESH_MS = 3_000

after(stopAll)

// ---- which kinds can run --------------------------------------------------------
const CPP = cppAgentSupport(['--stdio', '--topic', '--bootstrap', '--gossip'])
const available = kind => kind === 'js' || CPP.bin != null
const skipFor = kinds => kinds.every(available) ? false : `cpp side unavailable: ${CPP.reason}`

// ---- one gossip node of either kind ----------------------------------------------
// Mesh degree settings (all of D, Dlo, Dhi, Dout, Dscore):
//  noMesh:  never GRAFTs; js: D = 0 also PRUNEs every GRAFT it gets (at its next
//           heartbeat). p2pmq rejects D = 0 (validate(): "D must be >= 1"), so its
//           receiver gets D = D_hi = 1, D_lo = 0: it never GRAFTs by itself but
//           would keep a peer that GRAFTs it; the relay must not (meshOfOne).
//  meshOfOne: D = Dlo = Dhi = 1: a relay whose one mesh slot, once taken by the
//           publisher, leaves every later peer to gossip.
const MESH = {
  noMesh: {
    js: ['--D', '0', '--Dlo', '0', '--Dhi', '0', '--Dout', '0', '--Dscore', '0'],
    cpp: ['--gossip', 'D=1', '--gossip', 'D_lo=0', '--gossip', 'D_hi=1', '--gossip', 'D_out=0', '--gossip', 'D_score=0']
  },
  meshOfOne: {
    js: ['--D', '1', '--Dlo', '1', '--Dhi', '1', '--Dout', '0', '--Dscore', '0'],
    cpp: ['--gossip', 'D=1', '--gossip', 'D_lo=1', '--gossip', 'D_hi=1', '--gossip', 'D_out=0', '--gossip', 'D_score=0']
  }
}

function gossipArgv (kind, { topics = [], bootstrap = [], mesh, extra = [] } = {}) {
  const common = [...topics.flatMap(t => ['--topic', t]), ...bootstrap.flatMap(b => ['--bootstrap', b]), ...(mesh ? MESH[mesh][kind] : []), ...extra]
  if (kind === 'js') return [NODE, PEER_JS, 'gossip', ...common]
  // The chains must stay chains: each cpp node in a DHT of its own (a protocol prefix no one
  // else speaks), so topic discovery adds no connections.
  const ownDht = mesh ? ['--set', `dht.protocol_prefix=/gossip-interop-${randomBytes(6).toString('hex')}`] : []
  return [CPP.bin, 'agent', '--listen', '/ip4/127.0.0.1/tcp/0', '--stdio', ...common, ...ownDht]
}

class GossipNode {
  static async start (kind, name, opts = {}) {
    const proc = start(gossipArgv(kind, opts), { name: `${name} (${kind})`, stdin: 'pipe' })
    const n = new GossipNode(kind, name, proc)
    try {
      const m = await proc.waitLine(/^listening (\/ip4\/127\.0\.0\.1\/tcp\/\d+\S*\/p2p\/(\S+))$/, DEADLINE_MS)
      n.addr = m[1]
      n.peerId = m[2]
    } catch (err) {
      await proc.stop()
      throw err
    }
    return n
  }

  constructor (kind, name, proc) {
    this.kind = kind
    this.name = name
    this.proc = proc
  }

  toString () { return `${this.name} (${this.kind} ${this.peerId})` }

  /** Every JSON event printed so far, with its line index. */
  events () {
    const evs = []
    this.proc.lines.forEach((line, i) => {
      if (!line.startsWith('{')) return
      try { evs.push({ ...JSON.parse(line), _line: i }) } catch {}
    })
    return evs
  }

  messages (topic = TOPIC) {
    return this.events().filter(e => e.event === 'message' && e.topic === topic)
  }

  /** Send a command; resolve with the first answer event after it, reject on an error event. */
  async request (line, event, pred = () => true) {
    const from = this.proc.lines.length
    this.proc.send(line)
    const ev = await this.proc.waitFor(l => {
      if (!l.startsWith('{')) return undefined
      const e = JSON.parse(l)
      if (e.event === 'error') return { error: e.message ?? l }
      return e.event === event && pred(e) ? e : undefined
    }, { from, timeoutMs: DEADLINE_MS, what: `an answer "${event}" to "${line}"` })
    if (ev.error != null) throw new Error(`${this}: "${line}" failed: ${ev.error}`)
    return ev
  }

  async mesh (topic = TOPIC) { return (await this.request(`mesh ${topic}`, 'mesh', e => e.topic === topic)).peers }
  async peers () { return (await this.request('peers', 'peers')).peers }
  async pub (data, topic = TOPIC) { return this.request(`pub ${topic} ${data}`, 'published', e => e.topic === topic) }

  /** Resolve once the node has printed a `message` event for every id in ids. */
  waitMessages (ids, topic = TOPIC) {
    const want = new Set(ids)
    const got = new Set()
    return this.proc.waitFor(l => {
      if (!l.startsWith('{')) return false
      const e = JSON.parse(l)
      if (e.event === 'message' && e.topic === topic && want.has(e.id)) got.add(e.id)
      return got.size === want.size
    }, {
      timeoutMs: DEADLINE_MS,
      what: `all ${want.size} expected messages (missing ${[...want].filter(id => !got.has(id)).length}: ` +
        `${[...want].filter(id => !got.has(id)).slice(0, 5).join(' ')}...)`
    }).catch(err => {
      const missing = [...want].filter(id => !got.has(id))
      throw new Error(`${this}: ${missing.length} of ${want.size} messages did not arrive within ${DEADLINE_MS} ms: ` +
        `${missing.slice(0, 8).join(', ')}\n${err.message}`)
    })
  }

  /** Stop the node, alternately by stdin EOF or by SIGTERM; both must exit 0. */
  async stop (how = 'sigterm') {
    if (how === 'eof' && !this.proc.exited) {
      this.proc.closeStdin()
      const t = setTimeout(() => { this.proc.stop() }, 15_000)
      await this.proc.exitPromise
      clearTimeout(t)
      return { code: this.proc.code, signal: this.proc.signal }
    }
    return this.proc.stop(15_000)
  }
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

/** Poll until check() returns a truthy value; fail with describe() after the deadline. */
async function until (what, check, describe = () => '') {
  const deadline = Date.now() + DEADLINE_MS
  for (;;) {
    const v = await check()
    if (v) return v
    if (Date.now() > deadline) throw new Error(`${what}: not reached within ${DEADLINE_MS} ms\n${await describe()}`)
    await sleep(POLL_MS)
  }
}

async function stopNodes (nodes) {
  await Promise.all(nodes.filter(Boolean).map(n => n.proc.stop()))
}

/** Each node's exit after a clean stop (half by stdin EOF, half by SIGTERM) must be 0. */
async function assertCleanStops (nodes) {
  const res = await Promise.all(nodes.map((n, i) => n.stop(i % 2 === 0 ? 'eof' : 'sigterm').then(st => ({ n, st, how: i % 2 === 0 ? 'stdin EOF' : 'SIGTERM' }))))
  for (const { n, st, how } of res) {
    assert.equal(st.signal, null, `${n} was killed by ${st.signal} after ${how}: ${n.proc.describe()}`)
    assert.equal(st.code, 0, `${n} exit code after ${how}: ${n.proc.describe()}`)
  }
}

function expectedId (topic, originPeerId, seqno) {
  return toHex(p2pmqMsgIdFromParts({ topic, from: peerIdFromString(originPeerId), seqno: BigInt(seqno) }))
}

/**
 * Message k of a node: 1 has spaces and non-ASCII (`pub T <rest of line>`, UTF-8);
 * 2 is empty (data present on the wire with length 0: the signed bytes must
 * keep the empty field); 3 is 1500 bytes, over js gossipsub's
 * idontwantMinDataSize (512), so js mesh peers send IDONTWANT for it.
 */
function payload (name, k) {
  if (k % 3 === 2) return ''
  const s = `msg ${k} from ${name} ✓ é ${randomBytes(6).toString('hex')}`
  return k % 3 === 0 ? (s + ' ' + 'x'.repeat(1500)).slice(0, 1500) : s
}

/**
 * Check a `published` event and every node's deliveries of it. publications:
 * [{ node, ev, data }]. Every node other than the origin has it exactly once.
 */
function assertDeliveries (nodes, publications, topic = TOPIC) {
  // per origin: seqnos 1..n on the topic, ids = p2pmq ids of (topic, origin, seqno)
  const byOrigin = new Map()
  for (const p of publications) {
    assert.equal(p.ev.topic, topic)
    assert.equal(p.ev.id, expectedId(topic, p.node.peerId, p.ev.seqno),
      `${p.node}: published id ${p.ev.id} is not the p2pmq id of (${topic}, ${p.node.peerId}, ${p.ev.seqno})`)
    if (!byOrigin.has(p.node)) byOrigin.set(p.node, [])
    byOrigin.get(p.node).push(p.ev.seqno)
  }
  for (const [node, seqnos] of byOrigin) {
    assert.deepEqual(seqnos, seqnos.map((_, i) => i + 1), `${node}: per-topic seqnos count from 1 contiguously`)
  }
  const byId = new Map(publications.map(p => [p.ev.id, p]))
  assert.equal(byId.size, publications.length, 'message ids are distinct')
  const problems = []
  for (const n of nodes) {
    const got = new Map()
    for (const m of n.messages(topic)) got.set(m.id, [...(got.get(m.id) ?? []), m])
    for (const [id, ms] of got) {
      const p = byId.get(id)
      if (p == null) { problems.push(`${n}: unexpected message ${JSON.stringify(ms[0])}`); continue }
      if (p.node === n) problems.push(`${n}: its own publication came back to it: ${JSON.stringify(ms[0])}`)
      if (ms.length !== 1) problems.push(`${n}: message ${id} delivered ${ms.length} times`)
      const m = ms[0]
      if (m.from !== p.node.peerId) problems.push(`${n}: message ${id} from ${m.from}, want ${p.node.peerId}`)
      if (Number(m.seqno) !== p.ev.seqno) problems.push(`${n}: message ${id} seqno ${m.seqno}, want ${p.ev.seqno}`)
      if (m.data !== p.data) problems.push(`${n}: message ${id} data ${JSON.stringify(m.data)}, want ${JSON.stringify(p.data)}`)
      if (m.id !== expectedId(topic, m.from, m.seqno)) problems.push(`${n}: message ${id} is not the p2pmq id of its (topic, from, seqno)`)
    }
    for (const p of publications) {
      if (p.node !== n && !got.has(p.ev.id)) problems.push(`${n}: missing ${p.ev.id} (seqno ${p.ev.seqno} from ${p.node})`)
    }
  }
  assert.deepEqual(problems, [], problems.join('\n'))
}

// ---- the message id ---------------------------------------------------------------
describe('p2pmq message id (msgid.mjs = MessageIdFn::p2pmq)', () => {
  test('fixed vectors', async () => {
    // Ed25519 seed 00 01 02 ... 1f
    const key = await generateKeyPairFromSeed('Ed25519', Uint8Array.from({ length: 32 }, (_, i) => i))
    const pid = peerIdFromPrivateKey(key)
    assert.equal(pid.toString(), '12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeSB')
    assert.equal(toHex(pid.toMultihash().bytes), '00240801122003a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8')
    const id = (topic, seqno) => toHex(p2pmqMsgIdFromParts({ topic, from: pid, seqno }))
    assert.equal(id('t', 1n), 'b279d9b5d2e1347b92083a6edf22947597c8b162c2cef3e2ac7639cc067a8e8b')
    assert.equal(id('t', 2n), 'f35c3a61b881053fd825eb6252b200cf8245409239d497edec38374ef90e3783')
    // a 200-byte topic: its length is a 2-byte uvarint (c8 01)
    assert.equal(id('x'.repeat(200), 0x0102030405060708n), '03272a57b9abc4e8699ace28c071d934a51b74be7de501b49e990ea5875fe48e')
    // topic length counts UTF-8 bytes (8), not characters (7)
    assert.equal(id('p2pmq/é', 1n), '8c80a5df2a5952bf62f51da679426e5572cbc67ffeddf18c87f4b0749cbdb8c9')
    // no from / seqno: sha256(data)
    assert.equal(toHex(p2pmqMsgIdFromParts({ topic: 't', data: Buffer.from('hello') })),
      '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824')
  })
})

// ---- 1. a sparse mixed network -------------------------------------------------------
/** Nodes interleaved by kind; node i bootstraps to nodes i-1 and i-2 (one of each kind when mixed). */
async function startNetwork (kindsInOrder) {
  const nodes = []
  try {
    for (let i = 0; i < kindsInOrder.length; i++) {
      const bootstrap = nodes.slice(Math.max(0, i - 2)).map(n => n.addr)
      nodes.push(await GossipNode.start(kindsInOrder[i], `n${i}`, { topics: [TOPIC], bootstrap }))
    }
  } catch (err) {
    await stopNodes(nodes)
    throw err
  }
  return nodes
}

/** Mutual mesh links (a in mesh(b) and b in mesh(a)) connect every node, and every node has one. */
async function waitForConnectedMesh (nodes) {
  let last = []
  const describeState = () => last.map((m, i) => `${nodes[i]}: mesh ${JSON.stringify(m)}`).join('\n')
  await until('a connected gossipsub mesh over all nodes', async () => {
    last = await Promise.all(nodes.map(n => n.mesh()))
    const index = new Map(nodes.map((n, i) => [n.peerId, i]))
    const adj = nodes.map(() => new Set())
    last.forEach((peers, i) => {
      for (const p of peers) {
        const j = index.get(p)
        if (j != null && last[j].includes(nodes[i].peerId)) { adj[i].add(j); adj[j].add(i) }
      }
    })
    if (adj.some(s => s.size === 0)) return false
    const seen = new Set([0])
    const todo = [0]
    while (todo.length) for (const j of adj[todo.pop()]) if (!seen.has(j)) { seen.add(j); todo.push(j) }
    return seen.size === nodes.length
  }, describeState)
}

const NETWORKS = [
  { name: '5 js nodes (harness self-check)', kinds: ['js', 'js', 'js', 'js', 'js'] },
  { name: '5 cpp agents + 5 js nodes, interleaved', kinds: ['js', 'cpp', 'js', 'cpp', 'js', 'cpp', 'js', 'cpp', 'js', 'cpp'] }
]

for (const net of NETWORKS) {
  describe(`mesh delivery: ${net.name}`, () => {
    test(`every node publishes ${MESSAGES_PER_NODE}, every other node gets each exactly once`,
      { skip: skipFor(net.kinds), timeout: 600_000 }, async () => {
        let nodes = []
        try {
          nodes = await startNetwork(net.kinds)
          await waitForConnectedMesh(nodes)
          // all nodes publish at once; each node's own publications one after another
          const publications = (await Promise.all(nodes.map(async n => {
            const mine = []
            for (let k = 1; k <= MESSAGES_PER_NODE; k++) {
              const data = payload(n.name, k)
              mine.push({ node: n, data, ev: await n.pub(data) })
            }
            return mine
          }))).flat()
          await Promise.all(nodes.map(n =>
            n.waitMessages(publications.filter(p => p.node !== n).map(p => p.ev.id))))
          await sleep(DUPLICATE_WINDOW_MS)
          assertDeliveries(nodes, publications)
          await assertCleanStops(nodes)
        } finally {
          await stopNodes(nodes)
        }
      })
  })
}

// ---- 2. a receiver reached only by gossip (IHAVE/IWANT) --------------------------
const CHAINS = []
for (const relay of ['js', 'cpp']) {
  for (const receiver of ['js', 'cpp']) {
    for (const publisher of ['js', 'cpp']) CHAINS.push({ publisher, relay, receiver })
  }
}

for (const { publisher: pk, relay: rk, receiver: xk } of CHAINS) {
  describe(`gossip only: ${pk} publisher -> ${rk} relay -> ${xk} receiver without mesh peers`, () => {
    test('every message reaches the receiver by IHAVE/IWANT', { skip: skipFor([pk, rk, xk]), timeout: 300_000 }, async () => {
      const nodes = []
      try {
        // A js receiver PRUNEs a GRAFT, so the relay may have a normal mesh (and
        // must obey the PRUNE's backoff); a cpp receiver would keep a GRAFTing
        // relay, so that relay's one mesh slot goes to the publisher first.
        const relayMesh = xk === 'cpp' ? 'meshOfOne' : undefined
        const relay = await GossipNode.start(rk, 'relay', { topics: [TOPIC], mesh: relayMesh })
        nodes.push(relay)
        const pub = await GossipNode.start(pk, 'publisher', { topics: [TOPIC], bootstrap: [relay.addr] })
        nodes.push(pub)
        // the publisher - relay link is a mesh link
        await until('a mesh link publisher - relay', async () => {
          const [r, p] = await Promise.all([relay.mesh(), pub.mesh()])
          return r.includes(pub.peerId) && p.includes(relay.peerId)
        })
        const receiver = await GossipNode.start(xk, 'receiver', { topics: [TOPIC], bootstrap: [relay.addr], mesh: 'noMesh' })
        nodes.push(receiver)
        // connected: the relay's router knows both, both know the relay
        await until('relay, publisher and receiver know each other', async () => {
          const [r, x, p] = await Promise.all([relay.peers(), receiver.peers(), pub.peers()])
          return r.includes(pub.peerId) && r.includes(receiver.peerId) && x.includes(relay.peerId) && p.includes(relay.peerId)
        })
        // the receiver is in no mesh, and stays out for several heartbeats: the
        // relay GRAFTed it and was PRUNEd (then backs off), or never tried
        let since = null
        let last = null
        await until(`the receiver out of every mesh for ${STABLE_NO_MESH_MS} ms`, async () => {
          const [r, x] = await Promise.all([relay.mesh(), receiver.mesh()])
          last = { relay: r, receiver: x }
          if (r.includes(receiver.peerId) || x.length !== 0) { since = null; return false }
          since ??= Date.now()
          return Date.now() - since >= STABLE_NO_MESH_MS
        }, () => `last mesh state: ${JSON.stringify(last)}`)

        // the publisher is connected to the relay only (no PX, no discovery)
        assert.ok(!(await pub.peers()).includes(receiver.peerId), 'publisher and receiver are not connected')
        assert.ok(!(await receiver.peers()).includes(pub.peerId), 'receiver and publisher are not connected')

        const publications = []
        for (let k = 1; k <= MESSAGES_PER_NODE; k++) {
          const data = payload('publisher', k)
          publications.push({ node: pub, data, ev: await pub.pub(data) })
        }
        const ids = publications.map(p => p.ev.id)
        await Promise.all([relay.waitMessages(ids), receiver.waitMessages(ids)])
        await sleep(DUPLICATE_WINDOW_MS)
        assertDeliveries(nodes, publications)
        // and the receiver still keeps no mesh peers
        assert.deepEqual(await receiver.mesh(), [], 'the receiver keeps no mesh peers')
        assert.ok(!(await relay.mesh()).includes(receiver.peerId), 'the relay has not grafted the receiver')
        await assertCleanStops(nodes)
      } finally {
        await stopNodes(nodes)
      }
    })
  })
}

// ---- PX with signed peer records (L5) ------------------------------------------------
// As in go.test.mjs: the pruner leaves the topic, which PRUNEs its mesh with peer exchange
// naming the peer it also knows, with that peer's signed peer record (from identify); the
// pruned node, which knew only the pruner, dials the named peer from the record.
async function waitMeshLink (a, b) {
  await until(`a mesh link ${a} - ${b}`, async () => {
    const [ma, mb] = await Promise.all([a.mesh(), b.mesh()])
    return ma.includes(b.peerId) && mb.includes(a.peerId)
  })
}

describe('gossip PX with signed peer records', () => {
  test('a js node PRUNEs the cpp agent with PX; the agent dials the js peer it names from its record',
    { skip: skipFor(['cpp']), timeout: 300_000 }, async () => {
      const nodes = []
      try {
        const named = await GossipNode.start('js', 'named', { topics: [TOPIC] })
        nodes.push(named)
        const pruner = await GossipNode.start('js', 'pruner', { topics: [TOPIC], bootstrap: [named.addr], extra: ['--px', '1'] })
        nodes.push(pruner)
        const cpp = await GossipNode.start('cpp', 'agent', { topics: [TOPIC], bootstrap: [pruner.addr], extra: ['--set', 'thresholds.accept_px_threshold=0', '--set', `dht.protocol_prefix=/px-${randomBytes(6).toString('hex')}`] })
        nodes.push(cpp)
        await waitMeshLink(cpp, pruner)
        assert.deepEqual(await cpp.peers(), [pruner.peerId], `${cpp} knows only the pruner`)
        await pruner.request(`unsub ${TOPIC}`, 'unsubscribed')
        let last = []
        await until(`${cpp} connected to ${named} named by PX`, async () => {
          last = await cpp.peers()
          return last.includes(named.peerId)
        }, () => `last peers: ${JSON.stringify(last)}\n${cpp.proc.describe()}`)
      } finally {
        await stopNodes(nodes)
      }
    })

  test('the cpp agent PRUNEs a js node with PX; js dials the cpp peer named, from the record we pass on',
    { skip: skipFor(['cpp']), timeout: 300_000 }, async () => {
      const nodes = []
      const ownDht = () => ['--set', `dht.protocol_prefix=/px-${randomBytes(6).toString('hex')}`]
      try {
        const named = await GossipNode.start('cpp', 'named', { topics: [TOPIC], extra: ownDht() })
        nodes.push(named)
        const pruner = await GossipNode.start('cpp', 'pruner', { topics: [TOPIC], bootstrap: [named.addr], extra: ['--set', 'gossip.do_px=true', ...ownDht()] })
        nodes.push(pruner)
        // js follows PX only from peers scoring at least acceptPXThreshold
        const js = await GossipNode.start('js', 'js', { topics: [TOPIC], bootstrap: [pruner.addr], extra: ['--accept-px-threshold', '0'] })
        nodes.push(js)
        await waitMeshLink(js, pruner)
        await waitMeshLink(named, pruner)
        assert.deepEqual(await js.peers(), [pruner.peerId], `${js} knows only the pruner`)
        await pruner.request(`unsub ${TOPIC}`, 'unsubscribed')
        let last = []
        await until(`${js} connected to ${named} named by PX`, async () => {
          last = await js.peers()
          return last.includes(named.peerId)
        }, () => `last peers: ${JSON.stringify(last)}\n${js.proc.describe()}`)
      } finally {
        await stopNodes(nodes)
      }
    })
})
