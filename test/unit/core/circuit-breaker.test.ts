import { describe, expect, it } from 'vitest';
import { createCircuitBreaker, type BreakerState, type BreakerStore } from '#core/circuit-breaker.js';
import type { TransportName } from '#core/email-job.js';
import { createSendRouter, parseFailover } from '#core/send-router.js';

/** The store's contract in memory (the DynamoDB adapter is exercised in the twin tests). */
function memoryStore(): BreakerStore & { writes: number } {
  const items = new Map<TransportName, BreakerState>();
  const store = {
    writes: 0,
    async read(transport: TransportName) {
      return items.get(transport) ?? { state: 'closed' as const };
    },
    async open(transport: TransportName, state: Extract<BreakerState, { state: 'open' }>) {
      if (items.get(transport)?.state === 'open') return false;
      store.writes += 1;
      items.set(transport, state);
      return true;
    },
    async claimProbe(
      transport: TransportName,
      dueAtMs: number,
      next: { nextProbeAtMs: number; probeIntervalMs: number },
    ) {
      const current = items.get(transport);
      if (current?.state !== 'open' || current.nextProbeAtMs !== dueAtMs) return false;
      store.writes += 1;
      items.set(transport, { ...current, ...next });
      return true;
    },
    async close(transport: TransportName) {
      items.set(transport, { state: 'closed' });
    },
  };
  return store;
}

const outcome = (action: 'delivered' | 'blocked' | 'throttled') => ({ action, reason: action, recipients: [] });

describe('the circuit breaker', () => {
  it('answers the jobs of a batch asking at once with one read of the shared state', async () => {
    const store = memoryStore();
    let reads = 0;
    const read = store.read.bind(store);
    store.read = async (transport) => {
      reads += 1;
      return read(transport);
    };
    const breaker = createCircuitBreaker(store);
    const states = await Promise.all(Array.from({ length: 100 }, () => breaker.state('smtp')));
    expect(states.every((s) => s.state === 'closed')).toBe(true);
    expect(reads).toBe(1);
    // A fresh read is never folded into one already under way.
    await Promise.all([breaker.state('smtp', true), breaker.state('smtp', true)]);
    expect(reads).toBe(3);
  });

  it('opens on blocked for every instance, lets one probe through per interval with backoff, and closes on delivery', async () => {
    // Prepare: two instances sharing one store, no cache between them.
    let now = 1_000_000;
    const clock = () => now;
    const store = memoryStore();
    const options = { firstProbeAfterMs: 1000, maxProbeIntervalMs: 4000, cacheMs: 0 };
    const a = createCircuitBreaker(store, options, clock);
    const b = createCircuitBreaker(store, options, clock);

    // Act and assess
    expect(await a.record('smtp', 'blocked', 'smtp-eauth-535')).toBe('opened');
    expect(await b.record('smtp', 'blocked', 'smtp-eauth-535')).toBeUndefined();
    expect(await b.check('smtp')).toEqual({ verdict: 'open', probeInMs: 1000 });
    now += 1000;
    const verdicts = await Promise.all([a.check('smtp'), b.check('smtp')]);
    expect(verdicts.filter((v) => v.verdict === 'probe')).toHaveLength(1);
    expect(await a.check('ses')).toEqual({ verdict: 'closed' });
    // The next probes come after 1 s, then 2 s, then 4 s (the cap), then 4 s again.
    const gaps: number[] = [];
    for (let i = 0; i < 4; i += 1) {
      const open = await a.check('smtp');
      if (open.verdict !== 'open') throw new Error('expected open');
      gaps.push(open.probeInMs);
      now += open.probeInMs;
      expect((await b.check('smtp')).verdict).toBe('probe');
    }
    expect(gaps).toEqual([1000, 2000, 4000, 4000]);
    expect(await b.record('smtp', 'delivered', 'accepted')).toBe('closed');
    expect(await a.check('smtp')).toEqual({ verdict: 'closed' });
  });
});

describe('an hour of a wrong secret, with the production schedule', () => {
  it('attempts once per probe interval (30 s doubling to 10 min) over two instances, postponing the rest', async () => {
    // Prepare: two instances sharing the store, each with its own 5 s cache; a job arrives every second.
    let now = 0;
    const clock = () => now;
    const store = memoryStore();
    const routers = [0, 1].map(() => createSendRouter({ breaker: createCircuitBreaker(store, {}, clock), clock }));
    const attemptsAt: number[] = [];
    let postponed = 0;

    // Act
    for (let second = 0; second < 3600; second += 1) {
      now = second * 1000;
      const router = routers[second % 2] as (typeof routers)[number];
      const route = await router.route('smtp');
      if ('postponeMs' in route) {
        postponed += 1;
        continue;
      }
      attemptsAt.push(second);
      await router.settle('smtp', outcome('blocked'));
    }

    // Assess: the attempt that opened it (the other instance, its cache empty, reads the open breaker), then one
    // probe per interval: 30 s, 30 s, then doubling to the 10 minute cap. Eleven login attempts in the hour.
    expect(attemptsAt).toEqual([0, 30, 60, 120, 240, 480, 960, 1560, 2160, 2760, 3360]);
    expect(postponed).toBe(3600 - attemptsAt.length);
  });
});

describe('the send router', () => {
  it('parses failover as primary>secondary', () => {
    expect(parseFailover('smtp>ses')).toEqual({ primary: 'smtp', secondary: 'ses' });
    expect(parseFailover('ses>smtp')).toEqual({ primary: 'ses', secondary: 'smtp' });
    expect(parseFailover('smtp>smtp')).toBeUndefined();
    expect(parseFailover('smtp')).toBeUndefined();
  });

  it('postpones without failover, fails over with it, and fails over from a persistently throttled primary', async () => {
    let now = 0;
    const clock = () => now;
    const breaker = createCircuitBreaker(memoryStore(), { firstProbeAfterMs: 1000, cacheMs: 0 }, clock);
    const alone = createSendRouter({ breaker, clock });
    const paired = createSendRouter({
      breaker,
      failover: { primary: 'smtp', secondary: 'ses' },
      throttledInARow: 3,
      throttleFailoverMs: 5000,
      clock,
    });

    await alone.settle('smtp', outcome('blocked'));
    expect(await alone.route('smtp')).toEqual({ postponeMs: 1000, transport: 'smtp' });
    expect(await paired.route('smtp')).toEqual({ transport: 'ses', probe: false, fallback: true, primaryOpen: true });
    now += 1000;
    expect(await paired.route('smtp')).toEqual({ transport: 'smtp', probe: true, fallback: false });
    await paired.settle('smtp', outcome('delivered'));
    expect(await paired.route('smtp')).toEqual({ transport: 'smtp', probe: false, fallback: false });

    for (let i = 0; i < 3; i += 1) await paired.settle('smtp', outcome('throttled'));
    expect(await paired.route('smtp')).toMatchObject({ transport: 'ses', fallback: true });
    now += 5001;
    expect(await paired.route('smtp')).toMatchObject({ transport: 'smtp', fallback: false });
  });
});
