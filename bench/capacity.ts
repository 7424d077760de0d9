import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { cpus, loadavg } from 'node:os';
import { costPerMillion, cpuShare, durationAt, type CostPerMillion } from './cost.js';
import { cpuShareControl, type CpuShare } from './cpu-share.js';
import { startBenchEmulators, type BenchEmulators } from './emulators.js';
import {
  limitOf,
  ROUND_TRIPS_IN_PLACE,
  runInstance,
  runTransport,
  sesSendTimeMs,
  type Contender,
  type InstanceConfig,
  type InstanceRun,
  type TransportRun,
  windowOf,
} from './instance.js';
import { DEFAULT_SETTINGS, type SystemSettings, validateSettings } from '#infra/settings.js';
import { percentile, record, replaceSectionsInResults } from './measure.js';
import { lineChart, stackedBarChart } from './svg.js';

/** Memory sizes priced and run at (MB); 1,769 MB is one whole vCPU. */
const MEMORY_SIZES = [256, 512, 1024, 1769] as const;
/** The latency target: a job reaches the relay within this long of its batch starting to gather, at the tail. */
const LATENCY_TARGET_MS = 3000;
/** Two million mails a day, the load the capacity table is written for. */
const DAILY_JOBS = 2_000_000;

type Case = InstanceConfig & { jobs: number; rounds: number };

const same = 'same-region' as const;
const at = (
  batchSize: number,
  pool: number,
  jobs: number,
  inFlight?: number,
  rounds = 2,
  windowSeconds?: number,
): Case => ({
  profile: same,
  batchSize,
  pool,
  inFlight,
  jobs,
  rounds,
  ...(windowSeconds === undefined ? {} : { windowSeconds }),
});

/**
 * The matrix on a whole core: batch sizes, pools and jobs in flight under the same-region profile; two configurations
 * under each of the others; SES at two rates. Small runs taken in turns (ours, the loop, then the loop first).
 */
function cases(quick: boolean): Case[] {
  const rounds = quick ? 1 : 2;
  return [
    at(10, 5, 100, undefined, rounds),
    at(100, 5, 200, undefined, rounds),
    at(100, 10, 200, undefined, rounds),
    at(100, 25, 200, undefined, rounds),
    // A thousand at once queue on the SDK's 50 sockets past its connection timeout: bounded, and not.
    ...(quick ? [] : [at(1000, 10, 1000, undefined, 1), at(1000, 10, 1000, 50, 1)]),
    ...[5, 10, 20, 50].map((inFlight) => at(100, 10, 200, inFlight, rounds)),
    { profile: 'cross-region', batchSize: 10, pool: 5, jobs: 50, rounds: 1 },
    { profile: 'cross-region', batchSize: 100, pool: 10, jobs: 100, inFlight: 50, rounds: 1 },
    { profile: 'slow-relay', batchSize: 10, pool: 5, jobs: 50, rounds: 1 },
    { profile: 'slow-relay', batchSize: 100, pool: 10, jobs: 200, inFlight: 50, rounds: 1 },
    // Over the SES API, the instance's share of the account's rate the limit: a share it can keep, and a large one.
    ...[50, 200].map((sesRate) => ({ ...at(100, 10, 200, 50, rounds), transport: 'ses' as const, sesRate })),
  ];
}

/**
 * The configurations a team would choose among, run again at each memory size's CPU share. Each is one the stack can
 * deploy (`deployableProblems`): a batch over ten needs a batching window of a whole second or more.
 */
export function lambdaCases(quick: boolean): Case[] {
  if (quick) return [at(100, 5, 100, 50, 1)];
  return [
    at(10, 5, 100, undefined, 1),
    // The choice is made among these: three rounds each, as a round moves a rate by a few hundredths and a cost by
    // about a percent, the width of the band of costs counted as one (chooseDefaults).
    ...[10, 20].map((inFlight) => at(100, 5, 200, inFlight, 3)),
    // A quarter more a batch over the same pool: 25 messages a connection, what a batch pays at either end spread
    // over more sends, its invocation still within the latency target at 1,024 MB.
    at(125, 5, 250, 10, 3),
    // Fewer connections a batch, each sending 25 or 28 messages: the batch's sends last about 1.5 s, long beside its
    // own requests at either end, short enough for the window and the batch to stay within the latency target. Fewer
    // connections also keep less of the instance's CPU share busy when the relay answers.
    at(75, 3, 225, 10, 3),
    // 28 messages a connection, as in the batches of 56 over two below, over three connections and over five.
    at(84, 3, 252, 10, 3),
    at(140, 5, 280, 10, 3),
    at(56, 2, 224, 6, 3),
    at(56, 2, 224, 10, 3),
    at(100, 10, 200, 20, 3),
  ];
}

/** The deployed settings a case stands for: the defaults with its batch, window, pool and jobs in flight. */
export const settingsOf = (c: InstanceConfig, memorySizeMb = DEFAULT_SETTINGS.memorySizeMb): SystemSettings => ({
  ...DEFAULT_SETTINGS,
  batchSize: c.batchSize,
  maxBatchingWindowSeconds: windowOf(c),
  smtpConnections: c.pool,
  maxInFlight: c.inFlight ?? 0,
  memorySizeMb,
});

/** Why each case the stack could not deploy as it stands (`validateSettings`), by the case's name: empty when all can. */
export function deployableProblems(candidates: InstanceConfig[]): string[] {
  return candidates.flatMap((c) =>
    MEMORY_SIZES.flatMap((memoryMb) =>
      validateSettings(settingsOf(c, memoryMb)).map((problem) => `${describeCase(c)}, ${memoryMb} MB: ${problem}`),
    ),
  );
}

/** Refuses a run whose candidates include one the stack would not deploy: a default it refuses is no choice. */
export function assertDeployable(candidates: InstanceConfig[]) {
  const undeployable = deployableProblems(candidates);
  if (undeployable.length > 0) throw new Error(`candidates the stack cannot deploy:\n${undeployable.join('\n')}`);
}

const describeCase = (c: InstanceConfig) =>
  `${c.profile}, batch ${c.batchSize}${c.windowSeconds === undefined ? '' : ` (window ${c.windowSeconds} s)`}, ` +
  `${c.inFlight ?? 'all'} in flight, ` +
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
      for (const extra of ['heldMs', 'overMs'] as const)
        if (entry[extra] !== undefined) sum[extra] = (sum[extra] ?? 0) + (entry[extra] as number);
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
    memoryMb: runs[0]?.memoryMb,
    delivered: runs.reduce((n, r) => n + r.delivered, 0),
    rate: (runs.reduce((n, r) => n + r.delivered, 0) / busy) * 1000,
    cpuMsPerJob: cpu / jobs,
  };
}

/** The transport-alone runs of a case as one: their rates averaged, the send time from the average. */
function pooledTransport(runs: TransportRun[], pool: number): TransportRun | undefined {
  if (runs.length === 0) return undefined;
  const rate = runs.reduce((n, r) => n + r.rate, 0) / runs.length;
  return { rate, sendMs: (pool / rate) * 1000, relayMs: runs.reduce((n, r) => n + r.relayMs, 0) / runs.length };
}

/** Milliseconds a job that the emulators answered later than the profile's figure (their own time showing). */
const overrunMsPerJob = (run: InstanceRun) =>
  Object.values(run.requests).reduce((n, e) => n + (e.overMs ?? 0), 0) / Math.max(1, run.jobs);

type Measured = {
  config: Case;
  ours: InstanceRun;
  loop: InstanceRun;
  transport?: TransportRun;
  limit: number;
  sendMs: number;
};

export type AtMemory = {
  config: Case;
  memoryMb: number;
  /** Timed under the memory's CPU share, or estimated from the whole-core runs (no share control here). */
  measured: boolean;
  ours: { rate: number; longestMs: number; p50Ms: number; delivered: number; jobs: number };
  loop: { rate: number };
  limit: number;
  cost: CostPerMillion;
};

/** One contender's runs of `config`, taking turns with the others round by round, and the transport alone. */
async function measure(emulators: BenchEmulators, config: Case, memoryMb?: number) {
  const runs: Record<Contender, InstanceRun[]> = { ours: [], loop: [] };
  const transports: TransportRun[] = [];
  for (let round = 0; round < config.rounds; round += 1) {
    // Taking turns, each first in turn, so drift on a shared machine falls on both alike.
    const order = round % 2 === 0 ? (['ours', 'loop'] as const) : (['loop', 'ours'] as const);
    for (const contender of order) {
      const run = { ...(await runInstance(emulators, contender, config, config.jobs)), memoryMb };
      // A job postponed in the run (a call that timed out on a loaded machine) is not counted as sent.
      if (run.delivered !== config.jobs)
        console.log(`  ${contender} sent ${run.delivered} of ${config.jobs} in the run (${describeCase(config)})`);
      runs[contender].push(run);
    }
    // The limit is the relay's: measured on a whole core only (the transport alone needs little CPU).
    if (config.transport !== 'ses' && memoryMb === undefined)
      transports.push(await runTransport(emulators, config, config.jobs));
  }
  const ours = pooled(runs.ours);
  const loop = pooled(runs.loop);
  const transport = pooledTransport(transports, config.pool);
  const sendMs = config.transport === 'ses' ? sesSendTimeMs(config) : (transport?.sendMs ?? 0);
  return { config, ours, loop, transport, sendMs, limit: limitOf(config, sendMs) };
}

/** A run's rate, longest and median invocation at `memoryMb`: as timed there, or its CPU stretched to that share. */
function atMemory(run: InstanceRun, memoryMb: number) {
  const durations = run.invocations.map((i) =>
    run.memoryMb === memoryMb ? i.wallMs : durationAt(memoryMb, i.wallMs, i.cpuMs),
  );
  return {
    rate: (run.delivered / durations.reduce((a, b) => a + b, 0)) * 1000,
    longestMs: Math.max(...durations),
    p50Ms: percentile(durations, 50),
  };
}

/** Priced on the jobs actually sent: a run whose calls timed out costs more a job, as it would in AWS. */
const priced = (run: InstanceRun, memoryMb: number) =>
  costPerMillion({ ...run, jobs: Math.max(1, run.delivered) }, memoryMb);

/**
 * The candidates at each memory size: each run with this process held to that size's CPU share (ours and the loop in
 * turns, the limit measured beside them), or, where the machine cannot hold a process to a share, estimated from the
 * whole-core runs by stretching their CPU time.
 */
async function measureAtMemory(
  emulators: BenchEmulators,
  candidates: Case[],
  wholeCore: Measured[],
  share: CpuShare | undefined,
): Promise<AtMemory[]> {
  const results: AtMemory[] = [];
  for (const config of candidates) {
    const base = wholeCore.find((m) => describeCase(m.config) === describeCase(config));
    for (const memoryMb of MEMORY_SIZES) {
      const m = share ? await share.run(cpuShare(memoryMb), () => measure(emulators, config, memoryMb)) : base;
      if (!m) continue;
      const ours = atMemory(m.ours, memoryMb);
      const loop = atMemory(m.loop, memoryMb);
      const limit = base?.limit ?? 0;
      results.push({
        config,
        memoryMb,
        measured: share !== undefined,
        ours: { ...ours, delivered: m.ours.delivered, jobs: m.ours.jobs },
        loop: { rate: loop.rate },
        limit,
        cost: priced(m.ours, memoryMb),
      });
      console.log(
        `  ${describeCase(config)} at ${memoryMb} MB: ours ${ours.rate.toFixed(1)}, ` +
          `loop ${loop.rate.toFixed(1)}, limit ${limit.toFixed(1)} msg/s`,
      );
    }
  }
  return results;
}

/**
 * One handler instance under injected latencies: its throughput against what its configuration allows (pool ÷ the
 * time a message holds a connection, measured with the transport alone) and against the hand-written loop doing the
 * same I/O, across batch sizes, pools and jobs in flight, on a whole core; then the candidates again at each memory
 * size's CPU share, with what a million jobs cost there, from the requests counted and the invocations timed; the
 * cheapest configuration within the latency target and the peak (chooseDefaults), with the targets it is held to; and
 * the charts.
 */
export async function benchCapacity(quick: boolean) {
  // Other work on the machine slows both contenders alike, but not their limits: the load goes with the figures.
  const loadBefore = loadavg()[0] as number;
  // The emulators start first, outside any share: they stand for AWS, not for the function.
  const emulators = await startBenchEmulators({ smtpSink: true, ses: true, latency: true });
  const share = cpuShareControl();
  const measured: Measured[] = [];
  let lambda: AtMemory[] = [];
  try {
    // Unrecorded warm-up of both: what a cold process pays is measured under cold start. A few hundred jobs each, as
    // a warm Lambda instance has handled: after only 50, a job still took half as much CPU again as it settles at.
    for (const contender of ['ours', 'loop'] as const)
      await runInstance(emulators, contender, { profile: same, batchSize: 100, pool: 10 }, quick ? 200 : 400);
    for (const config of [...cases(quick), ...lambdaCases(quick)].filter(
      (c, i, all) => all.findIndex((d) => describeCase(d) === describeCase(c)) === i,
    )) {
      const m = await measure(emulators, config);
      measured.push(m);
      console.log(
        `  ${describeCase(config)}: ours ${m.ours.rate.toFixed(1)}, loop ${m.loop.rate.toFixed(1)}, ` +
          `limit ${m.limit.toFixed(1)} msg/s`,
      );
    }
    lambda = await measureAtMemory(emulators, lambdaCases(quick), measured, share);
  } finally {
    share?.release();
    await emulators.stop();
  }
  record(
    'one instance under injected latency: the machine',
    'load average (1 min), start / end',
    loadBefore,
    '',
    `${loadBefore.toFixed(1)} / ${(loadavg()[0] as number).toFixed(1)} on ${cpus().length} cores; memory sizes ` +
      (share
        ? `run at their CPU share (${share.describe})`
        : 'estimated: this machine cannot hold a process to a share'),
  );
  return report(measured, lambda);
}

/** Costs this close to the cheapest count as one price: a round's cost a million moves by about as much. */
const COST_TOLERANCE = 0.02;

/** What the defaults are held to: this fraction of their limit, and of the hand-written loop's rate. */
const TARGET = 0.9;

/** A fraction against the target, marked met or not. */
const held = (fraction: number) => `${fraction.toFixed(2)} ${fraction >= TARGET ? '✔' : '✘'}`;

/** Whether a candidate reaches the targets at its memory size: 0.9 of its limit and 0.9 × the loop. */
const onTarget = (a: AtMemory) => a.ours.rate >= TARGET * a.limit && a.ours.rate >= TARGET * a.loop.rate;

/**
 * The defaults: the cheapest configuration and memory that sent every job, keeps a job within the latency target
 * (the batching window plus the batch's longest invocation), carries two million a day at four times the average
 * within the default concurrency cap, and reaches the targets: 0.9 of its limit and 0.9 × the loop. Costs within 2 %
 * of the cheapest count as one; among them, the one nearest its limit, whose pool idles least.
 *
 * The targets choose because a configuration below them is short of CPU for its pool: its connections wait on the
 * instance, not on the relay, so its rate moves with whatever else costs CPU (a larger message, a template, the
 * machine it lands on) where a team plans on pool ÷ send time. Where no candidate reaches them, the cheapest of the
 * others is taken, and the report marks the targets missed.
 */
export function chooseDefaults(lambda: AtMemory[]): AtMemory | undefined {
  const peak = (4 * DAILY_JOBS) / 86_400;
  const eligible = lambda.filter(
    (a) =>
      // A limit or a cost not measured (a transport run that sent nothing, say) is no figure to choose by.
      a.limit > 0 &&
      Number.isFinite(a.cost.dollars.total) &&
      a.ours.delivered === a.ours.jobs &&
      windowOf(a.config) * 1000 + a.ours.longestMs <= LATENCY_TARGET_MS &&
      a.ours.rate * DEFAULT_SETTINGS.maxConcurrency >= peak,
  );
  const reaching = eligible.filter(onTarget);
  const among = reaching.length > 0 ? reaching : eligible;
  const cheapest = Math.min(...among.map((a) => a.cost.dollars.total));
  const level = among.filter((a) => a.cost.dollars.total <= cheapest * (1 + COST_TOLERANCE));
  return level.sort((x, y) => y.ours.rate / y.limit - x.ours.rate / x.limit)[0];
}

function report(measured: Measured[], lambda: AtMemory[]) {
  const section = 'one instance under injected latency, a whole core (bench/latency.ts profiles; msg/s while busy)';
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
      `invocation p50 ${p50} ms; sent ${m.ours.delivered} of ${m.ours.jobs}; ` +
      `emulators over the profile ${overrunMsPerJob(m.ours).toFixed(1)} ms a job`;
    record(section, `${name}: ours`, m.ours.rate, 'msg/s', `${against}; ${ours}`);
    const loop = `${m.loop.cpuMsPerJob.toFixed(2)} ms CPU a job; sent ${m.loop.delivered} of ${m.loop.jobs}`;
    record(section, `${name}: loop`, m.loop.rate, 'msg/s', loop);
    const bound =
      m.config.transport === 'ses' && m.limit === m.config.sesRate
        ? 'the SES rate'
        : Math.abs(m.limit * m.sendMs - m.config.pool * 1000) < 1e-6
          ? `pool ÷ send: the transport alone sent ${m.transport?.rate.toFixed(1)} msg/s`
          : `in flight ÷ (send + ${ROUND_TRIPS_IN_PLACE} DynamoDB trips)`;
    const send = m.transport
      ? `${m.sendMs.toFixed(1)} ms a message on a connection, ${m.transport.relayMs.toFixed(1)} of it the relay's (its delays and any overrun)`
      : `${m.sendMs.toFixed(0)} ms a message`;
    record(section, `${name}: limit`, m.limit, 'msg/s', `${bound}; ${send}`);
  }

  const memorySection =
    "one instance at its memory size's CPU share (same-region; cost per million jobs from counted requests and " +
    'timed invocations, US East on-demand prices)';
  for (const a of lambda) {
    const c = a.cost;
    record(
      memorySection,
      `${describeCase(a.config)}, ${a.memoryMb} MB: ours`,
      a.ours.rate,
      'msg/s',
      `${(a.ours.rate / a.limit).toFixed(2)} of the limit (${a.limit.toFixed(1)}), ` +
        `${(a.ours.rate / a.loop.rate).toFixed(2)}× the loop (${a.loop.rate.toFixed(1)}); ` +
        `invocation p50 ${(a.ours.p50Ms / 1000).toFixed(1)} s, longest ${(a.ours.longestMs / 1000).toFixed(1)} s; ` +
        `sent ${a.ours.delivered} of ${a.ours.jobs}${a.measured ? '' : '; estimated from a whole core'}`,
    );
    record(
      memorySection,
      `${describeCase(a.config)}, ${a.memoryMb} MB: cost`,
      c.dollars.total,
      '$/M',
      [
        `Lambda $${c.dollars.lambda.toFixed(2)} (${Math.round(c.invocations).toLocaleString('en')} invocations, ` +
          `${Math.round(c.gbSeconds).toLocaleString('en')} GB-s)`,
        `DynamoDB $${c.dollars.dynamodb.toFixed(2)} (${(c.dynamoWriteUnits / 1e6).toFixed(2)} M WRU, ` +
          `${(c.dynamoReadUnits / 1e6).toFixed(2)} M RRU)`,
        `SQS $${c.dollars.sqs.toFixed(2)} (${(c.sqsRequests / 1e6).toFixed(2)} M)`,
        `SNS $${c.dollars.sns.toFixed(2)} (${(c.snsRequests / 1e6).toFixed(2)} M)`,
      ].join(', '),
    );
  }

  const chosen = chooseDefaults(lambda);
  const choiceSection = 'the defaults chosen from the measurements';
  if (chosen) {
    record(
      choiceSection,
      'configuration',
      chosen.cost.dollars.total,
      '$/M',
      `${describeCase(chosen.config)}, ${chosen.memoryMb} MB`,
    );
    record(
      choiceSection,
      'per-instance rate at that memory',
      chosen.ours.rate,
      'msg/s',
      `${held(chosen.ours.rate / chosen.limit)} of the limit (${chosen.limit.toFixed(1)}), ` +
        `${held(chosen.ours.rate / chosen.loop.rate)}× the loop (targets ≥ 0.9); longest invocation ` +
        `${(chosen.ours.longestMs / 1000).toFixed(1)} s`,
    );
    const perSecond = DAILY_JOBS / 86_400;
    record(
      choiceSection,
      'two million a day',
      (chosen.cost.dollars.total * DAILY_JOBS) / 1e6,
      '$/day',
      `${perSecond.toFixed(1)} msg/s on average: ${Math.ceil(perSecond / chosen.ours.rate)} instance(s) busy, ` +
        `${Math.ceil((4 * perSecond) / chosen.ours.rate)} at 4× the average`,
    );
  } else record(choiceSection, 'configuration', 0, '', 'no configuration met the latency target and the peak');

  // The cost chart for the chosen configuration, or, when none kept the latency target and the peak, the defaults'.
  const defaults = at(
    DEFAULT_SETTINGS.batchSize,
    DEFAULT_SETTINGS.smtpConnections,
    0,
    DEFAULT_SETTINGS.maxInFlight || undefined,
  );
  // A window other than the usual one for its batch is part of the case's name.
  if (DEFAULT_SETTINGS.maxBatchingWindowSeconds !== windowOf(defaults))
    defaults.windowSeconds = DEFAULT_SETTINGS.maxBatchingWindowSeconds;
  const charted = describeCase(chosen?.config ?? defaults);
  writeCharts(
    measured,
    lambda.filter((a) => describeCase(a.config) === charted),
  );
  return chosen
    ? {
        batchSize: chosen.config.batchSize,
        maxBatchingWindowSeconds: windowOf(chosen.config),
        maxInFlight: chosen.config.inFlight ?? 0,
        smtpConnections: chosen.config.pool,
        memorySizeMb: chosen.memoryMb,
      }
    : undefined;
}

function writeCharts(measured: Measured[], chosen: AtMemory[]) {
  const sweep = measured.filter(
    (m) =>
      m.config.profile === same && m.config.transport !== 'ses' && m.config.batchSize === 100 && m.config.pool === 10,
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
        { name: 'limit', values: byInFlight.map((m) => m.limit), dashed: true },
      ],
    }),
  );
  const first = chosen[0];
  if (!first) return;
  writeFileSync(
    new URL('./charts/cost-by-memory.svg', import.meta.url),
    stackedBarChart({
      title: `Cost per million jobs: ${describeCase(first.config)}`,
      xLabel: 'function memory',
      yLabel: 'US$ per million jobs',
      format: (v) => `$${v.toFixed(2)}`,
      groups: chosen.map(({ cost: c }) => ({
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

// Run alone (`tsx bench/lambda-node.ts bench/capacity.ts`): its rows replace its sections' in bench/results.json, and
// its choice the recorded one.
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  assertDeployable(lambdaCases(false));
  const chosen = await benchCapacity(false);
  replaceSectionsInResults({ chosen, capacityDate: new Date().toISOString() });
  process.exit(0);
}
