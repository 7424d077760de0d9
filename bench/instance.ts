import { SendEmailCommand, SESv2Client } from '@aws-sdk/client-sesv2';
import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import nodemailer from 'nodemailer';
import { createBoundedRequestHandler } from '#aws/clients.js';
import { forEachBounded, slices } from '#core/bounded.js';
import { createRateLimiter } from '#core/rate-limiter.js';
import { deliverOneBatch, type SqsHandler } from '#local/event-source.js';
import { createEmulatorClients, LOCAL_CREDENTIALS, type EmulatorClients } from '#local/emulators.js';
import type { LocalResources } from '#local/resources.js';
import { buildOurHandler, createHandWrittenHandler, freshResources, toMail } from './contenders.js';
import type { MeasuredUse } from './cost.js';
import type { BenchEmulators } from './emulators.js';
import { benchJob, keyFor } from './jobs.js';
import { LATENCY_PROFILES, type LatencyProfileName, type RequestCounts } from './latency.js';

/** One configuration of one instance: the event source's batch, the jobs in flight, the SMTP pool. */
export type InstanceConfig = {
  profile: LatencyProfileName;
  batchSize: number;
  /** Jobs of a batch in progress at once; undefined: all of it. */
  inFlight?: number;
  pool: number;
  /** The relay: an SMTP pool of `pool` connections, or the SES API at `sesRate`. @default 'smtp' */
  transport?: 'smtp' | 'ses';
  /** Over SES: the instance's share of the account's send rate, messages/s (one recipient each). */
  sesRate?: number;
  /** The event source's batching window, seconds. @default 1 above ten jobs a batch, else 0 */
  windowSeconds?: number;
};

/** The batching window of a configuration, seconds. */
export const windowOf = (config: InstanceConfig) => config.windowSeconds ?? (config.batchSize > 10 ? 1 : 0);

export type InstanceRun = MeasuredUse & {
  /** Jobs a second while the instance was busy (the sum of its invocations' wall times). */
  rate: number;
  /** The sink's count of messages received in the run (each job exactly once). */
  delivered: number;
  /** CPU a job, ms, on this machine's core. */
  cpuMsPerJob: number;
};

/**
 * The part of a message's time on a pooled SMTP connection that the relay makes: the profile's figures for its
 * exchanges (connecting and greeting included, a pipelined command sharing the wait of the one before it), and the
 * time the server took beyond them (its overrun), per message sent. The rest is the client's own (composing and
 * streaming the message, reading the replies).
 */
export function relayTimeMs(requests: RequestCounts): number {
  const messages = requests['smtp.END']?.count ?? 0;
  if (messages === 0) return 0;
  const held = Object.entries(requests)
    .filter(([key]) => key.startsWith('smtp.'))
    .reduce((sum, [, entry]) => sum + (entry.heldMs ?? 0) + (entry.overMs ?? 0), 0);
  return held / messages;
}

/** What the relay allows a pool on its own: messages a second, the time each holds a connection, the relay's part. */
export type TransportRun = { rate: number; sendMs: number; relayMs: number };

/**
 * The transport alone, as the limit's measure: `messages` bench jobs' messages handed at once to a nodemailer pool
 * of `config.pool` connections (`smtpPool`, its connections opened first) through the SMTP proxy, nothing else
 * running, so no connection ever waits for work. Its rate is what the pool allows; pool ÷ rate is the time a message
 * holds a connection, the client's own time included, as it is in every contender.
 */
export async function runTransport(
  emulators: BenchEmulators,
  config: InstanceConfig,
  messages: number,
): Promise<TransportRun> {
  const smtp = emulators.endpoints.smtp as { host: string; port: number };
  await emulators.useLatency(config.profile);
  const transport = smtpPool(smtp, config.pool);
  try {
    // Every connection open first, as the instances' pools are after their first batch.
    await Promise.all(
      Array.from({ length: config.pool }, (_, i) => transport.sendMail(toMail(benchJob(`transport-warm-${i}`)))),
    );
    await emulators.requestCounts();
    const started = performance.now();
    await Promise.all(
      Array.from({ length: messages }, (_, i) => transport.sendMail(toMail(benchJob(`transport-${i}`)))),
    );
    const rate = (messages / (performance.now() - started)) * 1000;
    return { rate, sendMs: (config.pool / rate) * 1000, relayMs: relayTimeMs(await emulators.requestCounts()) };
  } finally {
    transport.close();
  }
}

/** The pool as ours runs it: `pool` connections, each replaced after 100 messages (the SMTP adapter's default). */
const smtpPool = (smtp: { host: string; port: number }, pool: number) =>
  nodemailer.createTransport({
    pool: true,
    host: smtp.host,
    port: smtp.port,
    secure: false,
    ignoreTLS: true,
    maxConnections: pool,
    maxMessages: 100,
    logger: false,
  });

/**
 * DynamoDB round trips a job makes while it holds its place among the jobs in flight, one after another: its claim in
 * the status table, the claim of its key (the suppression lookup beside it) and, after the send, its completion
 * record. (Its final status is written beside its ten's events, outside its place.)
 */
export const ROUND_TRIPS_IN_PLACE = 3;

/**
 * What the configuration allows one instance: its connections ÷ the time a message holds one (measured with the
 * transport alone, `runTransport`), or, when fewer jobs are in flight than that keeps busy, the jobs in flight ÷ the
 * time each holds its place (its send plus its round trips to DynamoDB).
 */
export const limitOf = (config: InstanceConfig, sendMs: number) => {
  if (sendMs <= 0) return 0;
  const placeMs = sendMs + ROUND_TRIPS_IN_PLACE * LATENCY_PROFILES[config.profile].http.dynamodb;
  const inPlace = ((config.inFlight ?? config.batchSize) / placeMs) * 1000;
  // Over SES the account's rate takes the pool's place: the SDK's sockets (50) are never the bound here.
  if (config.transport === 'ses') return Math.min(config.sesRate ?? Number.POSITIVE_INFINITY, inPlace);
  return Math.min((config.pool / sendMs) * 1000, inPlace);
};

/** The SES API request that sends a message, as the proxy counts it. */
const SES_SEND = 'ses.POST /v2/email/outbound-emails';

/** The time a message takes over SES: the delay the proxy gave each send request. */
export function sesSendTimeMs(config: InstanceConfig): number {
  return LATENCY_PROFILES[config.profile].http.ses;
}

async function enqueue(clients: EmulatorClients, queueUrl: string, prefix: string, count: number) {
  const jobs = Array.from({ length: count }, (_, i) => benchJob(keyFor(`${prefix}-${i}`)));
  await forEachBounded(slices(jobs, 10), 8, async (chunk) => {
    await clients.sqsClient.send(
      new SendMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: chunk.map((j, n) => ({ Id: String(n), MessageBody: JSON.stringify(j) })),
      }),
    );
  });
}

/** Wraps a handler to time each invocation: wall time and the process's CPU while it ran. */
function timed(handler: SqsHandler, invocations: MeasuredUse['invocations']): SqsHandler {
  return async (event: SQSEvent, context: Context): Promise<SQSBatchResponse | undefined> => {
    const cpu = process.cpuUsage();
    const start = performance.now();
    try {
      return await handler(event, context);
    } finally {
      const used = process.cpuUsage(cpu);
      invocations.push({ wallMs: performance.now() - start, cpuMs: (used.user + used.system) / 1000 });
    }
  };
}

/** Jobs of the unrecorded batch a run starts with: enough to open the pool and warm the clients, whatever the batch. */
const WARM_UP_JOBS = 20;

/**
 * Drains `jobs` jobs through one instance of `handler`: the event source hands it one batch at a time, as Lambda
 * hands an instance one invocation at a time, and the run counts what the proxies and the sink saw. A first batch of
 * a few jobs goes unrecorded: a run's handler is new, and what a new instance pays once (its pool's first sign-in,
 * its clients' first connections) a Lambda instance spreads over every batch of its life; cold start measures it.
 */
async function drain(run: Run, handler: SqsHandler): Promise<InstanceRun> {
  const { emulators, resources, config, jobs, label } = run;
  const { clients } = emulators;
  const poll = (instance: SqsHandler, batchSize: number, windowSeconds: number) =>
    deliverOneBatch({
      sqs: clients.sqsClient,
      queueUrl: resources.jobsQueueUrl,
      queueArn: resources.jobsQueueArn,
      handler: instance,
      functionName: 'send-email',
      batchSize,
      maxBatchingWindowSeconds: windowSeconds,
      visibilityTimeoutSeconds: 360,
      functionTimeoutSeconds: 60,
      waitTimeSeconds: 0,
    });
  await enqueue(clients, resources.jobsQueueUrl, `${label}-warm`, WARM_UP_JOBS);
  // With a window, so the warm-up's twenty are gathered over two receives (ten each) into its one batch.
  await poll(handler, WARM_UP_JOBS, 1);
  await emulators.requestCounts();
  const before = await emulators.sinkCount();
  await enqueue(clients, resources.jobsQueueUrl, label, jobs);
  const invocations: MeasuredUse['invocations'] = [];
  const instance = timed(handler, invocations);
  let done = 0;
  // Bounded: every batch takes at least one job, and a run that stalls ends after a few empty polls.
  for (let polls = 0, empty = 0; done < jobs && polls < jobs + 10 && empty < 3; polls += 1) {
    const result = await poll(instance, config.batchSize, windowOf(config));
    done += result.succeeded;
    empty = result.received === 0 ? empty + 1 : 0;
  }
  const requests = await emulators.requestCounts();
  const delivered =
    config.transport === 'ses' ? (requests[SES_SEND]?.count ?? 0) : (await emulators.sinkCount()) - before;
  const busyMs = invocations.reduce((sum, i) => sum + i.wallMs, 0);
  const cpuMs = invocations.reduce((sum, i) => sum + i.cpuMs, 0);
  return { jobs, invocations, requests, delivered, rate: (delivered / busyMs) * 1000, cpuMsPerJob: cpuMs / jobs };
}

export type Contender = 'ours' | 'loop';

/**
 * One instance of `contender` under `config`: fresh resources (made without delays), the handler built as it is
 * deployed (ours) or the hand-written one over a nodemailer pool of the same size, then `jobs` drained.
 */
export async function runInstance(
  emulators: BenchEmulators,
  contender: Contender,
  config: InstanceConfig,
  jobs: number,
): Promise<InstanceRun> {
  const { endpoints } = emulators;
  await emulators.useLatency(null);
  const resources = await freshResources(emulators.clients, contender);
  await emulators.useLatency(config.profile);
  const label = `${contender}-${config.profile}-${config.batchSize}-${config.inFlight ?? 'all'}-${config.pool}`;
  // The instance's own SDK clients, as a Lambda container builds its own: what one run adds to a client (the
  // idempotency fence's hook, one per table) never weighs on the next.
  const clients = createEmulatorClients(endpoints);
  const run: Run = { emulators, clients, contender, resources, config, jobs, label };
  try {
    return await (config.transport === 'ses' ? runOverSes(run) : runOverSmtp(run));
  } finally {
    clients.destroy();
    clients.sqsClient.destroy();
  }
}

/** One run of one contender: where it runs, with what, and how many jobs. */
type Run = {
  emulators: BenchEmulators;
  clients: EmulatorClients;
  contender: Contender;
  resources: LocalResources;
  config: InstanceConfig;
  jobs: number;
  label: string;
};

/** One instance over a pool of `config.pool` SMTP connections, through the SMTP proxy. */
async function runOverSmtp(run: Run): Promise<InstanceRun> {
  const { emulators, clients, contender, resources, config } = run;
  const smtp = emulators.endpoints.smtp as { host: string; port: number };
  if (contender === 'ours') {
    const { handler, deps } = await buildOurHandler(clients, resources, {
      SMTP_HOST: smtp.host,
      SMTP_PORT: String(smtp.port),
      SMTP_SECURITY: 'none',
      SMTP_MAX_CONNECTIONS: String(config.pool),
      ...(config.inFlight ? { MAX_IN_FLIGHT: String(config.inFlight) } : {}),
    });
    try {
      return await drain(run, handler);
    } finally {
      await deps.dispatch.transports.smtp?.close();
    }
  }
  const transport = smtpPool(smtp, config.pool);
  try {
    return await drain(run, createHandWrittenHandler(clients, resources, transport, config.inFlight));
  } finally {
    transport.close();
  }
}

/** One instance over the SES API (aws-ses-v2-local behind its proxy), at the instance's share of the account's rate. */
async function runOverSes(run: Run): Promise<InstanceRun> {
  const { emulators, clients, contender, resources, config } = run;
  const { endpoints } = emulators;
  const sesClient = { region: 'eu-west-1', credentials: LOCAL_CREDENTIALS, endpoint: endpoints.ses as string };
  // aws-ses-v2-local keeps every message it is sent and slows down as they pile up: each run starts it empty.
  await fetch(`${endpoints.ses}/clear-store`, { method: 'POST' });
  const rate = config.sesRate ?? 0;
  if (contender === 'ours') {
    const { handler, deps } = await buildOurHandler(
      clients,
      resources,
      {
        DEFAULT_TRANSPORT: 'ses',
        TRANSPORTS: 'ses',
        SES_MAX_SEND_RATE: String(rate),
        ...(config.inFlight ? { MAX_IN_FLIGHT: String(config.inFlight) } : {}),
      },
      { sesClient },
    );
    try {
      return await drain(run, handler);
    } finally {
      await deps.dispatch.transports.ses?.close();
    }
  }
  // nodemailer's SES transport on the SDK client as ours builds it, paced by the rate limiter ours uses.
  const client = new SESv2Client({ ...sesClient, requestHandler: createBoundedRequestHandler(), maxAttempts: 1 });
  const transport = nodemailer.createTransport({ SES: { sesClient: client, SendEmailCommand } });
  const limiter = createRateLimiter(rate);
  try {
    const handler = createHandWrittenHandler(clients, resources, transport, config.inFlight, limiter);
    return await drain(run, handler);
  } finally {
    transport.close();
  }
}
