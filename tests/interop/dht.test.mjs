// Kademlia DHT interoperability between @libp2p/kad-dht 15.1.11 (`node peer.mjs
// dht`) and the C++ agent (`$P2PMQ_BIN agent --stdio --dht-mode ...`), which speak
// the same line protocol on stdin/stdout (peer.mjs, cmdDht; README.md), on the
// p2pmq DHT protocol /p2pmq/kad/1.0.0. Loopback only.
//
//  1. FIND_NODE through a bootstrapper: a js server and a cpp server both
//     bootstrap from a cpp bootstrapper (--dht-mode bootstrapper); the js node
//     finds the cpp server by dht-find-peer with the right addresses, and the
//     cpp server finds the js node the same way;
//  2. FIND_NODE from js servers: a cpp server bootstraps from a js server that
//     knows a second js server; the cpp node finds that one (and it the cpp node);
//  3. provider records in a network of 2 js + 2 cpp servers, with a js and a cpp
//     DHT client bootstrapped from every server: a cpp server provides topic A,
//     the js client finds it, answered by a js server (cpp ADD_PROVIDER -> js
//     store -> js GET_PROVIDERS); a js server provides topic B, the cpp client
//     finds it, and the js client gets it from a cpp server (js ADD_PROVIDER ->
//     cpp store -> cpp GET_PROVIDERS); clients stay out of every routing table.
// js-only variants of each run without P2PMQ_BIN (they check the harness and peer.mjs).
// Run: node --test --test-concurrency=1 dht.test.mjs
// Wire-level detail: DEBUG='libp2p:kad-dht*' (the js children's stderr is shown
// on a failure).
import './polyfill.mjs'
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { NODE, PEER_JS, cppAgentSupport, start, stopAll, stripP2p, until } from './lib.mjs'

const PROTOCOL = '/p2pmq/kad/1.0.0'
const DEADLINE_MS = 60_000 // a loaded 2-core machine: generous
const POLL_MS = 500
const TOPIC_A = 'p2pmq/interop/dht/a'
const TOPIC_B = 'p2pmq/interop/dht/b-é' // UTF-8: the key hashes its bytes

after(stopAll)

// ---- which kinds can run --------------------------------------------------------
const CPP = cppAgentSupport(['--stdio', '--bootstrap', '--grpc', '--dht-mode'])
const available = kind => kind === 'js' || CPP.bin != null
const skipFor = kinds => kinds.every(available) ? false : `cpp side unavailable: ${CPP.reason}`

// ---- one DHT node of either kind --------------------------------------------------
// mode: server | client | bootstrapper (js has no bootstrapper mode: a server)
function dhtArgv (kind, { mode = 'server', bootstrap = [] } = {}) {
  const boot = bootstrap.flatMap(b => ['--bootstrap', b])
  if (kind === 'js') {
    return [NODE, PEER_JS, 'dht', '--mode', mode === 'bootstrapper' ? 'server' : mode, '--protocol', PROTOCOL, ...boot]
  }
  return [CPP.bin, 'agent', '--stdio', '--grpc', 'off', '--listen', '/ip4/127.0.0.1/tcp/0', '--dht-mode', mode, ...boot]
}

class DhtNode {
  static async start (kind, name, opts = {}) {
    const mode = opts.mode ?? 'server'
    const proc = start(dhtArgv(kind, opts), { name: `${name} (${kind} ${mode})`, stdin: 'pipe' })
    const n = new DhtNode(kind, name, mode, proc)
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

  constructor (kind, name, mode, proc) {
    this.kind = kind
    this.name = name
    this.mode = mode
    this.proc = proc
  }

  toString () { return `${this.name} (${this.kind} ${this.mode} ${this.peerId})` }

  /** Send a command; resolve with the first answer event after it, reject on an error event. */
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

  async table () { return (await this.request('dht-table', 'dht-table')).peers }
  async findPeer (id) { return this.request(`dht-find-peer ${id}`, 'dht-peer', e => e.peer === id) }
  async provide (topic) { return this.request(`dht-provide-topic ${topic}`, 'dht-provided', e => e.topic === topic) }
  async findTopic (topic) { return this.request(`dht-find-topic ${topic}`, 'dht-providers', e => e.topic === topic) }
}

const poll = (what, check, describe) => until(what, check, { timeoutMs: DEADLINE_MS, pollMs: POLL_MS, describe })

async function stopNodes (nodes) {
  await Promise.all(nodes.filter(Boolean).map(n => n.proc.stop()))
}

/** Wait until node's routing table holds every one of peers. */
async function waitTable (node, peers) {
  let last = []
  await poll(`${node}: routing table holding ${peers.map(p => p.name).join(', ')}`, async () => {
    last = await node.table()
    return peers.every(p => last.includes(p.peerId))
  }, () => `last table of ${node}: ${JSON.stringify(last)}\nwanted: ${peers.map(String).join(', ')}`)
}

/** A `dht-peer` answer must have found target with (one of) its listen addresses. */
function assertFound (finder, target, ev) {
  assert.equal(ev.peer, target.peerId)
  assert.equal(ev.found, true, `${finder} did not find ${target}: ${JSON.stringify(ev)}\n${finder.proc.describe()}`)
  const got = (ev.addrs ?? []).map(stripP2p)
  assert.ok(target.listenAddrs.some(a => got.includes(a)),
    `${finder} found ${target} at ${JSON.stringify(ev.addrs)}, none of its listen addresses ${JSON.stringify(target.listenAddrs)}`)
  for (const a of ev.addrs) {
    // a /p2p/ suffix, if any, must name the peer itself
    const m = a.match(/\/p2p\/([^/]+)$/)
    if (m) assert.equal(m[1], target.peerId, `${finder}: address ${a} for ${target} names another peer`)
  }
}

/** The entry for provider in a `dht-providers` answer, or undefined. */
function providerEntry (ev, provider) {
  return (ev.providers ?? []).find(p => p.peer === provider.peerId)
}

function assertProviderAddrs (finder, provider, entry, topic) {
  const got = (entry.addrs ?? []).map(stripP2p)
  assert.ok(provider.listenAddrs.some(a => got.includes(a)),
    `${finder}: provider ${provider} of ${JSON.stringify(topic)} came with ${JSON.stringify(entry.addrs)}, none of its listen addresses ${JSON.stringify(provider.listenAddrs)}`)
}

// ---- the provider key -------------------------------------------------------------
describe('p2pmq topic provider key', () => {
  test('CIDv1 raw of sha2-256("p2pmq/topic/" + T), the multihash on the wire', async () => {
    const topic = 'p2pmq/interop/dht'
    const digest = createHash('sha256').update('p2pmq/topic/' + topic, 'utf8').digest()
    assert.equal(digest.toString('hex'), '5f109a51759fb2242588d8a2d1a5a651e0b73344c7a6baec8470ce35a0349555')
    const cid = CID.createV1(0x55, await sha256.digest(new TextEncoder().encode('p2pmq/topic/' + topic)))
    assert.equal(Buffer.from(cid.multihash.bytes).toString('hex'), '1220' + digest.toString('hex'))
    assert.equal(cid.toString(), 'bafkreic7ccnfc5m7wisclcgyuli2ljsr4c3tgrghu25ozbdqzy22anevku')
    // js kad-dht reads the wire key back as a CIDv0 (the bare multihash): same multihash
    assert.deepEqual(CID.decode(cid.multihash.bytes).multihash.bytes, cid.multihash.bytes)
  })
})

// ---- 1. FIND_NODE through a bootstrapper ---------------------------------------------
const VIA_BOOTSTRAPPER = [
  { name: 'cpp bootstrapper, cpp server, js finder', boot: 'cpp', target: 'cpp', finder: 'js' },
  { name: 'js only (harness self-check)', boot: 'js', target: 'js', finder: 'js' }
]

for (const c of VIA_BOOTSTRAPPER) {
  describe(`dht-find-peer via a bootstrapper: ${c.name}`, () => {
    test(`a ${c.finder} server finds a ${c.target} server known to a ${c.boot} bootstrapper, and back`,
      { skip: skipFor([c.boot, c.target, c.finder]), timeout: 300_000 }, async () => {
        const nodes = []
        try {
          const boot = await DhtNode.start(c.boot, 'bootstrapper', { mode: 'bootstrapper' })
          nodes.push(boot)
          const target = await DhtNode.start(c.target, 'target', { bootstrap: [boot.addr] })
          nodes.push(target)
          const finder = await DhtNode.start(c.finder, 'finder', { bootstrap: [boot.addr] })
          nodes.push(finder)
          await waitTable(boot, [target, finder])
          await waitTable(finder, [boot])
          await waitTable(target, [boot])

          assertFound(finder, target, await finder.findPeer(target.peerId))
          assertFound(target, finder, await target.findPeer(finder.peerId))
        } finally {
          await stopNodes(nodes)
        }
      })
  })
}

// ---- 2. FIND_NODE from js servers -----------------------------------------------------
const VIA_JS = [
  { name: 'cpp finder', finder: 'cpp' },
  { name: 'js finder (harness self-check)', finder: 'js' }
]

for (const c of VIA_JS) {
  describe(`dht-find-peer via a js server: ${c.name}`, () => {
    test(`a ${c.finder} server bootstrapped from a js server finds a second js server`,
      { skip: skipFor([c.finder]), timeout: 300_000 }, async () => {
        const nodes = []
        try {
          const first = await DhtNode.start('js', 'first')
          nodes.push(first)
          const second = await DhtNode.start('js', 'second', { bootstrap: [first.addr] })
          nodes.push(second)
          await waitTable(first, [second])
          const finder = await DhtNode.start(c.finder, 'finder', { bootstrap: [first.addr] })
          nodes.push(finder)
          await waitTable(finder, [first])
          // the js server took the finder in as a DHT server (identify listed the
          // protocol, it answered a ping)
          await waitTable(first, [second, finder])

          assertFound(finder, second, await finder.findPeer(second.peerId))
          // and back: the second js server finds the finder through the first
          assertFound(second, finder, await second.findPeer(finder.peerId))
        } finally {
          await stopNodes(nodes)
        }
      })
  })
}

// ---- 3. provider records ---------------------------------------------------------------
const PROVIDERS = [
  { name: '2 js + 2 cpp servers, a js and a cpp client', servers: ['js', 'cpp', 'js', 'cpp'], cppClient: 'cpp' },
  { name: 'js only (harness self-check)', servers: ['js', 'js', 'js', 'js'], cppClient: 'js' }
]

for (const c of PROVIDERS) {
  describe(`provider records: ${c.name}`, () => {
    test('each kind finds the other\'s provider records, stored and served by the other kind',
      { skip: skipFor([...c.servers, c.cppClient]), timeout: 600_000 }, async t => {
        const nodes = []
        try {
          // s0 <- s1 <- s2 (s0, s1) <- s3 (s1, s2): every server starts from two
          // of the other kind when mixed
          const servers = []
          for (let i = 0; i < c.servers.length; i++) {
            const bootstrap = servers.slice(Math.max(0, i - 2)).map(s => s.addr)
            const s = await DhtNode.start(c.servers[i], `s${i}`, { bootstrap })
            servers.push(s)
            nodes.push(s)
          }
          // the direct links (bootstrap dials) are in both tables
          await Promise.all(servers.map((s, i) => {
            const linked = servers.filter((o, j) => j !== i && (Math.abs(i - j) <= 2))
            return waitTable(s, linked)
          }))
          // js-kind and cpp-kind servers (all js in the self-check: by position)
          const jsServers = servers.filter((s, i) => i % 2 === 0)
          const cppServers = servers.filter((s, i) => i % 2 === 1)

          // clients know every server, so their lookups ask every server directly
          const all = servers.map(s => s.addr)
          const jsClient = await DhtNode.start('js', 'jsClient', { mode: 'client', bootstrap: all })
          nodes.push(jsClient)
          const cppClient = await DhtNode.start(c.cppClient, 'cppClient', { mode: 'client', bootstrap: all })
          nodes.push(cppClient)
          await Promise.all([waitTable(jsClient, servers), waitTable(cppClient, servers)])

          // A: provided by a cpp server, B: by a js server
          const provA = cppServers[0]
          const provB = jsServers[0]
          const evA = await provA.provide(TOPIC_A)
          const evB = await provB.provide(TOPIC_B)
          t.diagnostic(`${provA} sent ADD_PROVIDER for A to ${evA.peers} peers; ${provB} for B to ${evB.peers}`)
          assert.ok(evA.peers >= 1, `${provA}: dht-provide-topic reached no peer: ${JSON.stringify(evA)}`)
          assert.ok(evB.peers >= 1, `${provB}: dht-provide-topic reached no peer: ${JSON.stringify(evB)}`)

          // the js client finds A, with a js server among those that answered with it
          let last = null
          const jsServerIds = new Set(jsServers.map(s => s.peerId))
          const entryA = await poll(`${jsClient} finding ${provA} as a provider of A, answered by a js server`, async () => {
            last = await jsClient.findTopic(TOPIC_A)
            const e = providerEntry(last, provA)
            return e != null && e.via.some(v => jsServerIds.has(v)) ? e : undefined
          }, () => `last answer: ${JSON.stringify(last)}\njs servers: ${[...jsServerIds].join(', ')}`)
          assertProviderAddrs(jsClient, provA, entryA, TOPIC_A)
          t.diagnostic(`A: ${jsClient.name} got ${provA.name} from ${entryA.via.join(', ')}`)

          // the cpp client finds B
          const entryB = await poll(`${cppClient} finding ${provB} as a provider of B`, async () => {
            last = await cppClient.findTopic(TOPIC_B)
            return providerEntry(last, provB)
          }, () => `last answer: ${JSON.stringify(last)}`)
          assertProviderAddrs(cppClient, provB, entryB, TOPIC_B)

          // and the js client gets B from a cpp server
          const cppServerIds = new Set(cppServers.map(s => s.peerId))
          const entryB2 = await poll(`${jsClient} finding ${provB} as a provider of B, answered by a cpp server`, async () => {
            last = await jsClient.findTopic(TOPIC_B)
            const e = providerEntry(last, provB)
            return e != null && e.via.some(v => cppServerIds.has(v)) ? e : undefined
          }, () => `last answer: ${JSON.stringify(last)}\ncpp servers: ${[...cppServerIds].join(', ')}`)
          assertProviderAddrs(jsClient, provB, entryB2, TOPIC_B)
          t.diagnostic(`B: ${jsClient.name} got ${provB.name} from ${entryB2.via.join(', ')}`)

          // no provider record for a topic nobody provides
          const none = await cppClient.findTopic('p2pmq/interop/dht/nobody')
          assert.deepEqual(none.providers, [], `${cppClient}: providers of an unprovided topic`)

          // DHT clients are in no server's routing table (they do not serve the protocol)
          const tables = await Promise.all(servers.map(s => s.table()))
          servers.forEach((s, i) => {
            for (const cl of [jsClient, cppClient]) {
              assert.ok(!tables[i].includes(cl.peerId), `${s} has the client ${cl} in its routing table: ${JSON.stringify(tables[i])}`)
            }
          })
        } finally {
          await stopNodes(nodes)
        }
      })
  })
}
