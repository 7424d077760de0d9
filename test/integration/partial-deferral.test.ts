import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { simpleParser } from 'mailparser';
import { describe, expect, it } from 'vitest';
import type { EmailJob } from '#core/email-job.js';
import { createLambdaContext } from '#local/lambda-context.js';
import { FOLLOW_UP_ATTRIBUTE } from '#core/follow-up.js';
import { toReportKeyring, type ReportKeyring } from '#core/message-id.js';
import type { JobRequeue } from '#core/send-router.js';
import { TemplateRejections, type TemplateRenderer } from '#core/template-renderer.js';
import type { SendEmailDeps } from '#handlers/send-email-handler.js';
import type { ReceivedMessage, SmtpFaultRule } from '#local/smtp-sink.js';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { useAwsEmulators } from '../support/dispatch-harness.js';
import { startHttpFaultProxy } from '../support/http-fault-proxy.js';
import { orderReceiptData, templateJobFactory } from '../support/factories.js';

const emulators = useAwsEmulators();

const job = (key: string, to: string[], cc: string[] = []): EmailJob => ({
  version: 1,
  idempotencyKey: key,
  to,
  cc,
  subject: `Order ${key}`,
  text: 'Your order has shipped.',
});

const KEYS = toReportKeyring({ current: 'k1', k1: 'partial-deferral-key-'.repeat(2) }, 'reports');
/** A follow-up attribute as the dispatcher queues it: the value, then `:<key id>.<mac>`. */
const signed = (value: string) => new RegExp(`^${value}:k1\\.[\\w-]{22}$`);

/**
 * A dispatcher whose follow-ups are requeued due at once (the delay the schedule asked for is recorded), against a
 * sink with `rules`, holding the report keys `keys` (none when null).
 */
async function start(
  rules: SmtpFaultRule[],
  {
    deps = {},
    failFirst = false,
    failWhile = () => false,
    env,
    endpoints,
    keys = KEYS,
  }: {
    keys?: ReportKeyring | null;
    endpoints?: { dynamodb: string };
    deps?: Partial<SendEmailDeps>;
    failFirst?: boolean;
    failWhile?: () => boolean;
    env?: Record<string, string>;
  } = {},
) {
  const asked: Array<{ delaySeconds: number; attribute?: string }> = [];
  const harness = await emulators.harness({
    sink: { rules },
    deps,
    env,
    endpoints,
    environment: { reportKeys: keys ? { get: async () => keys } : undefined },
    adjust: (wired) => {
      const real = wired.followUps as JobRequeue;
      wired.followUps = {
        requeue: (body, options) => {
          asked.push({ delaySeconds: options.delaySeconds, attribute: options.attributes?.[FOLLOW_UP_ATTRIBUTE] });
          if ((failFirst && asked.length === 1) || failWhile()) return Promise.reject(new Error('SQS unavailable'));
          return real.requeue(body, { ...options, delaySeconds: 0 });
        },
      };
    },
  });
  return { harness, asked };
}

const HEADERS = ['message-id', 'date', 'from', 'to', 'cc', 'subject', 'x-dispatch-id'];
const headersOf = async (message: ReceivedMessage) => {
  const parsed = await simpleParser(message.raw);
  return Object.fromEntries(HEADERS.map((name) => [name, JSON.stringify(parsed.headers.get(name))]));
};
const outcomes = (events: Array<Record<string, unknown>>) =>
  events
    .filter((e) => ['email.delivered', 'email.rejected', 'email.failed'].includes(String(e.type)))
    .map((e) => ({
      type: e.type,
      key: e.idempotencyKey,
      recipients: (e.recipients as Array<{ recipient: string; status: string }>).map((r) => [r.recipient, r.status]),
    }));

describe('a recipient the relay refuses for now while it takes the others', () => {
  it('gets the same message once, later, to it alone; the accepted one gets one copy', async () => {
    // Prepare
    const greylist = { code: 450, message: '4.2.0 Greylisted, try again later' };
    const { harness, asked } = await start([{ stage: 'rcpt', address: 'grey@example.net', reply: greylist, times: 1 }]);
    await harness.enqueue(job('partial-1', ['ok@example.net'], ['grey@example.net']));

    // Act
    await harness.deliverAll();

    // Assess
    const received = harness.sink.received;
    expect(received.map((m) => m.to)).toEqual([['ok@example.net'], ['grey@example.net']]);
    const [first, second] = await Promise.all(received.map(headersOf));
    expect(second).toEqual(first);
    expect(first?.cc).toContain('grey@example.net');
    expect(asked).toHaveLength(1);
    expect(asked[0]?.delaySeconds).toBeGreaterThanOrEqual(15);
    expect(asked[0]?.attribute).toMatch(signed('1:1:\\d+:'));
    expect(outcomes(await harness.events())).toEqual([
      {
        type: 'email.delivered',
        key: 'partial-1',
        recipients: [
          ['ok@example.net', 'accepted'],
          ['grey@example.net', 'deferred'],
        ],
      },
      { type: 'email.delivered', key: 'partial-1§deferred-1', recipients: [['grey@example.net', 'accepted']] },
    ]);
    expect(await harness.deadLetters()).toEqual([]);
    expect(await harness.queueDepth({ delayed: true })).toBe(0);
  });

  it('refused for good at its follow-up ends rejected; the accepted one stays delivered', async () => {
    // Prepare
    const { harness } = await start([
      { stage: 'rcpt', address: 'grey@example.net', reply: { code: 450, message: '4.2.0 Greylisted' }, times: 1 },
      { stage: 'rcpt', address: 'grey@example.net', reply: { code: 550, message: '5.1.1 No such user' } },
    ]);
    await harness.enqueue(job('partial-2', ['ok@example.net', 'grey@example.net']));

    // Act
    await harness.deliverAll();

    // Assess
    expect(harness.sink.received.map((m) => m.to)).toEqual([['ok@example.net']]);
    expect(outcomes(await harness.events())).toEqual([
      {
        type: 'email.delivered',
        key: 'partial-2',
        recipients: [
          ['ok@example.net', 'accepted'],
          ['grey@example.net', 'deferred'],
        ],
      },
      { type: 'email.rejected', key: 'partial-2§deferred-1', recipients: [['grey@example.net', 'rejected']] },
    ]);
  });

  it('whose follow-up spends the attempts ends failed and dead-lettered with the reason, as a follow-up', async () => {
    // Prepare: the queue allows two receives; the follow-up's first attempt is the job's second.
    const { harness } = await start(
      [{ stage: 'rcpt', address: 'grey@example.net', reply: { code: 451, message: '4.7.1 Try again later' } }],
      { deps: { maxReceiveCount: 2 } },
    );
    await harness.enqueue(job('partial-3', ['ok@example.net', 'grey@example.net']));

    // Act
    await harness.deliverAll();

    // Assess
    expect(harness.sink.received.map((m) => m.to)).toEqual([['ok@example.net']]);
    const events = outcomes(await harness.events());
    expect(events.map((e) => [e.type, e.key])).toEqual([
      ['email.delivered', 'partial-3'],
      ['email.failed', 'partial-3§deferred-1'],
    ]);
    expect(events[1]?.recipients.map(([recipient]) => recipient)).toEqual(['grey@example.net']);
    const dead = await harness.deadLetters();
    expect(dead).toHaveLength(1);
    expect(dead[0]?.attributes).toMatchObject({
      failureClass: 'exhausted',
      failureReason: 'retry:smtp-rcpt-451',
      idempotencyKey: 'partial-3§deferred-1',
    });
    expect(dead[0]?.attributes[FOLLOW_UP_ATTRIBUTE]).toMatch(signed('1:1:\\d+:'));
    expect(harness.output.lines.join('\n')).not.toContain('grey@example.net');
  });

  it('ends failed at once when the job has no attempt left for a follow-up', async () => {
    // Prepare: the queue allows one receive, spent by the job itself.
    const greylist = { code: 450, message: '4.2.0 Greylisted' };
    const rules = [{ stage: 'rcpt' as const, address: 'grey@example.net', reply: greylist }];
    const { harness, asked } = await start(rules, { deps: { maxReceiveCount: 1 } });
    await harness.enqueue(job('partial-8', ['ok@example.net', 'grey@example.net']));

    // Act
    await harness.deliverAll();

    // Assess
    expect(asked).toEqual([]);
    expect(harness.sink.received.map((m) => m.to)).toEqual([['ok@example.net']]);
    const events = outcomes(await harness.events());
    expect(events.map((e) => [e.type, e.key])).toEqual([
      ['email.delivered', 'partial-8'],
      ['email.failed', 'partial-8§deferred-1'],
    ]);
    const dead = await harness.deadLetters();
    expect(dead.map((d) => d.attributes)).toEqual([
      expect.objectContaining({
        failureReason: 'retry:recipients-deferred',
        failureDetail: '1 recipient(s) refused for now (450); no attempt or lifetime left',
        idempotencyKey: 'partial-8§deferred-1',
        [FOLLOW_UP_ATTRIBUTE]: expect.stringMatching(signed('1:1:\\d+:')),
      }),
    ]);
  });

  it('whose follow-up could not be queued gets it from the return of the record, and still one copy', async () => {
    // Prepare: the first requeue fails.
    const greylist = { code: 450, message: '4.2.0 Greylisted' };
    const rules = [{ stage: 'rcpt' as const, address: 'grey@example.net', reply: greylist, times: 1 }];
    const { harness, asked } = await start(rules, { failFirst: true });
    const body = job('partial-5', ['ok@example.net', 'grey@example.net']);
    const receive = (n: number) =>
      harness.handler({ Records: [harness.sqsRecord(body, 'record-5', n)] }, createLambdaContext('send-email', 30_000));

    // Act: the record fails for its follow-up, comes back (the follow-up is queued), and comes back once more.
    const first = await receive(1);
    await receive(2);
    await harness.deliverAll();
    await receive(3);
    await harness.deliverAll();

    // Assess
    expect(first.batchItemFailures).toEqual([{ itemIdentifier: 'record-5' }]);
    expect(asked).toHaveLength(3);
    expect(harness.sink.received.map((m) => m.to)).toEqual([['ok@example.net'], ['grey@example.net']]);
    const keys = outcomes(await harness.events()).map((e) => [e.type, e.key]);
    expect(keys).toEqual([
      ['email.delivered', 'partial-5'],
      ['email.delivered', 'partial-5§deferred-1'],
    ]);
  });

  it('whose follow-up never could be queued gets it from a redrive of the record, and still one copy', async () => {
    // Prepare: every requeue fails while the record is on the jobs queue (SendMessage denied, say).
    const greylist = { code: 450, message: '4.2.0 Greylisted' };
    const rules = [{ stage: 'rcpt' as const, address: 'grey@example.net', reply: greylist, times: 1 }];
    let requeueDown = true;
    const { harness, asked } = await start(rules, { failWhile: () => requeueDown, deps: { maxReceiveCount: 2 } });
    const body = job('partial-10', ['ok@example.net', 'grey@example.net']);
    const context = () => createLambdaContext('send-email', 30_000);
    const receive = (n: number) => harness.handler({ Records: [harness.sqsRecord(body, 'record-10', n)] }, context());

    // Act: the record fails for its follow-up on each of its receives (SQS then moves it to the dead-letter queue);
    // an operator redrives it as a new message once the queue takes messages again.
    const answers = [await receive(1), await receive(2)];
    requeueDown = false;
    const redriven = harness.sqsRecord(body, 'record-10-redriven', 1);
    redriven.messageAttributes = { redrivenFrom: { dataType: 'String', stringValue: 'record-10' } };
    await harness.handler({ Records: [redriven] }, context());
    await harness.deliverAll();

    // Assess
    expect(answers.map((a) => a.batchItemFailures)).toEqual([
      [{ itemIdentifier: 'record-10' }],
      [{ itemIdentifier: 'record-10' }],
    ]);
    expect(asked).toHaveLength(3);
    expect(harness.sink.received.map((m) => m.to)).toEqual([['ok@example.net'], ['grey@example.net']]);
  });

  it('whose completion and follow-up both could not be written ends failed and dead-lettered as a follow-up', async () => {
    // Prepare: the completion write fails on every try, and so does the requeue.
    const proxy = await startHttpFaultProxy(emulators.aws.dynamo.endpoint);
    try {
      const greylist = { code: 450, message: '4.2.0 Greylisted' };
      const rules = [{ stage: 'rcpt' as const, address: 'grey@example.net', reply: greylist, times: 1 }];
      const { harness } = await start(rules, { failWhile: () => true, endpoints: { dynamodb: proxy.endpoint } });
      proxy.fail('UpdateItem', 6, '#claim');
      const body = job('partial-13', ['ok@example.net', 'grey@example.net']);

      // Act
      const answer = await harness.handler(
        { Records: [harness.sqsRecord(body, 'record-13', 1)] },
        createLambdaContext('send-email', 30_000),
      );

      // Assess: the record is done (sent without its completion record); its follow-up waits for a redrive.
      expect(answer.batchItemFailures).toEqual([]);
      expect(harness.sink.received.map((m) => m.to)).toEqual([['ok@example.net']]);
      const dead = await harness.deadLetters();
      expect(dead.map((d) => d.attributes)).toEqual([
        expect.objectContaining({
          failureReason: 'retry:follow-up-not-queued',
          idempotencyKey: 'partial-13§deferred-1',
          [FOLLOW_UP_ATTRIBUTE]: expect.stringMatching(signed('1:1:\\d+:')),
        }),
      ]);
      const events = outcomes(await harness.events());
      expect(events.map((e) => [e.type, e.key])).toEqual([
        ['email.delivered', 'partial-13'],
        ['email.failed', 'partial-13§deferred-1'],
      ]);
    } finally {
      await proxy.stop();
    }
  });

  it('given up at once, then redriven, gets the retry schedule again as any redriven job does', async () => {
    // Prepare: three receives; the job spends them all (two whole retries), so its follow-up ends failed at once.
    const later = { code: 450, message: '4.2.0 Greylisted' };
    const rules = [
      { stage: 'rcpt' as const, address: 'ok@example.net', reply: later, times: 2 },
      { stage: 'rcpt' as const, address: 'grey@example.net', reply: later, times: 4 },
    ];
    const { harness } = await start(rules, { deps: { maxReceiveCount: 3 } });
    const body = job('partial-11', ['ok@example.net', 'grey@example.net']);
    const context = () => createLambdaContext('send-email', 30_000);
    for (const n of [1, 2, 3]) await harness.handler({ Records: [harness.sqsRecord(body, 'record-11', n)] }, context());
    // Drained: the dead-letter queue holds only what the redrive adds.
    const [dead] = await harness.deadLetters();
    const redrive = (n: number) => {
      const record = harness.sqsRecord(body, 'record-11-redriven', n);
      record.messageAttributes = {
        redrivenFrom: { dataType: 'String', stringValue: 'dead-11' },
        [FOLLOW_UP_ATTRIBUTE]: { dataType: 'String', stringValue: String(dead?.attributes[FOLLOW_UP_ATTRIBUTE]) },
      };
      return harness.handler({ Records: [record] }, context());
    };

    // Act: the redriven follow-up is refused for now once more, then taken.
    const first = await redrive(1);
    const second = await redrive(2);

    // Assess
    expect(dead?.attributes).toMatchObject({ idempotencyKey: 'partial-11§deferred-3' });
    expect([first.batchItemFailures, second.batchItemFailures]).toEqual([
      [{ itemIdentifier: 'record-11-redriven' }],
      [],
    ]);
    expect(await harness.deadLetters()).toEqual([]);
    expect(harness.sink.received.map((m) => m.to)).toEqual([['ok@example.net'], ['grey@example.net']]);
  });

  it('refused for now again at its follow-up gets a follow-up of its own; each recipient gets one copy', async () => {
    // Prepare
    const later = { code: 450, message: '4.2.0 Greylisted' };
    const rules = [
      { stage: 'rcpt' as const, address: 'g1@example.net', reply: later, times: 1 },
      { stage: 'rcpt' as const, address: 'g2@example.net', reply: later, times: 2 },
    ];
    const { harness, asked } = await start(rules);
    const body = job('partial-12', ['ok@example.net', 'g1@example.net', 'g2@example.net']);
    await harness.enqueue(body);

    // Act: the job, its follow-up, and the follow-up's own.
    await harness.deliverAll();

    // Assess
    expect(harness.sink.received.map((m) => m.to)).toEqual([
      ['ok@example.net'],
      ['g1@example.net'],
      ['g2@example.net'],
    ]);
    expect(asked.map((a) => a.attribute?.split(':').slice(0, 2).join(':'))).toEqual(['1:1,2', '2:2']);
    expect(outcomes(await harness.events()).map((e) => [e.key, e.recipients])).toEqual([
      [
        'partial-12',
        [
          ['ok@example.net', 'accepted'],
          ['g1@example.net', 'deferred'],
          ['g2@example.net', 'deferred'],
        ],
      ],
      [
        'partial-12§deferred-1',
        [
          ['g1@example.net', 'accepted'],
          ['g2@example.net', 'deferred'],
        ],
      ],
      ['partial-12§deferred-2', [['g2@example.net', 'accepted']]],
    ]);
  });

  it('of a template job gets the same rendering', async () => {
    // Prepare
    const templatesDir = mkdtempSync(join(tmpdir(), 'templates-'));
    cpSync(resolve('templates'), templatesDir, { recursive: true });
    const greylist = { code: 450, message: '4.2.0 Greylisted' };
    const rules = [{ stage: 'rcpt' as const, address: 'grey@example.net', reply: greylist, times: 1 }];
    const { harness, asked } = await start(rules, { env: { TEMPLATES_DIR: templatesDir } });
    const template = { name: 'order-receipt', data: orderReceiptData() };
    await harness.enqueue(
      templateJobFactory(template, { idempotencyKey: 'partial-6', to: ['ok@example.net', 'grey@example.net'] }),
    );

    // Act
    await harness.deliverAll();
    rmSync(templatesDir, { recursive: true, force: true });

    // Assess
    expect(harness.sink.received.map((m) => m.to)).toEqual([['ok@example.net'], ['grey@example.net']]);
    const [first, second] = await Promise.all(harness.sink.received.map((m) => simpleParser(m.raw)));
    expect(first?.subject).toBe('Your Example Shöp order A-4711');
    expect([second?.subject, second?.html, second?.text]).toEqual([first?.subject, first?.html, first?.text]);
    expect(second?.messageId).toBe(first?.messageId);
    // The follow-up named the template version its job was sent with.
    expect(asked[0]?.attribute).toMatch(signed('1:1:\\d+:1'));
  });

  it('of a template job renders the deployed version once the one first sent is gone', async () => {
    // Prepare: the deployment's template is at version 1 for the job and at version 2 by its follow-up.
    let deployed = 1;
    const templates: TemplateRenderer = {
      render: async (reference) =>
        reference.version !== undefined && reference.version !== deployed
          ? { ok: false, reason: TemplateRejections.version, detail: `template.version: at ${deployed} here` }
          : {
              ok: true,
              content: { subject: `Receipt v${deployed}`, html: '<p>Thanks</p>', text: 'Thanks', version: deployed },
            },
    };
    const greylist = { code: 450, message: '4.2.0 Greylisted' };
    const rules = [{ stage: 'rcpt' as const, address: 'grey@example.net', reply: greylist, times: 1 }];
    const { harness, asked } = await start(rules, { deps: { templates } });
    const template = { name: 'receipt', data: {} };
    await harness.enqueue(
      templateJobFactory(template, { idempotencyKey: 'partial-9', to: ['ok@example.net', 'grey@example.net'] }),
    );

    // Act: the job goes out; the template is redeployed; the follow-up goes out.
    await harness.deliver();
    deployed = 2;
    await harness.deliverAll();

    // Assess
    const subjects = await Promise.all(harness.sink.received.map(async (m) => (await simpleParser(m.raw)).subject));
    expect(subjects).toEqual(['Receipt v1', 'Receipt v2']);
    expect(asked[0]?.attribute).toMatch(signed('1:1:\\d+:1'));
    expect(harness.output.lines.join('\n')).toContain('follow-up rendered at the deployed template version');
  });

  it("of a tenant's job stays that tenant's; a producer's message naming a follow-up is refused", async () => {
    // Prepare: the shop's own credentials are its SenderId; the dispatcher's ('local') are a system sender's.
    const env = {
      TENANT_SENDERS: JSON.stringify({ 'producer-shop': 'shop' }),
      SYSTEM_SENDERS: 'local',
    };
    const greylist = { code: 450, message: '4.2.0 Greylisted' };
    const rules = [{ stage: 'rcpt' as const, address: 'grey@example.net', reply: greylist, times: 1 }];
    const { harness } = await start(rules, { env });
    const shop = new SQSClient({
      region: 'eu-west-1',
      endpoint: emulators.aws.fauxqs.endpoint,
      credentials: { accessKeyId: 'producer-shop', secretAccessKey: 'x' },
    });
    const send = (key: string, extra: Record<string, string> = {}) =>
      shop.send(
        new SendMessageCommand({
          QueueUrl: harness.resources.jobsQueueUrl,
          MessageBody: JSON.stringify(job(key, ['ok@example.net', 'grey@example.net'])),
          MessageAttributes: Object.fromEntries(
            Object.entries({ tenant: 'shop', ...extra }).map(([k, v]) => [k, { DataType: 'String', StringValue: v }]),
          ),
        }),
      );
    await send('partial-7');
    await send('forged-7', { [FOLLOW_UP_ATTRIBUTE]: '1:1:1764400000000:' });

    // Act
    await harness.deliverAll();

    // Assess
    const keyOf = (m: ReceivedMessage) => m.raw.toString('utf8').match(/^Subject: Order (\S+)/m)?.[1];
    expect(harness.sink.received.map((m) => [keyOf(m), m.to])).toEqual([
      ['partial-7', ['ok@example.net']],
      ['partial-7', ['grey@example.net']],
    ]);
    const events = (await harness.events()).filter((e) => String(e.type).startsWith('email.'));
    expect(events.map((e) => [e.type, e.idempotencyKey, e.tenant])).toEqual(
      expect.arrayContaining([
        ['email.delivered', 'partial-7', 'shop'],
        ['email.delivered', 'partial-7§deferred-1', 'shop'],
        ['email.rejected', 'forged-7', 'shop'],
      ]),
    );
    const dead = await harness.deadLetters();
    expect(dead.map((d) => [d.attributes.failureReason, d.attributes.failureDetail])).toEqual([
      ['follow-up-invalid', 'followUp: set by the dispatcher only; a producer may not send this attribute'],
    ]);
  });

  it("without tenants, a producer's follow-up (unsigned, moved from another job, tampered) is refused", async () => {
    // Prepare: a genuine follow-up of partial-13 is queued, signed for that job.
    const greylist = { code: 450, message: '4.2.0 Greylisted' };
    const rules = [{ stage: 'rcpt' as const, address: 'grey@example.net', reply: greylist, times: 1 }];
    const { harness, asked } = await start(rules);
    await harness.enqueue(job('partial-13', ['ok@example.net', 'grey@example.net']));
    await harness.deliverAll();
    const genuine = String(asked[0]?.attribute);
    const forged = (key: string, value: string) => {
      const record = harness.sqsRecord(job(key, ['ok@example.net', 'grey@example.net']), `forged-${value}`);
      record.messageAttributes = { [FOLLOW_UP_ATTRIBUTE]: { dataType: 'String', stringValue: value } };
      return record;
    };
    const context = createLambdaContext('send-email', 30_000);

    // Act: the producer resends its own job as follow-ups, under keys of its choosing.
    const result = await harness.handler(
      {
        Records: [
          forged('forged-13', '1:0,1:1764400000000:'),
          forged('partial-13', '999999:0,1:1764400000000:'),
          forged('forged-13', genuine),
          forged('partial-13', genuine.replace(/^1:1:/, '2:0,1:')),
        ],
      },
      context,
    );

    // Assess: refused, never retried, dead-lettered with the reason; nothing more is sent.
    expect(harness.sink.received.map((m) => m.to)).toEqual([['ok@example.net'], ['grey@example.net']]);
    expect(result.batchItemFailures).toEqual([]);
    expect(genuine).toMatch(signed('1:1:\\d+:'));
    const dead = await harness.deadLetters();
    const refused = 'a producer may not send this attribute';
    expect(
      dead.map((d) => [d.attributes.idempotencyKey, d.attributes.failureReason, d.attributes.failureDetail]),
    ).toEqual([
      ['forged-13', 'follow-up-invalid', `followUp: not signed by the dispatcher; ${refused}`],
      ['partial-13', 'follow-up-invalid', `followUp: not signed by the dispatcher; ${refused}`],
      ['forged-13', 'follow-up-invalid', `followUp: signature does not match this job and value; ${refused}`],
      ['partial-13', 'follow-up-invalid', `followUp: signature does not match this job and value; ${refused}`],
    ]);
  });

  it('without report keys queues no follow-up: the deferred recipients end failed, dead-lettered', async () => {
    // Prepare
    const greylist = { code: 450, message: '4.2.0 Greylisted' };
    const rules = [{ stage: 'rcpt' as const, address: 'grey@example.net', reply: greylist, times: 1 }];
    const { harness, asked } = await start(rules, { keys: null });
    await harness.enqueue(job('partial-14', ['ok@example.net', 'grey@example.net']));

    // Act
    await harness.deliverAll();

    // Assess
    expect(asked).toEqual([]);
    expect(harness.sink.received.map((m) => m.to)).toEqual([['ok@example.net']]);
    expect(outcomes(await harness.events()).map((e) => [e.type, e.key])).toEqual([
      ['email.delivered', 'partial-14'],
      ['email.failed', 'partial-14§deferred-1'],
    ]);
    const dead = await harness.deadLetters();
    expect(dead.map((d) => d.attributes)).toEqual([
      expect.objectContaining({
        failureReason: 'retry:follow-up-not-signed',
        failureDetail: '1 recipient(s) refused for now; no follow-up: no report keys to sign it',
        idempotencyKey: 'partial-14§deferred-1',
        [FOLLOW_UP_ATTRIBUTE]: expect.stringMatching(/^1:1:\d+:$/),
      }),
    ]);
  });

  it('all refused for now is a plain retry of the whole job, with no follow-up', async () => {
    // Prepare
    const later = { code: 450, message: '4.2.0 Greylisted' };
    const { harness, asked } = await start([{ stage: 'rcpt', reply: later, times: 2 }]);
    await harness.enqueue(job('partial-4', ['a@example.net', 'b@example.net']));

    // Act
    const first = await harness.deliver();

    // Assess
    expect(first).toMatchObject({ received: 1, failed: 1 });
    expect(harness.sink.received).toEqual([]);
    expect(asked).toEqual([]);
    expect(outcomes(await harness.events())).toEqual([]);
    expect(await harness.queueDepth()).toBe(1);
  });
});

describe('a run where the relay refuses some recipients for now', () => {
  it('loses none and sends none twice: every recipient gets exactly one copy', async () => {
    // Prepare: 12 jobs of 3 recipients; 10 of their recipients get a 454 at their first RCPT TO, 250 at the next.
    const rateReply = { code: 454, message: '4.7.0 Throttling failure: Maximum sending rate exceeded.' };
    const refusedOnce = [0, 1, 2, 3, 4].flatMap((n) =>
      [`b${n}@slow.test`, `c${n}@slow.test`].map((address) => ({
        stage: 'rcpt' as const,
        address,
        reply: rateReply,
        times: 1,
      })),
    );
    const { harness } = await start(refusedOnce);
    const jobs = Array.from({ length: 12 }, (_, n) =>
      job(`ledger-${n}`, [`a${n}@example.net`, `b${n}@slow.test`], [`c${n}@slow.test`]),
    );
    for (const j of jobs) await harness.enqueue(j);

    // Act
    await harness.deliverAll();

    // Assess
    const copies = new Map<string, number>();
    for (const message of harness.sink.received) {
      const id = (await headersOf(message))['message-id'];
      for (const to of message.to) copies.set(`${id} ${to}`, (copies.get(`${id} ${to}`) ?? 0) + 1);
    }
    const expected = jobs.flatMap((j) => (j.to ?? []).concat(j.cc ?? []).length);
    const delivered = [...copies.values()];
    const lost = expected.reduce((a, b) => a + b, 0) - copies.size;
    const duplicated = delivered.reduce((sum, n) => sum + n - 1, 0);
    console.log(`partial deferrals: recipients 36, delivered ${copies.size}, lost ${lost}, duplicated ${duplicated}`);
    expect({ recipients: copies.size, lost, duplicated }).toEqual({ recipients: 36, lost: 0, duplicated: 0 });
    expect(await harness.deadLetters()).toEqual([]);
  });
});
