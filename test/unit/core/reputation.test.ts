import { describe, expect, it } from 'vitest';
import {
  bucketStartOf,
  createPauseCheck,
  createReputationLedger,
  DEFAULT_REPUTATION_POLICY,
  judgeReputation,
  NO_COUNTS,
  reputationPolicyProblems,
  sumCounts,
  windowBuckets,
  type ReputationCounts,
  type ReputationPolicy,
  type ReputationStore,
  type TenantPause,
  type TenantStanding,
} from '#core/reputation.js';

const policy: ReputationPolicy = { ...DEFAULT_REPUTATION_POLICY, minRecipients: 100 };
const HOUR = 3_600_000;

/** The store's contract in memory (the DynamoDB adapter runs in the integration tests). */
function memoryStore() {
  const counters = new Map<string, ReputationCounts>();
  const standings = new Map<string, TenantStanding>();
  const marked = new Set<string>();
  const calls = { add: 0, read: 0, standing: 0, pause: 0 };
  const store: ReputationStore = {
    async markReports(tenant, ids) {
      const fresh = new Set(ids.filter((id) => !marked.has(`${tenant}#${id}`)));
      for (const id of fresh) marked.add(`${tenant}#${id}`);
      return fresh;
    },
    async add(tenant, bucket, counts) {
      calls.add += 1;
      const key = `${tenant}#${bucket}`;
      counters.set(key, sumCounts([counters.get(key) ?? NO_COUNTS, { ...NO_COUNTS, ...counts }]));
    },
    async read(tenant, buckets) {
      calls.read += 1;
      return {
        buckets: new Map(buckets.map((b) => [b, counters.get(`${tenant}#${b}`) ?? NO_COUNTS])),
        standing: standings.get(tenant) ?? {},
      };
    },
    async standing(tenant) {
      calls.standing += 1;
      return standings.get(tenant) ?? {};
    },
    async pause(pause) {
      calls.pause += 1;
      if (standings.get(pause.tenant)?.paused) return false;
      standings.set(pause.tenant, { ...standings.get(pause.tenant), paused: pause });
      return true;
    },
    async resume(tenant, resumedBy, resumedAt) {
      const paused = standings.get(tenant)?.paused;
      if (!paused) return undefined;
      const bucketStartMs = bucketStartOf(Date.parse(resumedAt), policy);
      const baseline = counters.get(`${tenant}#${bucketStartMs}`) ?? NO_COUNTS;
      standings.set(tenant, { resumedAt, resumedBy, resumedBaseline: { ...baseline, bucketStartMs } });
      return paused;
    },
  };
  return { store, calls, counters };
}

describe('judgeReputation', () => {
  it('pauses nobody below the minimum volume: three mails and one bounce are no rate', () => {
    const verdict = judgeReputation({ sent: 3, bounces: 1, complaints: 0 }, policy);
    expect(verdict).toMatchObject({ pause: false, why: 'too-little-volume' });
  });

  it('pauses nobody on fewer than three reported addresses: one complaint in 1,000 is one person, not a rate', () => {
    // One recipient of a small tenant's mail must not be able to stop all of its mail with one report.
    expect(judgeReputation({ sent: 1000, bounces: 0, complaints: 1 }, policy)).toMatchObject({
      pause: false,
      why: 'too-few-reports',
    });
    expect(judgeReputation({ sent: 600, bounces: 0, complaints: 2 }, policy)).toMatchObject({ pause: false });
    expect(judgeReputation({ sent: 1000, bounces: 0, complaints: 3 }, policy)).toMatchObject({
      pause: true,
      reason: 'complaint-rate',
    });
  });

  it('pauses at the bounce limit and at the complaint limit, complaints first, and not just below them', () => {
    expect(judgeReputation({ sent: 1000, bounces: 40, complaints: 0 }, policy)).toMatchObject({
      pause: true,
      reason: 'bounce-rate',
      bounceRate: 0.04,
    });
    expect(judgeReputation({ sent: 1000, bounces: 39, complaints: 0 }, policy)).toMatchObject({ pause: false });
    expect(judgeReputation({ sent: 10_000, bounces: 400, complaints: 8 }, policy)).toMatchObject({
      pause: true,
      reason: 'complaint-rate',
    });
    expect(judgeReputation({ sent: 10_000, bounces: 0, complaints: 7 }, policy)).toMatchObject({ pause: false });
  });

  it('keeps its defaults below the levels at which SES reviews an account (5 % bounces, 0.1 % complaints)', () => {
    expect(DEFAULT_REPUTATION_POLICY.maxBounceRate).toBeLessThan(0.05);
    expect(DEFAULT_REPUTATION_POLICY.maxComplaintRate).toBeLessThan(0.001);
    expect(reputationPolicyProblems(DEFAULT_REPUTATION_POLICY)).toEqual([]);
  });

  it('names every field of a policy that cannot work', () => {
    const problems = reputationPolicyProblems({
      maxBounceRate: 4,
      maxComplaintRate: 0,
      minRecipients: 0.5,
      minReports: 3,
      windowSeconds: 1000,
      bucketSeconds: 3600,
    });
    expect(problems.join('\n')).toMatch(/maxBounceRate.*\n.*maxComplaintRate.*\n.*minRecipients.*\n.*windowSeconds/);
  });
});

describe('the sliding window', () => {
  it('covers the last 24 hourly buckets, the current one included', () => {
    const now = Date.UTC(2026, 10, 29, 14, 30);
    const buckets = windowBuckets(now, DEFAULT_REPUTATION_POLICY);
    expect(buckets).toHaveLength(24);
    expect(buckets.at(-1)).toBe(bucketStartOf(now, DEFAULT_REPUTATION_POLICY));
    expect(buckets[0]).toBe(Date.UTC(2026, 10, 28, 15));
  });

  it('after a resume counts only the buckets that start after it', () => {
    const now = Date.UTC(2026, 10, 29, 14, 30);
    const buckets = windowBuckets(now, DEFAULT_REPUTATION_POLICY, Date.UTC(2026, 10, 29, 12, 10));
    expect(buckets).toEqual([Date.UTC(2026, 10, 29, 13), Date.UTC(2026, 10, 29, 14)]);
  });
});

describe('the reputation ledger', () => {
  it('writes once per tenant per flush however many messages it counted', async () => {
    // Prepare
    const { store, calls, counters } = memoryStore();
    const ledger = createReputationLedger({ store, policy, clock: () => 5 * HOUR });
    for (let i = 0; i < 50; i += 1) ledger.note(i % 2 ? 'shop' : 'billing', { sent: 2 });

    // Act
    const { paused } = await ledger.flush();

    // Assess
    expect(calls.add).toBe(2);
    expect(calls.read).toBe(0);
    expect(paused).toEqual([]);
    expect(counters.get(`shop#${5 * HOUR}`)).toEqual({ sent: 50, bounces: 0, complaints: 0 });
  });

  it('pauses the tenant whose reports cross a limit, once, and leaves the others alone', async () => {
    // Prepare
    const { store } = memoryStore();
    let now = 5 * HOUR;
    const ledger = createReputationLedger({ store, policy, clock: () => now });
    ledger.note('shop', { sent: 200 });
    ledger.note('billing', { sent: 200 });
    await ledger.flush();
    now += HOUR;
    ledger.note('shop', { bounces: 9 });
    ledger.note('billing', { bounces: 1 });

    // Act
    const first = await ledger.flush();
    ledger.note('shop', { bounces: 1 });
    const second = await ledger.flush();

    // Assess
    expect(first.paused).toEqual([
      expect.objectContaining({ tenant: 'shop', reason: 'bounce-rate', pausedBy: 'guardrail', bounceRate: 0.045 }),
    ]);
    expect(second.paused).toEqual([]);
    expect((await store.standing('billing')).paused).toBeUndefined();
  });

  it('does not pause again on the counts that paused a tenant once it is resumed', async () => {
    // Prepare
    const { store } = memoryStore();
    let now = 5 * HOUR;
    const ledger = createReputationLedger({ store, policy, clock: () => now });
    ledger.note('shop', { sent: 200, bounces: 20 });
    expect((await ledger.flush()).paused).toHaveLength(1);
    await store.resume('shop', 'operator:ana', new Date(now + 60_000).toISOString());

    // Act
    now += HOUR;
    ledger.note('shop', { bounces: 1 });
    const afterResume = await ledger.flush();

    // Assess
    expect(afterResume.paused).toEqual([]);
  });

  it('after a resume, pauses again on new bounces in the hour of the resume, not on the counts before it', async () => {
    // Prepare: shop paused at 5:10 on 20 bounces in 200; resumed at 5:20, within the same hourly bucket.
    const { store } = memoryStore();
    let now = 5 * HOUR + 10 * 60_000;
    const ledger = createReputationLedger({ store, policy, clock: () => now });
    ledger.note('shop', { sent: 200, bounces: 20 });
    expect((await ledger.flush()).paused).toHaveLength(1);
    now += 10 * 60_000;
    await store.resume('shop', 'operator:ana', new Date(now).toISOString());

    // Act: at 5:30 a bounce on no new volume; at 5:40 a new list, 200 recipients of which 20 bounce.
    now += 10 * 60_000;
    ledger.note('shop', { bounces: 1 });
    const oldCounts = await ledger.flush();
    now += 10 * 60_000;
    ledger.note('shop', { sent: 200, bounces: 20 });
    const newCounts = await ledger.flush();

    // Assess
    expect(oldCounts.paused).toEqual([]);
    expect(newCounts.paused).toEqual([
      expect.objectContaining({ reason: 'bounce-rate', counts: { sent: 200, bounces: 21, complaints: 0 } }),
    ]);
  });

  it('keeps counts it could not write for the next flush and says why', async () => {
    // Prepare
    const { store, counters } = memoryStore();
    let failures = 1;
    const flaky: ReputationStore = {
      ...store,
      add: async (...args) => (failures-- > 0 ? Promise.reject(new Error('throttled')) : store.add(...args)),
    };
    const ledger = createReputationLedger({ store: flaky, policy, clock: () => HOUR });
    ledger.note('shop', { sent: 7 });

    // Act
    const failed = await ledger.flush();
    ledger.note('shop', { sent: 1 });
    const next = await ledger.flush();

    // Assess
    expect((failed.error as Error).message).toBe('throttled');
    expect(next.error).toBeUndefined();
    expect(counters.get(`shop#${HOUR}`)).toEqual({ sent: 8, bounces: 0, complaints: 0 });
  });
});

describe('the dispatcher pause check', () => {
  it('reads a tenant once for all records asking at once, and again only after the cache time', async () => {
    // Prepare
    const { store, calls } = memoryStore();
    const pause: TenantPause = { tenant: 'shop', reason: 'manual', pausedBy: 'operator:ana', pausedAt: 'now' };
    await store.pause(pause);
    let now = 0;
    const check = createPauseCheck({ store, cacheMs: 5000, clock: () => now });

    // Act
    const batch = await Promise.all([...Array(10)].map((_, i) => check(i % 2 ? 'shop' : 'billing')));
    now = 4999;
    await check('shop');
    now = 5000;
    await check('shop');

    // Assess
    expect(batch.filter(Boolean)).toHaveLength(5);
    expect(calls.standing).toBe(3);
  });
  it('answers a failed read once and asks the table again only after the cache time, so a stalled table costs one wait', async () => {
    // Prepare
    let now = 0;
    let reads = 0;
    const check = createPauseCheck({
      store: {
        standing: async () => {
          reads += 1;
          throw new Error('read timed out');
        },
      },
      cacheMs: 5000,
      clock: () => now,
    });

    // Act
    const first = await check('shop').catch((error: Error) => error.message);
    const meanwhile = await check('shop');
    now = 5000;
    const later = await check('shop').catch((error: Error) => error.message);

    // Assess: the failure reaches its caller; the records after it go on unpaused without a read.
    expect([first, meanwhile, later]).toEqual(['read timed out', undefined, 'read timed out']);
    expect(reads).toBe(2);
  });
});
