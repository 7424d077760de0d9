import { describe, expect, it } from 'vitest';
import { type AtMemory, chooseDefaults } from '../../../bench/capacity.js';
import type { CostPerMillion } from '../../../bench/cost.js';

/** One candidate at one memory size, as benchCapacity measures it: the figures below are the run of 02:18 UTC's. */
const measured = (
  batchSize: number,
  pool: number,
  inFlight: number,
  memoryMb: number,
  figures: { cost: number; rate: number; limit: number; longestS: number; loop?: number; sent?: number },
): AtMemory => ({
  config: { profile: 'same-region', batchSize, pool, inFlight, jobs: 200, rounds: 3 },
  memoryMb,
  measured: true,
  ours: {
    rate: figures.rate,
    longestMs: figures.longestS * 1000,
    p50Ms: figures.longestS * 900,
    delivered: figures.sent ?? 200,
    jobs: 200,
  },
  loop: { rate: figures.loop ?? figures.rate },
  limit: figures.limit,
  cost: { dollars: { total: figures.cost } } as CostPerMillion,
});

const run = [
  measured(100, 5, 10, 256, { cost: 4.21, rate: 21.1, limit: 89.5, longestS: 6.1 }),
  measured(100, 5, 20, 512, { cost: 4.19, rate: 47.4, limit: 90.4, longestS: 2.2 }),
  measured(100, 5, 10, 1024, { cost: 4.23, rate: 73.7, limit: 89.5, longestS: 1.4, loop: 76.4 }),
  measured(100, 5, 20, 1024, { cost: 4.25, rate: 67.2, limit: 90.4, longestS: 1.5 }),
  measured(100, 5, 50, 1024, { cost: 4.25, rate: 69.2, limit: 89.7, longestS: 1.5 }),
  measured(75, 3, 10, 1024, { cost: 4.35, rate: 47.2, limit: 54.9, longestS: 1.7 }),
  measured(56, 2, 6, 1024, { cost: 4.48, rate: 32.3, limit: 35.6, longestS: 1.9 }),
  measured(100, 10, 20, 1024, { cost: 4.19, rate: 97.9, limit: 172.1, longestS: 1.1 }),
  measured(100, 5, 10, 1769, { cost: 4.36, rate: 76.3, limit: 89.5, longestS: 1.3 }),
];

const name = (a: AtMemory | undefined) =>
  a && `${a.config.batchSize}/${a.config.pool}/${a.config.inFlight} at ${a.memoryMb} MB`;

describe('the defaults the capacity bench chooses', () => {
  it('are the cheapest that reach 0.9 of their limit and of the loop, within the latency target and the peak', () => {
    // Act: from the run's candidates.
    const chosen = chooseDefaults(run);
    // Assess: ten connections ($4.19, 0.57 of their limit) and five at 1,024 MB ($4.23, 0.82) are cheaper, but short
    // of CPU for their pool; the batch of 56 over two reaches 0.91 of its limit for 6 % more.
    expect(name(chosen)).toBe('56/2/6 at 1024 MB');
    expect(chosen && chosen.ours.rate / chosen.limit).toBeGreaterThanOrEqual(0.9);
  });

  it('never take one that misses the loop by more than a tenth, however near its limit', () => {
    // Prepare: the batch of 56 over two at 0.91 of its limit, but the loop sent a fifth more.
    const behind = run.map((a) => (name(a) === '56/2/6 at 1024 MB' ? { ...a, loop: { rate: 40 } } : a));
    const held = measured(56, 2, 10, 1024, { cost: 4.5, rate: 32.1, limit: 35.4, longestS: 1.9, loop: 32.0 });
    // Act / Assess: the next that reaches both targets.
    expect(name(chooseDefaults([...behind, held]))).toBe('56/2/10 at 1024 MB');
  });

  it('hold a candidate that reaches the targets to the latency target, every job sent and the peak all the same', () => {
    // Prepare: cheaper candidates at their limit, each ruled out once: over the latency target (2.1 s + 1 s), a job
    // unsent, too slow for the peak (5 × 18 msg/s).
    const late = measured(56, 2, 6, 512, { cost: 4.0, rate: 33, limit: 35, longestS: 2.1 });
    const unsent = measured(56, 2, 10, 512, { cost: 4.0, rate: 33, limit: 35, longestS: 1.8, sent: 199 });
    const slow = measured(20, 1, 2, 512, { cost: 4.0, rate: 18, limit: 19, longestS: 1.8 });
    // Act / Assess: the run's own choice stands.
    expect(name(chooseDefaults([late, unsent, slow, ...run]))).toBe('56/2/6 at 1024 MB');
  });

  it('take a candidate at exactly 0.9 of its limit and of the loop', () => {
    // Prepare: a cheaper one at 0.9 of both, exactly.
    const edge = measured(75, 3, 10, 512, { cost: 4.0, rate: 45, limit: 50, longestS: 1.8, loop: 50 });
    // Act / Assess
    expect(name(chooseDefaults([edge, ...run]))).toBe('75/3/10 at 512 MB');
  });

  it('fall back on the cheapest within the latency target and the peak when none reaches the targets', () => {
    // Prepare: every candidate short of 0.9 of its limit.
    const short = run.filter((a) => a.ours.rate < 0.9 * a.limit);
    // Act
    const chosen = chooseDefaults(short);
    // Assess: ten connections cost $4.19 and five $4.23, one price; five idle less of their pool (0.82 against 0.57).
    expect(name(chosen)).toBe('100/5/10 at 1024 MB');
  });

  it('never take a configuration whose window and longest invocation pass the latency target, however cheap', () => {
    // Prepare: the cheapest at 512 MB (2.2 s + 1 s) and at 256 MB (6.1 s + 1 s) alone.
    const slow = run.filter((a) => a.memoryMb < 1024);
    // Act / Assess
    expect(chooseDefaults(slow)).toBeUndefined();
  });

  it('never take a configuration that did not send every job, nor one five instances of which miss the peak', () => {
    // Prepare: short of the targets all; the fallback's choice with a job left unsent; ten connections with too low a
    // rate for the peak (5 × 18).
    const unsent = run
      .filter((a) => a.ours.rate < 0.9 * a.limit)
      .map((a) => (name(a) === '100/5/10 at 1024 MB' ? { ...a, ours: { ...a.ours, delivered: 199 } } : a));
    const below = [measured(100, 10, 20, 1024, { cost: 4.0, rate: 18, limit: 172.1, longestS: 1.1 }), ...unsent];
    // Act
    const chosen = chooseDefaults(below);
    // Assess: the next cheapest at one price, nearest its limit (50 in flight: 0.77 against 20's 0.74).
    expect(name(chosen)).toBe('100/5/50 at 1024 MB');
  });

  it('take a configuration whose window and longest invocation reach the latency target exactly, and none unmeasured', () => {
    // Prepare: at 3.0 s exactly (2.0 s + the 1 s window); cheaper ones whose limit or cost was not measured.
    const boundary = measured(56, 2, 10, 512, { cost: 4.29, rate: 30.2, limit: 35.7, longestS: 2.0 });
    const noLimit = measured(100, 5, 10, 1024, { cost: 4.0, rate: 73.7, limit: 0, longestS: 1.4 });
    const noCost = measured(100, 5, 20, 1024, { cost: Number.NaN, rate: 67.2, limit: 90.4, longestS: 1.5 });
    // Act
    const chosen = chooseDefaults([noLimit, noCost, boundary]);
    // Assess: within the target, and the only one measured.
    expect(name(chosen)).toBe('56/2/10 at 512 MB');
  });
});
