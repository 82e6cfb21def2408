// The interop cases shared by the go-libp2p and the rust-libp2p reference peers
// (go.test.mjs, rust.test.mjs): `defineSuite(kind)` registers them against one kind,
// in both directions with the C++ `p2pmq` binary (`$P2PMQ_BIN`). Loopback only.
//
//  host:   KIND -> cpp and cpp -> KIND: ping, identify (what each says of itself), echo
//          through yamux streams where the peer's listener echoes; identify push (a
//          protocol the peer starts to serve reaches the cpp agent without a new
//          connection);
//  direct: a node configured with the other kind as a direct peer dials it, keeps it out
//          of its mesh, and messages flow both ways;
//  gossip: chains cpp-KIND-cpp and KIND-cpp-KIND (only neighbours connected) and a
//          3+3 mixed network: every node publishes, every other node gets each message
//          exactly once, with the p2pmq id, origin, seqno and data; a receiver without
//          mesh peers gets every message by IHAVE/IWANT through a relay of either kind;
//  kad:    on /ipfs/kad/1.0.0: FIND_NODE through a bootstrapper of either kind;
//          provider records written by one kind, stored and served by servers of the
//          other kind, found by either; in gossip mode (kad beside gossipsub): agents that
//          find each other and a peer for a topic through the peer's DHT only, and a peer
//          that finds the agents' provider records;
//  large:  a 1 MB message each way.
// The kind files add what only their kind does (go: PX, key files, go's frame limit, a
// burst against go's one-RPC IWANT answer, stock ids; rust: `connect`, bursts through
// rust's 16 KiB control limit, seqnos above 2^53).
// Every case skips (reported as skipped) without the peer's binary or P2PMQ_BIN.
// Needs no npm packages (lib.mjs and msgid.mjs use node builtins only).
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { accessSync, constants, statSync } from 'node:fs'
import { cppAgentSupport, jsonLine, run, start, stopAll, stripP2p, until } from './lib.mjs'
import { p2pmqMsgIdFromParts, toHex } from './msgid.mjs'

export const DEADLINE_MS = 60_000 // a loaded 2-core machine: generous
export const POLL_MS = 500
export const CLIENT_TIMEOUT_MS = 180_000
export const MESSAGES_PER_NODE = 3
// after the last expected message: how long to keep watching for duplicates
// (a few heartbeats, so gossip and late mesh forwards would show)
export const DUPLICATE_WINDOW_MS = 2_500
// the gossip-only receiver must have stayed out of every mesh this long
export const STABLE_NO_MESH_MS = 3_000
export const KAD = '/ipfs/kad/1.0.0'
// A message of LARGE_DATA bytes: under go's 1 MiB frame limit (pubsub.DefaultMaxMessageSize),
// over rust gossipsub's default max_transmit_size (64 KiB; the rust peer sets 1 MiB + 64 KiB),
// and within p2pmq's stdin line (1 MiB).
const LARGE_DATA = 1_000_000

// What differs between the two reference peers.
const PEERS = {
  go: {
    env: 'P2PMQ_GO_PEER',
    agentPrefix: 'go-libp2p/',
    // the go listener echoes (the cpp dialer checks yamux under 32 concurrent streams)
    listenArgs: ['listen', '--echo'],
    echoListener: true,
    // the go peer numbers its publications 1, 2, 3 per topic, as p2pmq does (it sets
    // go-libp2p-pubsub's counter before each publication)
    perTopicSeqnos: true,
    directArgs: addr => ['--direct', addr],
    // noMesh never GRAFTs (D = Dlo = Dhi = Dout = 0, the spec's bootstrapper setting, also
    // PRUNEs every GRAFT). meshOfOne: a relay whose mesh, once it holds the publisher, takes no
    // one else (go refuses D = Dlo = Dhi = 1 with Dout = 0 (Dout < D/2), so D = Dhi = 2,
    // Dlo = 1: it grafts only below one peer, and opportunistic grafting needs a mesh of more
    // than one).
    mesh: {
      noMesh: ['--D', '0', '--Dlo', '0', '--Dhi', '0', '--Dout', '0', '--Dscore', '0'],
      meshOfOne: ['--D', '2', '--Dlo', '1', '--Dhi', '2', '--Dout', '0', '--Dscore', '0']
    }
  },
  rust: {
    env: 'P2PMQ_RUST_PEER',
    agentPrefix: 'rust-libp2p/',
    listenArgs: ['listen'],
    echoListener: false,
    // rust's gossipsub numbers its publications with one counter per node that starts at the
    // unix time in nanoseconds (no option sets it): they only increase, and exceed 2^53
    perTopicSeqnos: false,
    directArgs: addr => ['--direct-peer', addr],
    // noMesh: D = Dlo = Dhi = Dout = 0 also PRUNEs every GRAFT, at the latest at rust's next
    // heartbeat
    mesh: {
      noMesh: ['--D', '0', '--Dlo', '0', '--Dhi', '0', '--Dout', '0', '--Dscore', '0'],
      meshOfOne: ['--D', '1', '--Dlo', '1', '--Dhi', '1', '--Dout', '0', '--Dscore', '0']
    }
  }
}
// p2pmq refuses D = 0, so noMesh is D_lo = 0: it never GRAFTs by itself but keeps a peer that
// GRAFTs it.
const CPP_MESH = {
  noMesh: ['--gossip', 'D=1', '--gossip', 'D_lo=0', '--gossip', 'D_hi=1', '--gossip', 'D_out=0', '--gossip', 'D_score=0'],
  meshOfOne: ['--gossip', 'D=1', '--gossip', 'D_lo=1', '--gossip', 'D_hi=1', '--gossip', 'D_out=0', '--gossip', 'D_score=0']
}

function peerBin (env) {
  const bin = process.env[env]
  if (bin == null || bin === '') return { bin: null, reason: `${env} is not set` }
  try {
    if (!statSync(bin).isFile()) return { bin: null, reason: `${env}=${bin} is not a file` }
    accessSync(bin, constants.X_OK)
  } catch (err) {
    return { bin: null, reason: `${env}=${bin} is not executable (${err.code ?? err.message})` }
  }
  return { bin, reason: null }
}

export const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
export const poll = (what, check, describe) => until(what, check, { timeoutMs: DEADLINE_MS, pollMs: POLL_MS, describe })

// ---- peer ids and message ids without npm packages ---------------------------------
const B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'
/** The multihash bytes of a base58btc peer id (12D3Koo..., Qm...). */
export function peerIdBytes (id) {
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
export const expectedId = (topic, origin, seqno) =>
  toHex(p2pmqMsgIdFromParts({ topic, from: peerIdBytes(origin), seqno: BigInt(seqno) }))

// Every kind prints a seqno as a JSON number up to 2^53 - 1 and as a decimal string above
// (docs/interop.md), so plain JSON.parse loses no digit; compare seqnos with BigInt().
const parse = line => JSON.parse(line)

/** The cases and helpers for one kind ('go' or 'rust'); defineSuite registers the shared ones. */
export function peerSuite (kind) {
  const P = PEERS[kind]
  const PEER = peerBin(P.env)
  const CPP = cppAgentSupport(['--stdio', '--topic', '--bootstrap', '--gossip', '--dht-mode', '--set', '--echo'])
  const SKIP = PEER.bin == null ? `${kind} peer unavailable: ${PEER.reason}` : CPP.bin == null ? `cpp side unavailable: ${CPP.reason}` : false
  const TOPIC = `p2pmq/interop/${kind}`
  // A DHT protocol prefix no other node speaks: keeps a cpp gossip node's discovery from
  // adding connections, so chains stay chains.
  const privatePrefix = () => `/${kind}-interop-${randomBytes(6).toString('hex')}`

  after(stopAll)

  // ---- one long-running node of either kind, driven by the stdio line protocol ------
  class Node {
    static async start (k, name, argv) {
      const proc = start(argv, { name: `${name} (${k})`, stdin: 'pipe' })
      const n = new Node(k, name, proc)
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

    constructor (k, name, proc) {
      this.kind = k
      this.name = name
      this.proc = proc
    }

    toString () { return `${this.name} (${this.kind} ${this.peerId})` }

    events () {
      const evs = []
      for (const line of this.proc.lines) {
        if (!line.startsWith('{')) continue
        try { evs.push(parse(line)) } catch {}
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
        const e = parse(l)
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
        const e = parse(l)
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

  // ---- gossip nodes ---------------------------------------------------------------
  function gossipArgv (k, { topics = [TOPIC], bootstrap = [], mesh, extra = [] } = {}) {
    const common = [...topics.flatMap(t => ['--topic', t]), ...bootstrap.flatMap(b => ['--bootstrap', b]),
      ...(mesh ? (k === 'cpp' ? CPP_MESH : P.mesh)[mesh] : [])]
    if (k === kind) return [PEER.bin, 'gossip', ...common, ...extra]
    return [CPP.bin, 'agent', '--listen', '/ip4/127.0.0.1/tcp/0', '--stdio', '--grpc', 'off', ...common,
      '--set', `dht.protocol_prefix=${privatePrefix()}`, ...extra]
  }

  const startGossip = (k, name, opts) => Node.start(k, name, gossipArgv(k, opts))

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
      if (node.kind === 'cpp' || P.perTopicSeqnos) {
        assert.deepEqual(seqnos.map(Number), seqnos.map((_, i) => i + 1), `${node}: per-topic seqnos count from 1`)
      } else {
        for (let i = 1; i < seqnos.length; i++) {
          assert.ok(BigInt(seqnos[i]) > BigInt(seqnos[i - 1]), `${node}: seqnos increase: ${seqnos.join(', ')}`)
        }
      }
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
        if (BigInt(m.seqno) !== BigInt(p.ev.seqno)) problems.push(`${n}: message ${id} seqno ${m.seqno}, want ${p.ev.seqno}`)
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

  async function waitMeshLink (a, b, topic = TOPIC) {
    let last = null
    await poll(`a mesh link ${a} - ${b}`, async () => {
      const [ma, mb] = await Promise.all([a.mesh(topic), b.mesh(topic)])
      last = { [a.name]: ma, [b.name]: mb }
      return ma.includes(b.peerId) && mb.includes(a.peerId)
    }, () => `last mesh state: ${JSON.stringify(last)}`)
  }

  // ---- kad nodes --------------------------------------------------------------------
  function dhtArgv (k, { mode = 'server', bootstrap = [] } = {}) {
    const boot = bootstrap.flatMap(b => ['--bootstrap', b])
    if (k === kind) return [PEER.bin, 'dht', '--mode', mode === 'bootstrapper' ? 'server' : mode, '--protocol', KAD, ...boot]
    return [CPP.bin, 'agent', '--stdio', '--grpc', 'off', '--listen', '/ip4/127.0.0.1/tcp/0', '--dht-mode', mode,
      '--set', 'dht.protocol_prefix=/ipfs', ...boot]
  }
  const startDht = (k, name, opts = {}) => Node.start(k, `${name} ${opts.mode ?? 'server'}`, dhtArgv(k, opts))

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

  /** f's `dht-find-topic` names provider (with one of its listen addresses), within the deadline. */
  async function waitProvider (f, topic, provider) {
    let last = null
    const entry = await poll(`${f} finding ${provider} as a provider of ${topic}`, async () => {
      last = await f.findTopic(topic)
      return (last.providers ?? []).find(p => p.peer === provider.peerId)
    }, () => `last answer: ${JSON.stringify(last)}`)
    const got = (entry.addrs ?? []).map(stripP2p)
    assert.ok(provider.listenAddrs.some(a => got.includes(a)),
      `${f}: provider came with ${JSON.stringify(entry.addrs)}, none of ${JSON.stringify(provider.listenAddrs)}`)
  }

  return {
    kind,
    PEER,
    CPP,
    SKIP,
    TOPIC,
    Node,
    privatePrefix,
    stopNodes,
    assertCleanStops,
    gossipArgv,
    startGossip,
    payload,
    assertDeliveries,
    publishAll,
    waitMeshLink,
    startDht,
    waitTable,
    assertFound,
    waitProvider
  }
}

/** Registers the cases every reference peer runs against p2pmq; returns peerSuite(kind). */
export function defineSuite (kind) {
  const s = peerSuite(kind)
  const { PEER, CPP, SKIP, TOPIC, Node } = s
  const P = PEERS[kind]
  const pair = (a, b) => [[a, b], [b, a]]

  // ---- host: ping, identify, echo ---------------------------------------------------
  const clientCmd = (k, sub, ...args) => [k === kind ? PEER.bin : CPP.bin, sub, ...args]
  const listenCmd = k => k === kind
    ? [PEER.bin, ...P.listenArgs]
    : [CPP.bin, 'agent', '--listen', '/ip4/127.0.0.1/tcp/0', '--grpc', 'off', '--echo']
  const agentPrefix = k => k === kind ? P.agentPrefix : 'p2pmq/'
  const echoes = k => k === 'cpp' || P.echoListener

  function assertExit0 (res, what) {
    assert.ok(!res.timedOut, `${what} timed out: ${res.describe()}`)
    assert.equal(res.code, 0, `${what} failed: ${res.describe()}\nstdout: ${res.stdout.join('\n')}`)
  }

  for (const [d, l] of pair(kind, 'cpp')) {
    describe(`host: ${d} dialer -> ${l} listener`, () => {
      test(echoes(l) ? 'ping, identify and echo' : 'ping and identify', { skip: SKIP, timeout: 300_000 }, async () => {
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
          assert.ok(String(id.agentVersion).startsWith(agentPrefix(l)), `agentVersion ${id.agentVersion} starts with ${agentPrefix(l)}`)
          assert.equal(typeof id.protocolVersion, 'string')
          const want = ['/ipfs/id/1.0.0', '/ipfs/ping/1.0.0', '/ipfs/id/push/1.0.0', ...(echoes(l) ? ['/p2pmq/echo/1.0.0'] : [])]
          for (const p of want) {
            assert.ok(id.protocols.includes(p), `protocols ${JSON.stringify(id.protocols)} include ${p}`)
          }
          assert.ok(id.listenAddrs.map(stripP2p).includes(stripP2p(addr)), `listenAddrs ${JSON.stringify(id.listenAddrs)} contain ${stripP2p(addr)}`)
          assert.match(String(id.observedAddr), /^\/ip4\/127\.0\.0\.1\/tcp\/\d+(\/p2p\/\S+)?$/, 'observedAddr on 127.0.0.1')

          if (d === 'cpp' && echoes(l)) {
            // the peer's listener's yamux under 32 concurrent streams (the peers have no echo client)
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

  describe('identify push', () => {
    test(`a protocol the ${kind} node starts serving reaches the cpp agent by push; ${kind} knows the agent's protocols`,
      { skip: SKIP, timeout: 300_000 }, async () => {
        const nodes = []
        try {
          // The cpp DHT takes a peer into its routing table when identify (or a push) lists the
          // DHT protocol: a private prefix that only the peer's new handler serves makes the
          // push visible in dht-table.
          const prefix = s.privatePrefix()
          const cpp = await Node.start('cpp', 'agent', [CPP.bin, 'agent', '--listen', '/ip4/127.0.0.1/tcp/0', '--stdio', '--grpc', 'off',
            '--dht-mode', 'server', '--set', `dht.protocol_prefix=${prefix}`])
          nodes.push(cpp)
          const peer = await s.startGossip(kind, kind, { topics: [], bootstrap: [cpp.addr] })
          nodes.push(peer)
          await poll(`the ${kind} node connected and identified`, async () => {
            const p = await peer.request(`protocols ${cpp.peerId}`, 'protocols')
            return p.protocols.includes('/ipfs/id/1.0.0')
          })
          const protos = (await peer.request(`protocols ${cpp.peerId}`, 'protocols')).protocols
          for (const p of ['/ipfs/ping/1.0.0', '/meshsub/1.1.0', `${prefix}/kad/1.0.0`]) {
            assert.ok(protos.includes(p), `${kind} learned ${p} from the agent's identify: ${JSON.stringify(protos)}`)
          }
          assert.ok(!(await cpp.table()).includes(peer.peerId), `the ${kind} node serves no DHT yet: not in the agent's table`)
          const connectionsBefore = (await cpp.request('peers', 'peers')).connections
          assert.equal(typeof connectionsBefore, 'number', 'the agent reports its connection count')
          await peer.request(`handle ${prefix}/kad/1.0.0`, 'handled')
          let last = []
          await poll(`the agent's routing table taking in the ${kind} node after its identify push`, async () => {
            last = await cpp.table()
            return last.includes(peer.peerId)
          }, () => `last table: ${JSON.stringify(last)}\n${cpp.proc.describe()}`)
          // the agent identifies a connection once: on the same connection, only a push tells it
          assert.equal((await cpp.request('peers', 'peers')).connections, connectionsBefore, 'learned on the same connection')
        } finally {
          await s.stopNodes(nodes)
        }
      })
  })

  // ---- direct peers ----------------------------------------------------------------
  // A node configured with the other kind as a direct peer dials it by itself (no bootstrap),
  // never takes it into its mesh (it PRUNEs the other's GRAFT), and messages still flow both
  // ways: it forwards everything to its direct peer and accepts what the direct peer sends.
  describe('direct peers', () => {
    for (const [dk, ok] of pair('cpp', kind)) {
      test(`${dk} has a ${ok} node as a direct peer: dialed, kept out of the mesh, messages both ways`,
        { skip: SKIP, timeout: 300_000 }, async () => {
          const nodes = []
          try {
            const other = await s.startGossip(ok, 'other')
            nodes.push(other)
            const direct = dk === 'cpp' ? ['--set', `gossip.direct_peers=${other.addr}`] : P.directArgs(other.addr)
            const d = await s.startGossip(dk, 'with-direct', { extra: direct })
            nodes.push(d)
            await poll(`${d} dials its direct peer ${other}`, async () => (await d.peers()).includes(other.peerId))
            // connected is not subscribed: rust refuses to publish until it knows a subscriber
            // of the topic (NoPeersSubscribedToTopic), and no mesh link tells when it does
            const pubAccepted = (n, data) => poll(`${n} publishing once it knows a subscriber`,
              () => n.pub(data).catch(err => {
                if (/NoPeersSubscribedToTopic/.test(err.message)) return false
                throw err
              }))
            const sent = [await pubAccepted(d, `from ${d.name}`), await pubAccepted(other, `from ${other.name}`)]
            await other.waitMessages([sent[0].id])
            await d.waitMessages([sent[1].id])
            assert.ok(!(await d.mesh()).includes(other.peerId), `${d} took its direct peer into its mesh`)
          } finally {
            await s.stopNodes(nodes)
          }
        })
    }
  })

  // ---- gossip: mixed chains ---------------------------------------------------------
  for (const kinds of [['cpp', kind, 'cpp'], [kind, 'cpp', kind]]) {
    describe(`gossip chain ${kinds.join(' - ')}`, () => {
      test('every node publishes, every other node gets each message exactly once',
        { skip: SKIP, timeout: 300_000 }, async () => {
          const nodes = []
          try {
            const middle = await s.startGossip(kinds[1], 'middle')
            nodes.push(middle)
            const left = await s.startGossip(kinds[0], 'left', { bootstrap: [middle.addr] })
            nodes.push(left)
            const right = await s.startGossip(kinds[2], 'right', { bootstrap: [middle.addr] })
            nodes.push(right)
            await s.waitMeshLink(left, middle)
            await s.waitMeshLink(right, middle)
            // a chain: the ends know only the middle
            assert.deepEqual(await left.peers(), [middle.peerId], `${left} knows only the middle`)
            assert.deepEqual(await right.peers(), [middle.peerId], `${right} knows only the middle`)

            const ordered = [left, middle, right]
            const publications = await s.publishAll(ordered)
            await Promise.all(ordered.map(n => n.waitMessages(publications.filter(p => p.node !== n).map(p => p.ev.id))))
            await sleep(DUPLICATE_WINDOW_MS)
            s.assertDeliveries(ordered, publications)
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
            await s.assertCleanStops(ordered)
          } finally {
            await s.stopNodes(nodes)
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

  describe(`gossip: 3 ${kind} + 3 cpp nodes, interleaved, each bootstrapping to the two before it`, () => {
    test(`every node publishes ${MESSAGES_PER_NODE}, every other node gets each exactly once`, { skip: SKIP, timeout: 300_000 }, async () => {
      const nodes = []
      try {
        for (const [i, k] of [kind, 'cpp', kind, 'cpp', kind, 'cpp'].entries()) {
          nodes.push(await s.startGossip(k, `n${i}`, { bootstrap: nodes.slice(Math.max(0, i - 2)).map(n => n.addr) }))
        }
        await waitForConnectedMesh(nodes)
        const publications = await s.publishAll(nodes)
        await Promise.all(nodes.map(n => n.waitMessages(publications.filter(p => p.node !== n).map(p => p.ev.id))))
        await sleep(DUPLICATE_WINDOW_MS)
        s.assertDeliveries(nodes, publications)
      } finally {
        await s.stopNodes(nodes)
      }
    })
  })

  // ---- gossip only (IHAVE/IWANT) ------------------------------------------------------
  const chains = []
  for (const relay of [kind, 'cpp']) {
    for (const receiver of [kind, 'cpp']) {
      for (const publisher of [kind, 'cpp']) {
        const ks = [publisher, relay, receiver]
        if (ks.includes(kind) && ks.includes('cpp')) chains.push({ publisher, relay, receiver })
      }
    }
  }

  for (const { publisher: pk, relay: rk, receiver: xk } of chains) {
    describe(`gossip only: ${pk} publisher -> ${rk} relay -> ${xk} receiver without mesh peers`, () => {
      test('every message reaches the receiver by IHAVE/IWANT, exactly once', { skip: SKIP, timeout: 300_000 }, async () => {
        const nodes = []
        try {
          // a peer receiver PRUNEs a GRAFT; a cpp receiver keeps one, so that relay's mesh
          // is full once it holds the publisher
          const relay = await s.startGossip(rk, 'relay', { mesh: xk === 'cpp' ? 'meshOfOne' : undefined })
          nodes.push(relay)
          const pub = await s.startGossip(pk, 'publisher', { bootstrap: [relay.addr] })
          nodes.push(pub)
          await s.waitMeshLink(pub, relay)
          const receiver = await s.startGossip(xk, 'receiver', { bootstrap: [relay.addr], mesh: 'noMesh' })
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
            const data = s.payload('publisher', k)
            publications.push({ node: pub, data, ev: await pub.pub(data) })
          }
          const ids = publications.map(p => p.ev.id)
          await Promise.all([relay.waitMessages(ids), receiver.waitMessages(ids)])
          await sleep(DUPLICATE_WINDOW_MS)
          s.assertDeliveries([relay, pub, receiver], publications)
          assert.deepEqual(await receiver.mesh(), [], 'the receiver keeps no mesh peers')
          assert.ok(!(await relay.mesh()).includes(receiver.peerId), 'the relay has not grafted the receiver')
        } finally {
          await s.stopNodes(nodes)
        }
      })
    })
  }

  // ---- kad on /ipfs/kad/1.0.0 -----------------------------------------------------------
  for (const [boot, other] of pair('cpp', kind)) {
    describe(`kad ${KAD}: FIND_NODE through a ${boot} bootstrapper`, () => {
      test(`a ${other} server and a ${boot} server bootstrapped from it find each other`, { skip: SKIP, timeout: 300_000 }, async () => {
        const nodes = []
        try {
          const b = await s.startDht(boot, 'bootstrapper', { mode: 'bootstrapper' })
          nodes.push(b)
          const x = await s.startDht(other, 'x', { bootstrap: [b.addr] })
          nodes.push(x)
          const y = await s.startDht(boot, 'y', { bootstrap: [b.addr] })
          nodes.push(y)
          await s.waitTable(b, [x, y])
          await s.waitTable(x, [b])
          await s.waitTable(y, [b])
          // neither is connected to the other: a lookup through the bootstrapper
          s.assertFound(x, y, await x.findPeer(y.peerId))
          s.assertFound(y, x, await y.findPeer(x.peerId))
        } finally {
          await s.stopNodes(nodes)
        }
      })
    })
  }

  for (const [serverKind, clientKind] of pair('cpp', kind)) {
    describe(`kad ${KAD}: provider records of ${clientKind} clients on ${serverKind} servers`, () => {
      test(`written by a ${clientKind} client, stored and served by ${serverKind} servers, found by both kinds`,
        { skip: SKIP, timeout: 300_000 }, async () => {
          const nodes = []
          try {
            const s0 = await s.startDht(serverKind, 's0')
            nodes.push(s0)
            const s1 = await s.startDht(serverKind, 's1', { bootstrap: [s0.addr] })
            nodes.push(s1)
            await s.waitTable(s0, [s1])
            const servers = [s0, s1]
            const all = servers.map(x => x.addr)
            // clients: no one's routing table holds them, so no record lands on a client
            const provider = await s.startDht(clientKind, 'provider', { mode: 'client', bootstrap: all })
            nodes.push(provider)
            const finder = await s.startDht(clientKind, 'finder', { mode: 'client', bootstrap: all })
            nodes.push(finder)
            const otherFinder = await s.startDht(serverKind, 'otherFinder', { mode: 'client', bootstrap: all })
            nodes.push(otherFinder)
            await Promise.all([provider, finder, otherFinder].map(c => s.waitTable(c, servers)))

            const topic = `${TOPIC}/${clientKind}-writes-é-${randomBytes(4).toString('hex')}`
            const ev = await provider.provide(topic)
            assert.ok(ev.peers >= 1, `${provider}: ADD_PROVIDER reached no server: ${JSON.stringify(ev)}`)
            for (const f of [finder, otherFinder]) await s.waitProvider(f, topic, provider)
            const none = await finder.findTopic(`${TOPIC}/nobody-${randomBytes(4).toString('hex')}`)
            assert.deepEqual(none.providers, [], `${finder}: providers of an unprovided topic`)
            const tables = await Promise.all(servers.map(x => x.table()))
            servers.forEach((x, i) => {
              for (const c of [provider, finder, otherFinder]) assert.ok(!tables[i].includes(c.peerId), `${x} has the client ${c} in its table`)
            })
          } finally {
            await s.stopNodes(nodes)
          }
        })
    })
  }

  // ---- kad in gossip mode -------------------------------------------------------------
  // The peer in gossip mode (`gossip --dht server|client`: kad beside gossipsub, on /ipfs) and
  // agents as they run in a network (`p2pmq agent --topic T`: topic joined, discovery on, the
  // DHT on /ipfs). The agents know only the peer's DHT server and run the DHT as clients, so
  // the peer is the only node that stores and serves provider records: each agent provides T's
  // key there (ADD_PROVIDER), looks up T's providers there (GET_PROVIDERS) while its mesh is
  // short, and dials them; nothing else tells the agents of each other. A second peer of the
  // kind, a DHT client, provides T: the agents find it the same way and take it into their
  // meshes, and it finds the agents' provider records.
  describe(`kad ${KAD} in gossip mode: topic discovery through a ${kind} DHT`, () => {
    test(`cpp agents find each other and a ${kind} peer for a topic through a ${kind} DHT server; the ${kind} peer finds their provider records`,
      { skip: SKIP, timeout: 300_000 }, async () => {
        const nodes = []
        try {
          const topic = `${TOPIC}/discovery-${randomBytes(4).toString('hex')}`
          const kad = mode => ['--dht', mode, '--dht-protocol', KAD]
          const server = await s.startGossip(kind, 'dht server', { topics: [topic], extra: kad('server') })
          nodes.push(server)
          const agentArgv = () => [CPP.bin, 'agent', '--listen', '/ip4/127.0.0.1/tcp/0', '--stdio', '--grpc', 'off',
            '--topic', topic, '--bootstrap', server.addr, '--dht-mode', 'client',
            '--set', 'dht.protocol_prefix=/ipfs', '--set', 'dht.discovery_interval=1s']
          const a = await Node.start('cpp', 'a', agentArgv())
          nodes.push(a)
          const b = await Node.start('cpp', 'b', agentArgv())
          nodes.push(b)
          await s.waitMeshLink(a, b, topic)
          const ev = await a.pub('found through the DHT', topic)
          await b.waitMessages([ev.id], topic)

          const provider = await s.startGossip(kind, 'provider', { topics: [topic], bootstrap: [server.addr], extra: kad('client') })
          nodes.push(provider)
          await s.waitTable(provider, [server])
          const provided = await provider.provide(topic)
          assert.ok(provided.peers >= 1, `${provider}: ADD_PROVIDER reached no server: ${JSON.stringify(provided)}`)
          await s.waitMeshLink(a, provider, topic)
          await s.waitMeshLink(b, provider, topic)
          for (const agent of [a, b]) await s.waitProvider(provider, topic, agent)
          const table = await server.table()
          for (const agent of [a, b]) assert.ok(!table.includes(agent.peerId), `${server} has the DHT client ${agent} in its table`)
        } finally {
          await s.stopNodes(nodes)
        }
      })
  })

  // ---- large messages ------------------------------------------------------------------
  for (const [a, b] of pair('cpp', kind)) {
    describe(`large message ${a} -> ${b}`, () => {
      test(`a ${LARGE_DATA}-byte message arrives intact, once`, { skip: SKIP, timeout: 300_000 }, async () => {
        const nodes = []
        try {
          const x = await s.startGossip(b, 'receiver')
          nodes.push(x)
          const p = await s.startGossip(a, 'publisher', { bootstrap: [x.addr] })
          nodes.push(p)
          await s.waitMeshLink(p, x)
          const data = 'L' + randomBytes(LARGE_DATA / 2).toString('hex').slice(1)
          const publications = [{ node: p, data, ev: await p.pub(data) }]
          await x.waitMessages(publications.map(q => q.ev.id))
          await sleep(DUPLICATE_WINDOW_MS)
          s.assertDeliveries(nodes, publications)
        } finally {
          await s.stopNodes(nodes)
        }
      })
    })
  }

  return s
}
