import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS } from '#infra/settings.js';
import { resolveEnvironment, type Template } from '#local/bundled-stack.js';
import { startTwin, type Twin } from '#local/twin.js';
import { runDemoBatch, type DemoResult } from '#tools/demo-batch.js';

let twin: Twin;
let demo: DemoResult;

beforeAll(async () => {
  twin = await startTwin({
    dataDir: mkdtempSync(join(tmpdir(), 'email-dispatch-bundled-twin-')),
    bundled: true,
    ports: { aws: 0, dynamodb: 0, ses: 0, smtp: 0, imap: 0 },
    settings: { ...DEFAULT_SETTINGS, retry: { baseDelaySeconds: 1, maxDelaySeconds: 2, lifetimeSeconds: 600 } },
    pollIntervalSeconds: 10,
  });
  demo = await runDemoBatch(
    {
      sqs: twin.clients.sqsClient,
      s3: await twin.clients.s3(),
      queueUrl: twin.resources.jobsQueueUrl,
      bucket: twin.resources.bucket,
      eventsTapQueueUrl: twin.resources.eventsTapQueueUrl,
    },
    { timeoutSeconds: 150 },
  );
}, 300_000);
afterAll(async () => {
  await twin?.stop();
});

describe('the demo batch through the bundles the stack deploys', () => {
  it('runs the functions with the environment the template gives them, resources pointed at the twin', () => {
    const environments = twin.bundledEnvironments;

    expect(environments?.dispatch).toMatchObject({
      NODE_OPTIONS: '--enable-source-maps',
      JOBS_QUEUE_URL: twin.resources.jobsQueueUrl,
      DEAD_LETTER_QUEUE_URL: twin.resources.deadLetterQueueUrl,
      IDEMPOTENCY_TABLE: twin.resources.idempotencyTable,
      EVENTS_TOPIC_ARN: twin.resources.eventsTopicArn,
      DEFAULT_FROM: 'noreply@twin.test',
      RETRY_BASE_SECONDS: '1',
      SMTP_HOST: '127.0.0.1',
      SMTP_PORT: String(twin.smtp.port),
    });
    expect(environments?.dispatch?.SMTP_SECRET_ID).toMatch(
      /^arn:aws:secretsmanager:eu-west-1:000000000000:secret:email-dispatch\/smtp$/,
    );
    expect(environments?.poller).toMatchObject({
      MAILBOX_STATE_TABLE: twin.resources.mailboxStateTable,
      RAW_MESSAGE_BUCKET: twin.resources.bucket,
    });
  });

  it('delivers the good job once, though it was queued twice', () => {
    expect(demo.outcomes.get(demo.keys.good)).toMatchObject({ type: 'email.delivered', reason: 'accepted' });
    expect(
      twin.smtp.received.filter((m) => m.to.includes('alice@example.net') && m.raw.toString().includes(`Demo: good`)),
    ).toHaveLength(1);
  });

  it('rejects the job the relay refuses at RCPT', () => {
    const rejected = demo.outcomes.get(demo.keys.reject);
    expect(rejected?.type).toBe('email.rejected');
    expect(JSON.stringify(rejected)).toContain('550');
  });

  it('retries the throttled job and delivers it on the second attempt', () => {
    expect(demo.outcomes.get(demo.keys.throttled)).toMatchObject({ type: 'email.delivered', attempts: 2 });
  });

  it('dead-letters the invalid job with the field named, and reports it', async () => {
    const invalid = demo.outcomes.get(demo.keys.invalid);
    expect(invalid).toMatchObject({ type: 'email.rejected', reason: 'invalid-job' });
    expect(invalid?.detail).toContain('subject: must not contain control characters or line breaks');
    const dlq = await twin.clients.sqsClient.send(
      new GetQueueAttributesCommand({
        QueueUrl: twin.resources.deadLetterQueueUrl,
        AttributeNames: ['ApproximateNumberOfMessages'],
      }),
    );
    expect(Number(dlq.Attributes?.ApproximateNumberOfMessages)).toBeGreaterThanOrEqual(1);
  });

  it('renders the receipt from the templates bundled beside the function, and rejects bad data with its path', () => {
    const environment = twin.bundledEnvironments?.dispatch;
    expect(environment?.TEMPLATES_DIR).toBe('templates');
    expect(existsSync(join(environment?.LAMBDA_TASK_ROOT ?? '', 'templates', 'order-receipt', 'html.hbs'))).toBe(true);
    expect(demo.outcomes.get(demo.keys.receipt)).toMatchObject({ type: 'email.delivered', reason: 'accepted' });
    const receipt = twin.smtp.received.find((m) => m.raw.toString().includes(`D-${demo.run}`));
    expect(receipt?.raw.toString()).toContain('Demo Sh=C3=B6p =C2=B7 1 Market Street');
    expect(demo.outcomes.get(demo.keys.badReceipt)).toMatchObject({
      type: 'email.rejected',
      reason: 'template-data-invalid',
      detail: 'template.data.order.total: must be number',
    });
  });

  it('delivers the bounce job, reads its DSN with the bundled poller, suppresses the next job to it', () => {
    expect(demo.outcomes.get(demo.keys.bounce)).toMatchObject({ type: 'email.delivered' });
    expect(demo.bounces.length).toBeGreaterThan(0);
    expect(demo.afterBounceSent).toBe(true);
    expect(demo.outcomes.get(demo.keys.afterBounce)).toMatchObject({
      type: 'email.rejected',
      reason: 'all-recipients-suppressed',
    });
  });
});

describe('resolving a function environment from the template', () => {
  const template: Template = {
    Resources: {
      Jobs: { Type: 'AWS::SQS::Queue', Metadata: { 'aws:cdk:path': 'S/EmailDispatch/Jobs/Queue/Resource' } },
      Other: { Type: 'AWS::SQS::Queue', Metadata: { 'aws:cdk:path': 'S/Elsewhere/Resource' } },
    },
  };
  const resources = { jobsQueueUrl: 'http://local/jobs', jobsQueueArn: 'arn:local:jobs' } as Parameters<
    typeof resolveEnvironment
  >[2];

  it('resolves references to the stack resources the twin stands in for, joins and pseudo parameters', () => {
    const resolved = resolveEnvironment(
      {
        A: 'x',
        B: { Ref: 'Jobs' },
        C: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':', { 'Fn::GetAtt': ['Jobs', 'Arn'] }]] },
      },
      template,
      resources,
      'eu-west-1',
    );

    expect(resolved).toEqual({ A: 'x', B: 'http://local/jobs', C: 'arn:aws:arn:local:jobs' });
  });

  it('refuses a reference the twin has no stand-in for, naming the variable', () => {
    expect(() => resolveEnvironment({ NEW_QUEUE_URL: { Ref: 'Other' } }, template, resources, 'eu-west-1')).toThrow(
      /^NEW_QUEUE_URL refers to Other \(S\/Elsewhere\/Resource\)/,
    );
  });
});
