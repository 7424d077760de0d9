/**
 * Tenants: the producers (platform services) that share one deployment. Each job belongs to exactly one tenant; the
 * tenant scopes its idempotency keys, its S3 objects, its events, metrics and per-tenant suppressions, and its
 * reputation. A deployment with no tenants configured runs everything as the default tenant, as before tenants.
 */

/** The tenant of a producer granted without one, and of every job in a single-producer deployment. */
export const DEFAULT_TENANT = 'default';

/** Lowercase letters, digits and inner hyphens, 1–32 characters: fits S3 prefixes, metric dimensions, group ids. */
const TENANT_NAME = /^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$/;

export const isTenantName = (value: unknown): value is string => typeof value === 'string' && TENANT_NAME.test(value);

/**
 * The name a job's idempotency key is stored under. Keys cannot contain spaces (they are printable ASCII without
 * spaces) and neither can tenant names, so `tenant key` never equals another tenant's scoped key nor a bare key. The
 * default tenant keeps the bare key: records written before tenants existed stay valid.
 */
export const scopedJobKey = (tenant: string, idempotencyKey: string): string =>
  tenant === DEFAULT_TENANT ? idempotencyKey : `${tenant} ${idempotencyKey}`;

/** The tenant and key a scoped key was made from. */
export function unscopeJobKey(scoped: string): { tenant: string; idempotencyKey: string } {
  const space = scoped.indexOf(' ');
  return space < 0
    ? { tenant: DEFAULT_TENANT, idempotencyKey: scoped }
    : { tenant: scoped.slice(0, space), idempotencyKey: scoped.slice(space + 1) };
}

/** Where a tenant's objects (claim checks, attachments) live in the bucket; IAM and the dispatcher both hold to it. */
export const tenantObjectPrefix = (tenant: string): string => `tenants/${tenant}/`;
