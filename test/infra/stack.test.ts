import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { App, Stack, Validations } from 'aws-cdk-lib';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks, ServerlessChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { EmailDispatchStack } from '#infra/email-dispatch-stack.js';
import { DEFAULT_SETTINGS, deriveQueueSettings } from '#infra/settings.js';
import { loadStackConfig, type StackConfigError } from '#infra/stack-config.js';

const context = {
  defaultFrom: 'noreply@example.com',
  transport: 'smtp',
  transports: 'smtp,ses',
  failover: 'smtp>ses',
  sesConfigurationSet: 'tracking',
  smtpHost: 'email-smtp.eu-west-1.amazonaws.com',
  smtpSecret: 'email-dispatch/smtp',
  mailboxes: [
    { id: 'bounces', host: 'imap.example.com', secret: 'email-dispatch/imap' },
    {
      id: 'replies',
      host: 'imap.example.org',
      secret: 'email-dispatch/imap-replies',
      startFrom: 'beginning',
      secretWriteBack: true,
    },
  ],
  alarmEmail: 'oncall@example.com',
  maxConcurrency: 8,
};

let template: Template;
let outdir: string;
const config = loadStackConfig({ tryGetContext: (key: string) => (context as Record<string, unknown>)[key] });

beforeAll(() => {
  outdir = mkdtempSync(join(tmpdir(), 'email-dispatch-cdk-'));
  const app = new App({ outdir, context });
  const stack = new EmailDispatchStack(app, 'Test', config, { env: { account: '111111111111', region: 'eu-west-1' } });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app), new ServerlessChecks(app));
  app.synth();
  template = Template.fromStack(stack);
}, 120_000);

const resourcesOf = (type: string) =>
  Object.values(template.findResources(type)) as Array<{ Properties: Record<string, unknown> }>;

describe('the jobs queue', () => {
  it('is encrypted, TLS-only, sized explicitly, and redrives to a DLQ that keeps jobs longer', () => {
    const derived = deriveQueueSettings(config.settings);
    template.hasResourceProperties('AWS::SQS::Queue', {
      SqsManagedSseEnabled: true,
      MaximumMessageSize: 1_048_576,
      VisibilityTimeout: derived.visibilityTimeoutSeconds,
      MessageRetentionPeriod: derived.retentionSeconds,
      RedrivePolicy: { deadLetterTargetArn: Match.anyValue(), maxReceiveCount: derived.maxReceiveCount },
    });
    template.hasResourceProperties('AWS::SQS::Queue', {
      SqsManagedSseEnabled: true,
      MessageRetentionPeriod: 14 * 86_400,
    });
    expect(derived.deadLetterRetentionSeconds).toBeGreaterThan(derived.retentionSeconds);
    // The jobs queue, its DLQ, and the SES event consumer's DLQ.
    const policies = resourcesOf('AWS::SQS::QueuePolicy');
    expect(policies).toHaveLength(3);
    for (const p of policies) {
      expect(JSON.stringify(p.Properties)).toContain('"aws:SecureTransport":"false"');
    }
  });

  it('has a visibility timeout of at least six times the function timeout', () => {
    const fn = resourcesOf('AWS::Lambda::Function').find((f) =>
      (f.Properties.Description as string).startsWith('Sends email jobs'),
    );
    const queue = resourcesOf('AWS::SQS::Queue').find((q) => q.Properties.RedrivePolicy);
    expect(queue?.Properties.VisibilityTimeout).toBeGreaterThanOrEqual(6 * (fn?.Properties.Timeout as number));
  });
});

describe('the dispatch function', () => {
  it('runs on the newest Node.js runtime, arm64, traced, with JSON logs', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Description: Match.stringLikeRegexp('^Sends email jobs'),
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      TracingConfig: { Mode: 'Active' },
      LoggingConfig: Match.objectLike({ LogFormat: 'JSON' }),
      // Memory, pool and jobs in flight as the settings give them (chosen from the benchmark's measurements).
      MemorySize: DEFAULT_SETTINGS.memorySizeMb,
      Environment: {
        Variables: Match.objectLike({
          SMTP_SECURITY: 'starttls',
          TRANSPORTS: 'smtp,ses',
          RATE_SHARES: '8',
          SMTP_MAX_CONNECTIONS: String(DEFAULT_SETTINGS.smtpConnections),
          MAX_IN_FLIGHT: String(DEFAULT_SETTINGS.maxInFlight),
        }),
      },
    });
  });

  it('ships its own bundle: an ESM entry whose lazy chunks sit beside it', () => {
    const functions = resourcesOf('AWS::Lambda::Function').filter((f) => f.Properties.Handler === 'index.handler');
    const keys = functions.map((f) => (f.Properties.Code as { S3Key: string }).S3Key);
    // send-email, poll-mailbox and ses-events.
    expect(keys).toHaveLength(3);
    expect(new Set(keys).size).toBe(3);
    for (const key of keys) {
      const asset = join(outdir, `asset.${key.replace(/\.zip$/, '')}`);
      expect(readdirSync(asset)).toEqual(expect.arrayContaining(['index.mjs', 'chunks']));
    }
  });

  it('carries the templates beside its bundle, and reads them from there', () => {
    const fn = resourcesOf('AWS::Lambda::Function').find((f) =>
      (f.Properties.Description as string).startsWith('Sends email jobs'),
    );
    const key = (fn?.Properties.Code as { S3Key: string }).S3Key;
    const asset = join(outdir, `asset.${key.replace(/\.zip$/, '')}`);
    expect(readdirSync(join(asset, 'templates')).sort()).toEqual(readdirSync('templates').sort());
    expect(readdirSync(join(asset, 'templates', 'order-receipt')).sort()).toEqual([
      'html.hbs',
      'schema.json',
      'template.json',
    ]);
    expect((fn?.Properties.Environment as { Variables: Record<string, string> }).Variables.TEMPLATES_DIR).toBe(
      'templates',
    );
  });

  it('reads the queue under the concurrency cap with partial batch responses', () => {
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      BatchSize: DEFAULT_SETTINGS.batchSize,
      MaximumBatchingWindowInSeconds: DEFAULT_SETTINGS.maxBatchingWindowSeconds,
      ScalingConfig: { MaximumConcurrency: 8 },
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
  });
});

describe('the tables', () => {
  it('are on demand with point-in-time recovery, and expire idempotency records by TTL', () => {
    const tables = resourcesOf('AWS::DynamoDB::GlobalTable');
    // Idempotency, suppression, mailbox state, transport state (the circuit breakers), tenant state (reputation), job
    // status.
    expect(tables).toHaveLength(6);
    for (const t of tables) {
      expect(t.Properties.BillingMode).toBe('PAY_PER_REQUEST');
      expect(JSON.stringify(t.Properties.Replicas)).toContain('"PointInTimeRecoveryEnabled":true');
    }
    template.hasResourceProperties('AWS::DynamoDB::GlobalTable', {
      KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
      TimeToLiveSpecification: { AttributeName: 'expiration', Enabled: true },
    });
  });

  it('expire suppressions of non-permanent reasons by TTL', () => {
    template.hasResourceProperties('AWS::DynamoDB::GlobalTable', {
      KeySchema: [{ AttributeName: 'addressHash', KeyType: 'HASH' }],
      TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Description: Match.stringLikeRegexp('^Polls IMAP'),
      Environment: { Variables: Match.objectLike({ SUPPRESSION_TTL_DAYS: '30' }) },
    });
    // npm run suppression -- add gives an operator's entry the same TTL.
    template.hasOutput('SuppressionTtlDays', { Value: '30' });
  });
});

describe('the poller', () => {
  it('runs on a schedule of the configured rate', () => {
    template.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(1 minute)', State: 'ENABLED' });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Description: Match.stringLikeRegexp('^Polls IMAP'),
      Environment: { Variables: Match.objectLike({ POLL_INTERVAL_SECONDS: '60' }) },
    });
  });

  it('passes when repeated bounces suppress: a domain on 3 days of 14, soft bounces never', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Description: Match.stringLikeRegexp('^Polls IMAP'),
      Environment: {
        Variables: Match.objectLike({
          REPEAT_WINDOW_DAYS: '14',
          HOST_UNKNOWN_REPEAT_DAYS: '3',
          SOFT_BOUNCE_REPEAT_DAYS: '0',
        }),
      },
    });
  });

  it('passes each mailbox its first-run start, now unless configured otherwise', () => {
    const functions = resourcesOf('AWS::Lambda::Function');
    const fn = functions.find((f) => String(f.Properties.Description).startsWith('Polls IMAP'));
    const variables = (fn?.Properties.Environment as { Variables: { MAILBOXES: unknown } }).Variables;
    const mailboxes = JSON.parse(JSON.stringify(variables.MAILBOXES)) as unknown;
    // The list holds secret ARNs (tokens): look for each mailbox's start in its text.
    const text = JSON.stringify(mailboxes);
    expect(text).toMatch(/\\"id\\":\\"bounces\\".*?\\"startFrom\\":\\"now\\"/);
    expect(text).toMatch(/\\"id\\":\\"replies\\".*?\\"startFrom\\":\\"beginning\\"/);
  });
});

describe('alarms', () => {
  const alarm = (name: string) =>
    resourcesOf('AWS::CloudWatch::Alarm').find((a) =>
      String(a.Properties.AlarmDescription).includes(`runbook: ${name}.`),
    )?.Properties;

  it('watches each mailbox on its own heartbeat: an alarm per mailbox, on its Mailbox dimension, breaching', () => {
    // Prepare
    const alarms = resourcesOf('AWS::CloudWatch::Alarm');
    const runbook = 'runbook: PollerHeartbeatMissing.';
    const heartbeats = alarms.filter((a) => String(a.Properties.AlarmDescription).includes(runbook));

    // Act
    type Dimension = { Name: string; Value: string };
    const watched = heartbeats.map((a) => ({
      metric: a.Properties.MetricName,
      dimensions: Object.fromEntries((a.Properties.Dimensions as Dimension[]).map((d) => [d.Name, d.Value])),
      missing: a.Properties.TreatMissingData,
      comparison: a.Properties.ComparisonOperator,
    }));

    // Assess
    const breaching = { missing: 'breaching', comparison: 'LessThanThreshold' };
    expect(watched.sort((a, b) => String(a.dimensions.Mailbox).localeCompare(String(b.dimensions.Mailbox)))).toEqual([
      { metric: 'MailboxPolled', dimensions: { service: 'email-dispatch', Mailbox: 'bounces' }, ...breaching },
      { metric: 'MailboxPolled', dimensions: { service: 'email-dispatch', Mailbox: 'replies' }, ...breaching },
    ]);
  });

  it.each([
    ['DeadLetterQueueNotEmpty', 'notBreaching'],
    ['OldestJobTooOld', 'notBreaching'],
    ['DispatchErrors', 'notBreaching'],
    ['DispatchThrottles', 'notBreaching'],
    ['SendsBlocked', 'notBreaching'],
    ['TransportCircuitOpen', 'notBreaching'],
    ['SendingOnFallback', 'notBreaching'],
    ['EventsNotPublished', 'notBreaching'],
    ['CompletionsNotSaved', 'notBreaching'],
    ['PollerHeartbeatMissing', 'breaching'],
    ['SenderSideBouncesHigh', 'notBreaching'],
    ['MailboxSignInBlocked', 'notBreaching'],
    ['RefreshTokenNotSaved', 'notBreaching'],
    ['SesBounceRateHigh', 'notBreaching'],
    ['SesComplaintRateHigh', 'notBreaching'],
    ['SuppressionSpike', 'notBreaching'],
    ['TenantPaused', 'notBreaching'],
  ])('%s exists, notifies the alarm topic, and treats missing data as %s', (name, missing) => {
    const props = alarm(name);
    expect(props).toBeDefined();
    expect(props?.TreatMissingData).toBe(missing);
    expect(JSON.stringify(props?.AlarmActions)).toContain('AlarmTopic');
  });

  it("raises SenderSideBouncesHigh on the share of an hour's bounce reports that blame our side", () => {
    const props = alarm('SenderSideBouncesHigh');
    type Query = { Id: string; Expression?: string; MetricStat?: { Metric: { MetricName: string }; Period: number } };
    const metrics = props?.Metrics as Query[];

    expect(props?.Threshold).toBe(0.2);
    expect(metrics.find((m) => m.Expression)?.Expression).toBe('IF(b + d >= 10, s / (b + d), 0)');
    const stats = metrics
      .filter((m) => m.MetricStat)
      .map((m) => [m.Id, m.MetricStat?.Metric.MetricName, m.MetricStat?.Period]);
    expect(stats).toEqual([
      ['s', 'SenderSideBounces', 3600],
      ['b', 'BouncesDetected', 3600],
      ['d', 'DelaysDetected', 3600],
    ]);
  });

  it('fires on a spike of newly suppressed addresses, counted hourly against the configured threshold', () => {
    const props = alarm('SuppressionSpike');

    expect(props).toMatchObject({
      MetricName: 'SuppressionsAdded',
      Namespace: 'EmailDispatch',
      Statistic: 'Sum',
      Period: 3600,
      Threshold: 50,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
    });
  });

  it('raises TenantPaused when a tenant is paused and for as long as its jobs are held', () => {
    const props = alarm('TenantPaused');
    type Query = { Id: string; Expression?: string; MetricStat?: { Metric: { MetricName: string } } };
    const metrics = props?.Metrics as Query[];

    expect(props?.Threshold).toBe(1);
    // A pause in a period with no held job (or the reverse) still counts: each side is 0 where it has no value.
    expect(metrics.find((m) => m.Expression)?.Expression).toBe('FILL(paused, 0) + FILL(held, 0)');
    const names = metrics.filter((m) => m.MetricStat).map((m) => m.MetricStat?.Metric.MetricName);
    expect(names).toEqual(['TenantsPaused', 'TenantJobsHeld']);
  });

  it('subscribes the on-call address and draws a dashboard', () => {
    template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'oncall@example.com' });
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
  });
});

describe('permissions', () => {
  const statements = () =>
    resourcesOf('AWS::IAM::Policy').flatMap(
      (p) =>
        (
          p.Properties.PolicyDocument as {
            Statement: Array<{ Action: string | string[]; Resource: unknown; Condition?: unknown }>;
          }
        ).Statement,
    );
  const actionsOf = (s: { Action: string | string[] }) => [s.Action].flat();

  it('never grants SES or secrets on *, except the read of the account quota (GetAccount has no resource)', () => {
    for (const s of statements()) {
      if (actionsOf(s).join() === 'ses:GetAccount') continue;
      const sensitive = actionsOf(s).some((a) => a.startsWith('ses:') || a.startsWith('secretsmanager:'));
      if (sensitive) expect(JSON.stringify(s.Resource)).not.toBe('"*"');
    }
  });

  it('scopes SES sending to the identity and configuration set, with a From condition', () => {
    const ses = statements().find((s) => actionsOf(s).includes('ses:SendEmail'));
    expect(JSON.stringify(ses?.Resource)).toContain(':identity/example.com');
    expect(JSON.stringify(ses?.Resource)).toContain(':configuration-set/tracking');
    expect(ses?.Condition).toEqual({ StringLike: { 'ses:FromAddress': '*@example.com' } });
  });

  it('grants on the mailbox state table exactly the DynamoDB calls its store makes', () => {
    // Prepare: the commands the store sends, as IAM actions (BatchGetCommand → dynamodb:BatchGetItem)
    const source = readFileSync(new URL('../../functions/aws/mailbox-state-store.ts', import.meta.url), 'utf8');
    const called = [
      ...new Set(
        [...source.matchAll(/new (\w+)Command\(/g)].map(
          (m) => `dynamodb:${m[1]}${/^(Query|Scan)$/.test(m[1] as string) ? '' : 'Item'}`,
        ),
      ),
    ].sort();

    // Act
    const granted = statements()
      .filter((s) => JSON.stringify(s.Resource).includes('MailboxState'))
      .flatMap(actionsOf)
      .sort();

    // Assess
    expect(called).toContain('dynamodb:BatchGetItem');
    expect(granted).toEqual(called);
  });

  it('lets the functions read and count tenant reputation and write pauses, but never scan or delete it', () => {
    const granted = statements()
      .filter((s) => JSON.stringify(s.Resource).includes('TenantState'))
      .flatMap(actionsOf);

    expect([...new Set(granted)].sort()).toEqual(['dynamodb:BatchGetItem', 'dynamodb:GetItem', 'dynamodb:UpdateItem']);
    template.hasOutput('TenantStateTableName', {});
    // npm run tenant -- status judges by the deployment's limits, not its own defaults.
    template.hasOutput('ReputationLimits', { Value: Match.stringLikeRegexp('"minRecipients":500') });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({ REPUTATION_MAX_BOUNCE_RATE: '0.04', REPUTATION_MIN_RECIPIENTS: '500' }),
      },
    });
  });

  it('lets the dispatcher tell a missing attachment (404) from a forbidden one (403): s3:ListBucket on its bucket only', () => {
    const list = statements().filter((s) => actionsOf(s).includes('s3:ListBucket'));

    expect(list).toHaveLength(1);
    expect(JSON.stringify(list[0]?.Resource)).not.toContain('*');
  });

  it('lets a function write only the secrets marked for write-back, and only new versions of them', () => {
    const reads = ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'];
    const writes = statements().filter((s) =>
      actionsOf(s).some((a) => a.startsWith('secretsmanager:') && !reads.includes(a)),
    );

    expect(writes).toHaveLength(1);
    expect(actionsOf(writes[0] as { Action: string | string[] })).toEqual(['secretsmanager:PutSecretValue']);
    expect(JSON.stringify(writes[0]?.Resource)).toContain(':secret:email-dispatch/imap-replies-??????');
  });

  it('uses no AWS managed policies', () => {
    for (const role of resourcesOf('AWS::IAM::Role')) expect(role.Properties.ManagedPolicyArns).toBeUndefined();
  });
});

describe('checks at synth time', () => {
  it('passes the AwsSolutions and Serverless packs (synth above would have thrown), and the gate is live', () => {
    // The stack synthesised in beforeAll with both packs attached. The same packs reject a plain, unreviewed queue:
    const app = new App({ outdir: mkdtempSync(join(tmpdir(), 'email-dispatch-nag-')) });
    const stack = new Stack(app, 'Unreviewed');
    new Queue(stack, 'Plain', { encryption: QueueEncryption.UNENCRYPTED });
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app), new ServerlessChecks(app));
    expect(() => app.synth()).toThrow(/AwsSolutions-SQS3|AwsSolutions-SQS4|Serverless-SQSRedrivePolicy/);
    rmSync(outdir, { recursive: true, force: true });
  });

  it('reads the send quota from the account when no rate is set (the SES SMTP endpoint follows it too)', () => {
    const env = (resourcesOf('AWS::Lambda::Function').find((f) =>
      String(f.Properties.Description).startsWith('Sends email jobs'),
    )?.Properties.Environment ?? {}) as { Variables: Record<string, unknown> };
    expect(env.Variables.SES_MAX_SEND_RATE).toBeUndefined();
    expect(env.Variables.SMTP_MAX_SEND_RATE).toBeUndefined();
    expect(JSON.stringify(template.findResources('AWS::IAM::Policy'))).toContain('"ses:GetAccount"');
  });

  it('refuses a TLS mode the SMTP port cannot speak (465 is implicit TLS, 587 STARTTLS)', () => {
    const load = (over: Record<string, unknown>) =>
      loadStackConfig({ tryGetContext: (key: string) => ({ ...context, ...over })[key as keyof typeof context] });
    expect(() => load({ smtpPort: 465 })).toThrow(/smtpSecurity "starttls" with smtpPort 465: .*use implicit/);
    expect(() => load({ smtpPort: 587, smtpSecurity: 'implicit' })).toThrow(/smtpPort 587: .*use starttls/);
    expect(load({ smtpSecurity: 'implicit' }).smtpPort).toBe(465);
  });

  it('refuses a concurrency cap whose share of a set rate cannot send one full job in an invocation', () => {
    const over = { ...context, sesMaxSendRate: 14, maxConcurrency: 100 };
    expect(() => loadStackConfig({ tryGetContext: (key: string) => (over as Record<string, unknown>)[key] })).toThrow(
      /sesMaxSendRate 14\/s split over maxConcurrency 100/,
    );
    const fits = { ...context, sesMaxSendRate: 14, maxConcurrency: 8 };
    expect(
      loadStackConfig({ tryGetContext: (key: string) => (fits as Record<string, unknown>)[key] }).sesMaxSendRate,
    ).toBe(14);
  });

  it('reports every bad context value at once', () => {
    const bad = {
      defaultFrom: 'not-an-address',
      transport: 'pigeon',
      maxConcurrency: 1,
      mailboxes: '[{"id":"Bad Id"}]',
      smtpSecurity: 'none',
      smtpHost: 'smtp.example.com',
      reputationMaxComplaintRate: 'low',
      reputationMaxBounceRate: 2,
      repeatWindowDays: 7,
      softBounceRepeatDays: 10,
    };
    let error: StackConfigError | undefined;
    try {
      loadStackConfig({ tryGetContext: (key: string) => (bad as Record<string, unknown>)[key] });
    } catch (e) {
      error = e as StackConfigError;
    }
    const text = error?.problems.join('\n') ?? '';
    for (const fragment of [
      'defaultFrom',
      'transport must be one of',
      'maxConcurrency',
      'mailboxes[0].id',
      'mailboxes[0].host',
      'mailboxes[0].secret',
      'smtpSecret',
      'smtpSecurity',
      'reputationMaxComplaintRate must be a number',
      'reputation: maxBounceRate must be a rate between 0 and 1',
      'softBounceRepeatDays (10) must not exceed repeatWindowDays (7)',
    ])
      expect(text).toContain(fragment);
  });

  it('synthesises with the aws-cdk CLI offline, without AWS credentials', async () => {
    const out = mkdtempSync(join(tmpdir(), 'email-dispatch-cli-'));
    const env = Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !k.startsWith('AWS_') && !k.startsWith('CDK_')),
    );
    try {
      const synth = ['cdk', 'synth', '--quiet', '--no-notices', '-o', out];
      const { stderr } = await promisify(execFile)('npx', synth, { env: { ...env, CI: 'true' }, timeout: 180_000 });
      // cdk.json sets every feature flag aws-cdk-lib recommends: synth has nothing to warn about.
      expect(stderr).not.toMatch(/feature flags are not configured/);
      const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as {
        artifacts: Record<string, unknown>;
      };
      expect(Object.keys(manifest.artifacts)).toContain('EmailDispatch');
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 180_000);
});
