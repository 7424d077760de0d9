import type { DsnRecipient } from '../inbound-report.js';

/**
 * Failures that do not suppress an address at once but may when they repeat: a domain that does not resolve (as
 * often a passing DNS fault as a dead domain), and the mailbox's own soft failures (full, given up on, refused for
 * now). A failure that blames our side (policy, reputation, rate, content, our sender) never counts.
 */
export type RepeatKind = 'host-unknown' | 'soft';

const SOFT_REASONS: ReadonlySet<string> = new Set(['mailbox-full', 'expired', 'temporary-other']);

/** What a failed recipient that does not suppress by itself counts toward, if anything. */
function repeatKindOf(recipient: Pick<DsnRecipient, 'action' | 'reason' | 'suppress'>): RepeatKind | undefined {
  if (recipient.suppress || recipient.action !== 'failed') return undefined;
  if (recipient.reason === 'host-unknown') return 'host-unknown';
  return SOFT_REASONS.has(recipient.reason) ? 'soft' : undefined;
}

/**
 * When repeats suppress: failures of one kind on `hostUnknownDays` / `softBounceDays` different days within the last
 * `windowDays` days (0: never). Days, not reports: a report read twice, a burst of bounces or an outage of a few hours
 * is one day.
 */
export type RepeatPolicy = { windowDays: number; hostUnknownDays: number; softBounceDays: number };

/** The policy when nothing says otherwise: a domain that fails on 3 days of 14; soft bounces never. */
export const DEFAULT_REPEAT_POLICY: RepeatPolicy = { windowDays: 14, hostUnknownDays: 3, softBounceDays: 0 };

/**
 * What is wrong with a policy, each problem naming its setting as `names` calls it (the environment's variables, the
 * stack's context keys): a window of 1 to 365 days, and counts from 0 (off) to the window's days.
 */
export function repeatPolicyProblems(policy: RepeatPolicy, names: Record<keyof RepeatPolicy, string>): string[] {
  const problems: string[] = [];
  const whole = (n: number, min: number, max: number) => Number.isInteger(n) && n >= min && n <= max;
  if (!whole(policy.windowDays, 1, 365))
    problems.push(`${names.windowDays} must be a whole number of days from 1 to 365, got ${policy.windowDays}`);
  for (const field of ['hostUnknownDays', 'softBounceDays'] as const) {
    const days = policy[field];
    if (!whole(days, 0, 365)) problems.push(`${names[field]} must be a whole number from 0 to 365, got ${days}`);
    else if (days > policy.windowDays)
      problems.push(`${names[field]} (${days}) must not exceed ${names.windowDays} (${policy.windowDays})`);
  }
  return problems;
}

/** The days (UTC, `YYYY-MM-DD`) each address failed each way; kept by an adapter (the poller's state table). */
export interface BounceHistory {
  /**
   * Adds `day` to the days `address` failed this way, forgets the days before `since`, keeps the record until
   * `expiresAt` (epoch seconds), and returns the days since `since`, `day` included.
   */
  recordDay(
    address: string,
    kind: RepeatKind,
    day: string,
    options: { since: string; expiresAt: number },
  ): Promise<string[]>;
}

/** What repetition needs: the policy, the history, and the time of the report. */
export type Repeats = { policy: RepeatPolicy; history: BounceHistory; now: number };

const DAY_MS = 86_400_000;
const dayOf = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/**
 * Records a failure that may repeat and says whether it now suppresses: the kind and the number of days it failed in
 * the window, or undefined. Records nothing for a kind the policy leaves off.
 */
export async function repeatedFailure(
  recipient: Pick<DsnRecipient, 'recipient' | 'action' | 'reason' | 'suppress'>,
  repeats: Repeats,
): Promise<{ kind: RepeatKind; days: number } | undefined> {
  const kind = repeatKindOf(recipient);
  if (!kind) return undefined;
  const { policy, history, now } = repeats;
  const needed = kind === 'host-unknown' ? policy.hostUnknownDays : policy.softBounceDays;
  if (needed <= 0 || policy.windowDays <= 0) return undefined;
  const days = await history.recordDay(recipient.recipient, kind, dayOf(now), {
    since: dayOf(now - (policy.windowDays - 1) * DAY_MS),
    expiresAt: Math.floor(now / 1000) + policy.windowDays * 86_400,
  });
  const count = new Set(days).size;
  return count >= needed ? { kind, days: count } : undefined;
}
