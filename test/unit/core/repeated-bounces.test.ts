import { describe, expect, it } from 'vitest';
import { suppressReported, type SuppressEntry } from '#core/mailbox/classify-and-suppress.js';
import type { BounceHistory, RepeatPolicy } from '#core/mailbox/repeated-bounces.js';
import type { BounceReason, InboundClassification } from '#core/inbound-report.js';

/** The days each address failed each way, in memory, as the adapter keeps them. */
function memoryHistory(): BounceHistory & { writes: number } {
  const days = new Map<string, Set<string>>();
  const history = {
    writes: 0,
    async recordDay(address: string, kind: string, day: string, { since }: { since: string }) {
      history.writes += 1;
      const key = `${kind}#${address.toLowerCase()}`;
      const set = days.get(key) ?? new Set<string>();
      set.add(day);
      days.set(key, set);
      return [...set].filter((d) => d >= since);
    },
  };
  return history;
}

const bounceOf = (reason: BounceReason, permanent: boolean, status?: string): InboundClassification => ({
  kind: 'bounce',
  format: 'delivery-status',
  recipients: [{ recipient: 'someone@example.net', action: 'failed', status, reason, permanent, suppress: false }],
  original: { messageIds: [] },
});

const DAY = 86_400_000;
const t0 = Date.parse('2030-03-01T09:00:00Z');
const policy: RepeatPolicy = { windowDays: 14, hostUnknownDays: 3, softBounceDays: 0 };

/** Reads `bounce` at each of `times`, as reports `r0`, `r1`…; returns what each suppressed. */
async function readAt(bounce: InboundClassification, times: number[], history: BounceHistory, p = policy) {
  const results: SuppressEntry[][] = [];
  for (const [i, now] of times.entries()) {
    const suppressed: SuppressEntry[] = [];
    await suppressReported(bounce, `r${i}`, async (e) => void suppressed.push(e), 'message-id', undefined, {
      policy: p,
      history,
      now,
    });
    results.push(suppressed);
  }
  return results;
}

describe('failures that suppress once they repeat', () => {
  it('suppresses a domain that does not resolve on the third day it fails, counting days and not reports', async () => {
    // Prepare: three reports on the first day, one on the fourth, one on the ninth.
    const history = memoryHistory();
    const times = [t0, t0 + 1000, t0 + 2 * 3600_000, t0 + 3 * DAY, t0 + 8 * DAY];

    // Act
    const results = await readAt(bounceOf('host-unknown', true, '5.1.2'), times, history);

    // Assess
    expect(results.slice(0, 4).flat()).toEqual([]);
    expect(results[4]).toEqual([
      {
        address: 'someone@example.net',
        reason: 'hard-bounce',
        source: 'dsn:r4',
        status: '5.1.2',
        permanent: true,
        detail: 'host-unknown on 3 days',
        verified: 'message-id',
        tenant: undefined,
      },
    ]);
  });

  it('forgets the days before the window', async () => {
    const history = memoryHistory();

    const results = await readAt(bounceOf('host-unknown', true), [t0, t0 + 10 * DAY, t0 + 20 * DAY], history);

    // Day 1 is out of the 14-day window on day 21: two days in the window, not three.
    expect(results.flat()).toEqual([]);
  });

  it('never suppresses a soft bounce by default, and does not even record it', async () => {
    const history = memoryHistory();
    const times = Array.from({ length: 10 }, (_, i) => t0 + i * DAY);

    const results = await readAt(bounceOf('mailbox-full', false, '4.2.2'), times, history);

    expect(results.flat()).toEqual([]);
    expect(history.writes).toBe(0);
  });

  it('suppresses a repeated soft bounce, for a while, when the window is turned on', async () => {
    const history = memoryHistory();
    const on = { ...policy, softBounceDays: 2 };

    const results = await readAt(bounceOf('mailbox-full', true, '5.2.2'), [t0, t0 + DAY], history, on);

    expect(results[0]).toEqual([]);
    expect(results[1]).toMatchObject([
      { address: 'someone@example.net', reason: 'soft-bounce', permanent: false, detail: 'mailbox-full on 2 days' },
    ]);
  });

  it('never counts a failure that blames our side, however often it repeats', async () => {
    const history = memoryHistory();
    const allOn = { windowDays: 14, hostUnknownDays: 1, softBounceDays: 1 };
    const times = Array.from({ length: 10 }, (_, i) => t0 + i * DAY);
    const ours: BounceReason[] = ['sender-problem', 'policy-or-blocked', 'rate-limited', 'spam-or-content'];

    for (const reason of ours) {
      const results = await readAt(bounceOf(reason, true, '5.7.1'), times, history, allOn);
      expect(results.flat(), reason).toEqual([]);
    }
    expect(history.writes).toBe(0);
  });

  it('counts only final failures: a delay warning is no bounce', async () => {
    const history = memoryHistory();
    const delay: InboundClassification = {
      kind: 'delay',
      format: 'delivery-status',
      recipients: [
        {
          recipient: 'someone@example.net',
          action: 'delayed',
          reason: 'host-unknown',
          permanent: false,
          suppress: false,
        },
      ],
      original: { messageIds: [] },
    };

    const results = await readAt(delay, [t0, t0 + DAY, t0 + 2 * DAY, t0 + 3 * DAY], history);

    expect(results.flat()).toEqual([]);
    expect(history.writes).toBe(0);
  });
});
