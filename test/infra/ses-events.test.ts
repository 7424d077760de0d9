import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks, ServerlessChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { EmailDispatchStack } from '#infra/email-dispatch-stack.js';
import { loadStackConfig } from '#infra/stack-config.js';

const base = {
  defaultFrom: 'noreply@example.com',
  smtpHost: 'email-smtp.eu-west-1.amazonaws.com',
  smtpSecret: 'email-dispatch/smtp',
  mailboxes: [{ id: 'bounces', host: 'imap.example.com', secret: 'email-dispatch/imap' }],
};
/** A deployment that brings its own configuration set and report keys, and one that lets the stack create both. */
const existing = {
  ...base,
  transport: 'ses',
  transports: 'ses,smtp',
  sesConfigurationSet: 'tracking',
  reportKeysSecret: 'email-dispatch/report-keys',
  bounceDomain: 'bounces.example.com',
};
const created = { ...base, transport: 'ses', transports: 'ses' };

let withExisting: Template;
let withCreated: Template;
let smtpOnly: Template;

beforeAll(() => {
  const synth = (context: Record<string, unknown>, id: string) => {
    const app = new App({ outdir: mkdtempSync(join(tmpdir(), 'email-dispatch-cdk-ses-')), context });
    const config = loadStackConfig({ tryGetContext: (key: string) => context[key] });
    const stack = new EmailDispatchStack(app, id, config, { env: { account: '111111111111', region: 'eu-west-1' } });
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app), new ServerlessChecks(app));
    app.synth();
    return Template.fromStack(stack);
  };
  withExisting = synth(existing, 'Existing');
  withCreated = synth(created, 'Created');
  smtpOnly = synth({ ...base, transport: 'smtp' }, 'Smtp');
}, 240_000);

type Statement = { Action: string | string[]; Resource: unknown; Principal?: unknown; Condition?: unknown };
type Resource = { Properties: Record<string, unknown> };
const resourcesOf = (template: Template, type: string) => template.findResources(type) as Record<string, Resource>;
const functionWith = (template: Template, variable: string) =>
  Object.entries(resourcesOf(template, 'AWS::Lambda::Function')).find(([, f]) => variable in variablesOf(f));
type Environment = { Variables: Record<string, unknown> } | undefined;
const variablesOf = (fn: Resource | undefined) => (fn?.Properties.Environment as Environment)?.Variables ?? {};
type RoleArn = { 'Fn::GetAtt': [string] };
const roleOf = (fn: Resource | undefined) => ({ Ref: (fn?.Properties.Role as RoleArn)['Fn::GetAtt'][0] });
const statementsOfRole = (template: Template, roleRef: unknown) =>
  Object.values(resourcesOf(template, 'AWS::IAM::Policy'))
    .filter((p) => JSON.stringify(p.Properties.Roles) === JSON.stringify([roleRef]))
    .flatMap((p) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
const actions = (statements: Statement[]) => statements.flatMap((s) => [s.Action].flat()).sort();

describe('the SES event destination', () => {
  it('adds an SNS destination for bounces, complaints, deliveries, delays and rejects to a named set', () => {
    withExisting.resourceCountIs('AWS::SES::ConfigurationSet', 0);
    withExisting.hasResourceProperties('AWS::SES::ConfigurationSetEventDestination', {
      ConfigurationSetName: 'tracking',
      EventDestination: {
        Enabled: true,
        MatchingEventTypes: Match.arrayEquals(['bounce', 'complaint', 'delivery', 'deliveryDelay', 'reject']),
        SnsDestination: { TopicARN: Match.anyValue() },
      },
    });
  });

  it('creates a configuration set when none is named, and the dispatcher sends with it', () => {
    withCreated.resourceCountIs('AWS::SES::ConfigurationSet', 1);
    const setId = Object.keys(resourcesOf(withCreated, 'AWS::SES::ConfigurationSet'))[0] as string;
    const destination = { ConfigurationSetName: { Ref: setId } };
    withCreated.hasResourceProperties('AWS::SES::ConfigurationSetEventDestination', destination);
    const [, dispatch] = functionWith(withCreated, 'JOBS_QUEUE_URL') ?? [];
    expect(variablesOf(dispatch).SES_CONFIGURATION_SET).toEqual({ Ref: setId });
  });

  it('lets only SES, for this account and configuration set, publish to the event topic', () => {
    const allowed = Object.values(resourcesOf(withExisting, 'AWS::SNS::TopicPolicy'))
      .flatMap((p) => (p.Properties.PolicyDocument as { Statement: Array<Statement & { Effect: string }> }).Statement)
      .filter((s) => s.Effect === 'Allow');

    expect(allowed).toHaveLength(1);
    const fromAccount = { StringEquals: { 'AWS:SourceAccount': '111111111111' } };
    const ses = { Service: 'ses.amazonaws.com' };
    expect(allowed[0]).toMatchObject({ Action: 'sns:Publish', Principal: ses, Condition: fromAccount });
    expect(JSON.stringify(allowed[0]?.Condition)).toContain(':configuration-set/tracking');
  });

  it('has no SES event path in an SMTP-only deployment', () => {
    smtpOnly.resourceCountIs('AWS::SES::ConfigurationSetEventDestination', 0);
    expect(functionWith(smtpOnly, 'SES_EVENTS_TOPIC_ARN')).toBeUndefined();
  });
});

describe('the SES event consumer', () => {
  it('is subscribed to the event topic, with the topic and account it checks every notification against', () => {
    const [id, consumer] = functionWith(withExisting, 'SES_EVENTS_TOPIC_ARN') ?? [];
    const variables = variablesOf(consumer);
    expect(variables.ACCOUNT_ID).toBe('111111111111');
    withExisting.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'lambda',
      Endpoint: { 'Fn::GetAtt': [id, 'Arn'] },
      TopicArn: variables.SES_EVENTS_TOPIC_ARN,
      RedrivePolicy: Match.anyValue(),
    });
    expect(consumer?.Properties.DeadLetterConfig).toBeDefined();
  });

  it('may write suppressions, reputation and job status, publish events, read report keys, and nothing else', () => {
    const [, consumer] = functionWith(withExisting, 'SES_EVENTS_TOPIC_ARN') ?? [];
    const statements = statementsOfRole(withExisting, roleOf(consumer));

    expect(actions(statements)).toEqual(
      [
        // The store reads an entry before its conditional write: a repeat report counts, never duplicates.
        'dynamodb:GetItem',
        'dynamodb:PutItem',
        // The tenant's reputation: its window read at once, its counters added, a pause written.
        'dynamodb:BatchGetItem',
        'dynamodb:UpdateItem',
        // The job's status: a verified bounce or complaint marks it (one conditional update).
        'dynamodb:UpdateItem',
        'kms:Decrypt',
        'kms:GenerateDataKey',
        'logs:CreateLogStream',
        'logs:PutLogEvents',
        'secretsmanager:DescribeSecret',
        'secretsmanager:GetSecretValue',
        'sns:Publish',
        'sqs:SendMessage',
        'xray:PutTelemetryRecords',
        'xray:PutTraceSegments',
      ].sort(),
    );
    const secretStatement = statements.find((s) => [s.Action].flat().includes('secretsmanager:GetSecretValue'));
    expect(JSON.stringify(secretStatement?.Resource)).toContain('email-dispatch/report-keys');
    const put = statements.find((s) => [s.Action].flat().includes('dynamodb:PutItem'));
    expect(JSON.stringify(put?.Resource)).toContain('Suppression');
  });
});

describe('report keys', () => {
  it('are created as a retained secret with a random key k1 when none is named', () => {
    withCreated.hasResource('AWS::SecretsManager::Secret', {
      DeletionPolicy: 'Retain',
      Properties: {
        GenerateSecretString: {
          SecretStringTemplate: '{"current":"k1"}',
          GenerateStringKey: 'k1',
          PasswordLength: 64,
          ExcludePunctuation: true,
        },
      },
    });
  });

  it('are read by the dispatcher and the poller (GetItem only on the idempotency table), with the VERP domain', () => {
    const [, dispatch] = functionWith(withExisting, 'JOBS_QUEUE_URL') ?? [];
    const [, poller] = functionWith(withExisting, 'MAILBOXES') ?? [];
    const dispatchEnv = variablesOf(dispatch);
    const pollerEnv = variablesOf(poller);
    expect(JSON.stringify(dispatchEnv.REPORT_KEYS_SECRET_ID)).toContain('email-dispatch/report-keys');
    expect(pollerEnv.REPORT_KEYS_SECRET_ID).toEqual(dispatchEnv.REPORT_KEYS_SECRET_ID);
    expect(dispatchEnv.BOUNCE_DOMAIN).toBe('bounces.example.com');
    expect(pollerEnv.BOUNCE_DOMAIN).toBe('bounces.example.com');
    expect(pollerEnv.IDEMPOTENCY_TABLE).toBeDefined();
    const pollerStatements = statementsOfRole(withExisting, roleOf(poller));
    const onIdempotency = pollerStatements.filter((s) => JSON.stringify(s.Resource).includes('Idempotency'));
    expect(actions(onIdempotency)).toEqual(['dynamodb:GetItem']);
  });
});
