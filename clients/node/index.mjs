// A Node.js client of a p2pmq agent's gRPC API (proto/p2pmq/v1/p2pmq.proto), on @grpc/grpc-js
// and @grpc/proto-loader.
//
//   import { Client } from 'p2pmq-client';
//   const client = new Client('127.0.0.1:5001');
//   await client.publish('prices', Buffer.from('42'));
//   const stream = await client.listen(['prices']);  // resolves once the agent registered it
//   for await (const ev of stream) { ... }            // ev.event: 'message', 'missed' or 'gap'
//
// serveValidator(callback) serves MsgValidation (the agent dials it, --validator ADDR) with a
// callback that returns (or resolves to) Verdict.ACCEPT, REJECT or IGNORE.
//
// uint64 fields (seqno, counts) are decimal strings; bytes fields are Buffers.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

export { grpc };

const here = path.dirname(fileURLToPath(import.meta.url));
const PROTO = 'p2pmq/v1/p2pmq.proto';

// The proto comes from $P2PMQ_PROTO_DIR, the repository this package sits in
// (clients/node -> proto/), or the copy `npm pack` bundles (proto/, by the prepack script).
function protoRoot() {
  const candidates = [process.env.P2PMQ_PROTO_DIR, path.join(here, '..', '..', 'proto'),
    path.join(here, 'proto')];
  const root = candidates.find((d) => d && fs.existsSync(path.join(d, PROTO)));
  if (!root) throw new Error(`no ${PROTO} in ${candidates.join(', ')} (set P2PMQ_PROTO_DIR)`);
  return root;
}

export const definition = protoLoader.loadSync(PROTO, {
  includeDirs: [protoRoot()],
  keepCase: true,
  longs: String, // uint64 seqno and counts as decimal strings
  enums: String,
  defaults: true,
  oneofs: true, // ListenEvent.event names the field that is set
});
export const v1 = grpc.loadPackageDefinition(definition).p2pmq.v1;

export const Verdict = Object.freeze({
  ACCEPT: 'VERDICT_ACCEPT', // deliver and forward
  IGNORE: 'VERDICT_IGNORE', // drop without penalty
  REJECT: 'VERDICT_REJECT', // drop and penalise the sender (gossipsub P4)
});

export class NoResumeCursorError extends Error {}

// A resume cursor: per (topic, origin), the last seqno the client has durably processed.
// Exactly once needs an ordered stream (see ListenRequest's cursor in the proto).
export class Cursor {
  #positions = new Map(); // `${topic}\n${origin}` -> [topic, origin, BigInt seqno]

  set(topic, origin, seqno) {
    this.#positions.set(`${topic}\n${origin}`, [topic, origin, BigInt(seqno)]);
    return this;
  }

  get(topic, origin) {
    return this.#positions.get(`${topic}\n${origin}`)?.[2] ?? 0n;
  }

  // Records a ListenEvent: a message (its seqno) or a gap (its to_seqno); other events and
  // messages without an origin are ignored.
  advance(ev) {
    const [x, seqno] = ev.event === 'message' ? [ev.message, ev.message.seqno]
      : ev.event === 'gap' ? [ev.gap, ev.gap.to_seqno] : [null, 0];
    if (x?.origin && BigInt(seqno) > this.get(x.topic, x.origin)) this.set(x.topic, x.origin, seqno);
    return this;
  }

  // [[topic, origin], seqno] entries, seqno as a decimal string.
  *entries() {
    for (const [topic, origin, seqno] of this.#positions.values()) yield [[topic, origin], String(seqno)];
  }

  get size() {
    return this.#positions.size;
  }
}

// Maps cursor, a Cursor, or a Map (or array of entries) of [topic, origin] -> seqno (the last
// seqno processed per origin), onto the ListenRequest's resume field. The field is found by its shape rather than
// its name, so this works with and without it: a repeated message field whose messages have
// string fields topic and origin and a uint64 field (the seqno).
export function resumeField(request, cursor) {
  const entries = cursor instanceof Cursor || cursor instanceof Map ? [...cursor.entries()] : [...(cursor ?? [])];
  if (entries.length === 0) return;
  for (const f of definition['p2pmq.v1.ListenRequest'].type.field) {
    if (f.label !== 'LABEL_REPEATED' || f.type !== 'TYPE_MESSAGE') continue;
    // proto-loader names the type relative to the package ('CursorPosition') or in full.
    const name = f.typeName.replace(/^\./, '');
    const entry = (definition[`p2pmq.v1.${name}`] ?? definition[name])?.type?.field ?? [];
    const has = (name) => entry.some((e) => e.name === name && e.type === 'TYPE_STRING');
    const seqno = entry.find((e) => e.type === 'TYPE_UINT64' && e.label !== 'LABEL_REPEATED');
    if (!has('topic') || !has('origin') || !seqno) continue;
    request[f.name] = entries.map(([[topic, origin], s]) => ({ topic, origin, [seqno.name]: String(s) }));
    return;
  }
  throw new NoResumeCursorError('this API version has no resume cursor in ListenRequest');
}

// An open Listen stream: an async iterable of ListenEvents ({ event: 'message', message },
// { event: 'missed', missed } or { event: 'gap', gap }). cancel() ends it; the iteration then
// finishes without an error.
export class ListenStream {
  constructor(call) {
    this.call = call;
    this.cancelled = false;
  }

  async *[Symbol.asyncIterator]() {
    try {
      for await (const ev of this.call) yield ev;
    } catch (err) {
      if (!(this.cancelled && err.code === grpc.status.CANCELLED)) throw err;
    }
  }

  // Only the messages (skips Missed and Gap events).
  async *messages() {
    for await (const ev of this) if (ev.event === 'message') yield ev.message;
  }

  cancel() {
    this.cancelled = true;
    this.call.cancel();
  }
}

// A client of one agent (its --grpc address); close() ends its channel.
export class Client {
  constructor(address = '127.0.0.1:5001', { timeout = 30 } = {}) {
    const creds = grpc.credentials.createInsecure();
    this.messaging = new v1.Messaging(address, creds);
    // The other services share the first one's channel.
    const options = { channelOverride: this.messaging.getChannel() };
    this.control = new v1.Control(address, creds, options);
    this.admin = new v1.Admin(address, creds, options);
    this.timeout = timeout; // seconds, for the unary calls
  }

  #unary(stub, method, request) {
    const deadline = new Date(Date.now() + this.timeout * 1000);
    return new Promise((resolve, reject) => {
      stub[method](request, { deadline }, (err, resp) => (err ? reject(err) : resolve(resp)));
    });
  }

  // Broadcasts data (a Buffer, Uint8Array or string); resolves to { id: Buffer, seqno: string }.
  publish(topic, data) {
    return this.#unary(this.messaging, 'Publish', { topic, data: Buffer.from(data) });
  }

  subscribe(topic) {
    return this.#unary(this.control, 'Subscribe', { topic });
  }

  unsubscribe(topic) {
    return this.#unary(this.control, 'Unsubscribe', { topic });
  }

  // The agent's identity, addresses, peers with scores, topics and sync state.
  status() {
    return this.#unary(this.admin, 'Status', {});
  }

  // Opens a Listen stream; resolves once the agent registered it (what is published after that
  // reaches it). resume: [topic, origin] -> seqno entries to resume after (needs an API with the
  // resume cursor, else NoResumeCursorError).
  listen(topics, { bufferSize = 0, ordered = false, resume } = {}) {
    const request = { topics: typeof topics === 'string' ? [topics] : topics, buffer_size: bufferSize, ordered };
    resumeField(request, resume);
    const call = this.messaging.Listen(request);
    return new Promise((resolve, reject) => {
      const onError = (err) => reject(err);
      call.once('error', onError);
      call.once('metadata', () => {
        call.removeListener('error', onError);
        resolve(new ListenStream(call));
      });
    });
  }

  close() {
    this.messaging.close();
  }
}

// Serves MsgValidation on address (port 0 picks one) with callback(message) returning (or
// resolving to) a Verdict. Resolves to { address, stop() }; address is what the agent's
// --validator takes.
export async function serveValidator(callback, { address = '127.0.0.1:0' } = {}) {
  const server = new grpc.Server();
  server.addService(v1.MsgValidation.service, {
    ValidationChannel(call) {
      // One stream per agent; verdicts go back as they are ready, each with the message id.
      call.on('data', async (msg) => {
        let verdict;
        try {
          verdict = await callback(msg);
        } catch (err) {
          console.error('p2pmq validator callback failed, answering IGNORE:', err);
          verdict = Verdict.IGNORE;
        }
        if (!call.writableEnded && !call.destroyed) call.write({ id: msg.id, verdict });
      });
      call.on('end', () => call.end());
      call.on('error', () => {}); // the agent went away; it reconnects by itself
    },
  });
  const port = await new Promise((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });
  const host = address.slice(0, address.lastIndexOf(':'));
  return {
    address: `${host}:${port}`,
    // Forced: the agent keeps its stream open, a graceful shutdown would wait for it.
    stop: () => server.forceShutdown(),
  };
}
