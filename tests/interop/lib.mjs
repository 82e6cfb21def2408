// Process helpers shared by the interop tests and bench.mjs: spawn with a
// deadline, wait for a line, and kill (by pid) everything that was started.
import { execFileSync, spawn } from 'node:child_process'
import { accessSync, constants, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const HERE = dirname(fileURLToPath(import.meta.url))
export const PEER_JS = join(HERE, 'peer.mjs')
export const NODE = process.execPath
export const LISTEN_TIMEOUT_MS = 30_000
export const ECHO_PROTOCOL = '/p2pmq/echo/1.0.0'

const live = new Set()

/** The C++ binary from P2PMQ_BIN, or null (with the reason) if unusable. */
export function cppBin () {
  const bin = process.env.P2PMQ_BIN
  if (bin == null || bin === '') return { bin: null, reason: 'P2PMQ_BIN is not set' }
  try {
    if (!statSync(bin).isFile()) return { bin: null, reason: `P2PMQ_BIN=${bin} is not a file` }
    accessSync(bin, constants.X_OK)
  } catch (err) {
    return { bin: null, reason: `P2PMQ_BIN=${bin} is not executable (${err.code ?? err.message})` }
  }
  return { bin, reason: null }
}

/** The two kinds of peer: how to start a listener and how to run a client. */
export function kinds () {
  const { bin, reason } = cppBin()
  return {
    js: {
      name: 'js',
      available: true,
      listenCmd: ({ echo = false, key } = {}) =>
        [NODE, PEER_JS, 'listen', ...(echo ? ['--echo'] : []), ...(key ? ['--key', key] : [])],
      clientCmd: (sub, ...args) => [NODE, PEER_JS, sub, ...args]
    },
    cpp: {
      name: 'cpp',
      available: bin != null,
      reason,
      listenCmd: ({ echo = false, key } = {}) =>
        [bin, 'agent', '--listen', '/ip4/127.0.0.1/tcp/0', ...(echo ? ['--echo'] : []), ...(key ? ['--key', key] : [])],
      clientCmd: (sub, ...args) => [bin, sub, ...args]
    }
  }
}

/**
 * Start a long-running process. Its stdout is split into lines; stderr is
 * kept (bounded) for error messages. Returns a handle with waitLine/stop.
 */
export function start (argv, { env = {}, name = argv[1] ?? argv[0], stdin = 'ignore' } = {}) {
  const child = spawn(argv[0], argv.slice(1), {
    cwd: HERE,
    env: { ...process.env, ...env },
    stdio: [stdin, 'pipe', 'pipe']
  })
  const proc = {
    name,
    argv,
    child,
    pid: child.pid,
    lines: [],
    stderr: '',
    exited: false,
    code: null,
    signal: null,
    waiters: new Set()
  }
  live.add(proc)
  // with stdin 'pipe': a write after the child died must not crash the test
  child.stdin?.on('error', err => { proc.stderr += `stdin: ${err.message}\n` })
  let partial = ''
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', chunk => {
    partial += chunk
    let nl
    while ((nl = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, nl).replace(/\r$/, '')
      partial = partial.slice(nl + 1)
      proc.lines.push(line)
      for (const w of proc.waiters) w.check()
    }
  })
  child.stdout.on('end', () => {
    if (partial === '') return
    proc.lines.push(partial.replace(/\r$/, ''))  // a last line without its newline
    partial = ''
    for (const w of proc.waiters) w.check()
  })
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', chunk => {
    proc.stderr += chunk
    if (proc.stderr.length > 64 * 1024) proc.stderr = proc.stderr.slice(-32 * 1024)
  })
  proc.exitPromise = new Promise(resolve => {
    const done = (code, signal) => {
      if (proc.exited) return
      proc.exited = true
      proc.code = code
      proc.signal = signal
      live.delete(proc)
      for (const w of proc.waiters) w.check()
      resolve({ code, signal })
    }
    // 'exit' may come before the last of stdout is read (a loaded machine): wait for its end,
    // bounded, since a grandchild that inherited stdout can hold it open.
    child.on('exit', (code, signal) => {
      if (child.stdout.readableEnded) return done(code, signal)
      const timer = setTimeout(() => done(code, signal), 2000)
      child.stdout.once('end', () => { clearTimeout(timer); setImmediate(() => done(code, signal)) })
    })
    child.on('error', err => {
      proc.stderr += `spawn error: ${err.message}\n`
      done(null, null)
    })
  })
  proc.describe = () => `${argv.join(' ')} (pid ${proc.pid})${proc.exited ? ` exited code=${proc.code} signal=${proc.signal}` : ''}` +
    (proc.lines.length ? `\n--- stdout (last lines) ---\n${proc.lines.slice(-20).join('\n')}` : '') +
    (proc.stderr ? `\n--- stderr ---\n${proc.stderr.slice(-4000)}` : '')

  /** Resolve with the first line matching re (and its match), or throw on exit/timeout. */
  proc.waitLine = (re, timeoutMs = LISTEN_TIMEOUT_MS) => new Promise((resolve, reject) => {
    let seen = 0
    const w = {
      check () {
        for (; seen < proc.lines.length; seen++) {
          const m = proc.lines[seen].match(re)
          if (m) { finish(); resolve(m); return }
        }
        if (proc.exited) { finish(); reject(new Error(`exited before printing ${re}: ${proc.describe()}`)) }
      }
    }
    const timer = setTimeout(() => { finish(); reject(new Error(`no line matching ${re} within ${timeoutMs} ms: ${proc.describe()}`)) }, timeoutMs)
    const finish = () => { clearTimeout(timer); proc.waiters.delete(w) }
    proc.waiters.add(w)
    w.check()
  })

  /**
   * Resolve with the first line at index >= from for which pred(line) returns
   * a truthy value (that value), or throw on exit/timeout.
   */
  proc.waitFor = (pred, { timeoutMs = LISTEN_TIMEOUT_MS, from = 0, what = 'a matching line' } = {}) => new Promise((resolve, reject) => {
    let seen = from
    const w = {
      check () {
        for (; seen < proc.lines.length; seen++) {
          let v
          try { v = pred(proc.lines[seen], seen) } catch { v = undefined }
          if (v) { finish(); resolve(v); return }
        }
        if (proc.exited) { finish(); reject(new Error(`${proc.name} exited before printing ${what}: ${proc.describe()}`)) }
      }
    }
    const timer = setTimeout(() => { finish(); reject(new Error(`${proc.name}: no ${what} within ${timeoutMs} ms: ${proc.describe()}`)) }, timeoutMs)
    const finish = () => { clearTimeout(timer); proc.waiters.delete(w) }
    proc.waiters.add(w)
    w.check()
  })

  /** Write one line to the child's stdin (start it with stdin: 'pipe'). */
  proc.send = (line) => {
    if (child.stdin == null) throw new Error(`${proc.name}: stdin is not a pipe`)
    if (proc.exited) throw new Error(`${proc.name} has exited: ${proc.describe()}`)
    child.stdin.write(line + '\n')
  }

  /** End the child's stdin (EOF). */
  proc.closeStdin = () => { child.stdin?.end() }

  /** SIGTERM, then SIGKILL after graceMs. Resolves with the exit status. */
  proc.stop = async (graceMs = 5000) => {
    if (!proc.exited) {
      try { process.kill(proc.pid, 'SIGTERM') } catch {}
      const t = setTimeout(() => { try { process.kill(proc.pid, 'SIGKILL') } catch {} }, graceMs)
      await proc.exitPromise
      clearTimeout(t)
    }
    return { code: proc.code, signal: proc.signal }
  }
  return proc
}

/** Run a command to completion; kill it (by pid) past timeoutMs. */
export async function run (argv, { timeoutMs = 120_000, env = {} } = {}) {
  const proc = start(argv, { env })
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    try { process.kill(proc.pid, 'SIGKILL') } catch {}
  }, timeoutMs)
  const { code, signal } = await proc.exitPromise
  clearTimeout(timer)
  return { code, signal, timedOut, stdout: proc.lines, stderr: proc.stderr, describe: proc.describe }
}

/** Start a listener and wait for its `listening <ma>/p2p/<id>` lines. */
export async function startListener (kind, { echo = false, key, timeoutMs = LISTEN_TIMEOUT_MS } = {}) {
  const proc = start(kind.listenCmd({ echo, key }), { name: `${kind.name} listener` })
  try {
    const m = await proc.waitLine(/^listening (\/ip4\/127\.0\.0\.1\/tcp\/\d+\S*\/p2p\/(\S+))$/, timeoutMs)
    proc.addr = m[1]
    proc.peerId = m[2]
    // other addresses printed so far (a listener may print several)
    proc.addrs = proc.lines.filter(l => l.startsWith('listening ')).map(l => l.slice('listening '.length))
    return proc
  } catch (err) {
    await proc.stop()
    throw err
  }
}

/** Parse the single JSON line a client subcommand prints. */
export function jsonLine (res) {
  const lines = res.stdout.filter(l => l.trim().startsWith('{'))
  if (lines.length !== 1) throw new Error(`expected one JSON line, got ${lines.length}: ${res.describe()}\nstdout: ${res.stdout.join('\n')}`)
  return JSON.parse(lines[0])
}

/** Kill every process still alive that this module started. */
export async function stopAll () {
  await Promise.all([...live].map(p => p.stop()))
}

/** Replace the /p2p/ id of an address. */
export function withPeerId (addr, id) {
  return addr.replace(/\/p2p\/[^/]+$/, '') + `/p2p/${id}`
}

/** A fresh random Ed25519 peer id that no running peer has. */
export async function randomPeerId () {
  await import('./polyfill.mjs')
  const { generateKeyPair } = await import('@libp2p/crypto/keys')
  const { peerIdFromPrivateKey } = await import('@libp2p/peer-id')
  return peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
}

/** Write a fresh Ed25519 key, binary libp2p protobuf (the p2pmq key file format); returns its peer id. */
export async function writeRandomKey (path) {
  await import('./polyfill.mjs')
  const { writeFileSync } = await import('node:fs')
  const { generateKeyPair, privateKeyToProtobuf } = await import('@libp2p/crypto/keys')
  const { peerIdFromPrivateKey } = await import('@libp2p/peer-id')
  const key = await generateKeyPair('Ed25519')
  writeFileSync(path, privateKeyToProtobuf(key), { mode: 0o600 })
  return peerIdFromPrivateKey(key).toString()
}

/** An address without its trailing /p2p/<id>. */
export function stripP2p (addr) {
  return addr.replace(/\/p2p\/[^/]+$/, '')
}

/**
 * Poll until check() returns a truthy value (resolve with it); throw after
 * timeoutMs with describe()'s text. An exception from check() ends the wait.
 */
export async function until (what, check, { timeoutMs = 60_000, pollMs = 500, describe = () => '' } = {}) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await check()
    if (v) return v
    if (Date.now() > deadline) throw new Error(`${what}: not reached within ${timeoutMs} ms\n${await describe()}`)
    await new Promise(resolve => setTimeout(resolve, pollMs))
  }
}

// Last resort: never leave children behind when this process goes away.
function killLive () {
  for (const p of live) { try { process.kill(p.pid, 'SIGKILL') } catch {} }
}
process.on('exit', killLive)
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => { killLive(); process.exit(128 + (sig === 'SIGINT' ? 2 : 15)) })
}

// The p2pmq binary when its `agent --help` lists every flag of `flags`, else the reason not.
export function cppAgentSupport (flags) {
  const { bin, reason } = cppBin()
  if (bin == null) return { bin: null, reason }
  let help = ''
  try {
    help = execFileSync(bin, ['agent', '--help'], { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] })
  } catch (err) {
    help = `${err.stdout ?? ''}${err.stderr ?? ''}`
  }
  for (const flag of flags) {
    if (!help.includes(flag)) return { bin: null, reason: `${bin} agent has no ${flag} option yet` }
  }
  return { bin, reason: null }
}
