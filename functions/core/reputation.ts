import { DEFAULT_TENANT } from './tenant.js';
import { createEvent, EventTypes } from './events.js';
import { hashAddress } from './message-id.js';

/**
 * The reputation guardrail: each tenant's hard-bounce and complaint rates over a sliding window, counted per
 * recipient as SES counts them, and the decision to pause that tenant alone before SES reviews or pauses the account.
 */

/** What a tenant's mail did in a stretch of time: recipients sent to, how many hard-bounced or complained. */
export type ReputationCounts = { sent: number; bounces: number; complaints: number };

export const NO_COUNTS: ReputationCounts = { sent: 0, bounces: 0, complaints: 0 };

/**
 * When a tenant is paused. SES reviews an account at a 5 % bounce or 0.1 % complaint rate and may pause it at 10 % or
 * 0.5 % (SES Developer Guide, "Reputation metrics messages"); one tenant is stopped before the account gets there.
 */
export type ReputationPolicy = {
  /** Pause at or above this share of recipients hard-bounced. @default 0.04 */
  maxBounceRate: number;
  /** Pause at or above this share of recipients complaining. @default 0.0008 */
  maxComplaintRate: number;
  /** No rate is acted on below this many recipients in the window: one bounce in three pauses nobody. @default 500 */
  minRecipients: number;
  /**
   * No limit is acted on below this many addresses bounced (or complained): one recipient of a small tenant's mail
   * cannot stop all of it with one report (one complaint in 1,000 is over the 0.08 % limit). @default 3
   */
  minReports: number;
  /** The sliding window, seconds. @default 86400 (24 h) */
  windowSeconds: number;
  /** The window is counted in buckets of this size, seconds (one counter item each). @default 3600 */
  bucketSeconds: number;
};

export const DEFAULT_REPUTATION_POLICY: ReputationPolicy = {
  maxBounceRate: 0.04,
  maxComplaintRate: 0.0008,
  minRecipients: 500,
  minReports: 3,
  windowSeconds: 86_400,
  bucketSeconds: 3600,
};

/** Lists every problem with a policy (empty when valid), naming the field. */
export function reputationPolicyProblems(policy: ReputationPolicy): string[] {
  const problems: string[] = [];
  const rate = (name: string, value: number) => {
    if (!(value > 0 && value < 1)) problems.push(`${name} must be a rate between 0 and 1 (0.04 is 4 %), got ${value}`);
  };
  rate('maxBounceRate', policy.maxBounceRate);
  rate('maxComplaintRate', policy.maxComplaintRate);
  if (!Number.isInteger(policy.minRecipients) || policy.minRecipients < 1)
    problems.push(`minRecipients must be a whole number of at least 1, got ${policy.minRecipients}`);
  if (!Number.isInteger(policy.minReports) || policy.minReports < 1)
    problems.push(`minReports must be a whole number of at least 1, got ${policy.minReports}`);
  if (!Number.isInteger(policy.bucketSeconds) || policy.bucketSeconds < 1)
    problems.push(`bucketSeconds must be a whole number of seconds, got ${policy.bucketSeconds}`);
  const buckets = policy.windowSeconds / policy.bucketSeconds;
  // One read fetches the whole window and the pause record: DynamoDB's BatchGetItem takes 100 keys.
  if (!Number.isInteger(buckets) || buckets < 1 || buckets > 96)
    problems.push(
      `windowSeconds must be 1 to 96 whole buckets of bucketSeconds (${policy.bucketSeconds}), ` +
        `got ${policy.windowSeconds}`,
    );
  return problems;
}

/** The start of the bucket `timeMs` falls in, ms since the epoch. */
export const bucketStartOf = (timeMs: number, policy: Pick<ReputationPolicy, 'bucketSeconds'>): number =>
  Math.floor(timeMs / (policy.bucketSeconds * 1000)) * policy.bucketSeconds * 1000;

/**
 * The buckets that make up the window ending now, oldest first. After a resume only the buckets that start after
 * it count: the counts that paused the tenant do not pause it again the moment it is resumed.
 */
export function windowBuckets(nowMs: number, policy: ReputationPolicy, resumedAtMs?: number): number[] {
  const size = policy.bucketSeconds * 1000;
  const current = bucketStartOf(nowMs, policy);
  const buckets: number[] = [];
  for (let start = current - policy.windowSeconds * 1000 + size; start <= current; start += size) {
    if (resumedAtMs === undefined || start > resumedAtMs) buckets.push(start);
  }
  return buckets;
}

export const sumCounts = (counts: ReputationCounts[]): ReputationCounts =>
  counts.reduce(
    (total, c) => ({
      sent: total.sent + c.sent,
      bounces: total.bounces + c.bounces,
      complaints: total.complaints + c.complaints,
    }),
    NO_COUNTS,
  );

export type ReputationVerdict =
  | {
      pause: false;
      bounceRate: number;
      complaintRate: number;
      why: 'healthy' | 'too-little-volume' | 'too-few-reports';
    }
  | { pause: true; bounceRate: number; complaintRate: number; reason: 'bounce-rate' | 'complaint-rate' };

/** Whether a window's counts pause the tenant: a rate at or above its limit, over at least the minimum volume. */
export function judgeReputation(window: ReputationCounts, policy: ReputationPolicy): ReputationVerdict {
  const bounceRate = window.sent > 0 ? window.bounces / window.sent : 0;
  const complaintRate = window.sent > 0 ? window.complaints / window.sent : 0;
  if (window.sent < policy.minRecipients) return { pause: false, bounceRate, complaintRate, why: 'too-little-volume' };
  // Complaints first: the lower limit, and the harder one to recover from.
  const complaintsOver = complaintRate >= policy.maxComplaintRate;
  const bouncesOver = bounceRate >= policy.maxBounceRate;
  if (complaintsOver && window.complaints >= policy.minReports)
    return { pause: true, bounceRate, complaintRate, reason: 'complaint-rate' };
  if (bouncesOver && window.bounces >= policy.minReports)
    return { pause: true, bounceRate, complaintRate, reason: 'bounce-rate' };
  const why = complaintsOver || bouncesOver ? 'too-few-reports' : 'healthy';
  return { pause: false, bounceRate, complaintRate, why };
}

/**
 * One address a verified report counts against its job's tenant, named by the kind and the address's hash (the
 * store keeps it per tenant): the same report mailed back again, republished after a crash or redelivered by SNS,
 * and reports on other jobs of the tenant to the same address have the same id and are counted once. A legitimate
 * address bounces or complains once (it is suppressed after it); a recipient who kept many of a tenant's mails
 * cannot count once per mail.
 */
export type CountedReport = { id: string; kind: 'hard-bounce' | 'complaint' };

/** The counted reports of a verified report's suppressions: its hard bounces and complaints. */
export const countedReports = (suppressed: ReadonlyArray<{ address: string; reason: string }>): CountedReport[] =>
  suppressed.flatMap((s) =>
    s.reason === 'hard-bounce' || s.reason === 'complaint'
      ? [{ id: `${s.reason}#${hashAddress(s.address)}`, kind: s.reason }]
      : [],
  );

/** A tenant's pause, as stored: why, the rates that caused it, when, and by whom. */
export type TenantPause = {
  tenant: string;
  /** `bounce-rate`, `complaint-rate`, or an operator's reason. */
  reason: string;
  /** `guardrail` or `operator:<name>`. */
  pausedBy: string;
  pausedAt: string;
  bounceRate?: number;
  complaintRate?: number;
  /** The window's counts when it was paused. */
  counts?: ReputationCounts;
};

/**
 * A tenant's standing: paused (with the pause) or not, and when it was last resumed, with the counts its bucket held
 * at that moment (what the bucket gains after them counts again).
 */
export type TenantStanding = {
  paused?: TenantPause;
  resumedAt?: string;
  resumedBy?: string;
  resumedBaseline?: ReputationCounts & { bucketStartMs: number };
};

/**
 * The counts a tenant is judged by: its window, and after a resume only what came after it (the buckets that start
 * later, and what the resume's own bucket gained since), so the counts that paused it do not pause it again and new
 * bounces do.
 */
export function countsSinceResume(
  nowMs: number,
  policy: ReputationPolicy,
  buckets: Map<number, ReputationCounts>,
  standing: TenantStanding,
): ReputationCounts {
  const resumedAtMs = standing.resumedAt ? Date.parse(standing.resumedAt) : undefined;
  const later = windowBuckets(nowMs, policy, resumedAtMs).map((start) => buckets.get(start) ?? NO_COUNTS);
  const base = standing.resumedBaseline;
  if (!base || !windowBuckets(nowMs, policy).includes(base.bucketStartMs)) return sumCounts(later);
  const then = buckets.get(base.bucketStartMs) ?? NO_COUNTS;
  const gained = {
    sent: Math.max(0, then.sent - base.sent),
    bounces: Math.max(0, then.bounces - base.bounces),
    complaints: Math.max(0, then.complaints - base.complaints),
  };
  return sumCounts([...later, gained]);
}

/** Where the counters and pauses live, shared by every function (one DynamoDB table). */
export interface ReputationStore {
  /** Adds to the tenant's counters in the bucket starting at `bucketStartMs` (an atomic ADD). */
  add(tenant: string, bucketStartMs: number, counts: Partial<ReputationCounts>): Promise<void>;
  /**
   * Marks reports as counted for the tenant (a conditional write each, kept as long as a report can still be
   * verified); resolves with the ids not marked before, the only ones to count.
   */
  markReports(tenant: string, ids: string[]): Promise<Set<string>>;
  /** The tenant's counts in these buckets (by bucket start, ms) and its standing, in one read. */
  read(
    tenant: string,
    buckets: number[],
  ): Promise<{ buckets: Map<number, ReputationCounts>; standing: TenantStanding }>;
  /** The tenant's standing alone (the dispatcher's check). */
  standing(tenant: string): Promise<TenantStanding>;
  /** Pauses a tenant not paused yet; false when it already was (a conditional write: one pause, one event). */
  pause(pause: TenantPause): Promise<boolean>;
  /**
   * Lifts a pause, keeping the counts of the bucket `resumedAt` falls in as the standing's `resumedBaseline`; the
   * pause lifted, or undefined when the tenant was not paused.
   */
  resume(tenant: string, resumedBy: string, resumedAt: string): Promise<TenantPause | undefined>;
}

/**
 * Counts reports and sends per tenant in memory and writes them once per tenant per flush (one atomic ADD each), so a
 * batch of many messages costs one write per tenant. A flush that added bounces or complaints reads the tenant's
 * window and pauses it when the policy says so; it resolves with the tenants it newly paused.
 */
export function createReputationLedger(deps: {
  store: ReputationStore;
  policy: ReputationPolicy;
  clock: () => number;
}) {
  let pending = new Map<string, ReputationCounts>();
  let pendingReports = new Map<string, Map<string, CountedReport['kind']>>();
  const keep = (tenant: string, counts: ReputationCounts) =>
    pending.set(tenant, sumCounts([pending.get(tenant) ?? NO_COUNTS, counts]));
  return {
    /** Counts recipients sent to, hard bounces or complaints for a tenant (the default tenant when none is named). */
    note(tenant: string | undefined, counts: Partial<ReputationCounts>): void {
      keep(tenant ?? DEFAULT_TENANT, { ...NO_COUNTS, ...counts });
    },

    /** Counts a verified report's addresses against a tenant, each report id once however often it is noted. */
    noteReports(tenant: string, reports: CountedReport[]): void {
      const known = pendingReports.get(tenant) ?? new Map<string, CountedReport['kind']>();
      for (const report of reports) known.set(report.id, report.kind);
      if (known.size > 0) pendingReports.set(tenant, known);
    },

    /**
     * Writes what was counted since the last flush; pauses the tenants whose window now crosses a limit. Never throws:
     * counts that could not be written are kept for the next flush, and the first error is returned.
     */
    async flush(): Promise<{ paused: TenantPause[]; error?: unknown }> {
      const taken = pending;
      const takenReports = pendingReports;
      pending = new Map();
      pendingReports = new Map();
      const nowMs = deps.clock();
      const paused: TenantPause[] = [];
      const tenants = new Set([...taken.keys(), ...takenReports.keys()]);
      const flushed = await Promise.allSettled(
        [...tenants].map(async (tenant) => {
          let counts = taken.get(tenant) ?? NO_COUNTS;
          const reports = takenReports.get(tenant);
          if (reports) {
            let fresh: Set<string>;
            try {
              fresh = await deps.store.markReports(tenant, [...reports.keys()]);
            } catch (error) {
              keep(tenant, counts);
              const again = pendingReports.get(tenant) ?? new Map<string, CountedReport['kind']>();
              pendingReports.set(tenant, new Map([...reports, ...again]));
              throw error;
            }
            const kinds = [...fresh].map((id) => reports.get(id));
            const bounces = kinds.filter((kind) => kind === 'hard-bounce').length;
            const complaints = kinds.filter((kind) => kind === 'complaint').length;
            counts = sumCounts([counts, { sent: 0, bounces, complaints }]);
          }
          if (counts.sent + counts.bounces + counts.complaints === 0) return;
          try {
            await deps.store.add(tenant, bucketStartOf(nowMs, deps.policy), counts);
          } catch (error) {
            keep(tenant, counts);
            throw error;
          }
          if (counts.bounces + counts.complaints === 0) return;
          const pause = await judgeTenant(deps, tenant, nowMs);
          if (pause && (await deps.store.pause(pause))) paused.push(pause);
        }),
      );
      const failed = flushed.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      return failed ? { paused, error: failed.reason } : { paused };
    },
  };
}

/** Reads a tenant's window and returns the pause the policy calls for, if any (and if it is not paused already). */
async function judgeTenant(
  deps: { store: ReputationStore; policy: ReputationPolicy },
  tenant: string,
  nowMs: number,
): Promise<TenantPause | undefined> {
  const { buckets, standing } = await deps.store.read(tenant, windowBuckets(nowMs, deps.policy));
  if (standing.paused) return undefined;
  const window = countsSinceResume(nowMs, deps.policy, buckets, standing);
  const verdict = judgeReputation(window, deps.policy);
  if (!verdict.pause) return undefined;
  return {
    tenant,
    reason: verdict.reason,
    pausedBy: 'guardrail',
    pausedAt: new Date(nowMs).toISOString(),
    bounceRate: verdict.bounceRate,
    complaintRate: verdict.complaintRate,
    counts: window,
  };
}

/**
 * The dispatcher's view of pauses: a tenant's standing read at most once per `cacheMs` per instance, and once for
 * all the records of a batch that ask at the same time (they share the read in flight).
 */
export function createPauseCheck(deps: {
  store: Pick<ReputationStore, 'standing'>;
  cacheMs: number;
  clock: () => number;
}) {
  const cache = new Map<string, { atMs: number; standing: Promise<TenantStanding> }>();
  return async (tenant: string): Promise<TenantPause | undefined> => {
    const nowMs = deps.clock();
    let entry = cache.get(tenant);
    if (!entry || nowMs - entry.atMs >= deps.cacheMs) {
      entry = { atMs: nowMs, standing: deps.store.standing(tenant) };
      cache.set(tenant, entry);
      // A failed read is answered by the caller (the mail goes on without it); the records after it do not wait on
      // the table again until the cache time has passed, so a stalled table costs one bounded wait per tenant.
      const failed = entry;
      entry.standing.catch(() => {
        if (cache.get(tenant) === failed) cache.set(tenant, { atMs: failed.atMs, standing: Promise.resolve({}) });
      });
    }
    return (await entry.standing).paused;
  };
}

/** The `tenant.paused` event: who, why, the rates and counts that caused it, and who paused it. */
export const toTenantPausedEvent = (pause: TenantPause, now?: Date) =>
  createEvent(EventTypes.tenantPaused, { ...pause }, now);

/** The `tenant.resumed` event: the pause that was lifted, and who lifted it when. */
export const toTenantResumedEvent = (pause: TenantPause, resumedBy: string, resumedAt: string) =>
  createEvent(EventTypes.tenantResumed, {
    tenant: pause.tenant,
    reason: pause.reason,
    pausedAt: pause.pausedAt,
    resumedBy,
    resumedAt,
  });
