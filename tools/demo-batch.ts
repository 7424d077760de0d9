import { randomUUID } from 'node:crypto';
import { DeleteMessageBatchCommand, ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { createEmailProducer } from '#producer/index.js';
import type { Target } from './target.js';

/** A job's reference to templates/order-receipt. */
const RECEIPT = (data: Record<string, unknown>) => ({ name: 'order-receipt', data });

/** An event as the demo reads it from the twin's events tap. */
export type DemoEvent = {
  type: string;
  idempotencyKey?: string;
  reason?: string;
  detail?: string;
  attempts?: number;
  classification?: { kind?: string; recipients?: Array<{ recipient: string }> };
};

export type DemoResult = {
  run: string;
  /** The idempotency key of each case. */
  keys: {
    good: string;
    bounce: string;
    reject: string;
    throttled: string;
    invalid: string;
    afterBounce: string;
    receipt: string;
    badReceipt: string;
  };
  bouncedAddress: string;
  /** The last outcome event of each key. */
  outcomes: Map<string, DemoEvent>;
  /** bounce.detected events for the bounced address. */
  bounces: DemoEvent[];
  /** Whether the job after the bounce was sent (it is, once the bounce is seen). */
  afterBounceSent: boolean;
  /** One line per case, for people. */
  lines: string[];
};

/**
 * The demo's mixed batch, end to end through the twin: good mail, a bounce that comes back as a DSN and suppresses
 * its address (then a job to it, which must not go out), a synchronous rejection, a throttled send that is retried,
 * a duplicate of the good one, and an invalid job. Waits for every outcome, or `timeoutSeconds`.
 */
export async function runDemoBatch(
  target: Pick<Target, 'sqs' | 's3' | 'queueUrl' | 'bucket' | 'eventsTapQueueUrl'>,
  options: { timeoutSeconds: number; onQueued?: (count: number, run: string) => void },
): Promise<DemoResult> {
  const producer = createEmailProducer({
    sqs: target.sqs,
    s3: target.s3,
    queueUrl: target.queueUrl,
    bucket: target.bucket,
  });
  const run = randomUUID().slice(0, 8);
  const key = (name: string) => `demo-${run}-${name}`;
  const job = (name: string, to: string) => ({
    version: 1 as const,
    idempotencyKey: key(name),
    to: [to],
    subject: `Demo: ${name}`,
    text: `The ${name} case of the demo.`,
  });
  const bouncedAddress = `gone-${run}@bounce.test`;
  const keys = {
    good: key('good'),
    bounce: key('bounce'),
    reject: key('reject'),
    throttled: key('throttled'),
    invalid: key('invalid'),
    afterBounce: key('after-bounce'),
    receipt: key('receipt'),
    badReceipt: key('bad-receipt'),
  };
  // An order receipt rendered by the dispatcher from templates/order-receipt, in the shared layout.
  const receiptData = {
    brand: { name: 'Demo Shöp', address: '1 Market Street, Springfield' },
    customer: { name: 'Alice' },
    order: {
      number: `D-${run}`,
      items: [{ title: 'Green tea', quantity: 2, price: '3.50' }],
      total: 7,
      currency: 'EUR',
      url: `https://shop.example.com/orders/D-${run}`,
    },
  };

  const batch = [
    job('good', 'alice@example.net'),
    job('bounce', bouncedAddress),
    job('reject', 'nobody@reject.test'),
    job('throttled', 'busy@throttled.test'),
    job('good', 'alice@example.net'),
    { version: 1 as const, idempotencyKey: keys.receipt, to: ['alice@example.net'], template: RECEIPT(receiptData) },
  ];
  const sent = await producer.sendEmails(batch);
  // Past the producer's checks: template data that breaks the template's schema (a total as a string).
  const badData = { ...receiptData, order: { ...receiptData.order, total: '7.00' } };
  await target.sqs.send(
    new SendMessageCommand({
      QueueUrl: target.queueUrl,
      MessageBody: JSON.stringify({
        version: 1,
        idempotencyKey: keys.badReceipt,
        to: ['x@example.net'],
        template: RECEIPT(badData),
      }),
    }),
  );
  // Past the producer's checks, as a producer in another language might send it: CR LF in the subject.
  await target.sqs.send(
    new SendMessageCommand({
      QueueUrl: target.queueUrl,
      MessageBody: JSON.stringify({
        version: 1,
        idempotencyKey: keys.invalid,
        to: ['x@example.net'],
        subject: 'Hi\r\nBcc: victim@example.net',
        text: 'x',
      }),
    }),
  );
  options.onQueued?.(sent.sent.length + 2, run);

  const outcomes = new Map<string, DemoEvent>();
  const bounces: DemoEvent[] = [];
  const want = new Set([
    keys.good,
    keys.bounce,
    keys.reject,
    keys.throttled,
    keys.invalid,
    keys.receipt,
    keys.badReceipt,
  ]);
  let afterBounceSent = false;
  const deadline = Date.now() + options.timeoutSeconds * 1000;
  while (Date.now() < deadline && target.eventsTapQueueUrl) {
    const r = await target.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: target.eventsTapQueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }),
    );
    for (const m of r.Messages ?? []) {
      const event = JSON.parse(m.Body ?? '{}') as DemoEvent;
      if (event.idempotencyKey && want.has(event.idempotencyKey)) outcomes.set(event.idempotencyKey, event);
      if (
        event.type === 'bounce.detected' &&
        event.classification?.recipients?.some((x) => x.recipient === bouncedAddress)
      ) {
        bounces.push(event);
        if (!afterBounceSent) {
          // The bounced address is suppressed now: the next job to it must not go out.
          afterBounceSent = true;
          want.add(keys.afterBounce);
          await producer.sendEmail(job('after-bounce', bouncedAddress));
        }
      }
    }
    if (r.Messages?.length)
      await target.sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: target.eventsTapQueueUrl,
          Entries: r.Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })),
        }),
      );
    if ([...want].every((k) => outcomes.has(k)) && bounces.length > 0) break;
  }

  const describe = (o: DemoEvent | undefined) =>
    o
      ? o.type.replace('email.', '') +
        (o.reason && o.reason !== 'accepted' ? ` (${[o.reason, o.detail].filter(Boolean).join(': ')})` : '') +
        (o.attempts && o.attempts > 1 ? ` after ${o.attempts} attempts` : '')
      : 'no outcome yet';
  const line = (name: string, text: string) => `${name.padEnd(13)} ${text}`;
  const lines = [
    line('good', describe(outcomes.get(keys.good))),
    line('bounce', describe(outcomes.get(keys.bounce))),
    line('reject', describe(outcomes.get(keys.reject))),
    line('throttled', describe(outcomes.get(keys.throttled))),
    line('duplicate', outcomes.has(keys.good) ? 'one outcome for both copies of "good" (sent once)' : 'no outcome yet'),
    line(
      'invalid',
      `${describe(outcomes.get(keys.invalid))}; the job waits in the DLQ with its reason ` +
        '(npm run redrive -- --dry-run)',
    ),
    line('receipt', `${describe(outcomes.get(keys.receipt))} (rendered from templates/order-receipt)`),
    line('bad receipt', describe(outcomes.get(keys.badReceipt))),
    line('bounce DSN', bounces.length > 0 ? 'bounce.detected by the poller; address suppressed' : 'no DSN seen yet'),
    line('after bounce', afterBounceSent ? describe(outcomes.get(keys.afterBounce)) : 'not sent (no bounce seen)'),
  ];
  return { run, keys, bouncedAddress, outcomes, bounces, afterBounceSent, lines };
}
