import { maskAddress } from './suppression.js';

/**
 * The status of one job, as producers ask for it: one item per job in the job status table, keyed by
 * `scopedJobKey(tenant, idempotencyKey)`, written at each transition by the dispatcher (held, claimed for a send,
 * deferred, delivered, rejected, failed), by the producer's cancel, and by the report side (bounced, complained).
 * Addresses are kept masked (`a***@example.com`), nothing else personal. The same item carries the cancel mark the
 * dispatcher's claim respects: both are conditional writes on it, so a cancel and a send cannot both win.
 */

/** States a job passes before it is done; `sending` is an attempt's claim, held until its lease ends. */
const PENDING_STATES = ['scheduled', 'sending', 'deferred'] as const;
/** States after which nothing is sent any more (a report may still turn `delivered` into bounced or complained). */
export const FINAL_STATES = ['delivered', 'rejected', 'failed', 'cancelled', 'bounced', 'complained'] as const;
const JobStates = [...PENDING_STATES, ...FINAL_STATES] as const;
export type JobState = (typeof JobStates)[number];

/** The furthest ahead `sendAt` may be: 72 hours, as the hosted APIs producers come from allow (see the README). */
export const MAX_SEND_AT_AHEAD_SECONDS = 72 * 3600;
/** How far past the limit a job is still taken at the dispatcher: clock skew and time spent in the queue. */
const SEND_AT_SLACK_SECONDS = 15 * 60;

/** How long a status record lives after its last write: the dispatcher's idempotency window (15 days). */
export const JOB_STATUS_TTL_SECONDS = 15 * 86_400;

/** Key and TTL attribute of the job status table (shared by its stores, the stack and the twin). */
export const JOB_STATUS_KEYS = { partitionKey: 'jobKey', ttlAttribute: 'expiresAt' } as const;

export type MaskedRecipient = { address: string; status: string; responseCode?: number };

/** What the dispatcher learned from its last attempt. */
type JobOutcomeFacts = {
  reason: string;
  detail?: string;
  messageId?: string;
  providerMessageId?: string;
  transport?: string;
  recipients: MaskedRecipient[];
};

/** The status record as stored and as `getStatus` answers it (times are ISO 8601). */
export type JobStatus = {
  idempotencyKey: string;
  tenant: string;
  state: JobState;
  updatedAt: string;
  /** When a scheduled job is due. */
  sendAt?: string;
  /** Attempts so far (receives that reached a send). */
  attempts?: number;
  /** While deferred: when the next attempt is due and why the last one did not deliver. */
  nextAttemptAt?: string;
  lastReason?: string;
  lastDetail?: string;
  /** Delivered, rejected or failed: the outcome, recipients masked. */
  outcome?: JobOutcomeFacts;
  cancelledAt?: string;
  /** A verified bounce or complaint about the delivered message. */
  report?: { kind: 'bounce' | 'complaint'; at: string; recipients: MaskedRecipient[] };
};

/** A DynamoDB attribute value, as far as the status item uses it (strings and numbers). */
type Attribute = { S?: string; N?: string };
export type StatusItem = Record<string, Attribute>;

const text = (item: StatusItem, name: string) => item[name]?.S;
const number = (item: StatusItem, name: string) => (item[name]?.N === undefined ? undefined : Number(item[name]?.N));
const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());
const json = <T>(item: StatusItem, name: string): T | undefined => {
  const value = text(item, name);
  if (value === undefined) return undefined;
  try {
    return JSON.parse(value) as T;
  } catch {
    return undefined;
  }
};

/** Reads a stored status item; undefined for an item that is not one (or has expired but not yet been deleted). */
export function fromStatusItem(
  item: StatusItem | undefined,
  job: { tenant: string; idempotencyKey: string },
  nowMs: number,
): JobStatus | undefined {
  if (!item) return undefined;
  const state = text(item, 'state') as JobState | undefined;
  if (!state || !(JobStates as readonly string[]).includes(state)) return undefined;
  const expiresAt = number(item, JOB_STATUS_KEYS.ttlAttribute);
  if (expiresAt !== undefined && expiresAt * 1000 < nowMs) return undefined;
  const deferral = json<{ reason?: string; detail?: string; nextAttemptAtMs?: number }>(item, 'deferral');
  const status: JobStatus = {
    ...job,
    state,
    updatedAt: iso(number(item, 'updatedAt')) ?? new Date(0).toISOString(),
    sendAt: text(item, 'sendAt'),
    attempts: number(item, 'attempts'),
    nextAttemptAt: state === 'deferred' ? iso(deferral?.nextAttemptAtMs) : undefined,
    lastReason: deferral?.reason,
    lastDetail: deferral?.detail,
    outcome: json<JobOutcomeFacts>(item, 'outcome'),
    cancelledAt: iso(number(item, 'cancelledAt')),
    report: json<JobStatus['report']>(item, 'report'),
  };
  return JSON.parse(JSON.stringify(status)) as JobStatus;
}

/** Recipients as the status record keeps them: masked, with their result. */
export const toMaskedRecipients = (
  recipients: Array<{ recipient: string; status: string; responseCode?: number }>,
): MaskedRecipient[] =>
  recipients.map((r) => ({ address: maskAddress(r.recipient), status: r.status, responseCode: r.responseCode }));

/** What a hold decides for a job: send now, wait until `untilMs`, or refuse a time beyond the limit. */
export type ScheduleDecision =
  | { action: 'send' }
  | { action: 'hold'; untilMs: number }
  | { action: 'refuse'; detail: string };

/**
 * Decides what to do with a job's `sendAt` at `nowMs`: a time reached or past sends now (never early: a wait of a
 * fraction of a second is held for a whole one, SQS's unit), a time beyond the limit (plus the slack for skew and queueing) is refused with the reason, anything else waits.
 */
export function decideSchedule(
  sendAt: string | undefined,
  nowMs: number,
  limitSeconds = MAX_SEND_AT_AHEAD_SECONDS,
  slackSeconds = SEND_AT_SLACK_SECONDS,
): ScheduleDecision {
  if (sendAt === undefined) return { action: 'send' };
  const untilMs = Date.parse(sendAt);
  if (!Number.isFinite(untilMs)) return { action: 'refuse', detail: 'sendAt: must be an ISO 8601 time with an offset' };
  if (untilMs - nowMs > (limitSeconds + slackSeconds) * 1000)
    return { action: 'refuse', detail: sendAtTooFar(limitSeconds) };
  if (untilMs <= nowMs) return { action: 'send' };
  return { action: 'hold', untilMs };
}

/** The reason a too distant `sendAt` is refused, in the words the producer library and the dispatcher both use. */
const sendAtTooFar = (limitSeconds = MAX_SEND_AT_AHEAD_SECONDS) =>
  `sendAt: must be at most ${limitSeconds / 3600} hours ahead; schedule later jobs closer to their time`;

/** Names a job: its tenant and its producer-assigned key (stored under `scopedJobKey(tenant, key)`). */
export type JobRef = { tenant: string; idempotencyKey: string };

/** A transition the dispatcher writes after an attempt (or instead of one). */
export type JobTransition =
  /** `attempts` is left as it was when not given (a hold spends none). */
  | { state: 'deferred'; attempts?: number; reason: string; detail?: string; nextAttemptAtMs: number }
  | { state: 'delivered' | 'rejected' | 'failed'; attempts?: number; outcome: JobOutcomeFacts };

/** The job status table as the dispatch path and the report side use it. */
export interface JobStatusStore {
  /** The current status (eventually consistent: one half read unit). */
  read(job: JobRef): Promise<JobStatus | undefined>;
  /** Marks a job scheduled (also one deferred: a hold handed back), unless it was cancelled (`cancelled`). */
  hold(job: JobRef, sendAt: string): Promise<'held' | 'cancelled'>;
  /**
   * An attempt's claim, before anything is sent: `sending` until `leaseUntilMs` (when the invocation has answered),
   * unless the job was cancelled (`cancelled`) or is already done (`final`: the idempotent send replays it).
   */
  claim(job: JobRef, leaseUntilMs: number, attempt: number): Promise<'claimed' | 'cancelled' | 'final'>;
  /** Writes what an attempt came to (details with addresses masked); a deferral never overwrites a final state. */
  record(job: JobRef, transition: JobTransition): Promise<void>;
  /** A verified bounce or complaint about the job's delivered message. */
  report(job: JobRef, kind: 'bounce' | 'complaint', recipients: MaskedRecipient[]): Promise<void>;
}
