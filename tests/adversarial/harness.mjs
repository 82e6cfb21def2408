// The attack suite's harness: a victim `p2pmq agent --stdio --grpc` with honest
// p2pmq neighbours that keep publishing, the victim's memory (VmRSS), honest pings,
// honest delivery (ratio and latency), scores from `p2pmq status`, and the report.
// Process handling (start, wait for a line, kill by pid) is tests/interop/lib.mjs.
import { execFileSync } from 'node:child_process'
import { appendFileSync, readFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { NODE, cppAgentSupport, run, start, until as pollUntil } from '../interop/lib.mjs'

export const HERE = dirname(fileURLToPath(import.meta.url))
export const ATTACKER_JS = join(HERE, 'attacker.mjs')

// Generous: a loaded 2-core machine shared with other builds.
export const DEADLINE_MS = 60_000
// Liveness: an honest `p2pmq ping` (a new connection, Noise, Yamux, one ping) must be
// answered within this. It is a liveness check, not a latency claim.
export const PING_DEADLINE_S = 20
// Memory the victim may grow by during an attack, over its baseline. The resource
// manager (issue 10, item 1) gives one peer at most 64 MiB and the whole agent 1 GiB;
// one attacker here is one peer (or one IP), so the bound is the per-peer budget plus
// 64 MiB for what honest traffic, allocator slack and the attack's own connection
// bookkeeping take. ADVERSARIAL_MEMORY_LIMIT_MB overrides it.
export const MEMORY_LIMIT_MB = Number(process.env.ADVERSARIAL_MEMORY_LIMIT_MB ?? 128)
// After the attacker is gone, the victim's RSS must come back to within this of its
// baseline (issue 10, item 6: memory comes back).
export const RECOVERY_SLACK_MB = Number(process.env.ADVERSARIAL_RECOVERY_SLACK_MB ?? 32)
// A victim built with AddressSanitizer (P2PMQ_SANITIZED=1, set by CMake for that flavour):
// its RSS is mostly shadow memory and quarantine, so the memory figures are reported but not
// asserted there; every other check holds (and ASan itself checks for memory errors).
export const SANITIZED = process.env.P2PMQ_SANITIZED === '1'
// Honest delivery during an attack.
export const MIN_DELIVERY_RATIO = 0.99
// Loopback addresses of attackers: a /16 apart from the honest peers' 127.0.0.1, so a
// victim's per-IP and per-subnet limits can tell them apart.
export const ATTACKER_IP = '127.66.0.1'

export const TOPIC = 'adversarial/honest'

export const CPP = cppAgentSupport(['--stdio', '--topic', '--bootstrap', '--grpc', '--set'])

let configKeys = null
/**
 * Every configuration key path of the binary (`p2pmq agent --print-config`, two-space YAML),
 * so a test can use a limit once the agent has it and run without it before.
 */
export function agentConfigKeys () {
  if (configKeys != null || CPP.bin == null) return configKeys ?? []
  configKeys = []
  let text = ''
  try {
    text = execFileSync(CPP.bin, ['agent', '--print-config'], { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'ignore'] })
  } catch {}
  const path = []
  for (const line of text.split('\n')) {
    const m = line.match(/^( *)([A-Za-z0-9_.\/-]+):/)
    if (m == null) continue
    const depth = m[1].length / 2
    path.length = depth
    path.push(m[2])
    configKeys.push(path.join('.'))
  }
  return configKeys
}

/** `--set PATH=VALUE` for each key whose last component is `leaf`, if the agent has one. */
export function setIfKnown (leaf, value) {
  return agentConfigKeys().filter(k => k === leaf || k.endsWith('.' + leaf)).flatMap(k => ['--set', `${k}=${value}`])
}

/**
 * The attackers are on loopback (127.66.0.1). A resource manager may hold loopback addresses
 * to a looser limit (a devnet puts every peer on 127.0.0.1); these flags hold them to the
 * per-IP defaults instead, so the victim treats the attacker as the remote host it stands
 * for. Empty until the agent has such keys.
 */
export function loopbackAsRemote () {
  return [...setIfKnown('connections_per_loopback_ip', 8), ...setIfKnown('handshakes_per_loopback_ip', 4)]
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
/** lib.mjs's until() with this suite's deadline and a faster poll by default. */
export function until (what, check, { timeoutMs = DEADLINE_MS, pollMs = 250, describe = () => '' } = {}) {
  return pollUntil(what, check, { timeoutMs, pollMs, describe })
}

/** VmRSS of a live process, in MiB (null once it is gone). */
export function rssMb (pid) {
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB/m)
    return m ? Number(m[1]) / 1024 : null
  } catch {
    return null
  }
}

/** CPU time (user + system) a live process has used, in seconds (null once it is gone). */
export function cpuSeconds (pid) {
  try {
    // /proc/<pid>/stat: fields 14 and 15 are utime and stime in clock ticks (USER_HZ = 100)
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return null
  }
}

/** Samples a process's RSS every 100 ms and keeps the peak (a measurement, not a wait). */
export class RssSampler {
  constructor (pid) {
    this.pid = pid
    this.peak = rssMb(pid) ?? 0
    this.timer = setInterval(() => { const r = rssMb(pid); if (r != null && r > this.peak) this.peak = r }, 100)
  }

  stop () { clearInterval(this.timer); const r = rssMb(this.pid); if (r != null && r > this.peak) this.peak = r; return this.peak }
}

// ---- an agent driven by its --stdio line protocol ------------------------------------
export class Agent {
  /** Start `p2pmq agent --stdio --grpc 127.0.0.1:0` and wait for its addresses. */
  static async start (name, { topics = [TOPIC], bootstrap = [], args = [] } = {}) {
    const argv = [CPP.bin, 'agent', '--listen', '/ip4/127.0.0.1/tcp/0', '--grpc', '127.0.0.1:0', '--stdio',
      // every agent of a test in a DHT of its own, so nothing outside the test joins it
      '--set', `dht.protocol_prefix=${Agent.dhtPrefix}`,
      ...topics.flatMap(t => ['--topic', t]), ...bootstrap.flatMap(b => ['--bootstrap', b]), ...args]
    const proc = start(argv, { name, stdin: 'pipe' })
    const a = new Agent(name, proc)
    try {
      const m = await proc.waitLine(/^listening (\/ip4\/127\.0\.0\.1\/tcp\/\d+\S*\/p2p\/(\S+))$/, DEADLINE_MS)
      a.addr = m[1]
      a.peerId = m[2]
      a.grpc = (await proc.waitLine(/^grpc (\S+)$/, DEADLINE_MS))[1]
    } catch (err) {
      await proc.stop()
      throw err
    }
    return a
  }

  static dhtPrefix = '/p2pmq'

  constructor (name, proc) {
    this.name = name
    this.proc = proc
    this.pid = proc.pid
    this.received = new Map() // message id -> { at, from, data }
    this.seen = 0
    // lib.start splits the lines in its own listener, registered first: record each
    // message's arrival as its chunk comes in (for the latency figures)
    proc.child.stdout.on('data', () => this.collect())
  }

  toString () { return `${this.name} (${this.peerId})` }

  /** Message events printed since the last call, recorded with their arrival time. */
  collect () {
    const lines = this.proc.lines
    for (; this.seen < lines.length; this.seen++) {
      const l = lines[this.seen]
      if (!l.startsWith('{"event":"message"') && !l.includes('"event":"message"')) continue
      try {
        const e = JSON.parse(l)
        if (e.event === 'message' && !this.received.has(e.id)) this.received.set(e.id, { at: Date.now(), from: e.from, data: e.data, topic: e.topic })
      } catch {}
    }
    return this.received
  }

  async request (line, event, pred = () => true, timeoutMs = DEADLINE_MS) {
    const from = this.proc.lines.length
    this.proc.send(line)
    const ev = await this.proc.waitFor(l => {
      if (!l.startsWith('{')) return undefined
      const e = JSON.parse(l)
      if (e.event === 'error') return { error: e.message ?? l }
      return e.event === event && pred(e) ? e : undefined
    }, { from, timeoutMs, what: `an answer "${event}" to "${line.slice(0, 80)}"` })
    if (ev.error != null) throw new Error(`${this}: "${line.slice(0, 80)}" failed: ${ev.error}`)
    return ev
  }

  async mesh (topic = TOPIC) { return (await this.request(`mesh ${topic}`, 'mesh', e => e.topic === topic)).peers }
  async peers () { return this.request('peers', 'peers') }

  /** `p2pmq status --agent` of this agent, parsed. */
  async status () {
    const res = await run([CPP.bin, 'status', '--agent', this.grpc], { timeoutMs: 30_000 })
    if (res.code !== 0) throw new Error(`p2pmq status --agent ${this.grpc} failed: ${res.describe()}`)
    return JSON.parse(res.stdout.join('\n'))
  }

  /** The score this agent gives `peerId`, or null when it does not list the peer. */
  async scoreOf (peerId) {
    const st = await this.status()
    const p = st.peers.find(x => x.peer_id === peerId)
    return p == null ? null : p.score
  }

  stop () { return this.proc.stop(10_000) }
}

// ---- the honest network -------------------------------------------------------------
/**
 * A victim and `honest` p2pmq agents, each honest agent bootstrapping to the victim and
 * to the honest agents before it; resolves once the victim's mesh holds every honest
 * agent (so honest traffic reaches it directly).
 */
export async function startNetwork ({ honest = 3, victimArgs = [], victimTopics = [TOPIC], honestArgs = [] } = {}) {
  Agent.dhtPrefix = `/adv-${randomBytes(6).toString('hex')}`
  const net = { victim: null, honest: [], traffic: null }
  net.victim = await Agent.start('victim', { topics: victimTopics, args: victimArgs })
  try {
    for (let i = 0; i < honest; i++) {
      const bootstrap = [net.victim.addr, ...net.honest.map(h => h.addr)]
      net.honest.push(await Agent.start(`honest${i + 1}`, { bootstrap, args: honestArgs }))
    }
    await until('the victim grafts every honest agent', async () => {
      const mesh = await net.victim.mesh()
      return net.honest.every(h => mesh.includes(h.peerId))
    }, { describe: async () => `victim mesh: ${JSON.stringify(await net.victim.mesh())}` })
  } catch (err) {
    await stopNetwork(net)
    throw err
  }
  return net
}

export async function stopNetwork (net) {
  net.traffic?.stop()
  await Promise.all([net.victim, ...net.honest].filter(Boolean).map(a => a.stop()))
}

/**
 * Honest traffic: every honest agent publishes `perSecond` messages a second of about
 * `size` bytes on TOPIC, until stop(). Each publication is recorded with the time its
 * `pub` line was written (the n-th `published` event of an agent answers its n-th pub).
 */
export function startTraffic (net, { perSecond = 10, size = 200 } = {}) {
  let window = 'before'
  let stopped = false
  const sources = net.honest.map(h => ({ h, sent: [], seen: 0, matched: 0, published: [] }))
  const timers = sources.map((src, i) => {
    let k = 0
    return setInterval(() => {
      if (stopped || src.h.proc.exited) return
      const data = `h${i + 1}-${++k}-` + 'x'.repeat(Math.max(0, size - 12))
      src.sent.push({ sentAt: Date.now(), window })
      try { src.h.proc.send(`pub ${TOPIC} ${data}`) } catch { src.sent.pop() }
    }, 1000 / perSecond)
  })
  const scan = () => {
    for (const src of sources) {
      const lines = src.h.proc.lines
      for (; src.seen < lines.length; src.seen++) {
        const l = lines[src.seen]
        if (!l.includes('"event":"published"')) continue
        const e = JSON.parse(l)
        if (e.topic !== TOPIC || src.matched >= src.sent.length) continue
        const s = src.sent[src.matched++]
        src.published.push({ id: e.id, sentAt: s.sentAt, window: s.window, origin: src.h })
      }
    }
    return sources.flatMap(s => s.published)
  }
  const traffic = {
    get published () { return scan() },
    setWindow (w) { window = w },
    async stop () {
      stopped = true
      for (const t of timers) clearInterval(t)
      // every pub written gets its answer (or its agent is gone)
      await until('answers to every honest pub', () => { scan(); return sources.every(s => s.matched >= s.sent.length || s.h.proc.exited) }, { timeoutMs: 30_000 }).catch(() => {})
    }
  }
  net.traffic = traffic
  return traffic
}

/**
 * Delivery to `receiver` of the publications in `window` (not its own): waits until all
 * arrived or the deadline; returns { published, delivered, ratio, p50Ms, p99Ms }.
 */
export async function deliveryOf (traffic, receiver, window, { timeoutMs = 30_000 } = {}) {
  const want = traffic.published.filter(p => p.window === window && p.origin !== receiver)
  const missing = () => want.filter(p => !receiver.collect().has(p.id))
  await until(`delivery to ${receiver.name}`, () => missing().length === 0, { timeoutMs }).catch(() => {})
  const got = receiver.collect()
  const lat = want.filter(p => got.has(p.id)).map(p => got.get(p.id).at - p.sentAt).sort((a, b) => a - b)
  const pct = q => lat.length ? lat[Math.min(lat.length - 1, Math.ceil(q * lat.length) - 1)] : null
  return {
    published: want.length,
    delivered: lat.length,
    ratio: want.length ? lat.length / want.length : 1,
    p50Ms: pct(0.5),
    p99Ms: pct(0.99)
  }
}

// ---- honest pings -------------------------------------------------------------------
/** One `p2pmq ping --count 1` to addr: { ok, ms, error }. */
export async function pingOnce (addr) {
  const t = Date.now()
  const res = await run([CPP.bin, 'ping', addr, '--count', '1'], { timeoutMs: PING_DEADLINE_S * 1000 })
  const ok = res.code === 0 && res.stdout.some(l => l.startsWith('pong 1 '))
  const why = () => res.timedOut ? `no answer within ${PING_DEADLINE_S} s` : (res.stderr.trim().split('\n').slice(-2).join(' | ') || `exit ${res.code} signal ${res.signal}, stdout: ${res.stdout.join(' | ')}`)
  return { ok, ms: Date.now() - t, error: ok ? null : why() }
}

/** Pings addr one after another until stop(); stop() resolves with every result. */
export function startPinger (addr) {
  const results = []
  let stopped = false
  const loop = (async () => {
    while (!stopped) {
      results.push(await pingOnce(addr))
      if (!stopped) await sleep(1000)
    }
  })()
  return { results, async stop () { stopped = true; await loop; return results } }
}

// ---- attackers ----------------------------------------------------------------------
/** Start attacker.mjs MODE against the victim; resolves once it reported ready. */
export async function startAttacker (mode, victim, args = {}, { sourceIp = ATTACKER_IP } = {}) {
  const argv = [NODE, ATTACKER_JS, mode, '--target', victim.addr, '--source-ip', sourceIp,
    ...Object.entries(args).flatMap(([k, v]) => [`--${k}`, String(v)])]
  const proc = start(argv, { name: `attacker ${mode}` })
  proc.t0 = Date.now()
  await proc.waitFor(l => l.includes('"event":"ready"'), { timeoutMs: DEADLINE_MS, what: 'ready' })
  return proc
}

/** Wait for the attacker's `done` line (it stops by itself), then make sure it is gone. */
export async function attackerDone (proc, timeoutMs) {
  let done = null
  try {
    done = await proc.waitFor(l => { const e = l.startsWith('{') ? JSON.parse(l) : null; return e?.event === 'done' ? e : undefined },
      { timeoutMs, what: 'done' })
  } catch (err) {
    if (!proc.exited) throw err
  }
  await proc.stop()
  return done ?? {}
}

// ---- the report ---------------------------------------------------------------------
/**
 * Appends one attack's figures to $ADVERSARIAL_REPORT (JSON lines) when set; report.mjs
 * turns them into the markdown table of docs/security.md.
 */
export function record (row) {
  const file = process.env.ADVERSARIAL_REPORT
  if (file) appendFileSync(file, JSON.stringify({ ...row, at: new Date().toISOString() }) + '\n')
}

const fmt = (x, d = 1) => x == null ? 'n/a' : Number(x).toFixed(d)

/**
 * Collects the failed checks of one attack so that every figure is measured and recorded
 * before the test fails; `check(ok, what)` adds, `assertAll()` throws them together.
 */
export class Checks {
  constructor (name) { this.name = name; this.failed = [] }
  check (ok, what) { if (!ok) this.failed.push(what); return ok }
  assertAll () {
    if (this.failed.length) throw new Error(`${this.name}:\n  - ${this.failed.join('\n  - ')}`)
  }
}

/**
 * The common frame of an attack: baseline, honest traffic and pings around `attack()`,
 * then the common checks (memory, liveness, delivery, recovery) and the report row.
 * attack() returns { attacker: summary object, cutOffMs, notes, checks(c) (extra checks) }.
 */
export async function underAttack (net, name, scale, attack, { memoryLimitMb = MEMORY_LIMIT_MB, recovery = true, trafficOpts = {}, minDelivery = MIN_DELIVERY_RATIO } = {}) {
  const c = new Checks(name)
  const { victim } = net
  const traffic = startTraffic(net, trafficOpts)
  // The baseline: honest traffic flowing for a few heartbeats, before any attack.
  await until('honest traffic reaches the victim', () => victim.collect().size >= 2 * net.honest.length)
  const baseline = rssMb(victim.pid)
  traffic.setWindow('attack')
  const sampler = new RssSampler(victim.pid)
  const cpuBefore = cpuSeconds(victim.pid)
  const pinger = startPinger(victim.addr)
  let outcome
  try {
    outcome = await attack()
  } finally {
    traffic.setWindow('after')
  }
  const peak = sampler.stop()
  const cpu = cpuSeconds(victim.pid) - cpuBefore
  const pings = await pinger.stop()
  await traffic.stop()
  const delivery = await deliveryOf(traffic, victim, 'attack')
  const alive = victim.proc.exited ? false : (await pingOnce(victim.addr)).ok

  let after = null
  if (recovery && !victim.proc.exited) {
    // Memory comes back: polled, with a deadline, once the attacker is gone.
    await until('victim RSS back near its baseline', () => rssMb(victim.pid) <= baseline + RECOVERY_SLACK_MB, { timeoutMs: 20_000 }).catch(() => {})
    after = rssMb(victim.pid)
  }
  const failedPings = pings.filter(p => !p.ok)
  const row = {
    attack: name,
    scale,
    baseline_mb: baseline,
    peak_over_baseline_mb: peak - baseline,
    after_over_baseline_mb: after == null ? null : after - baseline,
    delivery_ratio: delivery.ratio,
    delivered: `${delivery.delivered}/${delivery.published}`,
    p99_ms: delivery.p99Ms,
    pings: `${pings.length - failedPings.length}/${pings.length}`,
    victim_cpu_s: cpu,
    cut_off_ms: outcome?.cutOffMs ?? null,
    notes: outcome?.notes ?? ''
  }
  record(row)
  console.log(`# ${name}: baseline ${fmt(baseline)} MiB, peak +${fmt(peak - baseline)} MiB, after +${fmt(after == null ? null : after - baseline)} MiB, ` +
    `delivery ${row.delivered} (p99 ${row.p99_ms} ms), pings ${row.pings}, victim CPU ${fmt(cpu)} s, cut off ${row.cut_off_ms ?? 'never'} ms; ${row.notes}`)

  c.check(!victim.proc.exited, `the victim exited: ${victim.proc.describe()}`)
  c.check(SANITIZED || peak - baseline <= memoryLimitMb, `victim RSS grew by ${fmt(peak - baseline)} MiB (baseline ${fmt(baseline)} MiB), over the ${memoryLimitMb} MiB limit`)
  c.check(failedPings.length === 0 && alive, `honest pings failed during the attack: ${failedPings.length} of ${pings.length} (${failedPings.map(p => p.error).slice(0, 3).join('; ')}), after: ${alive ? 'ok' : 'failed'}`)
  c.check(delivery.ratio >= minDelivery, `honest delivery to the victim ${delivery.delivered}/${delivery.published} (${fmt(delivery.ratio * 100)} %) < ${minDelivery * 100} %`)
  if (recovery && !SANITIZED) c.check(after != null && after - baseline <= RECOVERY_SLACK_MB, `victim RSS ${fmt(after)} MiB after the attack, not back within ${RECOVERY_SLACK_MB} MiB of its baseline ${fmt(baseline)} MiB`)
  if (outcome?.checks) await outcome.checks(c)
  return { checks: c, row, baseline, peak, after, delivery, pings, cpu }
}
