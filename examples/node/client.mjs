#!/usr/bin/env node
// An example p2pmq client in Node.js (@grpc/grpc-js + @grpc/proto-loader): publish and listen
// through an agent's gRPC API. Install the dependencies once with ./install.sh.
//
//   node examples/node/client.mjs --agent 127.0.0.1:5001 pub TOPIC DATA
//   node examples/node/client.mjs --agent 127.0.0.1:5001 listen TOPIC [TOPIC...] --count N
//
// pub prints "published id=HEX seqno=N". listen prints "listening" once the agent has registered
// the stream (what is published after that line reaches it), then one line per event:
// "message TOPIC SEQNO ORIGIN DATA", "missed TOPIC COUNT" or "gap TOPIC ORIGIN FROM-TO"; it exits
// after N messages (0: never).
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

const here = path.dirname(fileURLToPath(import.meta.url));
const protoRoot = path.join(here, '..', '..', 'proto');

function usage(msg) {
  if (msg) console.error(msg);
  console.error('usage: client.mjs [--agent HOST:PORT] pub TOPIC DATA | listen TOPIC... [--count N]');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { agent: '127.0.0.1:5001', count: 0, buffer: 0, timeout: 30, rest: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--agent') opts.agent = value();
    else if (a === '--count') opts.count = Number(value());
    else if (a === '--buffer') opts.buffer = Number(value());
    else if (a === '--timeout') opts.timeout = Number(value());
    else if (a === '-h' || a === '--help') usage();
    else opts.rest.push(a);
  }
  return opts;
}

function load() {
  const def = protoLoader.loadSync('p2pmq/v1/p2pmq.proto', {
    includeDirs: [protoRoot],
    keepCase: true,
    longs: String,  // uint64 seqno and counts as decimal strings
    enums: String,
    defaults: true,
    oneofs: true,   // ListenEvent.event names the field that is set
  });
  return grpc.loadPackageDefinition(def).p2pmq.v1;
}

function fail(err) {
  const code = Object.keys(grpc.status).find((k) => grpc.status[k] === err.code) ?? err.code;
  console.error(`${code}: ${err.details ?? err.message}`);
  process.exit(1);
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const [cmd, ...args] = opts.rest;
  const v1 = load();
  const creds = grpc.credentials.createInsecure();
  const messaging = new v1.Messaging(opts.agent, creds);
  const deadline = () => new Date(Date.now() + opts.timeout * 1000);

  if (cmd === 'pub') {
    if (args.length !== 2) usage('pub needs TOPIC and DATA');
    const [topic, data] = args;
    messaging.Publish({ topic, data: Buffer.from(data) }, { deadline: deadline() }, (err, resp) => {
      if (err) fail(err);
      console.log(`published id=${Buffer.from(resp.id).toString('hex')} seqno=${resp.seqno}`);
      messaging.close();
    });
  } else if (cmd === 'listen') {
    if (args.length === 0) usage('listen needs at least one TOPIC');
    const call = messaging.Listen({ topics: args, buffer_size: opts.buffer });
    let got = 0;
    let done = false;
    call.on('metadata', () => console.log('listening'));
    call.on('data', (ev) => {
      if (done) return;
      if (ev.event === 'missed') {
        console.log(`missed ${ev.missed.topic} ${ev.missed.count}`);
        return;
      }
      if (ev.event === 'gap') { // seqnos of an origin that could not be recovered
        console.log(`gap ${ev.gap.topic} ${ev.gap.origin} ${ev.gap.from_seqno}-${ev.gap.to_seqno}`);
        return;
      }
      const m = ev.message;
      console.log(`message ${m.topic} ${m.seqno} ${m.origin || '-'} ${Buffer.from(m.data).toString('utf8')}`);
      got += 1;
      if (opts.count && got >= opts.count) {
        done = true;
        call.cancel();
        messaging.close();
      }
    });
    call.on('error', (err) => {
      if (done && err.code === grpc.status.CANCELLED) return;
      fail(err);
    });
    call.on('end', () => messaging.close());
  } else {
    usage(cmd ? `unknown command ${cmd}` : 'a command is needed');
  }
}

main();
