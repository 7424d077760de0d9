import type { SQSRecord } from 'aws-lambda';
import type { S3Reference } from '#core/email-job.js';
import { InvalidJobError } from '#core/errors.js';
import {
  attachmentsProblem,
  checkGroup,
  fromSystemSender,
  REDRIVEN_SENDER_ATTRIBUTE,
  referenceProblem,
  resolveTenant,
  TENANT_ATTRIBUTE,
  tenantsOf,
  toTenantDimension,
  type TenantDirectory,
  type TenantRefusal,
  type TenantResolution,
} from '#core/tenant-identity.js';

/** What the dispatcher needs to know a record's tenant and hold its job to the tenant's objects. */
export type TenantDeps = {
  directory: TenantDirectory;
  /** The deployment's bucket: a reference to any other is refused. */
  bucket?: string;
};

/**
 * The tenant step of the per-record flow: the record's tenant from its sender and its `tenant` attribute (before
 * anything of the job is read), the claim check and attachment references held to the tenant's prefix, and the
 * tenant as a metric dimension of bounded cardinality.
 */
export function createTenantStep(deps: TenantDeps) {
  const known = tenantsOf(deps.directory);
  return {
    resolve(record: SQSRecord): TenantResolution {
      const claimed = record.messageAttributes?.[TENANT_ATTRIBUTE]?.stringValue;
      const redriven = record.messageAttributes?.[REDRIVEN_SENDER_ATTRIBUTE]?.stringValue;
      const resolved = resolveTenant(deps.directory, record.attributes?.SenderId, claimed, redriven);
      return checkGroup(deps.directory, resolved, record.attributes?.MessageGroupId);
    },
    /** Whether the record was sent by a system principal (see fromSystemSender). */
    fromSystem(record: SQSRecord): boolean {
      const redriven = record.messageAttributes?.[REDRIVEN_SENDER_ATTRIBUTE]?.stringValue;
      return fromSystemSender(deps.directory, record.attributes?.SenderId, redriven);
    },
    /** Throws (as the claim-check loader must) when `tenant`'s job may not read the claim-checked object. */
    checkClaimCheck(ref: S3Reference, tenant: string): void {
      const problem = referenceProblem(ref, 'claimCheck', tenant, deps.bucket);
      if (problem) throw new InvalidJobError(problem.reason, problem.detail);
    },
    /** The first attachment reference `tenant`'s job may not use, or undefined. */
    checkAttachments(job: { attachments?: Array<{ s3?: S3Reference }> }, tenant: string): TenantRefusal | undefined {
      return attachmentsProblem(job, tenant, deps.bucket);
    },
    /** The tenant as a metric dimension: a configured name, or `other`. */
    dimension: (tenant: string) => toTenantDimension(known, tenant),
  };
}
