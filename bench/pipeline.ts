import { DeleteMessageBatchCommand, ReceiveMessageCommand, SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import nodemailer from 'nodemailer';
import { toDispatchId } from '#core/message-id.js';
import { deliverOneBatch, toSqsRecord } from '#local/event-source.js';
import type { EmulatorClients } from '#local/emulators.js';
import { startSmtpSink, type SmtpSink } from '#local/smtp-sink.js';
import { localTlsCertificate } from '#local/tls-certificate.js';
import { buildOurHandler, createHandWrittenHandler, freshResources } from './contenders.js';
import { startBenchEmulators } from './emulators.js';
import { benchJob } from './jobs.js';
import { percentile, record } from './measure.js';

const CONNECTIONS = 5;
const credentials = { username: 'bench', password: 'bench-pass' };
async function enqueue(clients: EmulatorClients, queueUrl: string, prefix: string, count: number) {
  const enqueuedAt = new Map<string, number>();
  const jobs = Array.from({ length: count }, (_, i) => benchJob(`${prefix}-${i}`));
  for (let i = 0; i < jobs.length; i += 10) {
    const chunk = jobs.slice(i, i + 10);
    await clients.sqsClient.send(
      new SendMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: chunk.map((j, n) => ({ Id: String(n), MessageBody: JSON.stringify(j) })),
      }),
    );
    const now = Date.now();
    for (const j of chunk) enqueuedAt.set(toDispatchId(j.idempotencyKey), now);
  }
  return enqueuedAt;
}

async function drainWith(
  concurrency: number,
  count: number,
  sink: SmtpSink,
  before: number,
  poll: () => Promise<number>,
) {
  const until = Date.now() + 120_000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (sink.received.length - before < count && Date.now() < until) {
        if ((await poll()) === 0) await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }),
  );
}

type Run = { received: number; durationMs: number; latencies: number[]; cpuMs: number };

/** One side of the comparison: its own queue, and one poll of it (a batch received and handled). */
type Contender = { name: string; queueUrl: string; poll: () => Promise<number>; close: () => Promise<void> };

/** Drains `count` jobs through `poll` at `concurrency` batches at once and measures it. */
async function measureRun(
  env: { clients: EmulatorClients; sink: SmtpSink },
  queueUrl: string,
  prefix: string,
  count: number,
  concurrency: number,
  poll: () => Promise<number>,
): Promise<Run> {
  const { sink } = env;
  const before = sink.received.length;
  const enqueuedAt = await enqueue(env.clients, queueUrl, prefix, count);
  const startedAt = Date.now();
  const cpu = process.cpuUsage();
  await drainWith(concurrency, count, sink, before, poll);
  const used = process.cpuUsage(cpu);
  const received = sink.received.slice(before);
  const latencies: number[] = [];
  let last = startedAt;
  for (const m of received) {
    const id = /X-Dispatch-Id:\s*([a-f0-9]{32})/i.exec(m.raw.subarray(0, 4096).toString())?.[1];
    const at = id ? enqueuedAt.get(id) : undefined;
    if (at) latencies.push(m.receivedAt - at);
    last = Math.max(last, m.receivedAt);
  }
  return {
    received: received.length,
    durationMs: Math.max(1, last - startedAt),
    latencies,
    cpuMs: (used.user + used.system) / 1000,
  };
}

const rateOf = (run: Run) => (run.received / run.durationMs) * 1000;

const combine = (runs: Run[]) => {
  const received = runs.reduce((n, r) => n + r.received, 0);
  const latencies = runs.flatMap((r) => r.latencies);
  return {
    rate: (received / runs.reduce((n, r) => n + r.durationMs, 0)) * 1000,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    cpuMsPerJob: runs.reduce((n, r) => n + r.cpuMs, 0) / Math.max(1, received),
  };
};

/**
 * The whole pipeline on the emulators (fauxqs → handler with idempotency and suppression → SMTP sink), against a
 * minimal hand-written loop doing the same I/O on the same emulators, at 1, 2, 5 and 10 concurrent batches. The two
 * take turns in rounds (ours first, then the loop first) so that drift on a shared machine falls on both alike.
 */
export async function benchPipeline(
  count: number,
  ceiling: number,
  concurrencies: readonly number[] = [1, 2, 5, 10],
  rounds = 4,
) {
  const emulators = await startBenchEmulators();
  const { clients } = emulators;
  const cert = localTlsCertificate();
  const sink = await startSmtpSink({ tls: cert, credentials });
  const env = { clients, sink };
  const perRun = Math.ceil(count / rounds);
  const section = `end to end (fauxqs + dynalite in a process of their own, SMTP sink; ${perRun * rounds} jobs each, in ${rounds} alternating rounds; CPU is the function process's, sink included)`;

  /**
   * Ours: the real handler, wired as in production. Each contender is built once and kept warm across the rounds, as a
   * Lambda instance is across its invocations (and the handler's middleware is added to its client once).
   */
  const startOurs = async (): Promise<Contender> => {
    const ours = await freshResources(clients);
    const { handler, deps } = await buildOurHandler(
      clients,
      ours,
      {
        SMTP_HOST: sink.host,
        SMTP_PORT: String(sink.port),
        SMTP_MAX_CONNECTIONS: String(CONNECTIONS),
      },
      { smtpCredentials: { get: async () => credentials }, smtpTls: { ca: cert.cert } },
    );
    return {
      name: 'ours',
      queueUrl: ours.jobsQueueUrl,
      poll: async () =>
        (
          await deliverOneBatch({
            sqs: clients.sqsClient,
            queueUrl: ours.jobsQueueUrl,
            queueArn: ours.jobsQueueArn,
            handler,
            functionName: 'send-email',
            batchSize: 10,
            maxBatchingWindowSeconds: 0,
            visibilityTimeoutSeconds: 60,
            functionTimeoutSeconds: 60,
            waitTimeSeconds: 0,
          })
        ).received,
      close: async () => deps.dispatch.transports.smtp?.close(),
    };
  };

  /**
   * The hand-written loop, doing the same I/O as the handler (bench/contenders.ts): receive, the handler's per-job
   * requests and the batch's events, and the delete.
   */
  const startLoop = async (): Promise<Contender> => {
    const base = await freshResources(clients);
    // The pool as ours runs it: CONNECTIONS connections, each replaced after 100 messages (the SMTP adapter's default).
    const raw = nodemailer.createTransport({
      pool: true,
      host: sink.host,
      port: sink.port,
      secure: false,
      requireTLS: true,
      auth: { user: credentials.username, pass: credentials.password },
      maxConnections: CONNECTIONS,
      maxMessages: 100,
      tls: { ca: cert.cert },
      logger: false,
    });
    const handler = createHandWrittenHandler(clients, base, raw);
    return {
      name: 'base',
      queueUrl: base.jobsQueueUrl,
      close: async () => raw.close(),
      poll: async () => {
        // The attributes a consumer with retries needs (receive count, first sent), as Lambda's poller asks for them.
        const r = await clients.sqsClient.send(
          new ReceiveMessageCommand({
            QueueUrl: base.jobsQueueUrl,
            MaxNumberOfMessages: 10,
            WaitTimeSeconds: 0,
            VisibilityTimeout: 60,
            MessageSystemAttributeNames: ['All'],
            MessageAttributeNames: ['All'],
          }),
        );
        const messages = r.Messages ?? [];
        if (messages.length === 0) return 0;
        await handler({ Records: messages.map((m) => toSqsRecord(m, base.jobsQueueArn)) });
        await clients.sqsClient.send(
          new DeleteMessageBatchCommand({
            QueueUrl: base.jobsQueueUrl,
            Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })),
          }),
        );
        return messages.length;
      },
    };
  };

  const runOf = (contender: Contender, concurrency: number, label: string, count = perRun) =>
    measureRun(env, contender.queueUrl, `${contender.name}-${label}`, count, concurrency, contender.poll);

  const contenders = [await startOurs(), await startLoop()] as const;
  const [ourHandler, loopHandler] = contenders;
  try {
    // One unrecorded run of each first: what a cold process pays is measured under cold start, not here.
    await runOf(ourHandler, 10, 'warm-up', 200);
    await runOf(loopHandler, 10, 'warm-up', 200);
    for (const concurrency of concurrencies) {
      const ours: Run[] = [];
      const loop: Run[] = [];
      for (let round = 0; round < rounds; round += 1) {
        const label = `${concurrency}-${round}`;
        if (round % 2 === 0) {
          ours.push(await runOf(ourHandler, concurrency, label));
          loop.push(await runOf(loopHandler, concurrency, label));
        } else {
          loop.push(await runOf(loopHandler, concurrency, label));
          ours.push(await runOf(ourHandler, concurrency, label));
        }
      }
      const o = combine(ours);
      const b = combine(loop);
      record(
        section,
        `ours, ${concurrency} concurrent batch${concurrency > 1 ? 'es' : ''}`,
        o.rate,
        'msg/s',
        `p50 ${Math.round(o.p50)} ms, p99 ${Math.round(o.p99)} ms, ${o.cpuMsPerJob.toFixed(1)} ms CPU a job`,
      );
      record(
        section,
        `hand-written loop, ${concurrency}`,
        b.rate,
        'msg/s',
        `p50 ${Math.round(b.p50)} ms, p99 ${Math.round(b.p99)} ms, ${b.cpuMsPerJob.toFixed(1)} ms CPU a job`,
      );
      // Each round's own ratio too: how far one short run strays from the pooled figure.
      const perRound = ours.map((r, i) => rateOf(r) / rateOf(loop[i] as Run)).sort((x, y) => x - y);
      record(
        section,
        `ratio ours / loop, ${concurrency}`,
        o.rate / b.rate,
        '×',
        `target ≥ 0.9; rounds ${(perRound[0] ?? 0).toFixed(2)}–${(perRound[perRound.length - 1] ?? 0).toFixed(2)}, median ${percentile(perRound, 50).toFixed(2)}; ours / transport ceiling ${(o.rate / ceiling).toFixed(2)}×`,
      );
    }
  } finally {
    for (const contender of contenders) await contender.close();
    await sink.stop();
    await emulators.stop();
  }
}
