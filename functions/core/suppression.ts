import { createEvent, EventTypes, type DispatchEvent } from './events.js';
import { hashAddress } from './message-id.js';
import { DEFAULT_TENANT } from './tenant.js';

/**
 * Where a suppression applies: `global` (every tenant's mail) or one tenant's (`tenant:<name>`). A dead address is
 * dead for everyone; a complaint or an unsubscribe is about one sender's mail, so it stops only that tenant's.
 */
type SuppressionScope = 'global' | `tenant:${string}`;

/** Reasons that suppress for every tenant, whoever's mail reported them (but see TENANT_READABLE). */
const GLOBAL_REASONS: readonly string[] = ['hard-bounce'];

/**
 * How a report may be tied to a job by a token its tenant can read: the signed Message-ID is in the job's outcome
 * event, and it and the VERP address (the Return-Path) are in the mail its recipients get. A tenant can forge a report
 * with them about its own job's recipients, so such a report stops only that tenant's mail, whatever its reason: it
 * must never stop another tenant's. An SES event (`tag`) comes from SES itself.
 */
const TENANT_READABLE: readonly unknown[] = ['message-id', 'envelope'];

/**
 * The scope of a request: its tenant's, unless its reason is global (and its report no tenant's to forge). The
 * default tenant's entries are global, as every entry was before tenants: a single-producer deployment (all of whose
 * jobs are the default tenant's) checks, lists and removes them as it always did.
 */
export const scopeOf = (request: { reason: string; tenant?: string; verified?: string | boolean }): SuppressionScope =>
  request.tenant === undefined ||
  request.tenant === DEFAULT_TENANT ||
  (GLOBAL_REASONS.includes(request.reason) && !TENANT_READABLE.includes(request.verified))
    ? 'global'
    : `tenant:${request.tenant}`;

/**
 * Reasons that suppress for good unless a request says otherwise; any other reason expires. An unsubscribe is one:
 * an opt-out that lapsed would mail someone who asked not to be mailed.
 */
const PERMANENT_REASONS: readonly string[] = ['hard-bounce', 'complaint', 'unsubscribe', 'manual'];

/** How long a suppression for a non-permanent reason lasts when its request names no expiry. @default 30 days */
export const DEFAULT_SUPPRESSION_TTL_DAYS = 30;

/** What a report or an operator asks to suppress. The store accepts any `reason` string. */
export type SuppressionRequest = {
  address: string;
  reason: string;
  /** What put it there: which report (`dsn:<mailbox/uid>`, `ses:<message id>`) or `operator:<name>`. */
  source: string;
  /** RFC 3463 status of the bounce, when there is one. */
  status?: string;
  /** Overrides the reason's default (hard bounces, complaints and manual entries are permanent). */
  permanent?: boolean;
  /** A short explanation (diagnostic code, feedback type, operator's note). */
  detail?: string;
  /** How the report was tied to mail we sent (`message-id-token`, `verp`, `ses-tags`); absent for operators. */
  verified?: string | boolean;
  /** An explicit expiry (ISO 8601), for non-permanent entries. @default now + the store's TTL */
  expiresAt?: string;
  /**
   * The tenant whose mail the report was about (or the operator names): the entry stops only that tenant's mail,
   * except for reasons that are global (hard bounces). @default none: global
   */
  tenant?: string;
};

/** One entry of the suppression list as stored: no plain address, only its hash and a masked form for people. */
export type SuppressionRecord = {
  addressHash: string;
  /** `a***@example.com`: enough for a person to recognise the address, not enough to harvest it. */
  maskedAddress: string;
  scope: SuppressionScope;
  reason: string;
  source: string;
  status?: string;
  detail?: string;
  verified?: string | boolean;
  permanent: boolean;
  /** ISO 8601 of the first report (of the current, unexpired entry). */
  firstSeen: string;
  /** ISO 8601 of the latest report. */
  lastSeen: string;
  /** Reports seen for this address since firstSeen. */
  count: number;
  /** Epoch seconds after which the entry no longer suppresses (also the table's TTL attribute). */
  expiresAt?: number;
};

/** The suppression list an operator manages, and the poller and SES events feed. */
export interface SuppressionStore {
  /**
   * Returns the suppressed ones among `addresses` for mail of `tenant` (global entries and the tenant's own),
   * lowercased; expired entries never count. Without a tenant, global entries only. Given up (rejecting) once
   * `signal` aborts.
   */
  findSuppressed(addresses: string[], tenant?: string, signal?: AbortSignal): Promise<Set<string>>;
  /** Adds or refreshes an entry; `created` is true when the address was not (or no longer) suppressed. */
  suppress(request: SuppressionRequest, now?: Date): Promise<{ created: boolean; record: SuppressionRecord }>;
  /** The live entry for an address that stops `tenant`'s mail (its own first, else the global one), if any. */
  check(address: string, now?: Date, tenant?: string): Promise<SuppressionRecord | undefined>;
  /** Live entries of every scope, most recently seen first. */
  list(options?: { limit?: number; now?: Date }): Promise<SuppressionRecord[]>;
  /** Deletes the entry for an address or an address hash, in its scope; resolves with what was there. */
  remove(target: SuppressionTarget): Promise<SuppressionRecord | undefined>;
}

/**
 * An entry is named by its address or, where only the stored form is at hand (a list), by its hash; and by its
 * tenant for a tenant's entry (none names the global one).
 */
export type SuppressionTarget = ({ address: string } | { addressHash: string }) & { tenant?: string };

export const hashOfTarget = (target: SuppressionTarget) =>
  'address' in target ? hashAddress(target.address) : target.addressHash.toLowerCase();

/** `alice@example.com` → `a***@example.com`. */
export function maskAddress(address: string): string {
  const at = address.lastIndexOf('@');
  if (at < 1) return '***';
  return `${address.slice(0, 1).toLowerCase()}***${address.slice(at).toLowerCase()}`;
}

/** Whether an entry still suppresses at `now` (DynamoDB deletes expired items only eventually, so reads check). */
export const isActive = (record: Pick<SuppressionRecord, 'expiresAt'>, now: Date) =>
  record.expiresAt === undefined || record.expiresAt * 1000 > now.getTime();

/**
 * The entry after a new report: a first report (or one after the old entry expired) starts an entry; a repeat
 * counts, moves lastSeen, takes the latest reason and source, and never turns a permanent entry into an expiring one.
 */
export function mergeSuppression(
  existing: SuppressionRecord | undefined,
  request: SuppressionRequest,
  now: Date,
  ttlDays = DEFAULT_SUPPRESSION_TTL_DAYS,
): { created: boolean; record: SuppressionRecord } {
  const live = existing && isActive(existing, now) ? existing : undefined;
  const permanent = (request.permanent ?? PERMANENT_REASONS.includes(request.reason)) || (live?.permanent ?? false);
  const requested = request.expiresAt
    ? Math.floor(Date.parse(request.expiresAt) / 1000)
    : Math.floor(now.getTime() / 1000) + Math.round(ttlDays * 86_400);
  const expiresAt = permanent ? undefined : Math.max(requested, live?.expiresAt ?? 0);
  const at = now.toISOString();
  return {
    created: !live,
    record: {
      addressHash: hashAddress(request.address),
      maskedAddress: maskAddress(request.address.trim()),
      scope: scopeOf(request),
      reason: request.reason,
      source: request.source,
      status: request.status,
      detail: request.detail,
      verified: request.verified,
      permanent,
      firstSeen: live?.firstSeen ?? at,
      lastSeen: at,
      count: (live?.count ?? 0) + 1,
      expiresAt,
    },
  };
}

/** Why a request to change the suppression list is refused (a bad address, an unknown entry). Not retryable. */
export class SuppressionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SuppressionError';
  }
}

/**
 * Removes an entry on an operator's request: the removal is logged (masked address, never the plain one) and
 * published as `suppression.removed`, so that whoever watches the list sees who took what off it.
 */
export async function removeSuppression(
  deps: {
    store: SuppressionStore;
    publish: (event: DispatchEvent) => Promise<void>;
    log: (message: string, facts: Record<string, unknown>) => void;
  },
  target: SuppressionTarget,
  removedBy: string,
): Promise<SuppressionRecord> {
  const removed = await deps.store.remove(target);
  if (!removed)
    throw new SuppressionError(
      `${'address' in target ? maskAddress(target.address) : target.addressHash} is not on the suppression list`,
    );
  const facts = {
    addressHash: removed.addressHash,
    maskedAddress: removed.maskedAddress,
    reason: removed.reason,
    source: removed.source,
    scope: removed.scope,
    removedBy,
  };
  deps.log('suppression removed', facts);
  await deps.publish(createEvent(EventTypes.suppressionRemoved, facts));
  return removed;
}
