// Gossip nodes of any implementation for the benchmarks (bench-gossip.mjs, bench-mixed.mjs):
// each speaks the `p2pmq agent --stdio` line protocol (tests/interop/README.md). A node's
// stdout is parsed line by line without keeping the lines; `message` events go to onMessage.
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const HERE = dirname(fileURLToPath(import.meta.url))
const PEER_JS = join(HERE, 'peer.mjs')

export const CLK_TCK = 100 // getconf CLK_TCK on Linux (USER_HZ)
export const now = () => performance.timeOrigin + performance.now()

// Every node started, so that killAll() can end them (by pid) on exit.
export const live = new Set()
export function killAll () {
  for (const n of live) { try { process.kill(n.pid, 'SIGKILL') } catch {} }
}

// The command line of a gossip node of `impl` on `topic`: cpp (P2PMQ_BIN), js (peer.mjs),
// go (P2PMQ_GO_PEER) or rust (P2PMQ_RUST_PEER). msgid: p2pmq (everyone on p2pmq's ids) or
// default (each implementation on its own default id function and seqnos).
export function gossipArgv (impl, topic, msgid = 'p2pmq') {
  const peerMsgid = msgid === 'default' ? 'stock' : 'p2pmq'
  switch (impl) {
    case 'cpp':
      return [process.env.P2PMQ_BIN, 'agent', '--listen', '/ip4/127.0.0.1/tcp/0', '--stdio', '--grpc', 'off', '--topic', topic]
    case 'js': // D_lo as p2pmq's default
      return [process.execPath, PEER_JS, 'gossip', '--topic', topic, '--Dlo', '5', '--msgid', peerMsgid]
    case 'go':
      return [process.env.P2PMQ_GO_PEER, 'gossip', '--topic', topic, '--msgid', peerMsgid]
    case 'rust':
      return [process.env.P2PMQ_RUST_PEER, 'gossip', '--topic', topic, '--msgid', peerMsgid] // stock: rust's own default id
    default:
      throw new Error(`unknown implementation ${impl}`)
  }
}

// One gossip node; its stdout is parsed line by line without keeping the lines.
export function startNode (impl, index, argv, onMessage) {
  const child = spawn(argv[0], argv.slice(1), { cwd: HERE, stdio: ['pipe', 'pipe', 'pipe'] })
  const node = { impl, index, child, pid: child.pid, addr: null, exited: false, stderr: '', waiters: [], errors: 0, lastError: null }
  live.add(node)
  child.stdin.on('error', () => {})
  child.on('exit', (code, signal) => { node.exited = true; node.exit = { code, signal }; live.delete(node); for (const w of node.waiters) w(null) })
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', d => { node.stderr = (node.stderr + d).slice(-8000) })
  let partial = ''
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', chunk => {
    const t = now()
    partial += chunk
    let start = 0
    let nl
    while ((nl = partial.indexOf('\n', start)) >= 0) {
      const line = partial.slice(start, nl)
      start = nl + 1
      if (line.includes('"event":"message"')) {
        onMessage(node, line, t)
      } else if (line.startsWith('listening ') && node.addr == null) {
        if (/^listening \/ip4\/127\.0\.0\.1\/tcp\//.test(line)) {
          node.addr = line.slice(10).trim()
          node.peerId = node.addr.split('/p2p/')[1]
        }
      } else if (line.includes('"event":"error"')) {
        node.errors++
        node.lastError = line
      }
      if (node.waiters.length) for (const w of [...node.waiters]) w(line)
    }
    partial = partial.slice(start)
  })
  node.send = line => { if (!node.exited) child.stdin.write(line + '\n') }
  node.waitFor = (pred, ms, what) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => { done(); reject(new Error(`${impl} node ${index}: no ${what} within ${ms} ms; stderr: ${node.stderr.slice(-2000)}`)) }, ms)
    const w = line => {
      if (line == null) { done(); reject(new Error(`${impl} node ${index} exited (${JSON.stringify(node.exit)}) before ${what}; stderr: ${node.stderr.slice(-2000)}`)); return }
      const v = pred(line)
      if (v) { done(); resolve(v) }
    }
    const done = () => { clearTimeout(timer); node.waiters = node.waiters.filter(x => x !== w) }
    node.waiters.push(w)
  })
  // Sends `command` and resolves with the first JSON line whose event is `event`.
  node.ask = (command, event, ms = 10_000) => {
    const p = node.waitFor(l => l.includes(`"event":"${event}"`) && JSON.parse(l), ms, `${event} answer`)
    node.send(command)
    return p
  }
  node.stop = async () => {
    if (node.exited) return
    const exited = new Promise(resolve => child.once('exit', resolve))
    try { process.kill(node.pid, 'SIGTERM') } catch {}
    const t = setTimeout(() => { try { process.kill(node.pid, 'SIGKILL') } catch {} }, 5000)
    await exited
    clearTimeout(t)
  }
  return node
}

export function cpuTicks (pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ') // fields from 3 (state) on
    return Number(f[11]) + Number(f[12]) // utime (14), stime (15)
  } catch { return 0 }
}
export function vmHwmKiB (pid) {
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmHWM:\s+(\d+) kB/m)
    return m ? Number(m[1]) : null
  } catch { return null }
}


// --name VALUE options of a benchmark script; intOpt exits 2 unless the value is a positive integer.
export function cliOptions (script) {
  const opt = (name, dflt) => {
    const i = process.argv.indexOf(`--${name}`)
    return i < 0 ? dflt : process.argv[i + 1]
  }
  const intOpt = (name, dflt) => {
    const v = Number(opt(name, dflt))
    if (!Number.isSafeInteger(v) || v <= 0) {
      process.stderr.write(`${script}: --${name} needs a positive integer\n`)
      process.exit(2)
    }
    return v
  }
  return { opt, intOpt }
}
