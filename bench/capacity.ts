import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { costPerMillion, durationAt, type CostPerMillion } from './cost.js';
import { startBenchEmulators } from './emulators.js';
import { limitOf, runInstance, sendTimeMs, sesSendTimeMs, type InstanceConfig, type InstanceRun } from './instance.js';
import { percentile, record } from './measure.js';
import { lineChart, stackedBarChart } from './svg.js';

/** Memory sizes priced (MB). */
const MEMORY_SIZES = [256, 512, 1024] as const;
/** The latency target: a job reaches the relay within this long of its batch starting to gather, at the tail. */
const LATENCY_TARGET_MS = 3000;
/** Two million mails a day, the load the capacity table is written for. */
const DAILY_JOBS = 2_000_000;

type Case = InstanceConfig & { jobs: number; rounds: number };

/**
 * The matrix: batch sizes, pools and jobs in flight under the same-region profile; two configurations under each of
 * the others. Small runs taken in turns (ours, the loop, then the loop first): a few minutes in all on two cores.
 */
function cases(quick: boolean): Case[] {
  const rounds = quick ? 1 : 2;
  const same = 'same-region' as const;
  const at = (batchSize: number, pool: number, jobs: number, inFlight?: number): Case => ({
    profile: same,
    batchSize,
    pool,
    inFlight,
    jobs,
    rounds,
  });
  return [
    at(10, 5, 100),
    at(100, 5, 200),
    at(100, 10, 200),
    at(100, 25, 200),
    // A thousand at once queue on the SDK's 50 sockets past its connection timeout: bounded, and not.
    ...(quick
      ? []
      : [
          { ...at(1000, 10, 1000), rounds: 1 },
          { ...at(1000, 10, 1000, 20), rounds: 1 },
        ]),
    ...[5, 10, 20, 50].map((inFlight) => at(100, 10, 200, inFlight)),
    { profile: 'cross-region', batchSize: 10, pool: 5, jobs: 50, rounds: 1 },
    { profile: 'cross-region', batchSize: 100, pool: 10, jobs: 100, rounds: 1 },
    { profile: 'slow-relay', batchSize: 10, pool: 5, jobs: 50, rounds: 1 },
    { profile: 'slow-relay', batchSize: 100, pool: 10, jobs: 200, rounds: 1 },
    // Over the SES API, the instance's share of the account's rate the limit: a share it can keep, and a large one.
    ...[50, 200].map((sesRate) => ({ ...at(100, 10, 200, 50), transport: 'ses' as const, sesRate })),
  ];
}

const describeCase = (c: InstanceConfig) =>
  `${c.profile}, batch ${c.batchSize}, ${c.inFlight ?? 'all'} in flight, ` +
  (c.transport === 'ses' ? `SES at ${c.sesRate} msg/s` : `pool ${c.pool}`);

/** Several runs of one contender as one: their jobs, invocations and requests together. */
function pooled(runs: InstanceRun[]): InstanceRun {
  const jobs = runs.reduce((n, r) => n + r.jobs, 0);
  const invocations = runs.flatMap((r) => r.invocations);
  const requests: InstanceRun['requests'] = {};
  for (const run of runs) {
    for (const [key, entry] of Object.entries(run.requests)) {
      const sum = (requests[key] ??= { count: 0, bytes: 0, units: { write: 0, read: 0 } });
      sum.count += entry.count;
      sum.bytes += entry.bytes;
      if (entry.heldMs !== undefined) sum.heldMs = (sum.heldMs ?? 0) + entry.heldMs;
      if (sum.units && entry.units) {
        sum.units.write += entry.units.write;
        sum.units.read += entry.units.read;
      }
    }
  }
  const busy = invocations.reduce((n, i) => n + i.wallMs, 0);
  const cpu = invocations.reduce((n, i) => n + i.cpuMs, 0);
  return {
    jobs,
    invocations,
    requests,
    delivered: runs.reduce((n, r) => n + r.delivered, 0),
    rate: (jobs / busy) * 1000,
    cpuMsPerJob: cpu / jobs,
  };
}

/** A run's rate and longest invocation at `memoryMb`, its CPU stretched to the share that memory buys. */
function atMemory(run: InstanceRun, memoryMb: number) {
  const durations = run.invocations.map((i) => durationAt(memoryMb, i.wallMs, i.cpuMs));
  return {
    rate: (run.jobs / durations.reduce((a, b) => a + b, 0)) * 1000,
    longestMs: Math.max(...durations),
    p50Ms: percentile(durations, 50),
  };
}

type Measured = {
  config: Case;
  ours: InstanceRun;
  loop: InstanceRun;
  limit: number;
  sendMs: number;
  costs: CostPerMillion[];
};

/**
 * One handler instance under injected latencies: its throughput against what its configuration allows (pool ÷ send
 * time) and against the hand-written loop doing the same I/O, across batch sizes, pools and jobs in flight; what a
 * million jobs cost at each memory size, from the requests counted and the invocations timed; the cheapest
 * configuration that meets the targets; and the charts.
 */
export async function benchCapacity(quick: boolean) {
  // Other work on the machine slows both contenders alike, but not their limits: the load goes with the figures.
  const loadBefore = loadavg()[0] as number;
  const emulators = await startBenchEmulators({ smtpSink: true, ses: true, latency: true });
  const measured: Measured[] = [];
  try {
    // Unrecorded warm-up of both: what a cold process pays is measured under cold start. A few hundred jobs each, as
    // a warm Lambda instance has handled: after only 50, a job still took half as much CPU again as it settles at.
    for (const contender of ['ours', 'loop'] as const)
      await runInstance(emulators, contender, { profile: 'same-region', batchSize: 100, pool: 10 }, quick ? 200 : 400);
    for (const config of cases(quick)) {
      const ours: InstanceRun[] = [];
      const loop: InstanceRun[] = [];
      for (let round = 0; round < config.rounds; round += 1) {
        // Taking turns, each first in turn, so drift on a shared machine falls on both alike.
        const order = round % 2 === 0 ? (['ours', 'loop'] as const) : (['loop', 'ours'] as const);
        for (const contender of order) {
          const run = await runInstance(emulators, contender, config, config.jobs);
          // A job postponed in the run (a call that timed out on a loaded machine) is not counted as sent.
          if (run.delivered !== config.jobs)
            console.log(`  ${contender} sent ${run.delivered} of ${config.jobs} in the run (${describeCase(config)})`);
          (contender === 'ours' ? ours : loop).push(run);
        }
      }
      const o = pooled(ours);
      const l = pooled(loop);
      const sendMs = config.transport === 'ses' ? sesSendTimeMs(config) : sendTimeMs(o.requests);
      const limit = limitOf(config, sendMs);
      // Priced on the jobs actually sent: a run whose calls timed out costs more a job, as it would in AWS.
      const costs = MEMORY_SIZES.map((m) => costPerMillion({ ...o, jobs: Math.max(1, o.delivered) }, m));
      measured.push({ config, ours: o, loop: l, limit, sendMs, costs });
      console.log(
        `  ${describeCase(config)}: ours ${o.rate.toFixed(1)}, loop ${l.rate.toFixed(1)}, ` +
          `limit ${limit.toFixed(1)} msg/s`,
      );
    }
  } finally {
    await emulators.stop();
  }
  record(
    'one instance under injected latency: the machine',
    'load average (1 min), start / end',
    loadBefore,
    '',
    `${loadBefore.toFixed(1)} / ${(loadavg()[0] as number).toFixed(1)} on ${cpus().length} cores`,
  );
  return report(measured);
}

function report(measured: Measured[]) {
  const section = 'one instance under injected latency (bench/latency.ts profiles; jobs/s while the instance is busy)';
  for (const m of measured) {
    const name = describeCase(m.config);
    const p50 = Math.round(
      percentile(
        m.ours.invocations.map((i) => i.wallMs),
        50,
      ),
    );
    const against =
      `${(m.ours.rate / m.limit).toFixed(2)} of the limit, ` + `${(m.ours.rate / m.loop.rate).toFixed(2)}× the loop`;
    // What the CPU alone allows: a whole core of this machine ÷ the CPU a job takes (the emulators not counted).
    const ours =
      `${m.ours.cpuMsPerJob.toFixed(2)} ms CPU a job (a core's ceiling ${(1000 / m.ours.cpuMsPerJob).toFixed(0)} msg/s); ` +
      `invocation p50 ${p50} ms; ` +
      `sent ${m.ours.delivered} of ${m.ours.jobs}`;
    record(section, `${name}: ours`, m.ours.rate, 'msg/s', `${against}; ${ours}`);
    const loop = `${m.loop.cpuMsPerJob.toFixed(2)} ms CPU a job; sent ${m.loop.delivered} of ${m.loop.jobs}`;
    record(section, `${name}: loop`, m.loop.rate, 'msg/s', loop);
    const bound =
      m.config.transport === 'ses' && m.limit === m.config.sesRate
        ? 'the SES rate'
        : Math.abs(m.limit * m.sendMs - m.config.pool * 1000) < 1e-6
          ? 'pool ÷ send'
          : 'in flight ÷ (send + 4 DynamoDB trips)';
    record(section, `${name}: limit`, m.limit, 'msg/s', `${bound}; ${m.sendMs.toFixed(0)} ms a message`);
  }

  const costSection = 'cost per million jobs (ours, counted requests and timed invocations; US East on-demand prices)';
  for (const m of measured.filter((x) => x.config.profile === 'same-region')) {
    for (const c of m.costs) {
      const at = atMemory(m.ours, c.memoryMb);
      record(
        costSection,
        `${describeCase(m.config)}, ${c.memoryMb} MB`,
        c.dollars.total,
        '$',
        [
          `Lambda $${c.dollars.lambda.toFixed(2)} (${Math.round(c.invocations).toLocaleString('en')} invocations, ` +
            `${Math.round(c.gbSeconds).toLocaleString('en')} GB-s)`,
          `DynamoDB $${c.dollars.dynamodb.toFixed(2)} (${(c.dynamoWriteUnits / 1e6).toFixed(2)} M WRU, ` +
            `${(c.dynamoReadUnits / 1e6).toFixed(2)} M RRU)`,
          `SQS $${c.dollars.sqs.toFixed(2)} (${(c.sqsRequests / 1e6).toFixed(2)} M)`,
          `SNS $${c.dollars.sns.toFixed(2)} (${(c.snsRequests / 1e6).toFixed(2)} M); ${at.rate.toFixed(1)} msg/s ` +
            `an instance, longest invocation ${(at.longestMs / 1000).toFixed(1)} s`,
        ].join(', '),
      );
    }
  }

  // The choice: the cheapest same-region configuration and memory that sent every job, runs level with the loop
  // (≥ 0.9×), and keeps a job within the latency target (the batching window plus its longest invocation there).
  const candidates = measured
    .filter((m) => m.config.profile === 'same-region' && m.config.transport !== 'ses')
    .flatMap((m) =>
      m.costs.map((cost) => {
        const at = atMemory(m.ours, cost.memoryMb);
        const window = m.config.batchSize > 10 ? 1000 : 0;
        return {
          m,
          cost,
          at,
          meets:
            m.ours.delivered === m.ours.jobs &&
            m.ours.rate >= 0.9 * m.loop.rate &&
            window + at.longestMs <= LATENCY_TARGET_MS,
        };
      }),
    )
    .sort((a, b) => a.cost.dollars.total - b.cost.dollars.total);
  const chosen = candidates.find((c) => c.meets);
  const choiceSection = 'the defaults chosen from the measurements';
  if (chosen) {
    const { m, cost, at } = chosen;
    record(choiceSection, 'configuration', cost.dollars.total, '$/M', `${describeCase(m.config)}, ${cost.memoryMb} MB`);
    record(
      choiceSection,
      'per-instance rate at that memory',
      at.rate,
      'msg/s',
      `${(at.rate / m.limit).toFixed(2)} of the limit (${m.limit.toFixed(1)}); here, on a whole core, ` +
        `${(m.ours.rate / m.limit).toFixed(2)} of it and ${(m.ours.rate / m.loop.rate).toFixed(2)}× the loop`,
    );
    const perSecond = DAILY_JOBS / 86_400;
    record(
      choiceSection,
      'two million a day',
      (cost.dollars.total * DAILY_JOBS) / 1e6,
      '$/day',
      `${perSecond.toFixed(1)} msg/s on average: ${Math.ceil(perSecond / at.rate)} instance(s) busy, ` +
        `${Math.ceil((4 * perSecond) / at.rate)} at 4× the average`,
    );
  } else record(choiceSection, 'configuration', 0, '', 'no configuration met every target in this run');

  writeCharts(measured, chosen?.m);
  return { measured, chosen: chosen ? { ...chosen.m.config, memoryMb: chosen.cost.memoryMb } : undefined };
}

function writeCharts(measured: Measured[], chosen: Measured | undefined) {
  const sweep = measured.filter(
    (m) =>
      m.config.profile === 'same-region' &&
      m.config.transport !== 'ses' &&
      m.config.batchSize === 100 &&
      m.config.pool === 10,
  );
  const byInFlight = sweep.sort((a, b) => (a.config.inFlight ?? 100) - (b.config.inFlight ?? 100));
  writeFileSync(
    new URL('./charts/throughput-in-flight.svg', import.meta.url),
    lineChart({
      title: 'One instance, same-region latencies, batch 100, pool of 10',
      xLabel: 'jobs in flight',
      yLabel: 'msg/s while busy',
      xValues: byInFlight.map((m) => m.config.inFlight ?? `${m.config.batchSize} (all)`),
      series: [
        { name: 'ours', values: byInFlight.map((m) => m.ours.rate) },
        { name: 'hand-written loop', values: byInFlight.map((m) => m.loop.rate) },
        { name: 'limit (pool ÷ send)', values: byInFlight.map((m) => m.limit), dashed: true },
      ],
    }),
  );
  const defaults = chosen;
  if (defaults) {
    writeFileSync(
      new URL('./charts/cost-by-memory.svg', import.meta.url),
      stackedBarChart({
        title: `Cost per million jobs: ${describeCase(defaults.config)}`,
        xLabel: 'function memory',
        yLabel: 'US$ per million jobs',
        format: (v) => `$${v.toFixed(2)}`,
        groups: defaults.costs.map((c) => ({
          label: `${c.memoryMb} MB`,
          parts: [
            { name: 'Lambda', value: c.dollars.lambda },
            { name: 'DynamoDB', value: c.dollars.dynamodb },
            { name: 'SQS', value: c.dollars.sqs },
            { name: 'SNS', value: c.dollars.sns },
          ],
        })),
      }),
    );
  }
}
