// The attack suite (issue 10, item 5): real attacker processes (attacker.mjs, a js-libp2p
// peer or raw TCP) against a victim `p2pmq agent` whose honest p2pmq neighbours keep
// publishing. Each case is bounded in time and count (its scale is in its name) and
// asserts, after measuring everything (harness.mjs, underAttack):
//   - the victim's RSS stays under its baseline + MEMORY_LIMIT_MB,
//   - it answers honest `p2pmq ping`s within PING_DEADLINE_S, during and after,
//   - honest delivery to it stays >= 99 %,
//   - the attacker's score or connection reflects the abuse,
//   - its RSS comes back near the baseline once the attacker is gone.
// Cases that need a fix which has not landed are marked `todo` with the fix they wait for.
// ADVERSARIAL_REPORT=FILE collects the figures (report.mjs prints docs/security.md's table).
// Run: P2PMQ_BIN=build/release/apps/p2pmq/p2pmq node --test --test-concurrency=1 attacks.test.mjs
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomPeerId, run, stopAll } from '../interop/lib.mjs'
import {
  Agent, CPP, Checks, MIN_DELIVERY_RATIO, SANITIZED, TOPIC, attackerDone, loopbackAsRemote, pingOnce, startAttacker, startNetwork, stopNetwork, underAttack, until
} from './harness.mjs'
import { GRPC_STATUS, GrpcClient, startValidator } from './grpc.mjs'
import * as pb from './pb.mjs'

after(stopAll)

const SKIP = CPP.bin == null ? `needs the p2pmq binary: ${CPP.reason}` : false
const TEST_TIMEOUT_MS = 240_000
// An honest dial by the victim must complete within the agent's default dial timeout.
const DIAL_DEADLINE_S = 10

async function withNetwork (opts, fn) {
  const net = await startNetwork(opts)
  try {
    return await fn(net)
  } finally {
    await stopNetwork(net)
  }
}

/** Run an attacker for its duration inside underAttack; returns its `done` summary via outcome. */
function attackWith (net, mode, args, durationMs, extra = {}) {
  return async () => {
    const proc = await startAttacker(mode, net.victim, { 'duration-ms': durationMs, ...args })
    const during = extra.during ? extra.during(proc) : null
    const done = await attackerDone(proc, durationMs + 60_000)
    await during
    return { attacker: done, cutOffMs: done.cut_after_ms ?? null, ...(extra.outcome ? extra.outcome(done) : {}) }
  }
}

/** The victim's score for a peer id: a number, or 'gone' when it no longer knows the peer. */
async function scoreOrGone (victim, peerId) {
  const s = await victim.scoreOf(peerId)
  return s == null ? 'gone' : s
}

function attackerPeer (proc) {
  const ready = proc.lines.find(l => l.includes('"event":"ready"'))
  return ready ? JSON.parse(ready).peer : null
}

// ---- below libp2p --------------------------------------------------------------------
describe('connections', () => {
  // 400 connections held without a handshake (each one closed is replaced) take more than
  // the 256 inbound slots.
  test('slowloris: 400 connections of one IP held for 15 s (100 garbage, 150 a byte a second, 150 silent; replaced when closed)',
    { skip: SKIP, timeout: TEST_TIMEOUT_MS }, async () => {
      await withNetwork({ victimArgs: loopbackAsRemote() }, async net => {
        let done
        const { checks } = await underAttack(net, 'slowloris', '400 conns x 15 s',
          attackWith(net, 'slowloris', { connections: 400, garbage: 100, slow: 150 }, 15_000, {
            outcome: d => { done = d; return { cutOffMs: d.median_close_ms ?? null, notes: `opened ${d.opened}, refused ${d.failed}, closed by victim ${d.closed_by_victim}, still open at the end ${d.still_open}` } }
          }))
        checks.check(done.closed_by_victim >= 100, `the victim closed only ${done.closed_by_victim} of the 100 connections that sent garbage within 15 s`)
        checks.assertAll()
      })
    })

  test('Sybil: 100 identities from one IP against a victim with 64 inbound slots',
    { skip: SKIP, timeout: TEST_TIMEOUT_MS }, async () => {
      await withNetwork({ victimArgs: ['--set', 'limits.max_inbound_connections=64', ...loopbackAsRemote()] }, async net => {
        let done
        const { checks } = await underAttack(net, 'sybil', '100 peers, 1 IP, 64 slots',
          attackWith(net, 'sybil', { peers: 100 }, 15_000, {
            outcome: d => { done = d; return { cutOffMs: d.first_close_ms ?? null, notes: `connected ${d.connected}, refused ${d.failed}, closed by victim ${d.closed_by_victim}` } }
          }))
        checks.check(done.connected - done.closed_by_victim < 64 - 8,
          `one IP holds ${done.connected - done.closed_by_victim} of the victim's 64 inbound slots`)
        checks.assertAll()
      })
    })
})

// ---- streams and the muxer -----------------------------------------------------------
describe('streams', () => {
  test('partial RPCs: 200 /meshsub streams of one peer, each holding 999 kB of a 1 MB RPC',
    { skip: SKIP, timeout: TEST_TIMEOUT_MS }, async () => {
      await withNetwork({}, async net => {
        let done
        const { checks } = await underAttack(net, 'partial /meshsub RPCs', '200 streams x 999 kB',
          attackWith(net, 'partial-streams', { streams: 200, bytes: 999_000 }, 20_000, {
            outcome: d => { done = d; return { notes: `streams opened ${d.streams_opened}, reset ${d.streams_reset}, sent ${Math.round(d.bytes_sent / 1e6)} MB` } }
          }))
        // Each new stream replaces the one before it (one inbound pubsub stream per peer).
        checks.check(done.streams_reset >= done.streams_opened - 1 || done.cut_after_ms != null,
          `the victim reset ${done.streams_reset} of ${done.streams_opened} streams and kept the connection`)
        checks.assertAll()
      })
    })

  // The SYNs never negotiate a protocol: today they hold the host's 128 negotiation slots
  // (global, not per peer) and honest pings are reset.
  test('yamux SYN flood past the stream limit (20,000 SYNs) and 200,000 pings, attacker not reading',
    { skip: SKIP, timeout: TEST_TIMEOUT_MS }, async () => {
      await withNetwork({}, async net => {
        let done
        const { checks } = await underAttack(net, 'yamux SYN + ping flood, no reading', '20k SYN + 200k ping',
          attackWith(net, 'syn-flood', { syns: 20_000, pings: 200_000 }, 15_000, {
            outcome: d => { done = d; return { notes: `sent ${d.syns_sent} SYNs, ${d.pings_sent} pings` } }
          }))
        checks.check(done.cut_after_ms != null, 'the victim kept the connection of a peer that does not read')
        checks.assertAll()
      })
    })

  // 10,000 x 1 KiB is more than the victim's 8 MiB gossip queue per peer plus a yamux
  // window: enough to show whether a peer that reads nothing is noticed.
  // A peer that takes none of our RPCs for resources.stall_timeout (5 s here) is disconnected.
  test('a mesh peer stopped (SIGSTOP) while the victim publishes 10,000 x 1 KiB',
    { skip: SKIP, timeout: TEST_TIMEOUT_MS }, async () => {
      await withNetwork({ victimArgs: ['--set', 'resources.stall_timeout=5s'] }, async net => {
        const [h1, h2, stopped] = net.honest
        const COUNT = 10_000
        let victimDelivery = []
        let stoppedScore = null
        const { checks } = await underAttack(net, 'SIGSTOPped mesh peer', '10,000 x 1 KiB', async () => {
          process.kill(stopped.pid, 'SIGSTOP')
          try {
            const pad = 'v'.repeat(1000)
            const before = net.victim.proc.lines.length
            for (let k = 1; k <= COUNT; k++) net.victim.proc.send(`pub ${TOPIC} victim-${k}-${pad}`)
            let n = 0
            await net.victim.proc.waitFor(l => l.includes('"event":"published"') && ++n >= COUNT, { from: before, timeoutMs: 180_000, what: `${COUNT} published events` })
            const ids = net.victim.proc.lines.slice(before).filter(l => l.includes('"event":"published"')).map(l => JSON.parse(l).id)
            victimDelivery = await Promise.all([h1, h2].map(async h => {
              await until(`${h.name} gets the victim's messages`, () => ids.every(id => h.collect().has(id)), { timeoutMs: 60_000 }).catch(() => {})
              return ids.filter(id => h.collect().has(id)).length / ids.length
            }))
            stoppedScore = await until('the victim drops or penalises the stopped peer', async () => {
              const s = await scoreOrGone(net.victim, stopped.peerId)
              return (s === 'gone' || s < 0) ? s : false
            }, { timeoutMs: 60_000 }).catch(async () => scoreOrGone(net.victim, stopped.peerId))
          } finally {
            process.kill(stopped.pid, 'SIGCONT')
          }
          return { notes: `victim -> honest delivery ${victimDelivery.map(r => (r * 100).toFixed(1) + ' %').join(', ')}; stopped peer's score ${stoppedScore}` }
        }, {
          // Under ASan the victim spends ~30 s of CPU on its own 10,000 signed publishes and
          // sheds some honest messages while saturated (98.2 % in one CI run). The ratio under
          // load is the release build's to prove; ASan is here for memory errors.
          minDelivery: SANITIZED ? 0.95 : MIN_DELIVERY_RATIO
        })
        for (const [i, r] of victimDelivery.entries()) checks.check(r >= 0.99, `honest${i + 1} got ${(r * 100).toFixed(1)} % of the victim's ${COUNT} messages`)
        checks.check(stoppedScore === 'gone' || stoppedScore < 0, `the victim still scores the stopped peer ${stoppedScore}`)
        checks.assertAll()
      })
    })
})

// ---- gossipsub control -------------------------------------------------------------
describe('gossipsub', () => {
  // The victim publishes 3,000 x 1 KiB as the attack starts: the attacker (in its mesh)
  // learns their ids and asks for all of them again and again.
  // A peer that takes none of our RPCs for resources.stall_timeout (5 s here) is disconnected.
  test('IWANT flood: 300 RPCs x 5,000 ids of 1 KiB messages, attacker not reading the answers',
    { skip: SKIP, timeout: TEST_TIMEOUT_MS }, async () => {
      await withNetwork({ victimArgs: ['--set', 'resources.stall_timeout=5s'] }, async net => {
        let dropped = null
        const { checks } = await underAttack(net, 'IWANT flood, no reading', '300 x 5,000 ids',
          attackWith(net, 'iwant-flood', { topic: TOPIC, rpcs: 300, ids: 5000, 'pause-reading': 1, 'want-ids': 2000 }, 15_000, {
            during: async proc => {
              const pad = 'i'.repeat(1000)
              for (let k = 1; k <= 3000; k++) net.victim.proc.send(`pub ${TOPIC} iwant-bait-${k}-${pad}`)
              // The attacker's socket is paused, so it cannot see the cut itself: ask the victim.
              const peer = await until('the attacker is ready', () => attackerPeer(proc), { timeoutMs: 30_000 })
              dropped = await until('the victim drops the attacker', async () => (await scoreOrGone(net.victim, peer)) === 'gone', { timeoutMs: 60_000 }).catch(() => false)
            },
            outcome: d => ({ notes: `known ids ${d.known_ids}, RPCs sent ${d.rpcs_sent}` })
          }))
        checks.check(dropped, 'the victim kept answering a peer that does not read')
        checks.assertAll()
      })
    })

  test('IHAVE flood: 300 RPCs x 5,000 unknown ids',
    { skip: SKIP, timeout: TEST_TIMEOUT_MS }, async () => {
      await withNetwork({}, async net => {
        let peer; let score = null
        const { checks } = await underAttack(net, 'IHAVE flood (unknown ids)', '300 x 5,000 ids', async () => {
          const proc = await startAttacker('ihave-flood', net.victim, { 'duration-ms': 12_000, topic: TOPIC, rpcs: 300, ids: 5000 })
          peer = attackerPeer(proc)
          // broken promises cost P7 once their follow-up time (3 s) has passed
          score = await until('the victim penalises broken IWANT promises', async () => { const s = await scoreOrGone(net.victim, peer); return (s === 'gone' || s < 0) ? String(s) : false }, { timeoutMs: 30_000 }).catch(() => null)
          const done = await attackerDone(proc, 60_000)
          return { cutOffMs: done.cut_after_ms ?? null, notes: `RPCs sent ${done.rpcs_sent}; attacker's score ${score ?? 'not negative'}` }
        })
        checks.check(score != null, 'the attacker\'s score never went negative')
        checks.assertAll()
      })
    })

  test('GRAFT flood during backoff: 2,000 GRAFTs after a PRUNE',
    { skip: SKIP, timeout: TEST_TIMEOUT_MS }, async () => {
      await withNetwork({}, async net => {
        let score = null
        const { checks } = await underAttack(net, 'GRAFT flood in backoff', '2,000 GRAFTs', async () => {
          const proc = await startAttacker('graft-flood', net.victim, { 'duration-ms': 8_000, topic: TOPIC, grafts: 2000 })
          const peer = attackerPeer(proc)
          score = await until('the victim penalises GRAFTs in backoff', async () => { const s = await scoreOrGone(net.victim, peer); return (s === 'gone' || s < 0) ? String(s) : false }, { timeoutMs: 30_000 }).catch(() => null)
          const done = await attackerDone(proc, 60_000)
          return { cutOffMs: done.cut_after_ms ?? null, notes: `RPCs sent ${done.rpcs_sent}; attacker's score ${score ?? 'not negative'}` }
        })
        checks.check(score != null, 'the attacker\'s score never went negative')
        checks.assertAll()
      })
    })

  test('invalid-message spam: 5,000 signed messages the validator REJECTs',
    { skip: SKIP, timeout: TEST_TIMEOUT_MS }, async () => {
      const validator = await startValidator(m => m.data?.toString('utf8').startsWith('spam') ? 3 : 1,
        { decode: pb.decodeApiMessage, encode: pb.validatedMessage })
      try {
        await withNetwork({ victimArgs: ['--validator', `127.0.0.1:${validator.port}`] }, async net => {
          let score = null
          const { checks } = await underAttack(net, 'invalid-message spam (validator REJECT)', '5,000 messages', async () => {
            const proc = await startAttacker('invalid-spam', net.victim, { 'duration-ms': 12_000, topic: TOPIC, messages: 5000, batch: 100 })
            const peer = attackerPeer(proc)
            score = await until('the victim penalises rejected messages', async () => { const s = await scoreOrGone(net.victim, peer); return (s === 'gone' || s < 0) ? String(s) : false }, { timeoutMs: 30_000 }).catch(() => null)
            const done = await attackerDone(proc, 60_000)
            return { cutOffMs: done.cut_after_ms ?? null, notes: `sent ${done.messages_sent}; validator rejected ${validator.counts.reject}; attacker's score ${score ?? 'not negative'}` }
          })
          checks.check(score != null, 'the attacker\'s score never went negative')
          const leaked = net.honest.map(h => [...h.collect().values()].filter(m => m.data?.startsWith('spam')).length)
          checks.check(leaked.every(n => n === 0), `rejected spam reached honest agents: ${leaked.join(', ')}`)
          checks.assertAll()
        })
      } finally {
        await validator.close()
      }
    })

  // One connection is cut after its first RPC; a new identity per RPC is free, so the
  // attacker uses 6 connections of one RPC each: 3,600 full-size modexps.
  test('huge-exponent RSA key: 6 connections x 600 messages signed by RSA-3072 with e = n - 2',
    { skip: SKIP, timeout: TEST_TIMEOUT_MS }, async () => {
      await withNetwork({}, async net => {
        let score = null
        const { checks, cpu } = await underAttack(net, 'huge-exponent RSA signatures', '6 x 600 messages', async () => {
          const proc = await startAttacker('rsa-exponent', net.victim, { 'duration-ms': 10_000, topic: TOPIC, messages: 600, connections: 6 })
          const peer = attackerPeer(proc)
          const done = await attackerDone(proc, 90_000)
          score = await scoreOrGone(net.victim, peer).catch(err => `status failed: ${err.message}`)
          return { cutOffMs: done.cut_after_ms ?? null, notes: `sent ${done.messages_sent}; attacker's score ${score}` }
        })
        checks.check(score === 'gone' || score < 0, `the attacker's score is ${score}`)
        // A resource bound, not a latency: refusing 3,600 such keys (exponent above 2^32)
        // costs next to nothing; verifying them costs ~8 ms of CPU each.
        checks.check(cpu < 5, `the victim spent ${cpu.toFixed(1)} s of CPU on the attack (3,600 modexps)`)
        checks.assertAll()
      })
    })

  // Passes since main 69d707b (topics we joined are always taken from a peer's subscriptions).
  test('2,000 topics: a peer connecting to an agent subscribed to 2,000 topics gets its subscriptions and deliveries',
    { skip: SKIP, timeout: TEST_TIMEOUT_MS }, async () => {
      const topics = Array.from({ length: 2000 }, (_, i) => `adversarial/many/${i}`)
      const last = topics.at(-1)
      const net = { victim: null, honest: [] }
      try {
        net.victim = await Agent.start('victim', { topics: [TOPIC, ...topics] })
        const newcomer = await Agent.start('newcomer', { topics: [TOPIC, last], bootstrap: [net.victim.addr] })
        net.honest.push(newcomer)
        const c = new Checks('2,000 topics')
        const meshed = await until(`the newcomer and the victim mesh on ${last}`, async () => {
          const [a, b] = await Promise.all([net.victim.mesh(last), newcomer.mesh(last)])
          return a.includes(newcomer.peerId) && b.includes(net.victim.peerId)
        }, { timeoutMs: 30_000 }).catch(() => false)
        c.check(meshed, `no mesh on ${last} between the victim and the newcomer`)
        const pub = await net.victim.request(`pub ${last} hello-from-2000`, 'published', e => e.topic === last)
        const got = await until('the newcomer receives the victim\'s message', () => newcomer.collect().has(pub.id), { timeoutMs: 20_000 }).catch(() => false)
        c.check(got, `the newcomer did not receive the victim's message on ${last}`)
        const back = await newcomer.request(`pub ${last} hello-from-newcomer`, 'published', e => e.topic === last)
        const gotBack = await until('the victim receives the newcomer\'s message', () => net.victim.collect().has(back.id), { timeoutMs: 20_000 }).catch(() => false)
        c.check(gotBack, `the victim did not receive the newcomer's message on ${last}`)
        // the subscriptions: the newcomer knows the victim is on the topics they share, and
        // does not hold the announcement against it
        const view = (await newcomer.status()).peers.find(p => p.peer_id === net.victim.peerId)
        c.check(view != null, 'the newcomer does not list the victim')
        c.check(view != null && view.topics.includes(last) && view.topics.includes(TOPIC),
          `the newcomer knows ${view?.topics.length} of the victim's 2,001 subscriptions, not the shared ${last}`)
        c.check(view != null && view.score >= 0, `the newcomer scores the victim ${view?.score} for announcing its topics`)
        c.check((await pingOnce(net.victim.addr)).ok, 'the victim does not answer a ping')
        c.assertAll()
      } finally {
        await stopNetwork(net)
      }
    })

  // Passes since main 872778f (sync.max_seqno_jump: such an origin is delivered untracked).
  test('seqno jump of 2^40 on a synced topic',
    { skip: SKIP, timeout: TEST_TIMEOUT_MS }, async () => {
      await withNetwork({ honestArgs: ['--role', 'archive'] }, async net => {
        let status; let archiveScores
        const { checks } = await underAttack(net, 'seqno jump 2^40', '1 message', async () => {
          const proc = await startAttacker('seqno-jump', net.victim, { 'duration-ms': 10_000, topic: TOPIC, jump: (2n ** 40n).toString() })
          const done = await attackerDone(proc, 60_000)
          status = await net.victim.status()
          archiveScores = await Promise.all(net.honest.map(h => h.scoreOf(net.victim.peerId)))
          return { cutOffMs: done.cut_after_ms ?? null, notes: `victim sync fetches ${status.sync?.fetches}, failures ${status.sync?.fetch_failures}; archives score the victim ${archiveScores.join(', ')}` }
        })
        checks.check((status.sync?.fetches ?? 0) <= 10, `the victim ran ${status.sync?.fetches} sync fetches for one jump`)
        checks.check(archiveScores.every(s => s == null || s >= 0), `archives penalised the honest victim for fetching: ${archiveScores.join(', ')}`)
        checks.assertAll()
      })
    })
})

// ---- the DHT --------------------------------------------------------------------------
describe('dht', () => {
  // The fake peers' addresses are in TEST-NET-1, where dials hang until their timeout: the
  // victim's topic discovery (every second here) dials the fake providers it is given.
  // While that goes on, the victim must still dial a new honest agent on loopback within
  // DIAL_DEADLINE_S (today the fake providers hold its pending-dial slots: such a dial
  // took 19 s, or failed with "too many pending dials").
  test('fake providers and fake peers: 5,000 ADD_PROVIDERs, every answer 20 fake peers x 32 addresses',
    { skip: SKIP, timeout: TEST_TIMEOUT_MS }, async () => {
      await withNetwork({ victimArgs: ['--set', 'dht.discovery_interval=1s', '--set', 'dht.request_timeout=2s', '--set', 'dht.query_timeout=3s'] }, async net => {
        let done
        let lookups = 0
        const honestConnects = [] // true, or why the dial failed
        const { checks } = await underAttack(net, 'DHT fake providers and peers', '5,000 keys, 20 x 32 per answer',
          attackWith(net, 'dht-flood', { keys: 5000, 'fake-peers': 20, addrs: 32, 'kad-protocol': `${Agent.dhtPrefix}/kad/1.0.0` }, 15_000, {
            during: async proc => {
              const attacking = () => !proc.exited && !proc.lines.some(l => l.includes('"event":"done"'))
              // honest lookups through the victim for 8 s, which meet the attacker's answers
              // (the victim's stdio runs one command at a time: the lookups finish first)
              while (attacking() && Date.now() - proc.t0 < 8_000) {
                await net.victim.request(`dht-find-peer ${await randomPeerId()}`, 'dht-peer', () => true, 60_000).catch(() => {})
                await net.victim.request(`dht-find-topic ${TOPIC}`, 'dht-providers', () => true, 60_000).catch(() => {})
                lookups++
              }
              // then, every 2 s: the victim dials a new honest agent
              const late = await Agent.start('late honest agent', { topics: [] })
              try {
                while (attacking() && honestConnects.length < 3) {
                  // liveness: within the agent's own dial timeout (limits.dial_timeout, 10 s)
                  const ok = await net.victim.request(`connect ${late.addr}`, 'connected', () => true, DIAL_DEADLINE_S * 1000).then(() => true, err => err.message)
                  honestConnects.push(ok)
                  if (ok !== true) break // a late answer would be taken for the next dial's
                  await new Promise(resolve => setTimeout(resolve, 2_000)) // pacing: one dial every 2 s
                }
              } finally {
                await late.stop()
              }
            },
            outcome: d => { done = d; return { notes: `ADD_PROVIDERs ${d.providers_sent}, queries answered ${d.queries_answered}, victim lookups ${lookups}, honest dials ok ${honestConnects.filter(c => c === true).length}/${honestConnects.length}` } }
          }))
        checks.check(done.queries_answered > 0, 'the victim never asked the attacker (the attack did not reach it)')
        const failed = honestConnects.filter(c => c !== true)
        checks.check(honestConnects.length > 0 && failed.length === 0, `the victim could not dial a new honest agent during the flood: ${failed.length} of ${honestConnects.length} (${failed[0]})`)
        checks.assertAll()
      })
    })
})

// ---- the local API ------------------------------------------------------------------
describe('api', () => {
  test('200 Listen streams that never read, buffer_size 65536, while 5,000 x 1 KiB arrive',
    { skip: SKIP, timeout: TEST_TIMEOUT_MS }, async () => {
      const T2 = 'adversarial/listen'
      await withNetwork({ victimTopics: [TOPIC, T2], victimArgs: ['--set', 'score.delivery_record_ttl=2s'] }, async net => {
        const clients = []
        const { checks } = await underAttack(net, 'unread Listen streams', '200 streams, 5,000 x 1 KiB', async () => {
          for (let i = 0; i < 4; i++) clients.push(new GrpcClient(net.victim.grpc))
          await Promise.all(Array.from({ length: 200 }, (_, i) =>
            clients[i % clients.length].unreadStream('/p2pmq.v1.Messaging/Listen', pb.listenRequest([T2], 65536))))
          const h = net.honest[0]
          const pad = 'l'.repeat(1000)
          const before = net.victim.collect().size
          for (let k = 1; k <= 5000; k++) h.proc.send(`pub ${T2} listen-${k}-${pad}`)
          await until('the victim receives the 5,000 messages', () => [...net.victim.collect().values()].filter(m => m.topic === T2).length >= 5000,
            { timeoutMs: 120_000 }).catch(() => {})
          const got = [...net.victim.collect().values()].filter(m => m.topic === T2).length
          for (const c of clients) c.close()
          return { notes: `victim received ${got} of 5000 (had ${before} messages before)` }
        })
        checks.assertAll()
      })
    })

  test('invalid UTF-8 topics and undecodable requests get INVALID_ARGUMENT with a message',
    { skip: SKIP, timeout: TEST_TIMEOUT_MS }, async () => {
      const victim = await Agent.start('victim')
      const client = new GrpcClient(victim.grpc)
      try {
        const badTopic = Buffer.from([0x61, 0xff, 0xfe, 0x62])
        const answers = {
          'Publish, topic not UTF-8': await client.unary('/p2pmq.v1.Messaging/Publish', pb.publishRequest(badTopic, Buffer.from('x'))),
          'Subscribe, topic not UTF-8': await client.unary('/p2pmq.v1.Control/Subscribe', pb.bytesField(1, badTopic)),
          'Publish, undecodable': await client.unary('/p2pmq.v1.Messaging/Publish', Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]))
        }
        const c = new Checks('bad API requests')
        for (const [what, a] of Object.entries(answers)) {
          c.check(a.status === GRPC_STATUS.INVALID_ARGUMENT && a.message !== '', `${what}: grpc-status ${a.status} message ${JSON.stringify(a.message)}`)
        }
        c.check((await pingOnce(victim.addr)).ok, 'the agent does not answer a ping afterwards')
        c.assertAll()
      } finally {
        client.close()
        await victim.stop()
      }
    })

  test('`p2pmq agent --key <a directory>` exits non-zero with a message',
    { skip: SKIP, timeout: TEST_TIMEOUT_MS }, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'p2pmq-adv-key-'))
      try {
        const res = await run([CPP.bin, 'agent', '--key', dir, '--listen', '/ip4/127.0.0.1/tcp/0', '--grpc', 'off'], { timeoutMs: 30_000 })
        assert.ok(!res.timedOut, `the agent started with a directory as its key: ${res.describe()}`)
        assert.equal(res.signal, null, `killed by ${res.signal}: ${res.describe()}`)
        assert.notEqual(res.code, 0, 'exit code')
        assert.notEqual(res.code, 134, 'an abort is not an error message')
        assert.match(res.stderr, new RegExp(dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), 'the message names the path')
        assert.match(res.stderr, /director/i, 'the message says it is a directory')
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    })
})

