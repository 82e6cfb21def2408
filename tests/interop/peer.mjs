#!/usr/bin/env node
// One js-libp2p 2.10 node for p2pmq's interoperability tests. Subcommands mirror
// the C++ `p2pmq` binary so tests and the benchmark can swap either side:
//
//   node peer.mjs listen [--echo] [--key HEXFILE]
//   node peer.mjs ping <multiaddr> [--count N]
//   node peer.mjs identify <multiaddr>
//   node peer.mjs echo <multiaddr> --streams N --bytes B
//   node peer.mjs dialbench <multiaddr> --count N
//   node peer.mjs perf <multiaddr> --upload B --download B   (/perf/1.0.0, libp2p perf spec)
//   node peer.mjs keygen [--out HEXFILE]        (prints the peer id)
//   node peer.mjs gossip [--bootstrap MA]... [--topic T]... [--D n --Dlo n --Dhi n ...] [--key FILE]
//        a gossipsub node driven by a line protocol on stdin/stdout, the same as
//        `p2pmq agent --stdio` (see cmdGossip below and README.md)
//   node peer.mjs dht [--mode server|client] [--bootstrap MA]... [--protocol P] [--key FILE]
//        a kad-dht node (@libp2p/kad-dht 15.1.11) driven by the dht commands of
//        `p2pmq agent --stdio` (dht-table, dht-find-peer, dht-provide-topic,
//        dht-find-topic; see cmdDht below and README.md)
//
// Client subcommands accept --timeout SECONDS (default 120): the whole run is
// aborted with exit code 3 after it. Everything stays on 127.0.0.1.
import './polyfill.mjs'
import { setMaxListeners } from 'node:events'
import { readFileSync, writeFileSync } from 'node:fs'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { generateKeyPair, generateKeyPairFromSeed, privateKeyFromProtobuf, privateKeyFromRaw, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { gossipsub } from '@chainsafe/libp2p-gossipsub'
import { createInterface } from 'node:readline'
import { p2pmqMsgIdFn, seqnoBytes, toHex } from './msgid.mjs'

const ECHO_PROTOCOL = '/p2pmq/echo/1.0.0'
const PERF_PROTOCOL = '/perf/1.0.0'
const STREAM_LIMIT = 1024
const CHUNK = 64 * 1024

const USAGE = `usage:
  node peer.mjs listen [--echo] [--key HEXFILE] [--agent AGENT_VERSION]
  node peer.mjs ping <multiaddr> [--count N] [--timeout S]
  node peer.mjs identify <multiaddr> [--timeout S]
  node peer.mjs echo <multiaddr> --streams N --bytes B [--timeout S]
  node peer.mjs dialbench <multiaddr> --count N [--timeout S]
  node peer.mjs perf <multiaddr> --upload B --download B [--timeout S]
  node peer.mjs keygen [--out HEXFILE]
  node peer.mjs gossip [--bootstrap MULTIADDR]... [--topic T]... [--key FILE]
                       [--D n] [--Dlo n] [--Dhi n] [--Dout n] [--Dscore n] [--Dlazy n]
                       [--heartbeat-ms n] [--flood-publish 0|1] [--msgid p2pmq|stock]
                       [--px 0|1] [--accept-px-threshold n]
  node peer.mjs dht [--mode server|client] [--bootstrap MULTIADDR]... [--protocol P]
                    [--key FILE] [--query-timeout S]`

class UsageError extends Error {}

function parseArgs (argv) {
  const [cmd, ...rest] = argv
  const opts = { _: [] }
  const flags = new Set(['echo', 'perf'])
  const repeatable = new Set(['bootstrap', 'topic'])
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]
    if (a.startsWith('--')) {
      const name = a.slice(2)
      if (flags.has(name)) { opts[name] = true; continue }
      if (i + 1 >= rest.length) throw new UsageError(`option ${a} needs a value`)
      if (repeatable.has(name)) (opts[name] ??= []).push(rest[++i])
      else opts[name] = rest[++i]
    } else {
      opts._.push(a)
    }
  }
  return { cmd, opts }
}

function intOpt (opts, name, dflt) {
  if (opts[name] == null) {
    if (dflt === undefined) throw new UsageError(`--${name} is required`)
    return dflt
  }
  const v = Number(opts[name])
  if (!Number.isSafeInteger(v) || v < 0) throw new UsageError(`--${name} must be a non-negative integer, got ${opts[name]}`)
  return v
}

function out (line) {
  return new Promise(resolve => process.stdout.write(line + '\n', () => resolve()))
}

// Key file: either the binary libp2p protobuf-encoded PrivateKey (what
// `p2pmq keygen` / `p2pmq agent --key` write), or hex text (whitespace ignored)
// of that protobuf (what `keygen` here writes), of a 32-byte Ed25519 seed, or of
// a 64-byte raw Ed25519 private key (seed || public key).
async function loadKey (file) {
  const raw = readFileSync(file)
  const text = raw.toString('latin1').replace(/\s+/g, '')
  if (text.length > 0 && /^([0-9a-fA-F]{2})+$/.test(text)) {
    const bytes = Uint8Array.from(Buffer.from(text, 'hex'))
    if (bytes.length === 32) return generateKeyPairFromSeed('Ed25519', bytes)
    if (bytes.length === 64) return privateKeyFromRaw(bytes)
    return privateKeyFromProtobuf(bytes)
  }
  try {
    return privateKeyFromProtobuf(Uint8Array.from(raw))
  } catch (err) {
    throw new Error(`key file ${file}: neither hex nor a libp2p protobuf private key (${err.message})`)
  }
}

async function makeNode ({ listen = false, privateKey, identifyOnConnect = true, agentVersion, pubsub, dht } = {}) {
  return createLibp2p({
    privateKey,
    ...(agentVersion != null ? { nodeInfo: { userAgent: agentVersion } } : {}),
    addresses: { listen: listen ? ['/ip4/127.0.0.1/tcp/0'] : [] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux({ maxInboundStreams: STREAM_LIMIT, maxOutboundStreams: STREAM_LIMIT })],
    connectionGater: {
      // loopback is all these tests use: never refuse it
      denyDialMultiaddr: async () => false
    },
    connectionManager: {
      // loopback bypasses the per-host inbound rate limiter, the pending
      // connection cap and the connection pruner (see DESIGN.md §7)
      allow: ['/ip4/127.0.0.0/ipcidr/8'],
      maxConnections: 10_000,
      maxIncomingPendingConnections: 1_000,
      inboundConnectionThreshold: 1_000_000,
      maxParallelDials: 100,
      dialTimeout: 30_000,
      inboundUpgradeTimeout: 30_000
    },
    services: {
      identify: identify({ runOnConnectionOpen: identifyOnConnect, timeout: 30_000 }),
      ping: ping({ maxInboundStreams: STREAM_LIMIT, maxOutboundStreams: STREAM_LIMIT, timeout: 30_000 }),
      ...(pubsub != null ? { pubsub: gossipsub(pubsub) } : {}),
      ...(dht != null ? { dht } : {})
    }
  })
}

// Stops the node and exits on SIGTERM / SIGINT (once); returns the stop function (stop.isStopping() tells).
function stopOnSignals (node) {
  let stopping = false
  const stop = async () => {
    if (stopping) return
    stopping = true
    await stopNode(node)
    process.exit(0)
  }
  stop.isStopping = () => stopping
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  return stop
}

async function stopNode (node) {
  // a hung stop must not keep the process (and the test) alive
  await Promise.race([
    node.stop().catch(err => process.stderr.write(`peer.mjs: stop: ${err.message}\n`)),
    new Promise(resolve => setTimeout(resolve, 5000).unref())
  ])
}

// ---- deterministic data for echo --------------------------------------------
// Each stream sends a pseudo-random pattern of PERIOD bytes repeated. PERIOD is
// odd and near 1 MiB, so repetitions never line up with frame or chunk sizes.
const PERIOD = 1_048_573
function pattern (streamIndex, length) {
  const n = Math.min(length, PERIOD)
  const buf = Buffer.allocUnsafe(n + 4)
  let x = (Math.imul(streamIndex + 1, 0x9E3779B1) ^ 0x5bd1e995) >>> 0
  if (x === 0) x = 1
  for (let i = 0; i < n; i += 4) {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    buf.writeUInt32LE(x, i)
  }
  return buf.subarray(0, n)
}

async function * sendSource (pat, total) {
  let sent = 0
  while (sent < total) {
    const off = sent % pat.length
    const n = Math.min(CHUNK, total - sent, pat.length - off)
    yield pat.subarray(off, off + n)
    sent += n
  }
}

async function echoOne (conn, index, bytes, signal) {
  const pat = pattern(index, bytes)
  const stream = await conn.newStream(ECHO_PROTOCOL, { signal, maxOutboundStreams: STREAM_LIMIT })
  const onAbort = () => stream.abort(new Error('deadline'))
  signal.addEventListener('abort', onAbort, { once: true })
  try {
    let received = 0
    let firstBad = -1
    const reader = (async () => {
      for await (const list of stream.source) {
        for (const chunk of list) {
          let pos = 0
          while (pos < chunk.length) {
            if (received >= bytes) { // more than we sent
              if (firstBad < 0) firstBad = received
              received += chunk.length - pos
              break
            }
            const off = received % pat.length
            const n = Math.min(chunk.length - pos, pat.length - off, bytes - received)
            if (firstBad < 0 && Buffer.compare(chunk.subarray(pos, pos + n), pat.subarray(off, off + n)) !== 0) {
              firstBad = received
            }
            received += n
            pos += n
          }
        }
      }
    })()
    await Promise.all([stream.sink(sendSource(pat, bytes)), reader])
    await stream.close().catch(() => {})
    if (firstBad >= 0 || received !== bytes) {
      return { ok: false, error: `stream ${index}: received ${received} of ${bytes} bytes${firstBad >= 0 ? `, first mismatch at byte ${firstBad}` : ''}` }
    }
    return { ok: true }
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}

// ---- perf (libp2p/specs perf/perf.md) -----------------------------------------
const ZEROS = new Uint8Array(CHUNK)

async function * zeros (total) {
  let left = total
  while (left > 0) {
    const n = Math.min(CHUNK, left)
    yield n === CHUNK ? ZEROS : ZEROS.subarray(0, n)
    left -= n
  }
}

async function servePerf (stream) {
  let header = null
  let headerBytes = new Uint8Array(0)
  for await (const list of stream.source) {
    for (const chunk of list) {
      if (header != null) continue // drain the upload
      const joined = new Uint8Array(headerBytes.length + chunk.length)
      joined.set(headerBytes)
      joined.set(chunk.subarray(), headerBytes.length)
      headerBytes = joined
      if (headerBytes.length >= 8) header = Buffer.from(headerBytes.subarray(0, 8)).readBigUInt64BE(0)
    }
  }
  if (header == null) throw new Error('perf: stream ended before the 8-byte header')
  await stream.sink(zeros(Number(header)))
}

async function cmdPerf (node, ma, opts, signal) {
  const upload = intOpt(opts, 'upload', 0)
  const download = intOpt(opts, 'download', 0)
  const conn = await dialChecked(node, ma, signal)
  const stream = await conn.newStream(PERF_PROTOCOL, { signal })
  const header = Buffer.alloc(8)
  header.writeBigUInt64BE(BigInt(download))
  const t0 = process.hrtime.bigint()
  let t1 = null
  let received = 0
  const reader = (async () => {
    for await (const list of stream.source) {
      if (t1 == null) t1 = process.hrtime.bigint()
      received += list.byteLength
    }
    if (t1 == null) t1 = process.hrtime.bigint()
  })()
  await stream.sink((async function * () { yield header; yield * zeros(upload) })())
  await reader
  const t2 = process.hrtime.bigint()
  if (received !== download) throw new Error(`perf: expected ${download} bytes, got ${received}`)
  const up = Number(t1 - t0) / 1e9
  const down = Number(t2 - t1) / 1e9
  await out(JSON.stringify({
    upload_bytes: upload,
    download_bytes: download,
    upload_seconds: round(up, 6),
    download_seconds: round(down, 6),
    upload_MBps: up > 0 ? round(upload / up / 1e6, 3) : 0,
    download_MBps: down > 0 ? round(download / down / 1e6, 3) : 0
  }))
  return 0
}

// ---- subcommands -------------------------------------------------------------
async function cmdListen (opts) {
  const privateKey = opts.key != null ? await loadKey(opts.key) : undefined
  const node = await makeNode({ listen: true, privateKey, agentVersion: opts.agent })
  if (opts.echo) {
    await node.handle(ECHO_PROTOCOL, ({ stream }) => {
      // echo every byte; sink ends (closing our write side) at the remote's EOF
      stream.sink(stream.source).catch(err => {
        stream.abort(err)
      })
    }, { maxInboundStreams: STREAM_LIMIT, maxOutboundStreams: STREAM_LIMIT })
  }
  if (opts.perf) {
    await node.handle(PERF_PROTOCOL, ({ stream }) => {
      servePerf(stream).catch(err => stream.abort(err))
    }, { maxInboundStreams: STREAM_LIMIT, maxOutboundStreams: STREAM_LIMIT })
  }
  stopOnSignals(node)
  const id = node.peerId.toString()
  const addrs = node.getMultiaddrs()
  if (addrs.length === 0) throw new Error('node has no listen address')
  for (const ma of addrs) {
    const s = ma.toString()
    await out(`listening ${s.includes('/p2p/') ? s : `${s}/p2p/${id}`}`)
  }
  // keep running until a signal arrives
  setInterval(() => {}, 1 << 30)
}

// js-libp2p 2.10 does not hand the expected peer id of a /p2p/ address to the
// connection encrypter, so Noise accepts whichever key the remote proves. Check
// it here: a mismatch must fail the dial.
async function dialChecked (node, ma, signal) {
  const conn = await node.dial(ma, { signal })
  const want = ma.getPeerId()
  if (want != null && conn.remotePeer.toString() !== want) {
    await conn.close().catch(err => conn.abort(err))
    throw new Error(`peer id mismatch: dialed ${want} but the remote proved ${conn.remotePeer}`)
  }
  return conn
}

function targetAddr (opts) {
  if (opts._.length !== 1) throw new UsageError('exactly one <multiaddr> is required')
  try {
    return multiaddr(opts._[0])
  } catch (err) {
    throw new UsageError(`bad multiaddr ${opts._[0]}: ${err.message}`)
  }
}

async function cmdPing (node, ma, opts, signal) {
  const count = intOpt(opts, 'count', 1)
  const conn = await dialChecked(node, ma, signal)
  const who = conn.remotePeer.toString()
  for (let i = 1; i <= count; i++) {
    const rtt = await node.services.ping.ping(conn.remotePeer, { signal })
    await out(`pong ${i} from ${who} rtt=${rtt} ms`)
  }
  return 0
}

async function cmdIdentify (node, ma, opts, signal) {
  const conn = await dialChecked(node, ma, signal)
  const r = await node.services.identify.identify(conn, { signal })
  await out(JSON.stringify({
    peer: r.peerId.toString(),
    agentVersion: r.agentVersion ?? null,
    protocolVersion: r.protocolVersion ?? null,
    protocols: r.protocols ?? [],
    listenAddrs: (r.listenAddrs ?? []).map(a => a.toString()),
    observedAddr: r.observedAddr != null ? r.observedAddr.toString() : null
  }))
  return 0
}

async function cmdEcho (node, ma, opts, signal) {
  const streams = intOpt(opts, 'streams', 1)
  const bytes = intOpt(opts, 'bytes')
  if (streams < 1) throw new UsageError('--streams must be at least 1')
  const conn = await dialChecked(node, ma, signal)
  const t0 = process.hrtime.bigint()
  const results = await Promise.all(Array.from({ length: streams }, (_, i) =>
    echoOne(conn, i, bytes, signal).catch(err => ({ ok: false, error: `stream ${i}: ${err.name}: ${err.message}` }))))
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  const errors = results.filter(r => !r.ok).map(r => r.error)
  const ok = errors.length === 0
  await out(JSON.stringify({ ok, streams, bytes, seconds: round(seconds, 6), MBps: round(streams * bytes / seconds / 1e6, 3) }))
  if (!ok) {
    for (const e of errors.slice(0, 10)) process.stderr.write(`peer.mjs: echo: ${e}\n`)
    if (errors.length > 10) process.stderr.write(`peer.mjs: echo: ... ${errors.length - 10} more failed streams\n`)
    return 1
  }
  return 0
}

async function cmdDialbench (node, ma, opts, signal) {
  const count = intOpt(opts, 'count')
  if (count < 1) throw new UsageError('--count must be at least 1')
  const lat = []
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < count; i++) {
    const s = process.hrtime.bigint()
    // dial resolves once TCP + multistream + noise + yamux are done
    const conn = await dialChecked(node, ma, signal)
    lat.push(Number(process.hrtime.bigint() - s) / 1e6)
    await conn.close({ signal })
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  lat.sort((a, b) => a - b)
  const pct = p => lat[Math.min(lat.length - 1, Math.ceil(p * lat.length) - 1)]
  await out(JSON.stringify({ count, per_second: round(count / seconds, 3), p50_ms: round(pct(0.5), 3), p99_ms: round(pct(0.99), 3) }))
  return 0
}

async function cmdKeygen (opts) {
  const key = await generateKeyPair('Ed25519')
  const hex = Buffer.from(privateKeyToProtobuf(key)).toString('hex')
  if (opts.out != null) writeFileSync(opts.out, hex + '\n', { mode: 0o600 })
  else process.stderr.write(hex + '\n')
  await out(peerIdFromPrivateKey(key).toString())
  return 0
}

function round (x, digits) {
  const f = 10 ** digits
  return Math.round(x * f) / f
}

// ---- gossip: a gossipsub node with the `p2pmq agent --stdio` line protocol ------
//
// stdout: `listening <multiaddr>/p2p/<peerid>` line(s), then one JSON object a line:
//   {"event":"message","topic":T,"from":ID,"seqno":N,"data":UTF8,"id":HEX}   a message from another origin
//   {"event":"published","topic":T,"seqno":N,"id":HEX}                      after `pub`
//   {"event":"peers","peers":[ID...]}          after `peers` (peers the gossipsub router knows)
//   {"event":"mesh","topic":T,"peers":[ID...]} after `mesh T`
//   {"event":"subscribed","topic":T} / {"event":"unsubscribed","topic":T}  after `sub` / `unsub`
//   {"event":"connected","peer":ID}            after `connect MA`
//   {"event":"error","message":TEXT}           a failed command (or a failed --bootstrap dial)
// stdin, one command a line: sub T | unsub T | pub T <data: rest of line> |
//   connect <multiaddr> | peers | mesh T.  EOF, SIGTERM or SIGINT: stop, exit 0.
// seqno is a JSON number (a decimal string only if it exceeds 2^53 - 1, which a
// p2pmq per-topic counter never does).

const LOOPBACK_IPS = ['127.0.0.1', '::1']

function gossipOptions (over = {}) {
  return {
    allowPublishToZeroTopicPeers: true,
    emitSelf: false,
    globalSignaturePolicy: 'StrictSign',
    fallbackToFloodsub: true,
    // p2pmq's id: sha256(uvarint(len topic) || topic || from || seqno), msgid.mjs
    msgIdFn: p2pmqMsgIdFn,
    // the string form js keys its caches by (mcache, seen, IWANT lookups); on the
    // wire ids stay raw bytes
    msgIdToStrFn: toHex,
    scoreParams: {
      // every test peer shares 127.0.0.1: without this P6 (IP colocation) drives
      // them all negative once more than IPColocationFactorThreshold (10) connect
      IPColocationFactorWhitelist: new Set(LOOPBACK_IPS)
    },
    scoreThresholds: {
      // a test network must never gossip-, publish- or graylist-mute a peer
      gossipThreshold: -1e9,
      publishThreshold: -2e9,
      graylistThreshold: -4e9,
      acceptPXThreshold: 10,
      opportunisticGraftThreshold: 20
    },
    ...over
  }
}

// gossipOptions without the keys set to undefined (so gossipsub's own defaults apply).
function definedOnly (o) {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined))
}

function seqnoJson (seqno) {
  if (seqno == null) return null
  const b = BigInt(seqno)
  return b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b.toString()
}

// js gossipsub 14.1.2 takes no seqno from the caller: buildRawMessage() sets
// `seqno: randomBytes(8)` (@libp2p/crypto -> @noble/hashes randomBytes ->
// globalThis.crypto.getRandomValues), synchronously inside publish() before its
// first await. p2pmq numbers each origin's messages per topic from 1 (DESIGN.md
// §5), so for the duration of that synchronous call getRandomValues hands out
// our 8 bytes, once. The result is checked: the id gossipsub put into its seen
// cache must be the id of (topic, us, seqno).
async function publishWithSeqno (ps, topic, data, seqno, selfId) {
  const want = seqnoBytes(seqno)
  const c = globalThis.crypto
  const hadOwn = Object.prototype.hasOwnProperty.call(c, 'getRandomValues')
  const prev = c.getRandomValues
  let used = 0
  c.getRandomValues = function (arr) {
    if (used === 0 && arr instanceof Uint8Array && arr.length === 8) {
      used++
      arr.set(want)
      return arr
    }
    return prev.call(c, arr)
  }
  let pending
  try {
    pending = ps.publish(topic, data)
  } finally {
    if (hadOwn) c.getRandomValues = prev
    else delete c.getRandomValues
  }
  await pending
  const id = toHex(p2pmqMsgIdFn({ type: 'signed', topic, from: selfId, sequenceNumber: BigInt(seqno), data }))
  if (used !== 1 || (ps.seenCache != null && !ps.seenCache.has(id))) {
    throw new Error(`could not set the seqno of the publication to ${seqno} (gossipsub internals changed?); it went out with a random seqno`)
  }
  return id
}

async function cmdGossip (opts) {
  const privateKey = opts.key != null ? await loadKey(opts.key) : undefined
  const over = {}
  for (const [flag, key] of [['D', 'D'], ['Dlo', 'Dlo'], ['Dhi', 'Dhi'], ['Dout', 'Dout'], ['Dscore', 'Dscore'],
    ['Dlazy', 'Dlazy'], ['heartbeat-ms', 'heartbeatInterval']]) {
    if (opts[flag] != null) over[key] = intOpt(opts, flag)
  }
  if (opts['flood-publish'] != null) over.floodPublish = opts['flood-publish'] !== '0'
  // --px 1: our PRUNEs carry peer exchange; --accept-px-threshold N: follow PX from peers
  // scoring at least N (10 by default here)
  if (opts.px != null) over.doPX = opts.px !== '0'
  if (opts['accept-px-threshold'] != null) {
    over.scoreThresholds = { ...gossipOptions().scoreThresholds, acceptPXThreshold: intOpt(opts, 'accept-px-threshold') }
  }
  // --msgid stock: js gossipsub's own defaults (from || seqno ids, a random seqno per message),
  // as a js node that knows nothing of p2pmq runs; p2pmq (default): p2pmq's ids and seqnos.
  const msgid = opts.msgid ?? 'p2pmq'
  if (msgid !== 'p2pmq' && msgid !== 'stock') throw new UsageError(`--msgid must be p2pmq or stock, got ${msgid}`)
  if (msgid === 'stock') { over.msgIdFn = undefined; over.msgIdToStrFn = undefined }
  let bootstrap
  try {
    bootstrap = (opts.bootstrap ?? []).map(a => multiaddr(a))
  } catch (err) {
    throw new UsageError(`bad --bootstrap multiaddr: ${err.message}`)
  }
  if (opts._.length !== 0) throw new UsageError(`gossip takes no positional arguments, got ${opts._.join(' ')}`)

  const node = await makeNode({ listen: true, privateKey, agentVersion: opts.agent, pubsub: definedOnly(gossipOptions(over)) })
  const ps = node.services.pubsub
  const self = node.peerId
  const emit = obj => out(JSON.stringify(obj))
  const errorText = err => describe(err)

  const stop = stopOnSignals(node)

  const counts = { published: 0, received: 0 } // for `stats`
  ps.addEventListener('gossipsub:message', ({ detail: { msg } }) => {
    const signed = msg.type === 'signed'
    if (signed && msg.from.equals(self)) return // our own publication, come back round
    counts.received++
    emit({
      event: 'message',
      topic: msg.topic,
      from: signed ? msg.from.toString() : null,
      seqno: signed ? seqnoJson(msg.sequenceNumber) : null,
      data: Buffer.from(msg.data).toString('utf8'),
      id: toHex(p2pmqMsgIdFn(msg))
    })
  })

  const id = self.toString()
  const addrs = node.getMultiaddrs()
  if (addrs.length === 0) throw new Error('node has no listen address')
  for (const ma of addrs) {
    const s = ma.toString()
    await out(`listening ${s.includes('/p2p/') ? s : `${s}/p2p/${id}`}`)
  }

  for (const t of opts.topic ?? []) ps.subscribe(t)
  for (const ma of bootstrap) {
    dialChecked(node, ma, AbortSignal.timeout(30_000))
      .catch(err => emit({ event: 'error', message: `bootstrap ${ma}: ${errorText(err)}` }))
  }

  const seqnos = new Map() // topic -> last seqno we published on it
  const handle = async (line) => {
    const m = line.match(/^(\S+)(?: (.*))?$/)
    if (m == null) return // blank line
    const [, verb, rest = ''] = m
    const arg = rest.trim()
    switch (verb) {
      case 'sub':
        if (arg === '') throw new Error('usage: sub TOPIC')
        ps.subscribe(arg)
        return emit({ event: 'subscribed', topic: arg })
      case 'unsub':
        if (arg === '') throw new Error('usage: unsub TOPIC')
        ps.unsubscribe(arg)
        return emit({ event: 'unsubscribed', topic: arg })
      case 'pub': {
        // data is the rest of the line after `pub TOPIC ` (may be empty)
        const pm = rest.match(/^(\S+)(?: (.*))?$/)
        if (pm == null) throw new Error('usage: pub TOPIC DATA')
        const topic = pm[1]
        const data = new Uint8Array(Buffer.from(pm[2] ?? '', 'utf8'))
        if (msgid === 'stock') {
          await ps.publish(topic, data)
          counts.published++
          return emit({ event: 'published', topic, seqno: null, id: null })
        }
        const seqno = (seqnos.get(topic) ?? 0) + 1
        const msgId = await publishWithSeqno(ps, topic, data, seqno, self)
        seqnos.set(topic, seqno)
        counts.published++
        return emit({ event: 'published', topic, seqno, id: msgId })
      }
      case 'connect': {
        let ma
        try { ma = multiaddr(arg) } catch (err) { throw new Error(`bad multiaddr ${arg}: ${err.message}`) }
        const conn = await dialChecked(node, ma, AbortSignal.timeout(30_000))
        return emit({ event: 'connected', peer: conn.remotePeer.toString() })
      }
      case 'peers':
        return emit({ event: 'peers', peers: ps.getPeers().map(p => p.toString()) })
      case 'scores': {
        const scores = {}
        for (const p of ps.getPeers()) scores[p.toString()] = ps.getScore(p.toString())
        return emit({ event: 'scores', scores })
      }
      case 'stats': {
        const cpu = process.cpuUsage()
        return emit({
          event: 'stats',
          cpu_ms: Math.round((cpu.user + cpu.system) / 1000),
          rss_kb: Math.round(process.memoryUsage.rss() / 1024),
          max_rss_kb: process.resourceUsage().maxRSS,
          published: counts.published,
          received: counts.received
        })
      }
      case 'mesh':
        if (arg === '') throw new Error('usage: mesh TOPIC')
        return emit({ event: 'mesh', topic: arg, peers: ps.getMeshPeers(arg).map(p => p.toString()) })
      default:
        throw new Error(`unknown command ${JSON.stringify(verb)} (sub, unsub, pub, connect, peers, mesh)`)
    }
  }

  // one command at a time, in order, so answers come in the order asked
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false })
  for await (const raw of rl) {
    if (stop.isStopping()) break
    const line = raw.replace(/\r$/, '')
    try {
      await handle(line)
    } catch (err) {
      await emit({ event: 'error', message: `${line}: ${errorText(err)}` })
    }
  }
  await stop()
}

// ---- dht: a kad-dht node with the dht commands of `p2pmq agent --stdio` -----------
//
// @libp2p/kad-dht 15.1.11 on the p2pmq protocol id; --mode server answers DHT
// queries (and so is put into other nodes' routing tables), --mode client only asks.
// Loopback addresses are kept everywhere (peerInfoMapper: passthroughMapper; the
// default drops private addresses, which would leave a test network's routing
// tables empty).
//
// stdout: `listening <multiaddr>/p2p/<peerid>` line(s), then one JSON object a line:
//   {"event":"dht-table","peers":[ID...]}                after `dht-table` (routing table)
//   {"event":"dht-peer","peer":ID,"found":BOOL,"addrs":[MA...],"from":ID}
//        after `dht-find-peer ID`: a FIND_NODE lookup over the network (never the
//        local peer store); `from` (js only) is the peer whose answer had it
//   {"event":"dht-provided","topic":T,"peers":N}         after `dht-provide-topic T`:
//        N = the peers the ADD_PROVIDER went to
//   {"event":"dht-providers","topic":T,"providers":[{"peer":ID,"addrs":[MA...],"via":[ID...]}]}
//        after `dht-find-topic T`: a GET_PROVIDERS lookup; `via` (js only) are the
//        peers that answered with the provider (our own id: the local provider store)
//   {"event":"connected","peer":ID}                      after `connect MA`
//   {"event":"error","message":TEXT}                     a failed command or --bootstrap dial
// stdin, one command a line: dht-table | dht-find-peer ID | dht-provide-topic T |
//   dht-find-topic T | connect MA.  EOF, SIGTERM or SIGINT: stop, exit 0.
// A topic's provider key (src/dht/key.hpp): CIDv1 raw of sha2-256("p2pmq/topic/" + T);
// on the wire the key is its multihash (0x12 0x20 || digest).

const DHT_PROTOCOL = '/p2pmq/kad/1.0.0'
const TOPIC_KEY_PREFIX = 'p2pmq/topic/'
const RAW_CODEC = 0x55

async function cmdDht (opts) {
  const { kadDHT, passthroughMapper } = await import('@libp2p/kad-dht')
  const { CID } = await import('multiformats/cid')
  const { sha256 } = await import('multiformats/hashes/sha2')
  const { peerIdFromString } = await import('@libp2p/peer-id')

  const mode = opts.mode ?? 'server'
  if (mode !== 'server' && mode !== 'client') throw new UsageError(`--mode must be server or client, got ${mode}`)
  const protocol = opts.protocol ?? DHT_PROTOCOL
  const queryTimeoutMs = intOpt(opts, 'query-timeout', 30) * 1000
  const privateKey = opts.key != null ? await loadKey(opts.key) : undefined
  let bootstrap
  try {
    bootstrap = (opts.bootstrap ?? []).map(a => multiaddr(a))
  } catch (err) {
    throw new UsageError(`bad --bootstrap multiaddr: ${err.message}`)
  }
  if (opts._.length !== 0) throw new UsageError(`dht takes no positional arguments, got ${opts._.join(' ')}`)

  const node = await makeNode({
    listen: true,
    privateKey,
    agentVersion: opts.agent,
    dht: kadDHT({
      protocol,
      clientMode: mode === 'client',
      peerInfoMapper: passthroughMapper,
      // queries run at once instead of waiting for kad-dht's first self-query
      // (1 s after start); the join below does that lookup itself
      allowQueryWithZeroPeers: true
    })
  })
  const dht = node.services.dht
  const self = node.peerId
  const emit = obj => out(JSON.stringify(obj))

  const stop = stopOnSignals(node)

  const id = self.toString()
  const addrs = node.getMultiaddrs()
  if (addrs.length === 0) throw new Error('node has no listen address')
  for (const ma of addrs) {
    const s = ma.toString()
    await out(`listening ${s.includes('/p2p/') ? s : `${s}/p2p/${id}`}`)
  }

  const tablePeers = () => [...dht.routingTable.kb?.toIterable() ?? []].map(c => c.peerId.toString())
  const timeoutSignal = () => {
    const signal = AbortSignal.timeout(queryTimeoutMs)
    setMaxListeners(Infinity, signal)
    return signal
  }
  const topicCid = async topic =>
    CID.createV1(RAW_CODEC, await sha256.digest(new TextEncoder().encode(TOPIC_KEY_PREFIX + topic)))

  // Joining: dial the bootstrap peers (identify then puts DHT servers among them
  // into the routing table), then look up our own id once, the Kademlia join, so
  // the table holds our neighbourhood without waiting for kad-dht's periodic
  // self-query (5 min; its first run, 1 s after start, may precede the dials).
  const joined = Promise.all(bootstrap.map(ma =>
    dialChecked(node, ma, AbortSignal.timeout(30_000))
      .catch(err => { emit({ event: 'error', message: `bootstrap ${ma}: ${describe(err)}` }) })))
    .then(async () => {
      if (bootstrap.length === 0) return
      // the routing table gets a bootstrap peer after identify and a ping (async)
      const want = new Set(bootstrap.map(ma => ma.getPeerId()).filter(Boolean))
      const deadline = Date.now() + 10_000
      while (!stop.isStopping() && Date.now() < deadline && ![...want].some(p => tablePeers().includes(p))) {
        await new Promise(resolve => setTimeout(resolve, 50))
      }
      if (stop.isStopping()) return
      for await (const _ of dht.getClosestPeers(self.toMultihash().bytes, { signal: timeoutSignal() })) {} // eslint-disable-line no-unused-vars
    })
    .catch(err => { if (!stop.isStopping()) process.stderr.write(`peer.mjs: dht: self lookup after bootstrap: ${describe(err)}\n`) })

  const handle = async (line) => {
    const m = line.match(/^(\S+)(?: (.*))?$/)
    if (m == null) return // blank line
    const [, verb, rest = ''] = m
    const arg = rest.trim()
    switch (verb) {
      case 'dht-table':
        return emit({ event: 'dht-table', peers: tablePeers() })
      case 'dht-find-peer': {
        let target
        try { target = peerIdFromString(arg) } catch (err) { throw new Error(`bad peer id ${JSON.stringify(arg)}: ${err.message}`) }
        const signal = timeoutSignal()
        let found = null
        try {
          for await (const ev of dht.findPeer(target, { useCache: false, signal })) {
            if (ev.name === 'FINAL_PEER' && ev.peer.id.equals(target)) {
              found = { from: ev.from.toString(), addrs: ev.peer.multiaddrs.map(a => a.toString()) }
              break
            }
          }
        } catch (err) {
          // NotFoundError: the lookup ended without it; aborted: it ran out of time
          if (err.name !== 'NotFoundError' && !signal.aborted) throw err
        }
        return emit({ event: 'dht-peer', peer: target.toString(), found: found != null, addrs: found?.addrs ?? [], ...(found != null ? { from: found.from } : {}) })
      }
      case 'dht-provide-topic': {
        if (arg === '') throw new Error('usage: dht-provide-topic TOPIC')
        const cid = await topicCid(arg)
        const sentTo = new Set()
        for await (const ev of dht.provide(cid, { signal: timeoutSignal() })) {
          if (ev.name === 'PEER_RESPONSE' && ev.messageName === 'ADD_PROVIDER') sentTo.add(ev.from.toString())
        }
        return emit({ event: 'dht-provided', topic: arg, peers: sentTo.size })
      }
      case 'dht-find-topic': {
        if (arg === '') throw new Error('usage: dht-find-topic TOPIC')
        const cid = await topicCid(arg)
        const found = new Map() // provider id -> { addrs: Set, via: Set }
        const note = (from, providers) => {
          for (const p of providers) {
            const k = p.id.toString()
            if (!found.has(k)) found.set(k, { addrs: new Set(), via: new Set() })
            const e = found.get(k)
            for (const a of p.multiaddrs) e.addrs.add(a.toString())
            e.via.add(from.toString())
          }
        }
        const signal = timeoutSignal()
        try {
          for await (const ev of dht.findProviders(cid, { signal })) {
            // every answer, not only PROVIDER events (those list each provider once)
            if ((ev.name === 'PEER_RESPONSE' || ev.name === 'PROVIDER') && ev.providers.length > 0) note(ev.from, ev.providers)
          }
        } catch (err) {
          if (!signal.aborted) throw err
          process.stderr.write(`peer.mjs: dht-find-topic ${arg}: lookup cut off after ${queryTimeoutMs} ms\n`)
        }
        return emit({
          event: 'dht-providers',
          topic: arg,
          providers: [...found].map(([peer, e]) => ({ peer, addrs: [...e.addrs], via: [...e.via] }))
        })
      }
      case 'connect': {
        let ma
        try { ma = multiaddr(arg) } catch (err) { throw new Error(`bad multiaddr ${arg}: ${err.message}`) }
        const conn = await dialChecked(node, ma, AbortSignal.timeout(30_000))
        return emit({ event: 'connected', peer: conn.remotePeer.toString() })
      }
      default:
        throw new Error(`unknown command ${JSON.stringify(verb)} (dht-table, dht-find-peer, dht-provide-topic, dht-find-topic, connect)`)
    }
  }

  // one command at a time, in order, so answers come in the order asked
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false })
  for await (const raw of rl) {
    if (stop.isStopping()) break
    const line = raw.replace(/\r$/, '')
    try {
      await handle(line)
    } catch (err) {
      await emit({ event: 'error', message: `${line}: ${describe(err)}` })
    }
  }
  void joined
  await stop()
}

const CLIENTS = { ping: cmdPing, identify: cmdIdentify, echo: cmdEcho, dialbench: cmdDialbench, perf: cmdPerf }

async function main () {
  const { cmd, opts } = parseArgs(process.argv.slice(2))
  if (cmd === 'listen') return cmdListen(opts)
  if (cmd === 'keygen') process.exit(await cmdKeygen(opts))
  if (cmd === 'gossip') return cmdGossip(opts)
  if (cmd === 'dht') return cmdDht(opts)
  const fn = CLIENTS[cmd]
  if (fn == null) throw new UsageError(cmd == null ? 'missing subcommand' : `unknown subcommand ${cmd}`)
  const ma = targetAddr(opts)
  const timeoutS = intOpt(opts, 'timeout', 120)
  const controller = new AbortController()
  setMaxListeners(Infinity, controller.signal)
  const timer = setTimeout(() => {
    process.stderr.write(`peer.mjs: ${cmd} ${ma}: timed out after ${timeoutS} s\n`)
    controller.abort(new Error('timeout'))
    // give the abort a moment to unwind, then leave regardless
    setTimeout(() => process.exit(3), 2000).unref()
  }, timeoutS * 1000)
  const node = await makeNode({ identifyOnConnect: cmd !== 'identify' && cmd !== 'dialbench' })
  let code
  try {
    code = await fn(node, ma, opts, controller.signal)
  } catch (err) {
    process.stderr.write(`peer.mjs: ${cmd} ${ma} failed: ${describe(err)}\n`)
    code = controller.signal.aborted ? 3 : 1
  }
  clearTimeout(timer)
  await stopNode(node)
  process.exit(code)
}

function describe (err) {
  let s = `${err?.name ?? 'Error'}: ${err?.message ?? err}`
  // AggregateError from the dialer hides the per-address reasons
  if (Array.isArray(err?.errors)) s += ' [' + err.errors.map(e => `${e?.name}: ${e?.message}`).join('; ') + ']'
  if (err?.cause != null) s += ` (cause: ${err.cause?.name ?? ''}: ${err.cause?.message ?? err.cause})`
  return s
}

main().catch(err => {
  if (err instanceof UsageError) {
    process.stderr.write(`peer.mjs: ${err.message}\n${USAGE}\n`)
    process.exit(2)
  }
  process.stderr.write(`peer.mjs: ${describe(err)}\n`)
  process.exit(1)
})
