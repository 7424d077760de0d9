import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS } from '#infra/settings.js';
import { toDispatchEnvironment } from '#local/resources.js';
import { localTlsCertificate } from '#local/tls-certificate.js';
import type { SmtpFaultRule } from '#local/smtp-sink.js';
import { emailJobFactory } from '../support/factories.js';
import { SMTP_USER, startAwsEmulators, startDispatchHarness, type AwsEmulators } from '../support/dispatch-harness.js';
import { compareLedgers, printSummary, unexplainedDuplicates } from './ledger.js';

let aws: AwsEmulators;
beforeAll(async () => {
  aws = await startAwsEmulators();
});
afterAll(async () => {
  await aws.stop();
});

type Point = 'before-in-progress' | 'after-in-progress' | 'after-rcpt' | 'end-before-reply' | 'after-reply';

/** Runs worker processes over the queue until it is empty; each is killed at `point` once per crash job. */
async function runCrashPoint(point: Point) {
  let worker: ReturnType<typeof spawn> | undefined;
  const kill = () => worker?.kill('SIGKILL');
  const sinkRules: SmtpFaultRule[] =
    point === 'after-rcpt'
      ? [{ stage: 'rcpt', address: '*@crash.test', run: kill, drop: true, times: 3 }]
      : point === 'end-before-reply'
        ? [{ stage: 'end', address: '*@crash.test', run: kill, keep: true, drop: true, times: 3 }]
        : [];
  const h = await startDispatchHarness(aws, {
    sink: { rules: sinkRules },
    settings: { ...DEFAULT_SETTINGS, functionTimeoutSeconds: 10 },
    env: { RETRY_BASE_SECONDS: '1', RETRY_MAX_DELAY_SECONDS: '2' },
  });
  const jobs = Array.from({ length: 12 }, (_, i) =>
    emailJobFactory({
      idempotencyKey: `${point}-${i}`,
      to: [i % 4 === 0 ? `victim${i}@crash.test` : `user${i}@example.net`],
    }),
  );
  await aws.clients.sqsClient.send(
    new SendMessageBatchCommand({
      QueueUrl: h.resources.jobsQueueUrl,
      Entries: jobs.slice(0, 10).map((j, n) => ({ Id: String(n), MessageBody: JSON.stringify(j) })),
    }),
  );
  await aws.clients.sqsClient.send(
    new SendMessageBatchCommand({
      QueueUrl: h.resources.jobsQueueUrl,
      Entries: jobs.slice(10).map((j, n) => ({ Id: String(n), MessageBody: JSON.stringify(j) })),
    }),
  );
  const markerDir = mkdtempSync(join(tmpdir(), 'email-dispatch-crash-'));
  const output: string[] = [];
  let kills = 0;
  for (let run = 0; run < 12; run += 1) {
    // node itself, with tsx as its loader: the worker is our direct child, so a kill reaches it.
    worker = spawn(process.execPath, ['--import', 'tsx', 'test/reliability/crash-worker.ts'], {
      cwd: process.cwd(),
      env: {
        ...process.env,
        CRASH_WORKER: JSON.stringify({
          endpoints: { sqs: aws.fauxqs.endpoint, dynamodb: aws.dynamo.endpoint },
          env: harnessEnv(h),
          queueArn: h.resources.jobsQueueArn,
          credentials: SMTP_USER,
          ca: localTlsCertificate().cert,
          crashPoint: point === 'after-rcpt' || point === 'end-before-reply' ? 'none' : point,
          markerDir,
          // One record per invocation: a kill then interrupts exactly one job, the one at the crash point. (With
          // batches of ten, a kill interrupts every record of its batch, and each may be at the same point.)
          batchSize: 1,
        }),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const child = worker;
    child.stdout?.on('data', (chunk: Buffer) => output.push(chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => output.push(chunk.toString()));
    const signal = await new Promise<NodeJS.Signals | null>((resolve) =>
      child.on('exit', (_code, sig) => resolve(sig)),
    );
    if (signal === 'SIGKILL') kills += 1;
    if ((await h.queueDepth()) === 0) break;
    // Let the dead attempt's records come back: the message's visibility and the in-progress expiry.
    await new Promise((resolve) => setTimeout(resolve, signal ? 4500 : 500));
  }
  rmSync(markerDir, { recursive: true, force: true });
  const deadLetters = await h.deadLetters();
  const summary = compareLedgers(
    jobs.map((j) => ({ key: j.idempotencyKey, expect: 'delivered' as const })),
    h.sink.received,
    deadLetters,
    await h.events(),
  );
  const lines = output.join('').split('\n');
  const ambiguous = lines.filter((l) => l.includes('ambiguous attempt')).length;
  await h.stop();
  return { summary, kills, ambiguous, unexplained: unexplainedDuplicates(summary.duplicatedKeys, lines) };
}

function harnessEnv(h: Awaited<ReturnType<typeof startDispatchHarness>>): Record<string, string> {
  return {
    ...toDispatchEnvironment(h.resources),
    DEFAULT_FROM: 'noreply@example.com',
    SMTP_HOST: h.sink.host,
    SMTP_PORT: String(h.sink.port),
    SMTP_SECURITY: 'starttls',
    RETRY_BASE_SECONDS: '1',
    RETRY_MAX_DELAY_SECONDS: '2',
    // The worker's "Lambda timeout" is 3 s: commit no send in its last second (rather than the default 5 s), and
    // keep its last 0.5 s for the completion and the events.
    DEADLINE_MARGIN_MS: '1000',
    FINISH_RESERVE_MS: '500',
    MIN_ATTEMPT_MS: '200',
  };
}

describe('ledger: handler processes killed at each crash point', () => {
  for (const point of ['before-in-progress', 'after-in-progress', 'after-rcpt'] as const) {
    it(`loses nothing and repeats nothing when killed ${point}`, async () => {
      const { summary, kills, ambiguous } = await runCrashPoint(point);
      printSummary(`crash-${point}`, summary, `${kills} kills, ${ambiguous} logged ambiguous`);
      expect(kills).toBe(3);
      expect(summary).toMatchObject({ jobs: 12, delivered: 12, lost: 0, duplicated: 0, eventsMissing: 0, inDlq: 0 });
    }, 150_000);
  }
  for (const point of ['end-before-reply', 'after-reply'] as const) {
    it(`loses nothing when killed ${point}; repeats at most once per kill, each logged as ambiguous`, async () => {
      const { summary, kills, ambiguous, unexplained } = await runCrashPoint(point);
      printSummary(`crash-${point}`, summary, `${kills} kills, ${ambiguous} logged ambiguous`);
      expect(kills).toBe(3);
      expect(summary).toMatchObject({ jobs: 12, delivered: 12, lost: 0, eventsMissing: 0, inDlq: 0 });
      expect(summary.duplicated).toBeLessThanOrEqual(kills);
      expect(ambiguous).toBeGreaterThanOrEqual(summary.duplicated);
      expect(unexplained).toEqual([]);
    }, 150_000);
  }
});
