#!/usr/bin/env node
// A js-libp2p 2.10 peer following libp2p/test-plans transport-interop (its README.md "Test
// spec"), for p2pmq's local runner (../run.sh). Configured by the framework's environment
// variables: transport, security, muxer, is_dialer, ip, redis_addr, test_timeout_seconds.
// tcp/noise/yamux only. The listener RPUSHes its address to `listenerAddr`, the dialer BLPOPs
// it, dials, pings once and prints {"handshakePlusOneRTTMillis": ..., "pingRTTMilllis": ...}
// on stdout (logs on stderr). The two redis commands go over a minimal RESP client below.
import '../../interop/polyfill.mjs' // Promise.withResolvers on Node 20
import net from 'node:net'
import { performance } from 'node:perf_hooks'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { multiaddr } from '@multiformats/multiaddr'

const LISTENER_ADDR_KEY = 'listenerAddr'
const MAX_BULK = 1 << 20 // a redis reply larger than this is refused

const log = (...args) => console.error('js-peer: transport-interop:', ...args)

// ---- a minimal RESP (redis) client ---------------------------------------------------------

// Parses one reply from buf at off: { value, next }, or null while incomplete.
function parseReply (buf, off) {
  const eol = buf.indexOf('\r\n', off)
  if (eol < 0) return null
  const kind = String.fromCharCode(buf[off])
  const body = buf.toString('utf8', off + 1, eol)
  let next = eol + 2
  switch (kind) {
    case '+': return { value: body, next }
    case '-': return { value: new Error(`redis: ${body}`), next }
    case ':': return { value: Number(body), next }
    case '$':
    case '*': {
      const n = Number(body)
      if (!Number.isInteger(n) || n < -1 || n > MAX_BULK) throw new Error(`redis: bad length ${body}`)
      if (n === -1) return { value: null, next }
      if (kind === '$') {
        if (buf.length < next + n + 2) return null
        return { value: buf.toString('utf8', next, next + n), next: next + n + 2 }
      }
      const items = []
      for (let i = 0; i < n; i++) {
        const r = parseReply(buf, next)
        if (r == null) return null
        items.push(r.value)
        next = r.next
      }
      return { value: items, next }
    }
    default: throw new Error(`redis: unknown reply ${JSON.stringify(body)}`)
  }
}

class Redis {
  // Retries until the deadline: the framework starts redis and both peers at once.
  static async connect (host, port, deadline) {
    for (;;) {
      try {
        const socket = await new Promise((resolve, reject) => {
          const s = net.connect({ host, port })
          s.once('connect', () => { s.off('error', reject); resolve(s) })
          s.once('error', reject)
        })
        return new Redis(socket)
      } catch (err) {
        if (Date.now() + 100 >= deadline) throw new Error(`redis at ${host}:${port} not reachable: ${err.message}`)
        await new Promise(resolve => setTimeout(resolve, 100))
      }
    }
  }

  constructor (socket) {
    this.socket = socket
    this.buf = Buffer.alloc(0)
    this.waiting = null // { resolve, reject } of the one command in flight
    socket.on('data', chunk => {
      this.buf = Buffer.concat([this.buf, chunk])
      this.#deliver()
    })
    socket.on('error', err => this.#fail(err))
    socket.on('close', () => this.#fail(new Error('redis: connection closed')))
  }

  #deliver () {
    if (this.waiting == null) return
    let r
    try {
      r = parseReply(this.buf, 0)
    } catch (err) {
      return this.#fail(err)
    }
    if (r == null) return
    this.buf = this.buf.subarray(r.next)
    const { resolve, reject } = this.waiting
    this.waiting = null
    if (r.value instanceof Error) reject(r.value)
    else resolve(r.value)
  }

  #fail (err) {
    if (this.waiting == null) return
    const { reject } = this.waiting
    this.waiting = null
    reject(err)
  }

  command (...args) {
    const parts = [`*${args.length}\r\n`]
    for (const a of args) parts.push(`$${Buffer.byteLength(a)}\r\n${a}\r\n`)
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject }
      this.socket.write(parts.join(''))
    })
  }

  close () { this.socket.destroy() }
}

// ---- the test --------------------------------------------------------------------------------

function config () {
  const env = process.env
  for (const [name, want] of [['transport', 'tcp'], ['security', 'noise'], ['muxer', 'yamux']]) {
    if (env[name] !== want) throw new Error(`${name}=${JSON.stringify(env[name] ?? '')} is not supported (the js peer supports ${name}=${want} only)`)
  }
  if (env.is_dialer !== 'true' && env.is_dialer !== 'false') throw new Error(`is_dialer=${JSON.stringify(env.is_dialer ?? '')} must be true or false`)
  const redisAddr = env.redis_addr || 'redis:6379'
  const colon = redisAddr.lastIndexOf(':')
  const port = Number(redisAddr.slice(colon + 1))
  if (colon <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`redis_addr=${redisAddr} must be HOST:PORT`)
  const timeout = Number(env.test_timeout_seconds || '180')
  if (!Number.isInteger(timeout) || timeout <= 0) throw new Error(`test_timeout_seconds=${env.test_timeout_seconds} must be a positive integer`)
  return {
    dialer: env.is_dialer === 'true',
    ip: env.ip || '0.0.0.0',
    redisHost: redisAddr.slice(0, colon).replace(/^\[(.*)\]$/, '$1'),
    redisPort: port,
    timeoutSeconds: timeout
  }
}

function makeNode (listen) {
  return createLibp2p({
    addresses: { listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify(), ping: ping() }
  })
}

async function dial (cfg, redis, deadline) {
  const wait = Math.max(1, Math.floor((deadline - Date.now()) / 1000))
  const reply = await redis.command('BLPOP', LISTENER_ADDR_KEY, String(wait))
  if (!Array.isArray(reply) || reply.length !== 2) throw new Error(`no ${LISTENER_ADDR_KEY} within ${wait} s`)
  const target = multiaddr(reply[1])
  const node = await makeNode([])
  try {
    log(`dialing ${target}`)
    const start = performance.now() // handshakeStartInstant
    await node.dial(target, { signal: AbortSignal.timeout(Math.max(1, deadline - Date.now())) })
    const rtt = await node.services.ping.ping(target, { signal: AbortSignal.timeout(Math.max(1, deadline - Date.now())) })
    const total = performance.now() - start
    // the framework's key has three l's
    process.stdout.write(JSON.stringify({ handshakePlusOneRTTMillis: total, pingRTTMilllis: rtt }) + '\n')
  } finally {
    await node.stop()
  }
}

async function listen (cfg, redis, deadline) {
  // the framework ends the listener once the dialer is done (SIGTERM, a clean end), maybe as
  // soon as the address is out: catch it from now on; the test timeout is a failure
  const { promise, resolve } = Promise.withResolvers()
  process.once('SIGTERM', () => resolve(true))
  process.once('SIGINT', () => resolve(true))
  const family = cfg.ip.includes(':') ? 'ip6' : 'ip4'
  const node = await makeNode([`/${family}/${cfg.ip}/tcp/0`])
  // a non-loopback address first (what a peer in another container can dial)
  const addrs = node.getMultiaddrs().map(a => a.toString())
  const isLoopback = a => a.startsWith('/ip4/127.') || a.startsWith('/ip6/::1/')
  const announced = addrs.find(a => !isLoopback(a)) ?? addrs[0]
  if (announced == null) throw new Error('no listen address')
  await redis.command('RPUSH', LISTENER_ADDR_KEY, announced)
  log(`listening on ${announced}`)
  const timer = setTimeout(() => resolve(false), Math.max(1, deadline - Date.now()))
  const signalled = await promise
  clearTimeout(timer)
  await node.stop()
  if (!signalled) throw new Error(`listener not done after test_timeout_seconds=${cfg.timeoutSeconds}`)
}

async function main () {
  let cfg
  try {
    cfg = config()
  } catch (err) {
    log(err.message)
    return 2
  }
  const deadline = Date.now() + cfg.timeoutSeconds * 1000
  let redis
  try {
    redis = await Redis.connect(cfg.redisHost, cfg.redisPort, deadline)
    await (cfg.dialer ? dial(cfg, redis, deadline) : listen(cfg, redis, deadline))
    return 0
  } catch (err) {
    log(err.message)
    return 1
  } finally {
    redis?.close()
  }
}

process.exit(await main())
