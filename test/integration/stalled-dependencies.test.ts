import { createServer, type Server, type Socket } from 'node:net';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { SQSBatchResponse } from 'aws-lambda';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { boundedClientConfig, createAwsClients, withCallDeadline } from '#aws/clients.js';
import { createSecretsManagerCredentials } from '#aws/secrets-credentials.js';
import { toMailCredentials } from '#core/credential-source.js';
import { toIdempotencyRecordId } from '#aws/idempotency-store.js';
import { createReputationStore } from '#aws/reputation-store.js';
import { TableKeys } from '#aws/table-keys.js';
import type { EmailJob } from '#core/email-job.js';
import { DEFAULT_REPUTATION_POLICY, type ReputationStore } from '#core/reputation.js';
import { startSesLocal, type Emulator } from '#local/emulators.js';
import { createLambdaContext } from '#local/lambda-context.js';
import { emailJobFactory } from '../support/factories.js';
import { type DispatchHarness, useAwsEmulators } from '../support/dispatch-harness.js';
import { storeObject } from '../support/stored-objects.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';

const env = useAwsEmulators();
let h: DispatchHarness;
let proxy: TcpProxy | undefined;

afterEach(async () => {
  await proxy?.stop();
  proxy = undefined;
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A 6 s invocation: commit nothing after 3 s, wait for committed answers until 4.5 s. */
const INVOCATION_MS = 6000;
const BUDGET_ENV = {
  DEADLINE_MARGIN_MS: '3000',
  FINISH_RESERVE_MS: '1500',
  MIN_ATTEMPT_MS: '500',
  RETRY_BASE_SECONDS: '1',
  RETRY_MAX_DELAY_SECONDS: '1',
};

/** The job's idempotency record as the table holds it (read past any proxy). */
async function recordStatus(harness: DispatchHarness, job: EmailJob): Promise<string | undefined> {
  const key = { [TableKeys.idempotency.partitionKey]: { S: toIdempotencyRecordId('email-job', job.idempotencyKey) } };
  const result = await env.aws.clients.dynamodb.send(
    new GetItemCommand({ TableName: harness.resources.idempotencyTable, Key: key, ConsistentRead: true }),
  );
  return result.Item?.status?.S;
}

/**
 * Runs one invocation, then watches for a while after its answer: what the sink, the tables and the events hold
 * must not change once the handler has answered.
 */
async function invokeAndWatch(
  harness: DispatchHarness,
  records: ReturnType<DispatchHarness['sqsRecord']>[],
  job?: EmailJob,
  count: () => number | Promise<number> = () => harness.sink.received.length,
) {
  const started = Date.now();
  const response = (await harness.handler(
    { Records: records },
    createLambdaContext('send-email', INVOCATION_MS),
  )) as SQSBatchResponse;
  const elapsedMs = Date.now() - started;
  const atAnswer = { sent: await count(), status: job && (await recordStatus(harness, job)) };
  await sleep(3000);
  const afterPause = { sent: await count(), status: job && (await recordStatus(harness, job)) };
  return { response, elapsedMs, atAnswer, afterPause, failed: response.batchItemFailures.map((f) => f.itemIdentifier) };
}

describe('a stalled SMTP relay', () => {
  it('that accepts and never answers: the attempt is aborted at its commit deadline, nothing is sent, the record handed back', async () => {
    // Prepare
    h = await env.harness({
      env: BUDGET_ENV,
      smtpThrough: async (sink) => (proxy = await startTcpProxy(sink)),
    });
    proxy?.stall({ ms: Infinity });
    const job = emailJobFactory();

    // Act
    const run = await invokeAndWatch(h, [h.sqsRecord(job, 'smtp-1')], job);

    // Assess
    expect(run.failed).toEqual(['smtp-1']);
    expect(run.elapsedMs).toBeLessThan(INVOCATION_MS);
    expect(run.afterPause).toEqual({ sent: 0, status: undefined });
    expect(h.output.metric('HandedBack')).toBe(1);
  });

  it('that stalls its answer to DATA: aborted before the final dot, so nothing is sent even when it answers later', async () => {
    // Prepare: the relay answers DATA (354) only after 6 s
    h = await env.harness({ env: BUDGET_ENV });
    h.sink.addRule({ stage: 'data', delayMs: 6000, times: 1 });
    const job = emailJobFactory();

    // Act
    const run = await invokeAndWatch(h, [h.sqsRecord(job, 'smtp-2')], job);
    await sleep(3500);

    // Assess
    expect(run.failed).toEqual(['smtp-2']);
    expect(run.elapsedMs).toBeLessThan(INVOCATION_MS);
    expect(run.afterPause.status).toBeUndefined();
    expect(h.sink.received).toHaveLength(0);
  });
});

describe('a stalled DynamoDB', () => {
  it('gives up the claim at the commit deadline and hands the record back; nothing is sent', async () => {
    // Prepare
    proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(env.aws.dynamo.endpoint).port) });
    h = await env.harness({ env: BUDGET_ENV, endpoints: { dynamodb: proxy.endpoint } });
    proxy.stall({ ms: Infinity });
    const job = emailJobFactory();

    // Act
    const run = await invokeAndWatch(h, [h.sqsRecord(job, 'ddb-1')], job);

    // Assess
    expect(run.failed).toEqual(['ddb-1']);
    expect(run.elapsedMs).toBeLessThan(INVOCATION_MS);
    expect(run.afterPause).toEqual({ sent: 0, status: undefined });
    expect(h.output.metric('HandedBack')).toBe(1);
  });
});

describe('a stalled tenant table', () => {
  it("holds up no tenant's mail: the job is sent and its outcome published within the invocation", async () => {
    // Prepare: the guardrail's table alone behind the proxy; the job queue, idempotency and the rest answer.
    proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(env.aws.dynamo.endpoint).port) });
    const stalled = createAwsClients({
      region: 'eu-west-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
      endpoints: { dynamodb: proxy.endpoint },
    });
    let store: ReputationStore | undefined;
    const through = (): ReputationStore => store as ReputationStore;
    h = await env.harness({
      env: BUDGET_ENV,
      adjust: (deps) => {
        if (!deps.reputation) throw new Error('the harness should configure the guardrail (TENANT_STATE_TABLE)');
        deps.reputation.store = {
          markReports: (tenant, ids) => through().markReports(tenant, ids),
          add: (tenant, bucket, counts) => through().add(tenant, bucket, counts),
          read: (tenant, buckets) => through().read(tenant, buckets),
          standing: (tenant) => through().standing(tenant),
          pause: (pause) => through().pause(pause),
          resume: (tenant, by, at) => through().resume(tenant, by, at),
        };
      },
    });
    store = createReputationStore(stalled.documents, h.resources.tenantStateTable, DEFAULT_REPUTATION_POLICY);
    proxy.stall({ ms: Infinity });
    const job = emailJobFactory();

    // Act
    const run = await invokeAndWatch(h, [h.sqsRecord(job, 'tenant-1')], job);

    // Assess: the standing and the count are given up, the mail is not.
    expect(run.failed).toEqual([]);
    expect(run.atAnswer).toEqual({ sent: 1, status: 'COMPLETED' });
    expect((await h.events()).map((e) => e.type)).toEqual(['email.delivered']);
    expect(run.elapsedMs).toBeLessThan(INVOCATION_MS);
  });
});

describe('a stalled SNS', () => {
  it('keeps the outcome on its record and hands the message back; the replay publishes it once SNS answers', async () => {
    // Prepare
    proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(env.aws.fauxqs.endpoint).port) });
    h = await env.harness({ env: BUDGET_ENV, endpoints: { sns: proxy.endpoint } });
    proxy.stall({ ms: Infinity });
    const job = emailJobFactory();

    // Act
    const run = await invokeAndWatch(h, [h.sqsRecord(job, 'sns-1')], job);
    const meanwhile = await h.events();
    proxy.stall(undefined);
    const replay = await h.handler(
      { Records: [h.sqsRecord(job, 'sns-1', 2)] },
      createLambdaContext('send-email', INVOCATION_MS),
    );

    // Assess
    expect(run.failed).toEqual(['sns-1']);
    expect(run.elapsedMs).toBeLessThan(INVOCATION_MS);
    expect(run.afterPause).toEqual({ sent: 1, status: 'COMPLETED' });
    expect(meanwhile).toEqual([]);
    expect(replay.batchItemFailures).toEqual([]);
    expect((await h.events()).map((e) => [e.type, e.idempotencyKey])).toEqual([
      ['email.delivered', job.idempotencyKey],
    ]);
    expect(h.sink.received).toHaveLength(1);
  });
});

describe('a stalled S3', () => {
  it('aborts the attempt waiting for its attachment and hands the record back; nothing is sent', async () => {
    // Prepare
    proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(env.aws.fauxqs.endpoint).port) });
    h = await env.harness({ env: BUDGET_ENV, endpoints: { s3: proxy.endpoint } });
    const s3 = await env.aws.clients.s3();
    const report = await storeObject(s3, h.resources.bucket, 'report.pdf', Buffer.alloc(2048, 1));
    proxy.stall({ ms: Infinity });
    const job = emailJobFactory({ attachments: [{ filename: 'report.pdf', s3: report }] });

    // Act
    const run = await invokeAndWatch(h, [h.sqsRecord(job, 's3-1')], job);

    // Assess
    expect(run.failed).toEqual(['s3-1']);
    expect(run.elapsedMs).toBeLessThan(INVOCATION_MS);
    expect(run.afterPause).toEqual({ sent: 0, status: undefined });
    expect(h.output.metric('HandedBack')).toBe(1);
  });
});

describe('a stalled SQS', () => {
  it('answers within the invocation when neither the postponement nor the dead-letter queue answers', async () => {
    // Prepare: one job the relay defers (451), one invalid job bound for the dead-letter queue
    proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(env.aws.fauxqs.endpoint).port) });
    h = await env.harness({ env: BUDGET_ENV, endpoints: { sqs: proxy.endpoint } });
    h.sink.addRule({ stage: 'end', reply: { code: 451, message: '4.3.0 Try later' }, times: 1 });
    proxy.stall({ ms: Infinity });
    const job = emailJobFactory();

    // Act
    const run = await invokeAndWatch(
      h,
      [h.sqsRecord(job, 'sqs-1'), h.sqsRecord({ version: 1, idempotencyKey: 'bad-1' }, 'sqs-2')],
      job,
    );

    // Assess
    expect(run.failed.sort()).toEqual(['sqs-1', 'sqs-2']);
    expect(run.elapsedMs).toBeLessThan(INVOCATION_MS);
    expect(run.afterPause).toEqual({ sent: 0, status: undefined });
    expect(await h.deadLetters()).toEqual([]);
  });
});

describe('a stalled SES endpoint', () => {
  let ses: Emulator;
  beforeAll(async () => {
    ses = await startSesLocal();
  });
  afterAll(async () => {
    await ses.stop();
  });

  it('gives the answer up at the finish deadline as an ambiguous attempt; nothing happens after the handler answers', async () => {
    // Prepare
    proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(ses.endpoint).port) });
    h = await env.harness({
      // A set rate: the account's quota (GetAccount) would be read through the stalled endpoint first.
      env: { ...BUDGET_ENV, TRANSPORTS: 'ses', DEFAULT_TRANSPORT: 'ses', SES_MAX_SEND_RATE: '14' },
      endpoints: { ses: proxy.endpoint },
    });
    proxy.stall({ ms: Infinity });
    const job = emailJobFactory();
    const stored = async () =>
      ((await (await fetch(`${ses.endpoint}/store`)).json()) as { emails: Array<{ subject: string }> }).emails.filter(
        (e) => e.subject === job.subject,
      ).length;
    const before = await stored();

    // Act
    const run = await invokeAndWatch(h, [h.sqsRecord(job, 'ses-1')], job, async () => (await stored()) - before);

    // Assess
    expect(run.failed).toEqual(['ses-1']);
    expect(run.elapsedMs).toBeLessThan(INVOCATION_MS);
    expect(run.afterPause).toEqual(run.atAnswer);
    expect(run.afterPause.status).toBeUndefined();
    expect(h.output.metric('AmbiguousAttempts')).toBe(1);
  });
});

describe('a stalled Secrets Manager', () => {
  let silent: Server;
  let client: SecretsManagerClient;
  let secret: ReturnType<typeof createSecretsManagerCredentials>;
  const accepted = new Set<Socket>();
  beforeAll(async () => {
    // An endpoint that accepts connections and never answers.
    silent = createServer((socket) => accepted.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as { port: number };
    client = new SecretsManagerClient({
      ...boundedClientConfig(),
      region: 'eu-west-1',
      endpoint: `http://127.0.0.1:${port}`,
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    secret = createSecretsManagerCredentials('relay', toMailCredentials, { maxAgeSeconds: 60, client });
  });
  afterAll(async () => {
    client.destroy();
    for (const socket of accepted) socket.destroy();
    await new Promise((resolve) => silent.close(resolve));
  });

  it('fails a secret read at its own limits rather than holding its caller', async () => {
    // Act
    const started = Date.now();
    const error = await secret.get({ refresh: true }).catch((e: unknown) => e);

    // Assess: two tries of 1 s to connect and 3 s to answer (generous: a loaded machine)
    expect(error).toBeInstanceOf(Error);
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it("inside an attempt, ends a secret read at the attempt's deadline", async () => {
    // Act
    const error = await withCallDeadline(AbortSignal.timeout(300), () => secret.get({ refresh: true })).catch(
      (e: unknown) => e,
    );

    // Assess: aborted by the deadline, not timed out
    const chain = [error, (error as Error).cause].map((e) => `${(e as Error)?.name}: ${(e as Error)?.message}`);
    expect(chain.join(' / ')).toMatch(/abort/i);
  });
});
