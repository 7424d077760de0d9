import { describe, expect, it } from 'vitest';
import { loadDispatchConfig } from '#functions/config.js';

const base = {
  JOBS_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/1/jobs',
  DEAD_LETTER_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/1/dlq',
  IDEMPOTENCY_TABLE: 'idem',
  SUPPRESSION_TABLE: 'supp',
  EVENTS_TOPIC_ARN: 'arn:aws:sns:eu-west-1:1:events',
  DEFAULT_FROM: 'noreply@example.com',
  SMTP_HOST: 'smtp.example.com',
};

describe('the tenant configuration', () => {
  it('has no tenants by default', () => {
    const { tenants } = loadDispatchConfig(base);
    expect(tenants.senders.size).toBe(0);
    expect(tenants.system.size).toBe(0);
  });

  it('reads the senders of each tenant and the system senders', () => {
    const { tenants } = loadDispatchConfig({
      ...base,
      TENANT_SENDERS: '{"AROASHOP1": "shop", "AIDACRM1": "crm"}',
      SYSTEM_SENDERS: 'AROADISPATCH1, AROAOPERATOR1',
    });
    expect([...tenants.senders]).toEqual([
      ['AROASHOP1', 'shop'],
      ['AIDACRM1', 'crm'],
    ]);
    expect([...tenants.system]).toEqual(['AROADISPATCH1', 'AROAOPERATOR1']);
  });

  it('names every problem: bad JSON, bad tenant names, a principal that is both a tenant and the system', () => {
    expect(() => loadDispatchConfig({ ...base, TENANT_SENDERS: '["AROA1"]' })).toThrow(
      /TENANT_SENDERS must be a JSON object/,
    );
    const run = () =>
      loadDispatchConfig({
        ...base,
        TENANT_SENDERS: '{"AROASHOP1": "Shop!", "AROA2": "crm"}',
        SYSTEM_SENDERS: 'AROA2,bad id',
      });
    expect(run).toThrow(/TENANT_SENDERS: tenant of AROASHOP1 must be/);
    expect(run).toThrow(/SYSTEM_SENDERS: "bad id" is not an IAM unique id/);
    expect(run).toThrow(/SYSTEM_SENDERS: AROA2 is also a tenant's sender/);
  });
});
