import { describe, expect, it } from 'vitest';
import { InvalidJobError } from '#core/errors.js';
import { createTenantStep } from '#handlers/tenant-step.js';
import { toSqsRecord } from '#local/event-source.js';

const step = createTenantStep({
  directory: { senders: new Map([['AROASHOP', 'shop']]), system: new Set(['AROADISPATCH']) },
  bucket: 'dispatch-bucket',
});

/** A record as Lambda delivers it, from `sender`, claiming `tenant` (none: no attribute). */
const recordFrom = (sender: string, tenant?: string) =>
  toSqsRecord(
    {
      MessageId: 'm-1',
      Body: '{}',
      Attributes: { SenderId: sender },
      MessageAttributes: tenant ? { tenant: { DataType: 'String', StringValue: tenant } } : undefined,
    },
    'arn:aws:sqs:eu-west-1:111111111111:jobs',
  );

describe('the tenant step', () => {
  it("reads the tenant from the record's sender and its tenant attribute", () => {
    expect(step.resolve(recordFrom('AROASHOP:task-1', 'shop'))).toEqual({ ok: true, tenant: 'shop' });
    expect(step.resolve(recordFrom('AROADISPATCH:send-email', 'shop'))).toEqual({ ok: true, tenant: 'shop' });
    expect(step.resolve(recordFrom('AROASHOP:task-1'))).toMatchObject({ ok: false, reason: 'tenant-mismatch' });
  });

  it("throws for a claim check outside the tenant's prefix, as the claim-check loader must", () => {
    const outside = { bucket: 'dispatch-bucket', key: 'tenants/crm/jobs/1/job.json', size: 1, sha256: 'x' };
    const thrown = (() => {
      try {
        step.checkClaimCheck(outside, 'shop');
      } catch (error) {
        return error;
      }
    })();
    expect(thrown).toBeInstanceOf(InvalidJobError);
    expect(thrown).toMatchObject({
      reason: 'reference-outside-tenant',
      message: expect.stringMatching(/^claimCheck\.key/),
    });
    expect(() => step.checkClaimCheck({ ...outside, key: 'tenants/shop/jobs/1/job.json' }, 'shop')).not.toThrow();
  });

  it('gives metrics a bounded tenant dimension', () => {
    expect(['shop', 'default', 'crm'].map(step.dimension)).toEqual(['shop', 'default', 'other']);
  });
});
