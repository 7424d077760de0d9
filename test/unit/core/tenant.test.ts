import { describe, expect, it } from 'vitest';
import { DEFAULT_TENANT, isTenantName, scopedJobKey, tenantObjectPrefix, unscopeJobKey } from '#core/tenant.js';

describe('tenant names and scoped keys', () => {
  it('accepts short lowercase names and refuses anything a prefix or dimension could not hold', () => {
    expect(['a', 'billing', 'team-7', 'x'.repeat(32)].every(isTenantName)).toBe(true);
    expect(['', '-a', 'a-', 'A', 'a_b', 'a/b', 'a b', 'x'.repeat(33), 7].some(isTenantName)).toBe(false);
  });

  it('keeps the default tenant on bare keys and never lets two tenants share a stored key', () => {
    expect(scopedJobKey(DEFAULT_TENANT, 'order-4711')).toBe('order-4711');
    const billing = scopedJobKey('billing', 'order-4711');
    const shop = scopedJobKey('shop', 'order-4711');
    expect(new Set([billing, shop, 'order-4711']).size).toBe(3);
    expect(unscopeJobKey(billing)).toEqual({ tenant: 'billing', idempotencyKey: 'order-4711' });
    expect(unscopeJobKey('order-4711')).toEqual({ tenant: DEFAULT_TENANT, idempotencyKey: 'order-4711' });
  });

  it('gives each tenant its own object prefix', () => {
    expect(tenantObjectPrefix('billing')).toBe('tenants/billing/');
  });
});
