import { fork } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { setPriority } from 'node:os';
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

type Host = ReturnType<typeof fork>;

/**
 * The niceness of the hosts standing in for AWS's services. In AWS they run on other machines and take no CPU from the
 * instance or the relay; here they share this machine's cores, and dynalite alone spends about as much CPU a job as
 * the instance. Run below the instance and the relay, their slowness falls on their own answers, where it is counted
 * as overrun beside each row, and not on the instance's replies from the relay.
 */
const AWS_STAND_IN_NICENESS = 10;

function yieldCpu(child: Host) {
  try {
    if (child.pid !== undefined) setPriority(child.pid, AWS_STAND_IN_NICENESS);
  } catch {
    // A machine that refuses: the hosts share the CPU evenly, as before.
  }
}

/** Forks one emulator host (bench/emulator-host.ts) with `args` and waits for its endpoints. */
async function startHost(args: string[]): Promise<{ child: Host; endpoints: Partial<Endpoints> }> {
  const child = fork(new URL('./emulator-host.ts', import.meta.url), args, {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const [endpoints] = (await Promise.race([
    once(child, 'message'),
    once(child, 'exit').then(([code]) => {
      throw new Error(`emulator host exited with ${String(code)} before it started`);
    }),
  ])) as [Partial<Endpoints>];
  return { child, endpoints };
}

/** Asks a host `question` and waits for its answer. */
async function ask<T>(host: Host, question: unknown): Promise<T> {
  const reply = once(host, 'message') as Promise<[T]>;
  host.send(question as string);
  return (await reply)[0];
}

/**
 * Starts dynalite, fauxqs, with `smtpSink` a plaintext SMTP sink and with `ses` the SES API, with `secrets` a
 * stand-in Secrets Manager, each group in a process of its own (bench/emulator-host.ts) so that one service's burst
 * does not queue another's requests on a shared thread; with `latency` each behind a latency-injecting proxy (no
 * delay until `useLatency`); and builds SDK clients for them.
 */
export async function startBenchEmulators(
  options: { smtpSink?: boolean; ses?: boolean; latency?: boolean; secrets?: boolean } = {},
): Promise<BenchEmulators> {
  const latency = options.latency ? ['--latency'] : [];
  const groups = [
    ['--dynamodb'],
    ['--fauxqs', ...(options.secrets ? ['--secrets'] : [])],
    [...(options.smtpSink ? ['--smtp-sink'] : []), ...(options.ses ? ['--ses'] : [])],
  ].filter((group) => group.length > 0);
  const hosts = await Promise.all(groups.map((group) => startHost([...group, ...latency])));
  const endpoints = Object.assign({}, ...hosts.map((h) => h.endpoints)) as Endpoints;
  const children = hosts.map((h) => h.child);
  for (const host of hosts) if (!host.endpoints.smtp) yieldCpu(host.child);
  const sink = hosts.find((h) => h.endpoints.smtp)?.child;
  const clients = createEmulatorClients(endpoints);
  return {
    clients,
    endpoints,
    cpuMs: () => children.reduce((sum, child) => sum + processCpuMs(child.pid as number), 0),
    async sinkCount() {
      return sink ? (await ask<{ count: number }>(sink, 'count')).count : 0;
    },
    async requestCounts() {
      const answers = await Promise.all(children.map((child) => ask<{ counts: RequestCounts }>(child, 'counts')));
      return Object.assign({}, ...answers.map((a) => a.counts));
    },
    async useLatency(profile) {
      await Promise.all(children.map((child) => ask(child, { latency: profile })));
    },
    async stop() {
      await Promise.all(
        children
          .filter((child) => child.exitCode === null)
          .map(async (child) => {
            const exited = once(child, 'exit');
            child.send('stop');
            await exited;
          }),
      );
    },
  };
}
