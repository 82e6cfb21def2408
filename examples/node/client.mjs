#!/usr/bin/env node
// An example p2pmq client in Node.js on the p2pmq-client package (clients/node): publish and
// listen through an agent's gRPC API. Install the package's dependencies once with ./install.sh.
//
//   node examples/node/client.mjs --agent 127.0.0.1:5001 pub TOPIC DATA
//   node examples/node/client.mjs --agent 127.0.0.1:5001 listen TOPIC [TOPIC...] --count N
//
// pub prints "published id=HEX seqno=N". listen prints "listening" once the agent has registered
// the stream (what is published after that line reaches it), then one line per event:
// "message TOPIC SEQNO ORIGIN DATA", "missed TOPIC COUNT" or "gap TOPIC ORIGIN FROM-TO"; it exits
// after N messages (0: never).
import { Client, grpc } from '../../clients/node/index.mjs';

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

function fail(err) {
  const code = Object.keys(grpc.status).find((k) => grpc.status[k] === err.code) ?? err.code;
  console.error(`${code}: ${err.details ?? err.message}`);
  process.exit(1);
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const [cmd, ...args] = opts.rest;
  const client = new Client(opts.agent, { timeout: opts.timeout });

  if (cmd === 'pub') {
    if (args.length !== 2) usage('pub needs TOPIC and DATA');
    const [topic, data] = args;
    const resp = await client.publish(topic, data);
    console.log(`published id=${Buffer.from(resp.id).toString('hex')} seqno=${resp.seqno}`);
  } else if (cmd === 'listen') {
    if (args.length === 0) usage('listen needs at least one TOPIC');
    const stream = await client.listen(args, { bufferSize: opts.buffer });
    console.log('listening'); // the agent has registered the stream
    let got = 0;
    for await (const ev of stream) {
      if (ev.event === 'missed') {
        console.log(`missed ${ev.missed.topic} ${ev.missed.count}`);
      } else if (ev.event === 'gap') { // seqnos of an origin that could not be recovered
        console.log(`gap ${ev.gap.topic} ${ev.gap.origin} ${ev.gap.from_seqno}-${ev.gap.to_seqno}`);
      } else {
        const m = ev.message;
        console.log(`message ${m.topic} ${m.seqno} ${m.origin || '-'} ${Buffer.from(m.data).toString('utf8')}`);
        got += 1;
        if (opts.count && got >= opts.count) {
          stream.cancel();
          break;
        }
      }
    }
  } else {
    usage(cmd ? `unknown command ${cmd}` : 'a command is needed');
  }
  client.close();
}

main().catch(fail);
