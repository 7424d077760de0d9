import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AccountRootPrincipal, Role } from 'aws-cdk-lib/aws-iam';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmailDispatch } from '#infra/constructs/email-dispatch.js';
import { loadStackConfig } from '#infra/stack-config.js';

const context = {
  defaultFrom: 'noreply@example.com',
  transport: 'smtp',
  transports: 'smtp,ses',
  sesConfigurationSet: 'tracking',
  smtpHost: 'email-smtp.eu-west-1.amazonaws.com',
  smtpSecret: 'email-dispatch/smtp',
  mailboxes: [{ id: 'bounces', host: 'imap.example.com', secret: 'email-dispatch/imap' }],
};

let template: Template;
let outdir: string;

beforeAll(() => {
  outdir = mkdtempSync(join(tmpdir(), 'email-dispatch-cdk-'));
  const app = new App({ outdir, context });
  const stack = new Stack(app, 'Test', { env: { account: '111111111111', region: 'eu-west-1' } });
  const config = loadStackConfig({ tryGetContext: (key: string) => (context as Record<string, unknown>)[key] });
  const system = new EmailDispatch(stack, 'EmailDispatch', config);
  system.grantSend(new Role(stack, 'DefaultProducer', { assumedBy: new AccountRootPrincipal() }));
  // A producer granted as a tenant may control that tenant's jobs only.
  system.grantSend(new Role(stack, 'ShopProducer', { assumedBy: new AccountRootPrincipal() }), { tenant: 'shop' });
  template = Template.fromStack(stack);
}, 120_000);
afterAll(() => rmSync(outdir, { recursive: true, force: true }));

type Statement = { Action: string | string[]; Resource: unknown; Condition?: Record<string, Record<string, unknown>> };
/** The statements of the policy attached to the role whose logical id starts with `role`. */
const statementsOf = (role: string): Statement[] =>
  Object.values(template.findResources('AWS::IAM::Policy'))
    .filter((p) => JSON.stringify(p.Properties.Roles).includes(role))
    .flatMap((p) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
const onJobStatus = (s: Statement) => JSON.stringify(s.Resource).includes('JobStatus');
const actions = (statements: Statement[]) => statements.flatMap((s) => [s.Action].flat()).sort();

describe('the job status table', () => {
  it('keys items by the scoped job key, expires them, and keeps point-in-time recovery', () => {
    template.hasResourceProperties('AWS::DynamoDB::GlobalTable', {
      KeySchema: [{ AttributeName: 'jobKey', KeyType: 'HASH' }],
      TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
      Replicas: [Match.objectLike({ PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true } })],
    });
  });

  it('is named to the dispatcher and the poller, which may read and update it, and the report consumers only update', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Handler: Match.anyValue(),
      Environment: {
        Variables: Match.objectLike({ JOB_STATUS_TABLE: Match.anyValue(), JOBS_QUEUE_URL: Match.anyValue() }),
      },
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ JOB_STATUS_TABLE: Match.anyValue(), MAILBOXES: Match.anyValue() }) },
    });
    expect(actions(statementsOf('DispatchFunction').filter(onJobStatus))).toEqual([
      'dynamodb:GetItem',
      'dynamodb:UpdateItem',
    ]);
    expect(actions(statementsOf('PollerFunction').filter(onJobStatus))).toEqual(['dynamodb:UpdateItem']);
    expect(actions(statementsOf('SesEventsFunction').filter(onJobStatus))).toEqual(['dynamodb:UpdateItem']);
  });
});

describe('what a producer may do with its jobs', () => {
  it('reads and cancels the default tenant its own keys only: bare keys, never another tenant its', () => {
    const granted = statementsOf(`"Ref":"DefaultProducer`).filter(onJobStatus);
    expect(actions(granted)).toEqual(['dynamodb:GetItem', 'dynamodb:UpdateItem']);
    for (const s of granted)
      expect(s.Condition?.['ForAllValues:StringNotLike']).toEqual({ 'dynamodb:LeadingKeys': ['* *'] });
  });

  it('reads and cancels a named tenant its keys only, and writes only what a cancel writes', () => {
    const granted = statementsOf(`"Ref":"ShopProducer`).filter(onJobStatus);
    const update = granted.find((s) => [s.Action].flat().includes('dynamodb:UpdateItem'));
    expect(actions(granted)).toEqual(['dynamodb:GetItem', 'dynamodb:UpdateItem']);
    for (const s of granted)
      expect(s.Condition?.['ForAllValues:StringLike']).toEqual({ 'dynamodb:LeadingKeys': ['shop *'] });
    expect(update?.Condition?.['ForAllValues:StringEquals']).toEqual({
      'dynamodb:Attributes': ['jobKey', 'state', 'cancelledAt', 'updatedAt', 'expiresAt'],
    });
    expect(JSON.stringify(granted)).not.toContain('PutItem');
  });
});
