import {
  CreateQueueCommand,
  DeleteMessageCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
} from '@aws-sdk/client-sqs';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import type { SQSRecord } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createJobStatusStore } from '#aws/job-status-store.js';
import { createJobRequeue } from '#aws/sqs-job-requeue.js';
import { TableKeys } from '#aws/table-keys.js';
import { createTable } from '#local/resources.js';
import { createJobHold } from '#handlers/job-hold.js';
import { createScheduleStep } from '#handlers/job-schedule.js';
import { lifetimeStartOf } from '#handlers/route-job.js';
import {
  createEmulatorClients,
  startDynalite,
  startFauxqs,
  type Emulator,
  type EmulatorClients,
} from '#local/emulators.js';
import { toSqsRecord } from '#local/event-source.js';
import { emailJobFactory } from '../support/factories.js';

let fauxqs: Emulator;
let dynamo: Emulator;
let clients: EmulatorClients;
let queueUrl: string;
const TABLE = 'job-status';
/** Requests per command, counted on both clients. */
const requests = new Map<string, number>();

beforeAll(async () => {
  [fauxqs, dynamo] = await Promise.all([startFauxqs(), startDynalite()]);
  clients = createEmulatorClients({ fauxqs: fauxqs.endpoint, dynamodb: dynamo.endpoint });
  const { partitionKey, ttlAttribute } = TableKeys.jobStatus;
  await createTable(clients, TABLE, partitionKey, ttlAttribute);

  queueUrl = (await clients.sqsClient.send(new CreateQueueCommand({ QueueName: 'jobs' }))).QueueUrl ?? '';
  const count = (commandName = '?') => requests.set(commandName, (requests.get(commandName) ?? 0) + 1);
  clients.sqsClient.middlewareStack.add(
    (next, context) => (args) => {
      count(context.commandName);
      return next(args);
    },
    { step: 'initialize', name: 'countRequests' },
  );
  clients.dynamodb.middlewareStack.add(
    (next, context) => (args) => {
      count(context.commandName);
      return next(args);
    },
    { step: 'initialize', name: 'countRequests' },
  );
});
afterAll(async () => {
  await Promise.all([fauxqs?.stop(), dynamo?.stop()]);
});

const logger = new Logger({ serviceName: 'email-dispatch', logLevel: 'ERROR' });
const metrics = new Metrics({ namespace: 'EmailDispatch', serviceName: 'email-dispatch', logger });

/** Receives the queue's next message as the event source would deliver it. */
async function receive(): Promise<SQSRecord | undefined> {
  const { Messages } = await clients.sqsClient.send(
    new ReceiveMessageCommand({
      QueueUrl: queueUrl,
      WaitTimeSeconds: 2,
      MaxNumberOfMessages: 1,
      MessageSystemAttributeNames: ['All'],
      MessageAttributeNames: ['All'],
    }),
  );
  const message = Messages?.[0];
  return message && toSqsRecord(message, 'arn:aws:sqs:eu-west-1:000000000000:jobs');
}

describe('the hold of a scheduled job', () => {
  it('waits in hops of new messages, so the send sees its first receive and a lifetime starting at its time', async () => {
    // Prepare: due in 4 s, hops of at most 1 s (900 s in production).
    const status = createJobStatusStore(clients.dynamodb, TABLE, { ttlSeconds: 3600 });
    const hold = createJobHold({ requeue: createJobRequeue(clients.sqs, queueUrl), maxHopSeconds: 1 });
    const step = createScheduleStep({ status, hold }, { logger, metrics }, Date.now);
    const job = emailJobFactory({ sendAt: new Date(Date.now() + 4000).toISOString() });
    const dueMs = Date.parse(job.sendAt as string);
    await clients.sqsClient.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(job) }));
    requests.clear();

    // Act: the event source's loop, bounded.
    let hops = 0;
    let due: SQSRecord | undefined;
    const seen: string[] = [];
    for (let i = 0; i < 40 && !due; i += 1) {
      const record = await receive();
      if (!record) continue;
      seen.push(record.attributes.ApproximateReceiveCount);
      const outcome = await step.step(record, job, 'shop', { finishBy: Date.now() + 50_000 }, []);
      if (outcome === 'proceed') due = record;
      else {
        hops += 1;
        await clients.sqsClient.send(
          new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: record.receiptHandle }),
        );
      }
    }
    const claimedAtMs = Date.now();
    const counted = new Map(requests);

    // Assess
    expect(due).toBeDefined();
    const record = due as SQSRecord;
    expect(claimedAtMs).toBeGreaterThanOrEqual(dueMs);
    expect(hops).toBeGreaterThanOrEqual(3);
    // Every message was received once: no receive counted toward maxReceiveCount, none toward the retention.
    expect(seen.every((count) => count === '1')).toBe(true);
    expect(record.attributes.ApproximateReceiveCount).toBe('1');
    // The retry lifetime starts when the job is due, not when it was produced.
    expect(lifetimeStartOf(record, Date.now())).toBeGreaterThanOrEqual(dueMs - 1000);
    expect((await status.read({ tenant: 'shop', idempotencyKey: job.idempotencyKey }))?.state).toBe('sending');
    // Each hop keeps the tenant the dispatcher resolved: its attribute, and its message group for fair dequeue.
    expect(record.messageAttributes.tenant?.stringValue).toBe('shop');
    expect(record.attributes.MessageGroupId).toBe('shop');
    // What a hop costs: one SendMessage and one eventually consistent GetItem (plus the event source's receive and
    // delete, which Lambda batches by ten); the scheduled mark is written once and the claim once.
    const perHop = (command: string) => (counted.get(command) ?? 0) / hops;
    console.log(
      `hold: ${hops} hops; per hop SendMessage ${perHop('SendMessageCommand')}, GetItem ${perHop('GetItemCommand')}, ` +
        `receive ${perHop('ReceiveMessageCommand').toFixed(2)}, delete ${perHop('DeleteMessageCommand')}; ` +
        `UpdateItem ${counted.get('UpdateItemCommand')} per job`,
    );
    expect(counted.get('SendMessageCommand')).toBe(hops);
    expect(counted.get('GetItemCommand')).toBe(hops);
    expect(counted.get('UpdateItemCommand')).toBe(2);
  });
});
