import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { describe, expect, it } from 'vitest';
import { toIdempotencyRecordId } from '#aws/idempotency-store.js';
import { TableKeys } from '#aws/table-keys.js';
import { createLambdaContext } from '#local/lambda-context.js';
import { emailJobFactory } from '../support/factories.js';
import { type DispatchHarness, useAwsEmulators } from '../support/dispatch-harness.js';

const env = useAwsEmulators();
let h: DispatchHarness;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('an attempt past its budget', () => {
  it('waits for a relay that answers the final dot late: delivered once, its event published, a redelivery a duplicate', async () => {
    // Prepare: 2 s before the deadline margin begins; the relay answers '.' after 2.5 s
    h = await env.harness({ env: { DEADLINE_MARGIN_MS: '3000' } });
    h.sink.addRule({ stage: 'end', delayMs: 2500, times: 1 });
    const job = emailJobFactory();

    // Act
    const first = await h.handler({ Records: [h.sqsRecord(job, 'late-1')] }, createLambdaContext('send-email', 5000));
    const atAnswer = { sent: h.sink.received.length, events: (await h.events()).map((e) => e.type) };
    await sleep(1500);
    const second = await h.handler(
      { Records: [h.sqsRecord(job, 'late-1', 2)] },
      createLambdaContext('send-email', 5000),
    );

    // Assess: sent and published before the first answer; the message back (as SQS may deliver it again) is only a
    // duplicate: nothing sent, its event published once more, under the job's key (at least once)
    expect(atAnswer).toEqual({ sent: 1, events: ['email.delivered'] });
    expect((await h.events()).map((e) => [e.type, e.idempotencyKey])).toEqual([
      ['email.delivered', job.idempotencyKey],
    ]);
    expect(h.sink.received).toHaveLength(1);
    expect(first.batchItemFailures).toEqual([]);
    expect(second.batchItemFailures).toEqual([]);
    expect(h.output.metric('Duplicates')).toBe(1);
  });

  it('never deletes the completed record of an attempt that took over, so the job is not sent a second time', async () => {
    // Prepare: the first attempt's relay answers '.' with a 451 only after 4 s, long past the attempt's deadline
    h = await env.harness({
      env: {
        DEADLINE_MARGIN_MS: '1000',
        FINISH_RESERVE_MS: '500',
        MIN_ATTEMPT_MS: '200',
        RETRY_BASE_SECONDS: '1',
        RETRY_MAX_DELAY_SECONDS: '1',
      },
    });
    h.sink.addRule({
      stage: 'end',
      delayMs: 4000,
      reply: { code: 451, message: '4.3.0 Temporary local problem' },
      times: 1,
    });
    const job = emailJobFactory();

    // Act: the first attempt gives the answer up (ambiguous) before its invocation answers; a redelivery sends and
    // completes the job while the late 451 is still on its way; then a third delivery
    // (3 s: the '.' goes out within the first 2 s, however loaded the machine; its answer is given up at 2.5 s.)
    await h.handler({ Records: [h.sqsRecord(job, 'fence-1')] }, createLambdaContext('send-email', 3000));
    const givenUp = h.output.metric('AmbiguousAttempts');
    await h.handler({ Records: [h.sqsRecord(job, 'fence-1', 2)] }, createLambdaContext('send-email', 10_000));
    await sleep(3000);
    await h.handler({ Records: [h.sqsRecord(job, 'fence-1', 3)] }, createLambdaContext('send-email', 10_000));

    // Assess
    const item = await env.aws.clients.dynamodb.send(
      new GetItemCommand({
        TableName: h.resources.idempotencyTable,
        Key: { [TableKeys.idempotency.partitionKey]: { S: toIdempotencyRecordId('email-job', job.idempotencyKey) } },
        ConsistentRead: true,
      }),
    );
    expect(givenUp).toBe(1);
    expect(item.Item?.status?.S).toBe('COMPLETED');
    expect(h.sink.received).toHaveLength(1);
    // The completing attempt's event, and the third delivery's (the same message back: at least once)
    expect((await h.events()).map((e) => [e.type, e.idempotencyKey])).toEqual([
      ['email.delivered', job.idempotencyKey],
      ['email.delivered', job.idempotencyKey],
    ]);
  });
});
