import type { EmailJob, S3Reference } from './email-job.js';
import { DEFAULT_TENANT, isTenantName, tenantObjectPrefix } from './tenant.js';

/** The message attribute a job's tenant travels in (the producer library sets it, with MessageGroupId). */
export const TENANT_ATTRIBUTE = 'tenant';

/**
 * A job on the dispatch path, with the tenant its record was resolved to (never read from the job's body: the
 * schema has no such field, so a producer cannot set it).
 */
export type TenantJob = EmailJob & { tenant?: string };

/**
 * The message attribute a redrive puts the dead letter's own SenderId in: the principal that sent the message to the
 * dead-letter queue (the dispatcher, for a job it refused or gave up; the producer, for one SQS moved there itself).
 */
export const REDRIVEN_SENDER_ATTRIBUTE = 'redrivenSender';

/** A job's tenant; the default tenant's when none was resolved. */
export const tenantOf = (job: { tenant?: string }): string => job.tenant ?? DEFAULT_TENANT;

/** Metrics fold every tenant the deployment does not name into this value, so the dimension stays bounded. */
const OTHER_TENANT = 'other';

/**
 * Who may put jobs on the queue, and as which tenant: the unique ids of IAM principals (a role's `AROA…`, a user's
 * `AIDA…`) as SQS reports them in a message's SenderId, mapped to their tenant by the stack's `grantSend`. `system`
 * names principals that only re-send jobs already checked (the dispatcher itself, redrive roles): their messages
 * keep the tenant attribute they were checked with.
 */
export type TenantDirectory = {
  senders: ReadonlyMap<string, string>;
  system: ReadonlySet<string>;
};

/** Refused: the field that is wrong and why, in the dead letter's words. `tenant` is the sender's own, if known. */
export type TenantRefusal = { reason: string; detail: string; tenant?: string };

/**
 * The reasons a record is refused for who sent it or the tenant it claims. Such a dead letter holds a job no tenant
 * was ever established for: a redrive (a system sender, whose claims are trusted) must never move it, or it would go
 * out as the default tenant's (or the one its dead letter names) without its sender having been checked.
 */
export const SENDER_REFUSALS: ReadonlySet<string> = new Set([
  'invalid-tenant',
  'tenant-not-configured',
  'unknown-sender',
  'tenant-mismatch',
  'group-mismatch',
]);

/**
 * A resolved record, held to its message group: on the fair queue the group is the tenant whose share a message
 * counts against, so a producer queueing in another tenant's group (its backlog slowing that tenant's mail) or
 * spreading over many groups is refused. A record without a group passes (nothing to hold it to); so does any record
 * of a deployment without tenants.
 */
export function checkGroup(
  directory: TenantDirectory,
  resolution: TenantResolution,
  group: string | undefined,
): TenantResolution {
  if (!resolution.ok || group === undefined || directory.senders.size === 0 || group === resolution.tenant)
    return resolution;
  const field = 'attributes.MessageGroupId';
  const detail = `${field}: the message is in group "${group.slice(0, 40)}", not its tenant "${resolution.tenant}"`;
  return { ok: false, reason: 'group-mismatch', detail, tenant: resolution.tenant };
}

export type TenantResolution = { ok: true; tenant: string } | ({ ok: false } & TenantRefusal);

/** The tenants a deployment names (the default one included): the values a metric dimension may take. */
export const tenantsOf = (directory: TenantDirectory): Set<string> =>
  new Set([DEFAULT_TENANT, ...directory.senders.values()]);

/** A tenant as a metric dimension value: its name if the deployment names it, else `other`. */
export const toTenantDimension = (known: ReadonlySet<string>, tenant: string): string =>
  known.has(tenant) ? tenant : OTHER_TENANT;

const FIELD = `messageAttributes.${TENANT_ATTRIBUTE}`;

const principalOf = (id: string | undefined) => (id ?? '').split(':')[0] ?? '';

/** The principal a record is from: its sender, or the one a system sender relays (a redrive's `redrivenSender`). */
function senderOf(directory: TenantDirectory, senderId: string | undefined, redrivenSender: string | undefined) {
  const relayed = directory.system.has(principalOf(senderId)) && redrivenSender !== undefined;
  return { principal: principalOf(relayed ? redrivenSender : senderId), relayed };
}

/**
 * Whether a record comes from a system principal (the dispatcher itself, or a redrive of what it dead-lettered):
 * only those may carry what the dispatcher alone decides, such as a follow-up. True in a deployment without senders
 * configured (a single producer, trusted as a whole).
 */
export function fromSystemSender(
  directory: TenantDirectory,
  senderId: string | undefined,
  redrivenSender: string | undefined,
): boolean {
  return directory.senders.size === 0 || directory.system.has(senderOf(directory, senderId, redrivenSender).principal);
}

/**
 * The tenant of a queue message, from the principal that sent it (SQS's SenderId: `AROA…:<session>` for a role,
 * `AIDA…` for a user) and the tenant it claims (the `tenant` attribute; none means the default tenant). A producer's
 * claim must be the tenant its principal was granted; a system principal's is trusted as it stands, unless it relays
 * a dead letter's `redrivenSender`: then the claim is held to that sender (a message SQS moved to the dead-letter
 * queue without the handler ever checking it is still its producer's claim). Without any sender configured, every job
 * is the default tenant's, as in a single-producer deployment.
 */
export function resolveTenant(
  directory: TenantDirectory,
  senderId: string | undefined,
  claimed: string | undefined,
  redrivenSender?: string,
): TenantResolution {
  const claim = claimed === undefined || claimed === '' ? DEFAULT_TENANT : claimed;
  if (!isTenantName(claim)) {
    const detail = `${FIELD}: must be 1–32 of a-z 0-9 and inner hyphens, got "${String(claim).slice(0, 40)}"`;
    return { ok: false, reason: 'invalid-tenant', detail };
  }
  const known = tenantsOf(directory);
  if (directory.senders.size === 0) {
    return claim === DEFAULT_TENANT
      ? { ok: true, tenant: DEFAULT_TENANT }
      : { ok: false, reason: 'tenant-not-configured', detail: `${FIELD}: this deployment has no tenant "${claim}"` };
  }
  const { principal, relayed } = senderOf(directory, senderId, redrivenSender);
  if (directory.system.has(principal)) {
    return known.has(claim)
      ? { ok: true, tenant: claim }
      : { ok: false, reason: 'tenant-not-configured', detail: `${FIELD}: this deployment has no tenant "${claim}"` };
  }
  const granted = directory.senders.get(principal);
  if (granted === undefined) {
    const field = relayed ? `messageAttributes.${REDRIVEN_SENDER_ATTRIBUTE}` : 'attributes.SenderId';
    const detail = `${field}: principal "${principal.slice(0, 64)}" is not granted to send jobs (grantSend)`;
    return { ok: false, reason: 'unknown-sender', detail };
  }
  if (granted !== claim) {
    const detail = `${FIELD}: the message claims tenant "${claim}" but its sender is granted tenant "${granted}"`;
    return { ok: false, reason: 'tenant-mismatch', detail, tenant: granted };
  }
  return { ok: true, tenant: granted };
}

/**
 * Why an S3 reference may not be used by `tenant`'s job, or undefined: it must name the deployment's bucket and a
 * key under the tenant's prefix, with no empty, `.` or `..` segment (which some clients normalise away).
 * `field` is the reference's path in the job (`claimCheck`, `attachments.0.s3`).
 */
export function referenceProblem(
  ref: Pick<S3Reference, 'bucket' | 'key'>,
  field: string,
  tenant: string,
  bucket: string | undefined,
): TenantRefusal | undefined {
  if (bucket === undefined || ref.bucket !== bucket)
    return { reason: 'reference-outside-tenant', detail: `${field}.bucket: must be this deployment's bucket` };
  const prefix = tenantObjectPrefix(tenant);
  const segments = ref.key.split('/');
  if (!ref.key.startsWith(prefix) || segments.some((s) => s === '' || s === '.' || s === '..'))
    return { reason: 'reference-outside-tenant', detail: `${field}.key: must be an object under ${prefix}` };
  return undefined;
}

/** The first reference of a job's attachments its tenant may not use, or undefined. */
export function attachmentsProblem(
  job: { attachments?: Array<{ s3?: Pick<S3Reference, 'bucket' | 'key'> }> },
  tenant: string,
  bucket: string | undefined,
): TenantRefusal | undefined {
  for (const [index, attachment] of (job.attachments ?? []).entries()) {
    const problem = attachment.s3 && referenceProblem(attachment.s3, `attachments.${index}.s3`, tenant, bucket);
    if (problem) return problem;
  }
  return undefined;
}
