import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFauxqs, type Emulator } from '#local/emulators.js';
import { LOCAL_CREDENTIALS } from '#local/emulators.js';
import { redriveDeadLetters, type RedriveOptions } from '#tools/redrive-dead-letters.js';
import { createOldestFirstQueues } from '../support/oldest-first-queue.js';

let fauxqs: Emulator;
let sqs: SQSClient;

beforeAll(async () => {
  fauxqs = await startFauxqs();
  const { SQSClient } = await import('@aws-sdk/client-sqs');
  sqs = new SQSClient({ region: 'eu-west-1', credentials: LOCAL_CREDENTIALS, endpoint: fauxqs.endpoint });
});
afterAll(async () => {
  await fauxqs.stop();
});

const attribute = (value: string) => ({ DataType: 'String', StringValue: value });

/** 40 dead letters in arrival order, alternating: 20 given up after retries (to move), 20 invalid (to keep). */
const deadLetters = Array.from({ length: 40 }, (_, i) => ({
  body: JSON.stringify({ n: i }),
  attributes:
    i % 2 === 0
      ? { failureClass: attribute('exhausted'), failureReason: attribute('retry:smtp-451') }
      : { failureClass: attribute('invalid'), failureReason: attribute('invalid-json') },
}));

/**
 * Two runs as an operator would make them: the first interrupted after 8 moves, the second to the end. Holds of one
 * second at 15 messages a second: held messages reappear while the run goes on.
 */
async function redriveTwice(client: RedriveOptions['sqs'], deadLetterQueueUrl: string, sourceQueueUrl: string) {
  const stop = new AbortController();
  const options = {
    sqs: client,
    deadLetterQueueUrl,
    sourceQueueUrl,
    only: 'transient' as const,
    ratePerSecond: 15,
    holdSeconds: 1,
  };
  const first = await redriveDeadLetters({ ...options, signal: stop.signal, onMove: (n) => n === 8 && stop.abort() });
  await new Promise((resolve) => setTimeout(resolve, 1200));
  const second = await redriveDeadLetters(options);
  return { first, second };
}

describe('redriving the dead-letter queue', () => {
  it('against fauxqs, interrupted midway: every selected job moved once, the rest kept, counts exact', async () => {
    // Prepare
    const suffix = `${process.pid}-${Date.now()}`;
    const dlq = (await sqs.send(new CreateQueueCommand({ QueueName: `redrive-dlq-${suffix}` }))).QueueUrl as string;
    const source = (await sqs.send(new CreateQueueCommand({ QueueName: `redrive-src-${suffix}` }))).QueueUrl as string;
    for (let i = 0; i < deadLetters.length; i += 10) {
      await sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: dlq,
          Entries: deadLetters
            .slice(i, i + 10)
            .map((d, n) => ({ Id: String(n), MessageBody: d.body, MessageAttributes: d.attributes })),
        }),
      );
    }

    // Act
    const { first, second } = await redriveTwice(sqs, dlq, source);

    // Assess
    const moved: string[] = [];
    for (let i = 0; i < 20; i += 1) {
      const got = await sqs.send(
        new ReceiveMessageCommand({ QueueUrl: source, MaxNumberOfMessages: 10, VisibilityTimeout: 60 }),
      );
      if (!got.Messages?.length) break;
      moved.push(...got.Messages.map((m) => m.Body ?? ''));
    }
    const left = await sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: dlq,
        AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
      }),
    );
    expect(first).toMatchObject({ moved: 8, interrupted: true, leftBefore: 40, left: 32 });
    expect(second).toMatchObject({ moved: 12, interrupted: false, leftBefore: 32, left: 20 });
    expect(moved.sort()).toEqual(
      deadLetters
        .filter((_, i) => i % 2 === 0)
        .map((d) => d.body)
        .sort(),
    );
    expect(
      Number(left.Attributes?.ApproximateNumberOfMessages) +
        Number(left.Attributes?.ApproximateNumberOfMessagesNotVisible),
    ).toBe(20);
  }, 60_000);

  it('against a queue that returns the oldest messages first, interrupted midway: nothing lost, nothing doubled', async () => {
    // Prepare
    const queues = createOldestFirstQueues();
    for (const d of deadLetters)
      await queues.send(
        new (await import('@aws-sdk/client-sqs')).SendMessageCommand({
          QueueUrl: 'dlq',
          MessageBody: d.body,
          MessageAttributes: d.attributes,
        }),
      );

    // Act
    const { first, second } = await redriveTwice(queues as unknown as RedriveOptions['sqs'], 'dlq', 'source');

    // Assess
    expect(first).toMatchObject({ moved: 8, interrupted: true, left: 32 });
    expect(second).toMatchObject({ moved: 12, inspected: 32, left: 20 });
    expect(second.byReason).toEqual({ 'exhausted: retry:smtp-451': 12, 'invalid: invalid-json': 20 });
    expect(
      queues
        .queue('source')
        .map((m) => m.body)
        .sort(),
    ).toEqual(
      deadLetters
        .filter((_, i) => i % 2 === 0)
        .map((d) => d.body)
        .sort(),
    );
    expect(
      queues
        .queue('dlq')
        .map((m) => m.body)
        .sort(),
    ).toEqual(
      deadLetters
        .filter((_, i) => i % 2 === 1)
        .map((d) => d.body)
        .sort(),
    );
    // Every held message was released with a handle that still worked: all of them visible again.
    expect(queues.queue('dlq').every((m) => m.visibleAt <= Date.now())).toBe(true);
  }, 60_000);
});
