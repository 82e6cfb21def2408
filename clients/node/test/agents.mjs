// Starts `p2pmq agent` processes ($P2PMQ_BIN) on loopback for the tests: OS-chosen ports, output
// kept in a log, ended by pid with stop().
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

// Generous: the tests run on a loaded two-core machine.
export const DEADLINE_MS = 60_000;

const FAST_GOSSIP = ['--gossip', 'heartbeat_interval=200ms', '--gossip', 'heartbeat_initial_delay=100ms'];

export const agentBin = process.env.P2PMQ_BIN ?? '';

// Resolves to { grpcAddress, addr, peerId, stop() } once the agent printed its addresses.
export function startAgent(name, extra = []) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `p2pmq-node-client-${name}-`));
  const log = fs.createWriteStream(path.join(dir, `${name}.log`));
  const args = ['agent', '--listen', '/ip4/127.0.0.1/tcp/0', '--grpc', '127.0.0.1:0', ...FAST_GOSSIP, ...extra];
  const child = spawn(agentBin, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr.pipe(log);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const agent = {
    name,
    dir,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(timer);
      }
      log.end();
      if (!process.env.P2PMQ_TEST_KEEP_LOGS) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      agent.stop();
      reject(new Error(`${name} printed no addresses within ${DEADLINE_MS} ms (log in ${dir})`));
    }, DEADLINE_MS);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code}) before printing its addresses (log in ${dir})`));
    });
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      log.write(`${line}\n`);
      let m;
      if ((m = /^grpc (\S+:\d+)$/.exec(line)) && !agent.grpcAddress) agent.grpcAddress = m[1];
      else if ((m = /^listening (\S+\/p2p\/(\S+))$/.exec(line)) && !agent.addr) [, agent.addr, agent.peerId] = m;
      if (agent.grpcAddress && agent.addr) {
        clearTimeout(timer);
        resolve(agent);
      }
    });
  });
}

// Polls cond() (may be async) every 50 ms until it is truthy; rejects after DEADLINE_MS.
export async function waitFor(cond, what) {
  const end = Date.now() + DEADLINE_MS;
  for (;;) {
    try {
      const v = await cond();
      if (v) return v;
    } catch {
      // not up yet
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
