// The p2pmq-client package against real agents ($P2PMQ_BIN; skipped without it).
//   P2PMQ_BIN=build/release/apps/p2pmq/p2pmq node --test clients/node/test/
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { Client, Cursor, ListenStream, NoResumeCursorError, Verdict, resumeField, serveValidator } from '../index.mjs';
import { agentBin, startAgent, waitFor } from './agents.mjs';

const skip = agentBin ? false : 'P2PMQ_BIN is not set: no p2pmq agent to test against';
const cleanups = [];
after(async () => {
  for (const fn of cleanups.reverse()) await fn();
});

async function agent(name, extra) {
  const a = await startAgent(name, extra);
  cleanups.push(() => a.stop());
  const client = new Client(a.grpcAddress);
  cleanups.push(() => client.close());
  return [a, client];
}

async function listen(client, topics, opts) {
  const s = await client.listen(topics, opts);
  cleanups.push(() => s.cancel());
  return s;
}

async function waitMesh(topic, ...clients) {
  for (const c of clients) {
    await waitFor(async () => (await c.status()).peers.some((p) => p.mesh_topics.includes(topic)), `a mesh on ${topic}`);
  }
}

async function firstMessages(stream, n) {
  const got = [];
  for await (const m of stream.messages()) {
    got.push(m);
    if (got.length === n) break;
  }
  return got;
}

test('a published message reaches the listeners of both agents', { skip }, async () => {
  const [a, ca] = await agent('A');
  const [, cb] = await agent('B', ['--bootstrap', a.addr]);
  const streams = [await listen(ca, 't'), await listen(cb, ['t'], { ordered: true })];
  await waitMesh('t', ca, cb);
  const published = await ca.publish('t', 'hello');
  assert.equal(published.seqno, '1');
  for (const s of streams) {
    const [m] = await firstMessages(s, 1);
    assert.equal(m.topic, 't');
    assert.equal(m.data.toString(), 'hello');
    assert.equal(m.origin, a.peerId);
    assert.equal(m.seqno, '1');
    assert.deepEqual(m.id, published.id);
  }
});

test('subscribe and unsubscribe show in status', { skip }, async () => {
  const [a, c] = await agent('A');
  await c.subscribe('news');
  const st = await c.status();
  assert.equal(st.peer_id, a.peerId);
  assert.ok(st.topics.includes('news'), st.topics);
  await c.unsubscribe('news');
  assert.ok(!(await c.status()).topics.includes('news'));
});

test('listen with an empty topic is refused with INVALID_ARGUMENT', { skip }, async () => {
  const [, c] = await agent('A');
  await assert.rejects(c.listen(['']), (err) => err.code === 3);
});

test('a rejecting validator stops the messages and lowers the sender score', { skip }, async () => {
  const seen = [];
  const validator = await serveValidator(async (m) => {
    seen.push(m.data.toString());
    return m.data.toString().startsWith('bad') ? Verdict.REJECT : Verdict.ACCEPT;
  });
  cleanups.push(() => validator.stop());
  const [a, ca] = await agent('A');
  const [, cb] = await agent('B', ['--bootstrap', a.addr, '--validator', validator.address]);
  const stream = await listen(cb, 't');
  await ca.subscribe('t');
  await waitMesh('t', ca, cb);
  // Two bad ones: B's score of A goes to about -40 (P4), above the graylist threshold.
  for (const d of ['good 1', 'bad 1', 'bad 2', 'good 2']) await ca.publish('t', d);
  const got = (await firstMessages(stream, 2)).map((m) => m.data.toString()).sort();
  assert.deepEqual(got, ['good 1', 'good 2']);
  await waitFor(async () => (await cb.status()).peers.some((p) => p.peer_id === a.peerId && p.score < 0),
    "B's score of A below zero");
  assert.deepEqual(seen.sort(), ['bad 1', 'bad 2', 'good 1', 'good 2']);
});

test('listen events come out as message, missed and gap', async () => {
  const events = [{ event: 'missed', missed: { topic: 't', count: '3' } },
    { event: 'message', message: { topic: 't', seqno: '4' } },
    { event: 'gap', gap: { topic: 't', origin: 'o', from_seqno: '5', to_seqno: '6' } }];
  const kinds = [];
  for await (const ev of new ListenStream(events)) kinds.push(ev.event);
  assert.deepEqual(kinds, ['missed', 'message', 'gap']);
  const seqnos = [];
  for await (const m of new ListenStream(events).messages()) seqnos.push(m.seqno);
  assert.deepEqual(seqnos, ['4']);
});

test('a resume cursor needs the field in the API', () => {
  const request = { topics: ['t'] };
  resumeField(request, new Map()); // no cursor: nothing to map
  let hasField = true;
  try {
    resumeField(request, new Map([[['t', 'origin'], 7]]));
  } catch (err) {
    assert.ok(err instanceof NoResumeCursorError);
    hasField = false;
  }
  if (hasField) {
    const [name] = Object.keys(request).filter((k) => k !== 'topics');
    assert.equal(request[name].length, 1);
    assert.equal(request[name][0].topic, 't');
  }
});

// A ListenRequest with a resume cursor, as a later API version may have it.
const RESUME_FIELD = `
  repeated ResumePosition resume = 15;
}
message ResumePosition {
  string topic = 1;
  string origin = 2;
  uint64 after_seqno = 3;
`;

test('with the field in the API the cursor is mapped onto it', () => {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const text = fs.readFileSync(path.join(here, '..', '..', '..', 'proto', 'p2pmq', 'v1', 'p2pmq.proto'), 'utf8');
  const start = text.indexOf('message ListenRequest {');
  const end = text.indexOf('\n}', start);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2pmq-node-proto-'));
  fs.mkdirSync(path.join(dir, 'p2pmq', 'v1'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'p2pmq', 'v1', 'p2pmq.proto'), text.slice(0, end) + RESUME_FIELD + text.slice(end + 1));
  const script = `import('${path.join(here, '..', 'index.mjs')}').then((m) => {
    const r = { topics: ['t'] };
    m.resumeField(r, new Map([[['t', 'A'], 7], [['u', 'B'], 9]]));
    console.log(JSON.stringify(r.resume));
  });`;
  const out = execFileSync(process.execPath, ['-e', script], { env: { ...process.env, P2PMQ_PROTO_DIR: dir } });
  fs.rmSync(dir, { recursive: true });
  assert.deepEqual(JSON.parse(out), [{ topic: 't', origin: 'A', after_seqno: '7' }, { topic: 'u', origin: 'B', after_seqno: '9' }]);
});

test('the cursor advances on messages and gaps', () => {
  const c = new Cursor();
  c.advance({ event: 'message', message: { topic: 't', origin: 'A', seqno: '3' } });
  c.advance({ event: 'gap', gap: { topic: 't', origin: 'A', from_seqno: '4', to_seqno: '6' } });
  c.advance({ event: 'message', message: { topic: 't', origin: 'A', seqno: '2' } }); // late: no step back
  c.advance({ event: 'message', message: { topic: 't', origin: '', seqno: '9' } }); // no origin
  c.advance({ event: 'missed', missed: { topic: 't', count: '1' } });
  assert.deepEqual([...c.entries()], [[['t', 'A'], '6']]);
});
