import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AccountRootPrincipal, Role } from 'aws-cdk-lib/aws-iam';
import { Queue } from 'aws-cdk-lib/aws-sqs';
import { beforeAll, describe, expect, it } from 'vitest';
import { EmailDispatchStack } from '#infra/email-dispatch-stack.js';
import { loadStackConfig } from '#infra/stack-config.js';

const context = { defaultFrom: 'noreply@example.com', transport: 'ses', transports: 'ses' };
const config = loadStackConfig({ tryGetContext: (key: string) => (context as Record<string, unknown>)[key] });

type Statement = { Action: string | string[]; Resource: unknown; Effect: string };
type Resource = { Properties: Record<string, unknown> };

let template: Template;

/** A stack with two producers of different tenants, an operator who may redrive, and one tenant's event queue. */
function synth() {
  const app = new App({ outdir: mkdtempSync(join(tmpdir(), 'email-dispatch-cdk-tenants-')), context });
  const stack = new EmailDispatchStack(app, 'Tenants', config, {
    env: { account: '111111111111', region: 'eu-west-1' },
  });
  const role = (id: string) => new Role(stack, id, { assumedBy: new AccountRootPrincipal() });
  stack.system.grantSend(role('ShopProducer'), { tenant: 'shop' });
  stack.system.grantSend(role('CrmProducer'), { tenant: 'crm' });
  stack.system.grantRedrive(role('Operator'));
  stack.system.subscribeTenant(new Queue(stack, 'ShopEvents'), 'shop');
  return { app, stack };
}

beforeAll(() => {
  const { app, stack } = synth();
  app.synth();
  template = Template.fromStack(stack);
}, 240_000);

const resourcesOf = (type: string) => template.findResources(type) as Record<string, Resource>;
const logicalIdOf = (prefix: string) => Object.keys(resourcesOf('AWS::IAM::Role')).find((id) => id.startsWith(prefix));
const statementsOf = (roleId: string | undefined) =>
  Object.values(resourcesOf('AWS::IAM::Policy'))
    .filter((p) => JSON.stringify(p.Properties.Roles) === JSON.stringify([{ Ref: roleId }]))
    .flatMap((p) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
const actionsOf = (s: Statement) => [s.Action].flat();
const dispatcher = () =>
  Object.values(resourcesOf('AWS::Lambda::Function')).find(
    (f) => 'TENANT_SENDERS' in ((f.Properties.Environment as { Variables: object } | undefined)?.Variables ?? {}),
  );

describe('producers as tenants', () => {
  it("lets each producer put objects only under its own tenant's prefix", () => {
    const shop = statementsOf(logicalIdOf('ShopProducer'));
    const puts = shop.filter((s) => actionsOf(s).includes('s3:PutObject'));
    expect(puts).toHaveLength(1);
    expect(JSON.stringify(puts[0]?.Resource)).toContain('/tenants/shop/*');
    expect(JSON.stringify(shop)).not.toContain('tenants/crm');
    expect(JSON.stringify(shop)).not.toMatch(/\/(jobs|attachments|tenants)\/\*"/);
    expect(shop.some((s) => actionsOf(s).includes('sqs:SendMessage'))).toBe(true);
    expect(JSON.stringify(statementsOf(logicalIdOf('CrmProducer')))).toContain('/tenants/crm/*');
  });

  it("tells the dispatcher each producer's role id and tenant, and which roles re-send checked jobs", () => {
    const variables = (dispatcher()?.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
    const senders = JSON.stringify(variables.TENANT_SENDERS);
    // The role ids are known only at deploy time: the template joins them into the JSON.
    for (const role of ['ShopProducer', 'CrmProducer']) {
      expect(senders).toContain(`"Fn::GetAtt":["${logicalIdOf(role)}","RoleId"]`);
    }
    expect(senders).toContain('\\":\\"shop\\"');
    expect(senders).toContain('\\":\\"crm\\"');
    const system = JSON.stringify(variables.SYSTEM_SENDERS);
    expect(system).toContain(`"Fn::GetAtt":["${logicalIdOf('Operator')}","RoleId"]`);
    const ownRole = (dispatcher()?.Properties.Role as { 'Fn::GetAtt': [string] })['Fn::GetAtt'][0];
    expect(system).toContain(`"Fn::GetAtt":["${ownRole}","RoleId"]`);
  });

  it("lets the dispatcher read tenants' objects and nothing else in the bucket", () => {
    const ownRole = (dispatcher()?.Properties.Role as { 'Fn::GetAtt': [string] })['Fn::GetAtt'][0];
    const reads = statementsOf(ownRole).filter((s) => actionsOf(s).includes('s3:GetObject'));
    expect(reads).toHaveLength(1);
    expect(JSON.stringify(reads[0]?.Resource)).toContain('/tenants/*');
    expect(JSON.stringify(reads[0]?.Resource)).not.toMatch(/\/(jobs|attachments)\//);
  });

  it('alarms when jobs are refused for their tenant', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'TenantRefused', Threshold: 1 });
  });

  it("subscribes a tenant's queue to its own events only", () => {
    template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'sqs', FilterPolicy: { tenant: ['shop'] } });
  });

  it('refuses a role granted both to send as a tenant and to redrive, in either order', () => {
    const { stack } = synth();
    const shop = stack.node.findChild('ShopProducer') as Role;
    const operator = stack.node.findChild('Operator') as Role;
    expect(() => stack.system.grantRedrive(shop)).toThrow(/cannot also redrive/);
    expect(() => stack.system.grantSend(operator, { tenant: 'ops' })).toThrow(/cannot also redrive/);
  });

  it('refuses a producer whose unique id it cannot know once tenants are in use', () => {
    const { app, stack } = synth();
    stack.system.grantSend(Role.fromRoleArn(stack, 'Imported', 'arn:aws:iam::111111111111:role/legacy'), {
      tenant: 'legacy',
    });
    expect(() => app.synth()).toThrow(/pass \{ principalId \}/);
  });
});
