// Interoperability between the go-libp2p reference peer (go/, `$P2PMQ_GO_PEER`:
// go-libp2p 0.52, go-libp2p-pubsub 0.19, go-libp2p-kad-dht 0.42) and the C++
// `p2pmq` binary (`$P2PMQ_BIN`), in both directions. Loopback only.
//
//  host:   go -> cpp and cpp -> go: ping, identify (what each says of itself),
//          echo through yamux streams; identify push (a protocol the go node
//          starts to serve reaches the cpp agent without a new connection);
//  PX:     a PRUNE with peer exchange each way names a peer by its signed peer
//          record, and the pruned node dials it (L5);
//  gossip: chains cpp-go-cpp and go-cpp-go (only neighbours connected): every
//          node publishes, every other node gets each message exactly once, with
//          the p2pmq id, origin, seqno and data; a receiver without mesh peers
//          gets every message by IHAVE/IWANT through a relay of the other kind;
//  kad:    on /ipfs/kad/1.0.0: FIND_NODE through a bootstrapper of either kind;
//          provider records written by one kind, stored and served by servers of
//          the other kind, found by either;
//  more:   a 1 MB message each way; a message over go's 1 MiB frame (H2); a burst of
//          3000 to a gossip-only cpp receiver through a go relay (H1); stock ids
//          on two topics (H4): the H-numbers of issue 11's wire-conformance review.
// Every case skips (reported as skipped) without P2PMQ_GO_PEER or P2PMQ_BIN.
// Run: P2PMQ_BIN=... P2PMQ_GO_PEER=... node --test --test-concurrency=1 go.test.mjs
// Needs no npm packages (lib.mjs and msgid.mjs use node builtins only).
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { cppAgentSupport, jsonLine, run, start, stopAll, stripP2p, until } from './lib.mjs'
import { p2pmqMsgIdFromParts, toHex } from './msgid.mjs'

const DEADLINE_MS = 60_000 // a loaded 2-core machine: generous
const POLL_MS = 500
const CLIENT_TIMEOUT_MS = 180_000
const TOPIC = 'p2pmq/interop/go'
const MESSAGES_PER_NODE = 3
// after the last expected message: how long to keep watching for duplicates
// (a few heartbeats, so gossip and late mesh forwards would show)
const DUPLICATE_WINDOW_MS = 2_500
// the gossip-only receiver must have stayed out of every mesh this long
const STABLE_NO_MESH_MS = 3_000
const KAD = '/ipfs/kad/1.0.0'

after(stopAll)

// ---- which kinds can run --------------------------------------------------------
function goBin () {
  const bin = process.env.P2PMQ_GO_PEER
  if (bin == null || bin === '') return { bin: null, reason: 'P2PMQ_GO_PEER is not set' }
  try {
    if (!statSync(bin).isFile()) return { bin: null, reason: `P2PMQ_GO_PEER=${bin} is not a file` }
    accessSync(bin, constants.X_OK)
  } catch (err) {
    return { bin: null, reason: `P2PMQ_GO_PEER=${bin} is not executable (${err.code ?? err.message})` }
  }
  return { bin, reason: null }
}
const GO = goBin()
const CPP = cppAgentSupport(['--stdio', '--topic', '--bootstrap', '--gossip', '--dht-mode', '--set', '--echo'])
const SKIP = GO.bin == null ? `go peer unavailable: ${GO.reason}` : CPP.bin == null ? `cpp side unavailable: ${CPP.reason}` : false

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const poll = (what, check, describe) => until(what, check, { timeoutMs: DEADLINE_MS, pollMs: POLL_MS, describe })
// A DHT protocol prefix no other node speaks: keeps a cpp gossip node's discovery
// from adding connections, so chains stay chains.
const privatePrefix = () => `/go-interop-${randomBytes(6).toString('hex')}`

// ---- peer ids and message ids without npm packages ---------------------------------
const B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'
/** The multihash bytes of a base58btc peer id (12D3Koo..., Qm...). */
function peerIdBytes (id) {
  let n = 0n
  for (const c of id) {
    const v = B58.indexOf(c)
    if (v < 0) throw new Error(`bad base58 in peer id ${id}`)
    n = n * 58n + BigInt(v)
  }
  const bytes = []
  while (n > 0n) { bytes.unshift(Number(n & 0xffn)); n >>= 8n }
  for (const c of id) { if (c === '1') bytes.unshift(0); else break }
  return Uint8Array.from(bytes)
}
const expectedId = (topic, origin, seqno) =>
  toHex(p2pmqMsgIdFromParts({ topic, from: peerIdBytes(origin), seqno: BigInt(seqno) }))

// ---- one long-running node of either kind, driven by the stdio line protocol --------
class Node {
  static async start (kind, name, argv) {
    const proc = start(argv, { name: `${name} (${kind})`, stdin: 'pipe' })
    const n = new Node(kind, name, proc)
    try {
      const m = await proc.waitLine(/^listening (\/ip4\/127\.0\.0\.1\/tcp\/\d+\S*\/p2p\/(\S+))$/, DEADLINE_MS)
      n.addr = m[1]
      n.peerId = m[2]
      n.listenAddrs = proc.lines.filter(l => l.startsWith('listening ')).map(l => stripP2p(l.slice('listening '.length)))
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

  events () {
    const evs = []
    for (const line of this.proc.lines) {
      if (!line.startsWith('{')) continue
      try { evs.push(JSON.parse(line)) } catch {}
    }
    return evs
  }

  messages (topic = TOPIC) { return this.events().filter(e => e.event === 'message' && e.topic === topic) }

  /** Send a command; the first answer event after it (an error event, except a bootstrap's, fails). */
  async request (line, event, pred = () => true) {
    const from = this.proc.lines.length
    this.proc.send(line)
    const ev = await this.proc.waitFor(l => {
      if (!l.startsWith('{')) return undefined
      const e = JSON.parse(l)
      if (e.event === 'error' && !String(e.message ?? '').startsWith('bootstrap ')) return { error: e.message ?? l }
      return e.event === event && pred(e) ? e : undefined
    }, { from, timeoutMs: DEADLINE_MS, what: `an answer "${event}" to "${line}"` })
    if (ev.error != null) throw new Error(`${this}: "${line}" failed: ${ev.error}\n${this.proc.describe()}`)
    return ev
  }

  async mesh (topic = TOPIC) { return (await this.request(`mesh ${topic}`, 'mesh', e => e.topic === topic)).peers }
  async peers () { return (await this.request('peers', 'peers')).peers }
  async pub (data, topic = TOPIC) { return this.request(`pub ${topic} ${data}`, 'published', e => e.topic === topic) }
  async table () { return (await this.request('dht-table', 'dht-table')).peers }
  async findPeer (id) { return this.request(`dht-find-peer ${id}`, 'dht-peer', e => e.peer === id) }
  async provide (topic) { return this.request(`dht-provide-topic ${topic}`, 'dht-provided', e => e.topic === topic) }
  async findTopic (topic) { return this.request(`dht-find-topic ${topic}`, 'dht-providers', e => e.topic === topic) }

  /** Resolve once a `message` event has arrived for every id. */
  waitMessages (ids, topic = TOPIC) {
    const want = new Set(ids)
    const got = new Set()
    return this.proc.waitFor(l => {
      if (!l.startsWith('{')) return false
      const e = JSON.parse(l)
      if (e.event === 'message' && e.topic === topic && want.has(e.id)) got.add(e.id)
      return got.size === want.size
    }, { timeoutMs: DEADLINE_MS, what: `all ${want.size} expected messages` }).catch(err => {
      const missing = [...want].filter(id => !got.has(id))
      throw new Error(`${this}: ${missing.length} of ${want.size} messages did not arrive: ${missing.slice(0, 8).join(', ')}\n${err.message}`)
    })
  }
}

async function stopNodes (nodes) {
  await Promise.all(nodes.filter(Boolean).map(n => n.proc.stop()))
}

/** Both kinds stop cleanly (exit 0) on SIGTERM. */
async function assertCleanStops (nodes) {
  for (const n of nodes) {
    const st = await n.proc.stop(15_000)
    assert.equal(st.signal, null, `${n} was killed by ${st.signal}: ${n.proc.describe()}`)
    assert.equal(st.code, 0, `${n} exit code after SIGTERM: ${n.proc.describe()}`)
  }
}

// ---- gossip nodes -----------------------------------------------------------------
// Mesh settings: noMesh never GRAFTs (go: D = Dlo = Dhi = Dout = 0, the spec's
// bootstrapper setting, also PRUNEs every GRAFT; p2pmq refuses D = 0, so D_lo = 0:
// it never GRAFTs by itself but keeps a peer that GRAFTs it). meshOfOne: a relay
// whose mesh, once it holds the publisher, takes no one else (go refuses
// D = Dlo = Dhi = 1 with Dout = 0 (Dout < D/2), so D = Dhi = 2, Dlo = 1: it grafts
// only below one peer, and opportunistic grafting needs a mesh of more than one).
const MESH = {
  noMesh: {
    go: ['--D', '0', '--Dlo', '0', '--Dhi', '0', '--Dout', '0', '--Dscore', '0'],
    cpp: ['--gossip', 'D=1', '--gossip', 'D_lo=0', '--gossip', 'D_hi=1', '--gossip', 'D_out=0', '--gossip', 'D_score=0']
  },
  meshOfOne: {
    go: ['--D', '2', '--Dlo', '1', '--Dhi', '2', '--Dout', '0', '--Dscore', '0'],
    cpp: ['--gossip', 'D=1', '--gossip', 'D_lo=1', '--gossip', 'D_hi=1', '--gossip', 'D_out=0', '--gossip', 'D_score=0']
  }
}

function gossipArgv (kind, { topics = [TOPIC], bootstrap = [], mesh, extra = [] } = {}) {
  const common = [...topics.flatMap(t => ['--topic', t]), ...bootstrap.flatMap(b => ['--bootstrap', b]), ...(mesh ? MESH[mesh][kind] : [])]
  if (kind === 'go') return [GO.bin, 'gossip', ...common, ...extra]
  return [CPP.bin, 'agent', '--listen', '/ip4/127.0.0.1/tcp/0', '--stdio', '--grpc', 'off', ...common,
    '--set', `dht.protocol_prefix=${privatePrefix()}`, ...extra]
}

const startGossip = (kind, name, opts) => Node.start(kind, name, gossipArgv(kind, opts))

/** Message k of a node: text with spaces and non-ASCII, empty, 1500 bytes (over the IDONTWANT size). */
function payload (name, k) {
  if (k % 3 === 2) return ''
  const s = `msg ${k} from ${name} ✓ é ${randomBytes(6).toString('hex')}`
  return k % 3 === 0 ? (s + ' ' + 'x'.repeat(1500)).slice(0, 1500) : s
}

/** publications: [{ node, data, ev }]; every node but the origin has each exactly once, intact. */
function assertDeliveries (nodes, publications, topic = TOPIC) {
  const byOrigin = new Map()
  for (const p of publications) {
    assert.equal(p.ev.id, expectedId(topic, p.node.peerId, p.ev.seqno),
      `${p.node}: published id ${p.ev.id} is not the p2pmq id of (${topic}, ${p.node.peerId}, ${p.ev.seqno})`)
    if (!byOrigin.has(p.node)) byOrigin.set(p.node, [])
    byOrigin.get(p.node).push(p.ev.seqno)
  }
  for (const [node, seqnos] of byOrigin) {
    assert.deepEqual(seqnos, seqnos.map((_, i) => i + 1), `${node}: per-topic seqnos count from 1`)
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
      if (p.node === n) problems.push(`${n}: its own publication came back: ${JSON.stringify(ms[0])}`)
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

async function publishAll (nodes) {
  return (await Promise.all(nodes.map(async n => {
    const mine = []
    for (let k = 1; k <= MESSAGES_PER_NODE; k++) {
      const data = payload(n.name, k)
      mine.push({ node: n, data, ev: await n.pub(data) })
    }
    return mine
  }))).flat()
}

async function waitMeshLink (a, b) {
  let last = null
  await poll(`a mesh link ${a} - ${b}`, async () => {
    const [ma, mb] = await Promise.all([a.mesh(), b.mesh()])
    last = { [a.name]: ma, [b.name]: mb }
    return ma.includes(b.peerId) && mb.includes(a.peerId)
  }, () => `last mesh state: ${JSON.stringify(last)}`)
}

// ---- host: ping, identify, echo ---------------------------------------------------
function clientCmd (kind, sub, ...args) {
  return kind === 'go' ? [GO.bin, sub, ...args] : [CPP.bin, sub, ...args]
}
function listenCmd (kind) {
  return kind === 'go' ? [GO.bin, 'listen', '--echo'] : [CPP.bin, 'agent', '--listen', '/ip4/127.0.0.1/tcp/0', '--grpc', 'off', '--echo']
}
const AGENT_PREFIX = { go: 'go-libp2p/', cpp: 'p2pmq/' }

function assertExit0 (res, what) {
  assert.ok(!res.timedOut, `${what} timed out: ${res.describe()}`)
  assert.equal(res.code, 0, `${what} failed: ${res.describe()}\nstdout: ${res.stdout.join('\n')}`)
}

for (const [d, l] of [['go', 'cpp'], ['cpp', 'go']]) {
  describe(`host: ${d} dialer -> ${l} listener`, () => {
    test('ping, identify and echo', { skip: SKIP, timeout: 300_000 }, async () => {
      const proc = start(listenCmd(l), { name: `${l} listener` })
      try {
        const m = await proc.waitLine(/^listening (\/ip4\/127\.0\.0\.1\/tcp\/\d+\S*\/p2p\/(\S+))$/, DEADLINE_MS)
        const [addr, peerId] = [m[1], m[2]]

        const ping = await run(clientCmd(d, 'ping', addr, '--count', '3'), { timeoutMs: CLIENT_TIMEOUT_MS })
        assertExit0(ping, 'ping')
        const pongs = ping.stdout.map(line => line.match(/^pong (\d+) from (\S+) rtt=([\d.]+) ms$/)).filter(Boolean)
        assert.equal(pongs.length, 3, `3 pong lines:\n${ping.stdout.join('\n')}`)
        for (const p of pongs) assert.equal(p[2], peerId, 'pong from the listener')

        const idRes = await run(clientCmd(d, 'identify', addr), { timeoutMs: CLIENT_TIMEOUT_MS })
        assertExit0(idRes, 'identify')
        const id = jsonLine(idRes)
        assert.equal(id.peer, peerId)
        assert.ok(String(id.agentVersion).startsWith(AGENT_PREFIX[l]), `agentVersion ${id.agentVersion} starts with ${AGENT_PREFIX[l]}`)
        assert.equal(typeof id.protocolVersion, 'string')
        for (const p of ['/ipfs/id/1.0.0', '/ipfs/ping/1.0.0', '/ipfs/id/push/1.0.0', '/p2pmq/echo/1.0.0']) {
          assert.ok(id.protocols.includes(p), `protocols ${JSON.stringify(id.protocols)} include ${p}`)
        }
        assert.ok(id.listenAddrs.map(stripP2p).includes(stripP2p(addr)), `listenAddrs ${JSON.stringify(id.listenAddrs)} contain ${stripP2p(addr)}`)
        assert.match(String(id.observedAddr), /^\/ip4\/127\.0\.0\.1\/tcp\/\d+(\/p2p\/\S+)?$/, 'observedAddr on 127.0.0.1')

        if (d === 'cpp') {
          // the go listener's yamux under 32 concurrent streams (go-peer has no echo client)
          const echo = await run(clientCmd(d, 'echo', addr, '--streams', '32', '--bytes', String(1 << 20)), { timeoutMs: CLIENT_TIMEOUT_MS })
          assertExit0(echo, 'echo')
          const r = jsonLine(echo)
          assert.equal(r.ok, true, `echo result ${JSON.stringify(r)}`)
        }
      } finally {
        await proc.stop()
      }
    })
  })
}

describe('key files', () => {
  test('the go peer takes a key written by `p2pmq keygen` (binary protobuf), its hex, and a hex Ed25519 seed',
    { skip: SKIP, timeout: 120_000 }, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'p2pmq-go-keys-'))
      try {
        const bin = join(dir, 'key.bin')
        const gen = await run([CPP.bin, 'keygen', '--out', bin], { timeoutMs: CLIENT_TIMEOUT_MS })
        assertExit0(gen, 'p2pmq keygen')
        const id = gen.stdout.map(l => l.trim()).find(l => /^(12D3Koo|Qm)\S+$/.test(l))
        assert.ok(id, `p2pmq keygen printed a peer id: ${gen.stdout.join('\n')}`)
        writeFileSync(join(dir, 'key.hex'), readFileSync(bin).toString('hex') + '\n')
        // the seed 00 01 ... 1f: the vector of gossip.test.mjs
        writeFileSync(join(dir, 'seed.hex'), Buffer.from(Array.from({ length: 32 }, (_, i) => i)).toString('hex') + '\n')
        for (const [file, want] of [['key.bin', id], ['key.hex', id], ['seed.hex', '12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeSB']]) {
          const proc = start([GO.bin, 'listen', '--key', join(dir, file)], { name: `go listener (${file})` })
          try {
            const m = await proc.waitLine(/^listening \S+\/p2p\/(\S+)$/, DEADLINE_MS)
            assert.equal(m[1], want, `peer id from ${file}`)
          } finally {
            await proc.stop()
          }
        }
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    })
})

describe('identify push', () => {
  test('a protocol the go node starts serving reaches the cpp agent by push; go knows the agent\'s protocols',
    { skip: SKIP, timeout: 300_000 }, async () => {
      const nodes = []
      try {
        // The cpp DHT takes a peer into its routing table when identify (or a push)
        // lists the DHT protocol: a private prefix that only the go node's new
        // handler serves makes the push visible in dht-table.
        const prefix = privatePrefix()
        const cpp = await Node.start('cpp', 'agent', [CPP.bin, 'agent', '--listen', '/ip4/127.0.0.1/tcp/0', '--stdio', '--grpc', 'off',
          '--dht-mode', 'server', '--set', `dht.protocol_prefix=${prefix}`])
        nodes.push(cpp)
        const go = await startGossip('go', 'go', { topics: [], bootstrap: [cpp.addr] })
        nodes.push(go)
        await poll('the go node connected and identified', async () => {
          const p = await go.request(`protocols ${cpp.peerId}`, 'protocols')
          return p.protocols.includes('/ipfs/id/1.0.0')
        })
        const protos = (await go.request(`protocols ${cpp.peerId}`, 'protocols')).protocols
        for (const p of ['/ipfs/ping/1.0.0', '/meshsub/1.1.0', `${prefix}/kad/1.0.0`]) {
          assert.ok(protos.includes(p), `go learned ${p} from the agent's identify: ${JSON.stringify(protos)}`)
        }
        assert.ok(!(await cpp.table()).includes(go.peerId), 'the go node serves no DHT yet: not in the agent\'s table')
        const connectionsBefore = (await cpp.peers()).connections
        await go.request(`handle ${prefix}/kad/1.0.0`, 'handled')
        let last = []
        await poll('the agent\'s routing table taking in the go node after its identify push', async () => {
          last = await cpp.table()
          return last.includes(go.peerId)
        }, () => `last table: ${JSON.stringify(last)}\n${cpp.proc.describe()}`)
        // the agent identifies a connection once: on the same connection, only a push tells it
        assert.equal((await cpp.peers()).connections, connectionsBefore, 'learned on the same connection')
      } finally {
        await stopNodes(nodes)
      }
    })
})

// ---- PX with signed peer records (L5) ------------------------------------------------
// A PRUNE's peer exchange names peers with their signed peer records (RFC 0002/0003 as
// go-libp2p seals them: domain libp2p-peer-record, payload type 0x0301), which the pruner got
// through identify. The pruned node knows nothing else of the named peer: it dials the
// addresses of the record. The pruner leaves the topic, which PRUNEs its mesh with PX.
describe('gossip PX with signed peer records', () => {
  test('a go node PRUNEs the cpp agent with PX; the agent dials the go peer it names from its record',
    { skip: SKIP, timeout: 300_000 }, async () => {
      const nodes = []
      try {
        const named = await startGossip('go', 'named')
        nodes.push(named)
        const pruner = await startGossip('go', 'pruner', { bootstrap: [named.addr], extra: ['--px', '1'] })
        nodes.push(pruner)
        const cpp = await startGossip('cpp', 'agent', { bootstrap: [pruner.addr], extra: ['--set', 'thresholds.accept_px_threshold=0'] })
        nodes.push(cpp)
        await waitMeshLink(cpp, pruner)
        assert.deepEqual(await cpp.peers(), [pruner.peerId], `${cpp} knows only the pruner`)
        await pruner.request(`unsub ${TOPIC}`, 'unsubscribed')
        let last = []
        await poll(`${cpp} connected to ${named} named by PX`, async () => {
          last = await cpp.peers()
          return last.includes(named.peerId)
        }, () => `last peers: ${JSON.stringify(last)}\n${cpp.proc.describe()}`)
      } finally {
        await stopNodes(nodes)
      }
    })

  test('the cpp agent PRUNEs a go node with PX; go dials the cpp peer named, from the record we pass on',
    { skip: SKIP, timeout: 300_000 }, async () => {
      const nodes = []
      try {
        const named = await startGossip('cpp', 'named')
        nodes.push(named)
        const pruner = await startGossip('cpp', 'pruner', { bootstrap: [named.addr], extra: ['--set', 'gossip.do_px=true'] })
        nodes.push(pruner)
        // go follows PX only from peers scoring at least its acceptPXThreshold (100 by default here)
        const go = await startGossip('go', 'go', { bootstrap: [pruner.addr], extra: ['--accept-px-threshold', '0'] })
        nodes.push(go)
        await waitMeshLink(go, pruner)
        await waitMeshLink(named, pruner)
        assert.deepEqual(await go.peers(), [pruner.peerId], `${go} knows only the pruner`)
        await pruner.request(`unsub ${TOPIC}`, 'unsubscribed')
        let last = []
        await poll(`${go} connected to ${named} named by PX`, async () => {
          last = await go.peers()
          return last.includes(named.peerId)
        }, () => `last peers: ${JSON.stringify(last)}\n${go.proc.describe()}`)
      } finally {
        await stopNodes(nodes)
      }
    })
})

// ---- direct peers ----------------------------------------------------------------
// A node configured with the other kind as a direct peer dials it by itself (no bootstrap),
// never takes it into its mesh (it PRUNEs the other's GRAFT), and messages still flow both
// ways: it forwards everything to its direct peer and accepts what the direct peer sends.
describe('direct peers', () => {
  for (const [dk, ok] of [['cpp', 'go'], ['go', 'cpp']]) {
    test(`${dk} has a ${ok} node as a direct peer: dialed, kept out of the mesh, messages both ways`,
      { skip: SKIP, timeout: 300_000 }, async () => {
        const nodes = []
        try {
          const other = await startGossip(ok, 'other')
          nodes.push(other)
          const direct = dk === 'cpp' ? ['--set', `gossip.direct_peers=${other.addr}`] : ['--direct', other.addr]
          const d = await startGossip(dk, 'with-direct', { extra: direct })
          nodes.push(d)
          await poll(`${d} dials its direct peer ${other}`, async () => (await d.peers()).includes(other.peerId))
          const sent = [await d.pub(`from ${d.name}`), await other.pub(`from ${other.name}`)]
          await other.waitMessages([sent[0].id])
          await d.waitMessages([sent[1].id])
          assert.ok(!(await d.mesh()).includes(other.peerId), `${d} took its direct peer into its mesh`)
        } finally {
          await stopNodes(nodes)
        }
      })
  }
})

// ---- gossip: mixed chains ---------------------------------------------------------
for (const kinds of [['cpp', 'go', 'cpp'], ['go', 'cpp', 'go']]) {
  describe(`gossip chain ${kinds.join(' - ')}`, () => {
    test('every node publishes, every other node gets each message exactly once',
      { skip: SKIP, timeout: 300_000 }, async () => {
        const nodes = []
        try {
          const middle = await startGossip(kinds[1], 'middle')
          nodes.push(middle)
          const left = await startGossip(kinds[0], 'left', { bootstrap: [middle.addr] })
          nodes.push(left)
          const right = await startGossip(kinds[2], 'right', { bootstrap: [middle.addr] })
          nodes.push(right)
          await waitMeshLink(left, middle)
          await waitMeshLink(right, middle)
          // a chain: the ends know only the middle
          assert.deepEqual(await left.peers(), [middle.peerId], `${left} knows only the middle`)
          assert.deepEqual(await right.peers(), [middle.peerId], `${right} knows only the middle`)

          const ordered = [left, middle, right]
          const publications = await publishAll(ordered)
          await Promise.all(ordered.map(n => n.waitMessages(publications.filter(p => p.node !== n).map(p => p.ev.id))))
          await sleep(DUPLICATE_WINDOW_MS)
          assertDeliveries(ordered, publications)
          // each kind scores its neighbours of the other kind with p2pmq's parameters:
          // nothing they did cost them
          for (const n of ordered) {
            const scores = (await n.request('scores', 'scores')).scores
            for (const c of ordered.filter(c => c.kind !== n.kind)) {
              if (!(c.peerId in scores)) continue // not a neighbour
              assert.ok(scores[c.peerId] >= 0, `${n} scores ${c} ${scores[c.peerId]}: ${JSON.stringify(scores)}`)
            }
            assert.ok(Object.keys(scores).length >= 1, `${n} has scores: ${JSON.stringify(scores)}`)
          }
          await assertCleanStops(ordered)
        } finally {
          await stopNodes(nodes)
        }
      })
  })
}

// ---- gossip: a sparse mixed network --------------------------------------------------
/** Mutual mesh links connect every node, and every node has one. */
async function waitForConnectedMesh (nodes) {
  let last = []
  await poll('a connected gossipsub mesh over all nodes', async () => {
    last = await Promise.all(nodes.map(n => n.mesh()))
    const index = new Map(nodes.map((n, i) => [n.peerId, i]))
    const adj = nodes.map(() => new Set())
    last.forEach((peers, i) => {
      for (const p of peers) {
        const j = index.get(p)
        if (j != null && last[j].includes(nodes[i].peerId)) { adj[i].add(j); adj[j].add(i) }
      }
    })
    if (adj.some(a => a.size === 0)) return false
    const seen = new Set([0])
    const todo = [0]
    while (todo.length) for (const j of adj[todo.pop()]) if (!seen.has(j)) { seen.add(j); todo.push(j) }
    return seen.size === nodes.length
  }, () => last.map((m, i) => `${nodes[i]}: mesh ${JSON.stringify(m)}`).join('\n'))
}

describe('gossip: 3 go + 3 cpp nodes, interleaved, each bootstrapping to the two before it', () => {
  test(`every node publishes ${MESSAGES_PER_NODE}, every other node gets each exactly once`, { skip: SKIP, timeout: 300_000 }, async () => {
    const nodes = []
    try {
      for (const [i, kind] of ['go', 'cpp', 'go', 'cpp', 'go', 'cpp'].entries()) {
        nodes.push(await startGossip(kind, `n${i}`, { bootstrap: nodes.slice(Math.max(0, i - 2)).map(n => n.addr) }))
      }
      await waitForConnectedMesh(nodes)
      const publications = await publishAll(nodes)
      await Promise.all(nodes.map(n => n.waitMessages(publications.filter(p => p.node !== n).map(p => p.ev.id))))
      await sleep(DUPLICATE_WINDOW_MS)
      assertDeliveries(nodes, publications)
    } finally {
      await stopNodes(nodes)
    }
  })
})

// ---- gossip only (IHAVE/IWANT) ------------------------------------------------------
const CHAINS = []
for (const relay of ['go', 'cpp']) {
  for (const receiver of ['go', 'cpp']) {
    for (const publisher of ['go', 'cpp']) {
      const ks = [publisher, relay, receiver]
      if (ks.includes('go') && ks.includes('cpp')) CHAINS.push({ publisher, relay, receiver })
    }
  }
}

for (const { publisher: pk, relay: rk, receiver: xk } of CHAINS) {
  describe(`gossip only: ${pk} publisher -> ${rk} relay -> ${xk} receiver without mesh peers`, () => {
    test('every message reaches the receiver by IHAVE/IWANT, exactly once', { skip: SKIP, timeout: 300_000 }, async () => {
      const nodes = []
      try {
        // a go receiver PRUNEs a GRAFT; a cpp receiver keeps one, so that relay's mesh
        // is full once it holds the publisher
        const relay = await startGossip(rk, 'relay', { mesh: xk === 'cpp' ? 'meshOfOne' : undefined })
        nodes.push(relay)
        const pub = await startGossip(pk, 'publisher', { bootstrap: [relay.addr] })
        nodes.push(pub)
        await waitMeshLink(pub, relay)
        const receiver = await startGossip(xk, 'receiver', { bootstrap: [relay.addr], mesh: 'noMesh' })
        nodes.push(receiver)
        await poll('relay, publisher and receiver know each other', async () => {
          const [r, x, p] = await Promise.all([relay.peers(), receiver.peers(), pub.peers()])
          return r.includes(pub.peerId) && r.includes(receiver.peerId) && x.includes(relay.peerId) && p.includes(relay.peerId)
        })
        let since = null
        let last = null
        await poll(`the receiver out of every mesh for ${STABLE_NO_MESH_MS} ms`, async () => {
          const [r, x] = await Promise.all([relay.mesh(), receiver.mesh()])
          last = { relay: r, receiver: x }
          if (r.includes(receiver.peerId) || x.length !== 0) { since = null; return false }
          since ??= Date.now()
          return Date.now() - since >= STABLE_NO_MESH_MS
        }, () => `last mesh state: ${JSON.stringify(last)}`)
        assert.ok(!(await pub.peers()).includes(receiver.peerId), 'publisher and receiver are not connected')

        const publications = []
        for (let k = 1; k <= MESSAGES_PER_NODE; k++) {
          const data = payload('publisher', k)
          publications.push({ node: pub, data, ev: await pub.pub(data) })
        }
        const ids = publications.map(p => p.ev.id)
        await Promise.all([relay.waitMessages(ids), receiver.waitMessages(ids)])
        await sleep(DUPLICATE_WINDOW_MS)
        assertDeliveries([relay, pub, receiver], publications)
        assert.deepEqual(await receiver.mesh(), [], 'the receiver keeps no mesh peers')
        assert.ok(!(await relay.mesh()).includes(receiver.peerId), 'the relay has not grafted the receiver')
      } finally {
        await stopNodes(nodes)
      }
    })
  })
}

// ---- kad on /ipfs/kad/1.0.0 -----------------------------------------------------------
function dhtArgv (kind, { mode = 'server', bootstrap = [] } = {}) {
  const boot = bootstrap.flatMap(b => ['--bootstrap', b])
  if (kind === 'go') return [GO.bin, 'dht', '--mode', mode === 'bootstrapper' ? 'server' : mode, '--protocol', KAD, ...boot]
  return [CPP.bin, 'agent', '--stdio', '--grpc', 'off', '--listen', '/ip4/127.0.0.1/tcp/0', '--dht-mode', mode,
    '--set', 'dht.protocol_prefix=/ipfs', ...boot]
}
const startDht = (kind, name, opts = {}) => Node.start(kind, `${name} ${opts.mode ?? 'server'}`, dhtArgv(kind, opts))

async function waitTable (node, peers) {
  let last = []
  await poll(`${node}: routing table holding ${peers.map(p => p.name).join(', ')}`, async () => {
    last = await node.table()
    return peers.every(p => last.includes(p.peerId))
  }, () => `last table of ${node}: ${JSON.stringify(last)}\nwanted: ${peers.map(String).join(', ')}`)
}

function assertFound (finder, target, ev) {
  assert.equal(ev.peer, target.peerId)
  assert.equal(ev.found, true, `${finder} did not find ${target}: ${JSON.stringify(ev)}\n${finder.proc.describe()}`)
  const got = (ev.addrs ?? []).map(stripP2p)
  assert.ok(target.listenAddrs.some(a => got.includes(a)),
    `${finder} found ${target} at ${JSON.stringify(ev.addrs)}, none of its listen addresses ${JSON.stringify(target.listenAddrs)}`)
}

for (const boot of ['cpp', 'go']) {
  const other = boot === 'cpp' ? 'go' : 'cpp'
  describe(`kad ${KAD}: FIND_NODE through a ${boot} bootstrapper`, () => {
    test(`a ${other} server and a ${boot} server bootstrapped from it find each other`, { skip: SKIP, timeout: 300_000 }, async () => {
      const nodes = []
      try {
        const b = await startDht(boot, 'bootstrapper', { mode: 'bootstrapper' })
        nodes.push(b)
        const x = await startDht(other, 'x', { bootstrap: [b.addr] })
        nodes.push(x)
        const y = await startDht(boot, 'y', { bootstrap: [b.addr] })
        nodes.push(y)
        await waitTable(b, [x, y])
        await waitTable(x, [b])
        await waitTable(y, [b])
        // neither is connected to the other: a lookup through the bootstrapper
        assertFound(x, y, await x.findPeer(y.peerId))
        assertFound(y, x, await y.findPeer(x.peerId))
      } finally {
        await stopNodes(nodes)
      }
    })
  })
}

for (const [serverKind, clientKind] of [['cpp', 'go'], ['go', 'cpp']]) {
  describe(`kad ${KAD}: provider records of ${clientKind} clients on ${serverKind} servers`, () => {
    test(`written by a ${clientKind} client, stored and served by ${serverKind} servers, found by both kinds`,
      { skip: SKIP, timeout: 300_000 }, async () => {
        const nodes = []
        try {
          const s0 = await startDht(serverKind, 's0')
          nodes.push(s0)
          const s1 = await startDht(serverKind, 's1', { bootstrap: [s0.addr] })
          nodes.push(s1)
          await waitTable(s0, [s1])
          const servers = [s0, s1]
          const all = servers.map(s => s.addr)
          // clients: no one's routing table holds them, so no record lands on a client
          const provider = await startDht(clientKind, 'provider', { mode: 'client', bootstrap: all })
          nodes.push(provider)
          const finder = await startDht(clientKind, 'finder', { mode: 'client', bootstrap: all })
          nodes.push(finder)
          const otherFinder = await startDht(serverKind, 'otherFinder', { mode: 'client', bootstrap: all })
          nodes.push(otherFinder)
          await Promise.all([provider, finder, otherFinder].map(c => waitTable(c, servers)))

          const topic = `p2pmq/interop/go/${clientKind}-writes-é-${randomBytes(4).toString('hex')}`
          const ev = await provider.provide(topic)
          assert.ok(ev.peers >= 1, `${provider}: ADD_PROVIDER reached no server: ${JSON.stringify(ev)}`)
          for (const f of [finder, otherFinder]) {
            let last = null
            const entry = await poll(`${f} finding ${provider} as a provider`, async () => {
              last = await f.findTopic(topic)
              return (last.providers ?? []).find(p => p.peer === provider.peerId)
            }, () => `last answer: ${JSON.stringify(last)}`)
            const got = (entry.addrs ?? []).map(stripP2p)
            assert.ok(provider.listenAddrs.some(a => got.includes(a)),
              `${f}: provider came with ${JSON.stringify(entry.addrs)}, none of ${JSON.stringify(provider.listenAddrs)}`)
          }
          const none = await finder.findTopic(`p2pmq/interop/go/nobody-${randomBytes(4).toString('hex')}`)
          assert.deepEqual(none.providers, [], `${finder}: providers of an unprovided topic`)
          const tables = await Promise.all(servers.map(s => s.table()))
          servers.forEach((s, i) => {
            for (const c of [provider, finder, otherFinder]) assert.ok(!tables[i].includes(c.peerId), `${s} has the client ${c} in its table`)
          })
        } finally {
          await stopNodes(nodes)
        }
      })
  })
}

// ---- large messages, bursts, stock ids -------------------------------------------------
// A message of LARGE_DATA bytes encodes to less than go's 1 MiB frame limit
// (pubsub.DefaultMaxMessageSize) and fits p2pmq's stdin line (1 MiB).
const LARGE_DATA = 1_000_000

for (const [a, b] of [['cpp', 'go'], ['go', 'cpp']]) {
  describe(`large message ${a} -> ${b}`, () => {
    test(`a ${LARGE_DATA}-byte message arrives intact, once`, { skip: SKIP, timeout: 300_000 }, async () => {
      const nodes = []
      try {
        const x = await startGossip(b, 'receiver')
        nodes.push(x)
        const p = await startGossip(a, 'publisher', { bootstrap: [x.addr] })
        nodes.push(p)
        await waitMeshLink(p, x)
        const data = 'L' + randomBytes(LARGE_DATA / 2).toString('hex').slice(1)
        const publications = [{ node: p, data, ev: await p.pub(data) }]
        await x.waitMessages(publications.map(q => q.ev.id))
        await sleep(DUPLICATE_WINDOW_MS)
        assertDeliveries(nodes, publications)
      } finally {
        await stopNodes(nodes)
      }
    })
  })
}

// H2 (issue 11's wire-conformance review): go reads RPC frames of at most 1 MiB
// (pubsub.DefaultMaxMessageSize) and resets the stream on a longer one, losing what
// is queued behind it. A message whose encoding passes 1 MiB must be refused by the
// publisher or reach go, and a message after it must arrive either way.
const OVER_FRAME_DATA = (1 << 20) - 100 // + topic, from, seqno, signature: over 1 MiB; the stdin line stays under 1 MiB

describe('a message over go\'s 1 MiB frame limit, cpp -> go', () => {
  test('refused by the publisher or delivered; the next message arrives either way',
    { skip: SKIP, timeout: 300_000 }, async () => {
      const nodes = []
      try {
        const x = await startGossip('go', 'receiver')
        nodes.push(x)
        const p = await startGossip('cpp', 'publisher', { bootstrap: [x.addr] })
        nodes.push(p)
        await waitMeshLink(p, x)
        const big = 'B'.repeat(OVER_FRAME_DATA)
        const from = p.proc.lines.length
        p.proc.send(`pub ${TOPIC} ${big}`)
        const bigEv = await p.proc.waitFor(l => {
          if (!l.startsWith('{')) return undefined
          const e = JSON.parse(l)
          return e.event === 'published' || e.event === 'error' ? e : undefined
        }, { from, timeoutMs: DEADLINE_MS, what: 'an answer to the big pub' })
        const small = { node: p, data: 'after the big one', ev: await p.pub('after the big one') }
        const publications = [small]
        if (bigEv.event === 'published') publications.unshift({ node: p, data: big, ev: bigEv })
        await x.waitMessages(publications.map(q => q.ev.id))
        await sleep(DUPLICATE_WINDOW_MS)
        // seqnos: a refused publication gives its seqno back (contiguous per topic)
        assertDeliveries(nodes, publications)
      } finally {
        await stopNodes(nodes)
      }
    })
})

// H1 (issue 11's wire-conformance review): go answers an IWANT in one RPC however many messages it
// holds; p2pmq takes at most 5000 messages from one RPC, so it must not ask for more at once.
const BURST = 3000
const BURST_SIZE = 40

describe(`gossip only, a burst: go publisher -> go relay -> cpp receiver without mesh peers`, () => {
  test(`all ${BURST} messages of a burst reach the receiver by IHAVE/IWANT, exactly once`,
    { skip: SKIP, timeout: 300_000 }, async () => {
      const nodes = []
      try {
        const relay = await startGossip('go', 'relay', { mesh: 'meshOfOne' })
        nodes.push(relay)
        const pub = await startGossip('go', 'publisher', { bootstrap: [relay.addr] })
        nodes.push(pub)
        await waitMeshLink(pub, relay)
        const receiver = await startGossip('cpp', 'receiver', { bootstrap: [relay.addr], mesh: 'noMesh' })
        nodes.push(receiver)
        await poll('the receiver connected to the relay, out of its mesh', async () => {
          const [r, x] = await Promise.all([relay.peers(), receiver.mesh()])
          return r.includes(receiver.peerId) && x.length === 0 && !(await relay.mesh()).includes(receiver.peerId)
        })
        await pub.request(`pubn ${TOPIC} ${BURST} ${BURST_SIZE} 0`, 'pubn-done')
        const want = new Set(Array.from({ length: BURST }, (_, i) => expectedId(TOPIC, pub.peerId, i + 1)))
        await receiver.waitMessages([...want])
        await sleep(DUPLICATE_WINDOW_MS)
        const got = receiver.messages().filter(m => m.from === pub.peerId)
        assert.equal(got.length, BURST, `${receiver}: ${got.length} messages, want ${BURST} (no duplicates)`)
        assert.deepEqual(new Set(got.map(m => m.id)), want)
        assert.deepEqual(await receiver.mesh(), [], 'the receiver keeps no mesh peers')
      } finally {
        await stopNodes(nodes)
      }
    })
})

// H4 (issue 11's wire-conformance review): with the stock id (from || seqno), seqnos must not
// repeat across topics (p2pmq: a per-origin topic number in the top bits; go: one counter).
const stockId = (origin, seqno) => toHex(Buffer.concat([peerIdBytes(origin), Buffer.from(BigInt(seqno).toString(16).padStart(16, '0'), 'hex')]))

describe('stock message ids (from || seqno), two topics', () => {
  test('each kind publishes on two topics, the other gets every message exactly once',
    { skip: SKIP, timeout: 300_000 }, async () => {
      const topics = [TOPIC + '/a', TOPIC + '/b']
      const nodes = []
      try {
        const g = await startGossip('go', 'go', { topics, extra: ['--msgid', 'stock'] })
        nodes.push(g)
        const c = await startGossip('cpp', 'cpp', { topics, bootstrap: [g.addr], extra: ['--gossip', 'message_id_fn=stock'] })
        nodes.push(c)
        for (const t of topics) {
          await poll(`a mesh link on ${t}`, async () => (await g.mesh(t)).includes(c.peerId) && (await c.mesh(t)).includes(g.peerId))
        }
        const sent = [] // { node, topic, data, ev }
        for (const n of nodes) {
          for (const t of topics) {
            for (let k = 1; k <= 2; k++) {
              const data = `stock ${k} on ${t} from ${n.name}`
              sent.push({ node: n, topic: t, data, ev: await n.pub(data, t) })
            }
          }
        }
        for (const q of sent) {
          assert.equal(q.ev.id, stockId(q.node.peerId, q.ev.seqno), `${q.node}: published id is from || seqno`)
        }
        for (const n of nodes) {
          const mine = sent.filter(q => q.node !== n)
          await Promise.all(topics.map(t => n.waitMessages(mine.filter(q => q.topic === t).map(q => q.ev.id), t)))
        }
        await sleep(DUPLICATE_WINDOW_MS)
        for (const n of nodes) {
          for (const t of topics) {
            const got = n.messages(t)
            const want = sent.filter(q => q.node !== n && q.topic === t)
            assert.deepEqual(got.map(m => m.data).sort(), want.map(q => q.data).sort(), `${n}: messages on ${t}, each once`)
          }
        }
      } finally {
        await stopNodes(nodes)
      }
    })
})
