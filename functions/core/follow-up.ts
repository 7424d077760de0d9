import { createHmac } from 'node:crypto';
import { MAX_RECIPIENTS } from './email-job.js';
import { sameMac, type ReportKeyring } from './message-id.js';
import type { SendOutcome } from './send-outcome.js';

/**
 * Follow-ups: when a relay takes a message for some recipients and refuses others for now (a 4xx at RCPT TO, e.g.
 * `450 4.2.0 Greylisted`), the message went to the accepted ones and the others get the same message later, as an
 * MTA does: the job is put back on the queue as a follow-up that sends it (same headers, same Message-ID) with the
 * envelope restricted to those recipients, once, under a key of its own.
 *
 * The follow-up is the job's body as produced, with a message attribute naming its recipients by their place in the
 * job's recipient list (so it can only ever narrow the job's own recipients) and the attempts the job had spent,
 * signed for that job with the deployment's report keys (see `signFollowUp`).
 */
export const FOLLOW_UP_ATTRIBUTE = 'followUp';

export type FollowUp = {
  /** Attempts the job had spent when the follow-up was queued: the follow-up's attempts count on from there. */
  attempts: number;
  /** The recipients it is for, as positions in `listRecipients(job)`, ascending. */
  recipients: number[];
  /** The Date header of the job's message, epoch ms: the follow-up's message carries the same. */
  dateMs: number;
  /** A template job's: the template version the job was sent with, so the follow-up is rendered the same way. */
  templateVersion?: number;
};

/** The attribute's value: `<attempts>:<i>,<j>,…:<date, epoch ms>:<template version, or nothing>`. */
export const encodeFollowUp = (followUp: FollowUp): string =>
  [followUp.attempts, followUp.recipients.join(','), followUp.dateMs, followUp.templateVersion ?? ''].join(':');

/**
 * The attribute as queued: the value, signed with the deployment's report signing key over the job's tenant-scoped
 * key, `<value>:<key id>.<mac>`. Only the dispatcher holds the key, so no producer can make one, and a signed value
 * names its job, so it cannot be moved to another. Any listed verifying key checks it (keys can be rotated).
 */
export function signFollowUp(followUp: FollowUp, jobKey: string, keyring: ReportKeyring): string {
  const value = encodeFollowUp(followUp);
  return `${value}:${keyring.signing.id}.${followUpMac(keyring.signing, jobKey, value)}`;
}

/**
 * Checks a queued follow-up attribute against the job's tenant-scoped key: its value, or a problem naming why it is
 * refused (no keys to check it with, no signature, a key not held, a signature not of this job and value). The MAC
 * is compared in constant time.
 */
export function verifyFollowUp(
  signed: string,
  jobKey: string,
  keyring: ReportKeyring | undefined,
): { value: string } | { problem: string } {
  const problem = (why: string) => ({ problem: `${FOLLOW_UP_ATTRIBUTE}: ${why}` });
  if (!keyring) return problem('cannot be verified: this deployment has no report keys, so it queues no follow-ups');
  if (signed.length > MAX_VALUE_LENGTH + MAX_SIGNATURE_LENGTH) return problem('too long');
  const colon = signed.lastIndexOf(':');
  const match = SIGNATURE.exec(signed.slice(colon + 1));
  if (colon < 0 || !match) return problem('not signed by the dispatcher; a producer may not send this attribute');
  const [, keyId, mac] = match as unknown as [string, string, string];
  const key = keyring.verifying.find((k) => k.id === keyId);
  if (!key) return problem(`signed with key "${keyId}", which this deployment does not hold`);
  const value = signed.slice(0, colon);
  if (!sameMac(followUpMac(key, jobKey, value), mac))
    return problem('signature does not match this job and value; a producer may not send this attribute');
  return { value };
}

const MAX_VALUE_LENGTH = 16 + 8 * MAX_RECIPIENTS;
const SIGNATURE = /^([a-z0-9]{1,8})\.([A-Za-z0-9_-]{22})$/;
const MAX_SIGNATURE_LENGTH = 1 + 8 + 1 + 22;

/** 128 bits of HMAC-SHA256 over the purpose, key id, job key and value (JSON: no two inputs read the same). */
const followUpMac = (key: ReportKeyring['signing'], jobKey: string, value: string) =>
  createHmac('sha256', key.secret)
    .update(JSON.stringify(['email-dispatch/follow-up/v1', key.id, jobKey, value]))
    .digest()
    .subarray(0, 16)
    .toString('base64url');

const WHOLE = /^\d{1,6}$/;
const EPOCH_MS = /^\d{1,15}$/;

/**
 * Reads a follow-up attribute against the job's `recipientCount`: the follow-up, or a problem naming what is wrong
 * (every position a whole number naming one of the job's recipients, no repeats, at least one).
 */
export function decodeFollowUp(value: string, recipientCount: number): FollowUp | { problem: string } {
  const problem = (why: string) => ({ problem: `${FOLLOW_UP_ATTRIBUTE}: ${why}` });
  if (value.length > MAX_VALUE_LENGTH) return problem('too long');
  const [attempts = '', listed = '', date = '', version = '', ...rest] = value.split(':');
  if (!WHOLE.test(attempts) || Number(attempts) < 1)
    return problem('must start with the attempts spent, a whole number from 1, and a colon');
  const parts = listed.split(',');
  if (!parts.every((p) => WHOLE.test(p) && Number(p) < recipientCount))
    return problem(`must list recipients as positions from 0 to ${recipientCount - 1}`);
  const recipients = [...new Set(parts.map(Number))].sort((a, b) => a - b);
  if (recipients.length !== parts.length) return problem('names a recipient twice');
  if (!EPOCH_MS.test(date)) return problem("must give the message's date in epoch milliseconds");
  if (rest.length > 0 || (version !== '' && (!WHOLE.test(version) || Number(version) < 1)))
    return problem('must end with a template version (a whole number from 1) or nothing');
  const followUp = { attempts: Number(attempts), recipients, dateMs: Number(date) };
  return version === '' ? followUp : { ...followUp, templateVersion: Number(version) };
}

/**
 * The key a follow-up is sent under, from the job's key and the attempts spent when it was queued: one follow-up per
 * attempt that deferred recipients. `§` is no printable ASCII character, so no producer's key (nor a tenant's
 * scoped key) is ever one of these.
 */
export const followUpKey = (idempotencyKey: string, attempts: number): string =>
  `${idempotencyKey}§deferred-${attempts}`;

/** The follow-up an outcome calls for: the positions of its deferred recipients in `recipients`, if there are any. */
export function deferredRecipients(
  recipients: string[],
  outcome: Pick<SendOutcome, 'recipients' | 'dateMs'>,
  attempts: number,
  templateVersion?: number,
): FollowUp | undefined {
  const deferred = new Set(
    outcome.recipients.filter((r) => r.status === 'deferred').map((r) => r.recipient.toLowerCase()),
  );
  const positions = recipients.flatMap((r, index) => (deferred.has(r.toLowerCase()) ? [index] : []));
  if (positions.length === 0 || outcome.dateMs === undefined) return undefined;
  const followUp = { attempts, recipients: positions, dateMs: outcome.dateMs };
  return templateVersion ? { ...followUp, templateVersion } : followUp;
}
