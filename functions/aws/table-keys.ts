import { JOB_STATUS_KEYS } from '#core/job-status.js';

/** Key and TTL attribute names of the tables, shared by the stores, the CDK stack and the local twin. */
export const TableKeys = {
  idempotency: { partitionKey: 'id', ttlAttribute: 'expiration' },
  suppression: { partitionKey: 'addressHash', ttlAttribute: 'expiresAt' },
  mailboxState: { partitionKey: 'pk', ttlAttribute: 'expiresAt' },
  /** One item per transport: its circuit breaker. */
  transportState: { partitionKey: 'transport' },
  /** Per tenant: reputation counters by time bucket, and the tenant's standing (paused or not). */
  tenantState: { partitionKey: 'pk', ttlAttribute: 'expiresAt' },
  /** One item per job: its status and cancel mark (see core/job-status). */
  jobStatus: JOB_STATUS_KEYS,
} as const;
