/**
 * A dispatch "Lambda instance" in a process of its own, for the crash-point ledger: it runs the real handler over
 * the jobs queue until the queue is empty, and kills itself (SIGKILL, no cleanup) at the configured point the first
 * time it handles a job whose recipient is at crash.test. Kills at RCPT and at end of data come from the SMTP sink.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Logger } from '@aws-lambda-powertools/logger';
import { GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { createEmulatorClients } from '#local/emulators.js';
import { loadDispatchConfig } from '#functions/config.js';
import { buildSendEmailDeps } from '#handlers/build-send-email-deps.js';
import { createSendEmailHandler } from '#handlers/send-email-handler.js';
import { deliverOneBatch } from '#local/event-source.js';
import type { MailTransport } from '#core/mail-transport.js';

type WorkerConfig = {
  endpoints: { sqs: string; dynamodb: string };
  env: Record<string, string>;
  queueArn: string;
  credentials: { username: string; password: string };
  ca: string;
  crashPoint: 'before-in-progress' | 'after-in-progress' | 'after-reply' | 'none';
  markerDir: string;
  batchSize: number;
};

const config = JSON.parse(process.env.CRASH_WORKER ?? '{}') as WorkerConfig;
const die = (key: string) => {
  const marker = join(config.markerDir, key.replace(/[^A-Za-z0-9_-]/g, '_'));
  if (existsSync(marker)) return;
  writeFileSync(marker, String(process.pid));
  process.kill(process.pid, 'SIGKILL');
};
const crashes = (payload: unknown) => {
  const job = payload as { idempotencyKey?: string; to?: unknown[] };
  return JSON.stringify(job.to ?? []).includes('@crash.test') ? job.idempotencyKey : undefined;
};

const clients = createEmulatorClients({ fauxqs: config.endpoints.sqs, dynamodb: config.endpoints.dynamodb });
const dispatchConfig = loadDispatchConfig(config.env);
const logger = new Logger({ serviceName: 'email-dispatch' });
const deps = await buildSendEmailDeps(
  dispatchConfig,
  clients,
  { logger, metrics: new Metrics({ namespace: 'EmailDispatch', serviceName: 'email-dispatch', logger }) },
  {
    smtpCredentials: { get: async () => config.credentials },
    smtpTls: { ca: config.ca },
  },
);

const store = deps.persistenceStore;
const saveInProgress = store.saveInProgress.bind(store);
store.saveInProgress = async (data, remaining) => {
  const key = crashes(data);
  if (key && config.crashPoint === 'before-in-progress') die(key);
  await saveInProgress(data, remaining);
  if (key && config.crashPoint === 'after-in-progress') die(key);
};
const smtp = deps.dispatch.transports.smtp as MailTransport;
deps.dispatch.transports.smtp = {
  ...smtp,
  name: 'smtp',
  async send(message) {
    const receipt = await smtp.send(message);
    // The reply is in; the completion record is not yet written.
    const key = JSON.stringify(message.to).includes('@crash.test') ? message.headers['X-Dispatch-Id'] : undefined;
    if (key && config.crashPoint === 'after-reply') die(key);
    return receipt;
  },
};

const handler = createSendEmailHandler(deps);
const queueDepth = async () => {
  const r = await clients.sqsClient.send(
    new GetQueueAttributesCommand({
      QueueUrl: dispatchConfig.jobsQueueUrl,
      AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
    }),
  );
  return (
    Number(r.Attributes?.ApproximateNumberOfMessages ?? 0) +
    Number(r.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0)
  );
};
for (const until = Date.now() + 60_000; Date.now() < until; ) {
  const result = await deliverOneBatch({
    sqs: clients.sqsClient,
    queueUrl: dispatchConfig.jobsQueueUrl,
    queueArn: config.queueArn,
    handler,
    functionName: 'send-email',
    batchSize: config.batchSize,
    maxBatchingWindowSeconds: 0,
    visibilityTimeoutSeconds: 4,
    // A short "Lambda timeout": a dead attempt's in-progress record expires within it.
    functionTimeoutSeconds: 3,
    waitTimeSeconds: 1,
  });
  if (result.received === 0 && (await queueDepth()) === 0) break;
}
await smtp.close();
process.exit(0);
