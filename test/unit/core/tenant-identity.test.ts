import { describe, expect, it } from 'vitest';
import {
  attachmentsProblem,
  checkGroup,
  referenceProblem,
  resolveTenant,
  tenantsOf,
  toTenantDimension,
  type TenantDirectory,
} from '#core/tenant-identity.js';

const directory: TenantDirectory = {
  senders: new Map([
    ['AROASHOP', 'shop'],
    ['AROACRM', 'crm'],
    ['AIDALEGACY', 'default'],
  ]),
  system: new Set(['AROADISPATCH', 'AROAOPS']),
};
const none: TenantDirectory = { senders: new Map(), system: new Set() };

describe('resolving a message to its tenant', () => {
  it("accepts a producer's own tenant, from an assumed role's session or a user", () => {
    expect(resolveTenant(directory, 'AROASHOP:i-0abc', 'shop')).toEqual({ ok: true, tenant: 'shop' });
    expect(resolveTenant(directory, 'AIDALEGACY', undefined)).toEqual({ ok: true, tenant: 'default' });
  });

  it("refuses a tenant the sender was not granted, naming the attribute and keeping the sender's own", () => {
    expect(resolveTenant(directory, 'AROACRM:job', 'shop')).toMatchObject({
      ok: false,
      reason: 'tenant-mismatch',
      tenant: 'crm',
      detail: expect.stringMatching(/^messageAttributes\.tenant: /),
    });
    // No attribute is the default tenant, which the shop's role was not granted either.
    expect(resolveTenant(directory, 'AROASHOP:x', undefined)).toMatchObject({ ok: false, reason: 'tenant-mismatch' });
  });

  it('refuses senders granted nothing, and tenant names no prefix could hold', () => {
    expect(resolveTenant(directory, 'AROASTRANGER:x', 'shop')).toMatchObject({
      ok: false,
      reason: 'unknown-sender',
      detail: expect.stringMatching(/^attributes\.SenderId: /),
    });
    expect(resolveTenant(directory, 'AROASHOP:x', '../crm')).toMatchObject({ ok: false, reason: 'invalid-tenant' });
  });

  it("trusts the system's own re-sends with the tenant they carry, but only a tenant the deployment has", () => {
    expect(resolveTenant(directory, 'AROADISPATCH:send-email', 'crm')).toEqual({ ok: true, tenant: 'crm' });
    expect(resolveTenant(directory, 'AROADISPATCH:send-email', 'nobody')).toMatchObject({
      ok: false,
      reason: 'tenant-not-configured',
    });
  });

  it("holds a redriven dead letter's claim to the principal that put it in the dead-letter queue", () => {
    // Written by the dispatcher (a system sender): the tenant it checked stands.
    expect(resolveTenant(directory, 'AROAOPS:redrive', 'crm', 'AROADISPATCH:send-email')).toEqual({
      ok: true,
      tenant: 'crm',
    });
    // Moved there by SQS as the producer sent it: the producer's claim is checked as on its first receive.
    expect(resolveTenant(directory, 'AROAOPS:redrive', 'shop', 'AROACRM:job')).toMatchObject({
      ok: false,
      reason: 'tenant-mismatch',
      tenant: 'crm',
    });
    // Moved there by SQS from a principal granted nothing: refused, naming the relayed sender.
    expect(resolveTenant(directory, 'AROAOPS:redrive', 'shop', 'AROASTRANGER:x')).toMatchObject({
      ok: false,
      reason: 'unknown-sender',
      detail: expect.stringMatching(/^messageAttributes\.redrivenSender: principal "AROASTRANGER"/),
    });
    // Only a system sender relays: a producer naming a system principal as its redriven sender gains nothing.
    expect(resolveTenant(directory, 'AROACRM:job', 'shop', 'AROADISPATCH:send-email')).toMatchObject({
      ok: false,
      reason: 'tenant-mismatch',
    });
  });

  it("holds a resolved record to its message group when it has one, keeping the sender's tenant", () => {
    const shop = resolveTenant(directory, 'AROASHOP:x', 'shop');
    expect(checkGroup(directory, shop, 'shop')).toEqual(shop);
    expect(checkGroup(directory, shop, undefined)).toEqual(shop);
    expect(checkGroup(directory, shop, 'crm')).toMatchObject({
      ok: false,
      reason: 'group-mismatch',
      tenant: 'shop',
      detail: expect.stringMatching(/^attributes\.MessageGroupId: /),
    });
    // Without tenants, the group is nobody's business.
    expect(checkGroup(none, { ok: true, tenant: 'default' }, 'anything')).toEqual({ ok: true, tenant: 'default' });
  });

  it('runs everything as the default tenant when no tenant is configured, and refuses any other claim', () => {
    expect(resolveTenant(none, 'anyone', undefined)).toEqual({ ok: true, tenant: 'default' });
    expect(resolveTenant(none, 'anyone', 'default')).toEqual({ ok: true, tenant: 'default' });
    expect(resolveTenant(none, 'anyone', 'shop')).toMatchObject({ ok: false, reason: 'tenant-not-configured' });
  });
});

describe("holding references to the tenant's objects", () => {
  const ref = (key: string, bucket = 'dispatch-bucket') => ({ bucket, key });

  it("accepts the tenant's own prefix in the deployment's bucket", () => {
    expect(referenceProblem(ref('tenants/shop/jobs/1/job.json'), 'claimCheck', 'shop', 'dispatch-bucket')).toBe(
      undefined,
    );
  });

  it('refuses another prefix, another bucket, and keys that a client could normalise into another prefix', () => {
    const refused = (r: { bucket: string; key: string }) =>
      referenceProblem(r, 'claimCheck', 'shop', 'dispatch-bucket');
    expect(refused(ref('tenants/crm/jobs/1/job.json'))).toEqual({
      reason: 'reference-outside-tenant',
      detail: 'claimCheck.key: must be an object under tenants/shop/',
    });
    expect(refused(ref('tenants/shop/jobs/1', 'other-bucket'))?.detail).toMatch(/^claimCheck\.bucket: /);
    for (const key of ['tenants/shop/../crm/x', 'tenants/shop//x', 'tenants/shop/./x', 'tenants/shopping/x'])
      expect(refused(ref(key))?.reason).toBe('reference-outside-tenant');
  });

  it('names the first attachment that is outside', () => {
    const job = { attachments: [{}, { s3: ref('tenants/shop/a') }, { s3: ref('tenants/crm/b') }] };
    expect(attachmentsProblem(job, 'shop', 'dispatch-bucket')?.detail).toMatch(/^attachments\.2\.s3\.key: /);
  });
});

describe('the tenant dimension', () => {
  it('keeps configured names and folds anything else into "other"', () => {
    const known = tenantsOf(directory);
    expect(['shop', 'crm', 'default', 'stranger'].map((t) => toTenantDimension(known, t))).toEqual([
      'shop',
      'crm',
      'default',
      'other',
    ]);
  });
});
