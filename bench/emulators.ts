import { fork } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createEmulatorClients, type EmulatorClients } from '#local/emulators.js';
import type { LatencyProfileName, RequestCounts } from './latency.js';

type Endpoints = {
  fauxqs: string;
  dynamodb: string;
  ses?: string;
  smtp?: { host: string; port: number };
  secrets?: string;
};

export type BenchEmulators = {
  clients: EmulatorClients;
  endpoints: Endpoints;
  /** Messages the out-of-process SMTP sink has received (with `smtpSink`). */
  sinkCount(): Promise<number>;
  /** With `latency`: the requests the proxies saw since the last call, by `service.Operation` / `smtp.VERB`. */
  requestCounts(): Promise<RequestCounts>;
  /** With `latency`: the proxies' profile from now on (null: none). */
  useLatency(profile: LatencyProfileName | null): Promise<void>;
  /** CPU time the emulator process has used so far, ms. */
  cpuMs(): number;
  stop(): Promise<void>;
};

/** User + system CPU of a process from /proc (Linux), ms. */
function processCpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8')
    .replace(/^.*\) /s, '')
    .split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/**
 * Starts fauxqs and dynalite in a child process (bench/emulator-host.ts), with `smtpSink` a plaintext SMTP sink and
 * with `ses` the SES API there too, with `latency` each behind a latency-injecting proxy (no delay until
 * `useLatency`), and builds SDK clients for them.
 */
export async function startBenchEmulators(
  options: { smtpSink?: boolean; ses?: boolean; latency?: boolean; secrets?: boolean } = {},
): Promise<BenchEmulators> {
  const args = [
    ...(options.smtpSink ? ['--smtp-sink'] : []),
    ...(options.ses ? ['--ses'] : []),
    ...(options.latency ? ['--latency'] : []),
    ...(options.secrets ? ['--secrets'] : []),
  ];
  const child = fork(new URL('./emulator-host.ts', import.meta.url), args, {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const [endpoints] = (await Promise.race([
    once(child, 'message'),
    once(child, 'exit').then(([code]) => {
      throw new Error(`emulator host exited with ${String(code)} before it started`);
    }),
  ])) as [Endpoints];
  const clients = createEmulatorClients(endpoints);
  return {
    clients,
    endpoints,
    cpuMs: () => processCpuMs(child.pid as number),
    async sinkCount() {
      const reply = once(child, 'message') as Promise<[{ count: number }]>;
      child.send('count');
      return (await reply)[0].count;
    },
    async requestCounts() {
      const reply = once(child, 'message') as Promise<[{ counts: RequestCounts }]>;
      child.send('counts');
      return (await reply)[0].counts;
    },
    async useLatency(profile) {
      const reply = once(child, 'message');
      child.send({ latency: profile });
      await reply;
    },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = once(child, 'exit');
      child.send('stop');
      await exited;
    },
  };
}
