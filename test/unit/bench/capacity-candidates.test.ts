import { describe, expect, it } from 'vitest';
import { assertDeployable, deployableProblems, lambdaCases, settingsOf } from '../../../bench/capacity.js';

describe('the configurations the defaults are chosen among', () => {
  it('are each one the stack can deploy, at every memory size priced', () => {
    // Act / Assess: the full run's candidates and the quick run's.
    expect(deployableProblems(lambdaCases(false))).toEqual([]);
    expect(deployableProblems(lambdaCases(true))).toEqual([]);
  });

  it('stand for the settings they would deploy: batch, window, pool and jobs in flight', () => {
    // Prepare: batches of 56 over two connections, six in flight, no window given.
    const config = { profile: 'same-region' as const, batchSize: 56, pool: 2, inFlight: 6 };
    // Act
    const settings = settingsOf(config, 1024);
    // Assess: a batch over ten gathers for a second.
    expect(settings).toMatchObject({
      batchSize: 56,
      maxBatchingWindowSeconds: 1,
      smtpConnections: 2,
      maxInFlight: 6,
      memorySizeMb: 1024,
    });
  });

  it('refuse a batch over ten with a window shorter than a second, which the event source mapping does not take', () => {
    // Prepare: a batch of 100 gathered for half a second.
    const config = { profile: 'same-region' as const, batchSize: 100, pool: 3, inFlight: 10, windowSeconds: 0.5 };
    // Act
    const problems = deployableProblems([config]);
    // Assess: named, at each memory size: not a whole second, and too short for its batch.
    for (const memoryMb of [256, 512, 1024, 1769]) {
      const at = problems.filter((p) => p.includes(`batch 100 (window 0.5 s)`) && p.includes(`, ${memoryMb} MB: `));
      expect(at.some((p) => p.endsWith('batchSize above 10 needs maxBatchingWindowSeconds of at least 1'))).toBe(true);
      expect(at.some((p) => p.includes('maxBatchingWindowSeconds must be an integer'))).toBe(true);
    }
  });

  it('stop a bench run before it starts when one is not deployable, saying which and why', () => {
    // Prepare: the full run's candidates and one gathered for half a second.
    const halfSecond = { profile: 'same-region' as const, batchSize: 100, pool: 3, inFlight: 10, windowSeconds: 0.5 };
    // Act / Assess
    expect(() => assertDeployable(lambdaCases(false))).not.toThrow();
    expect(() => assertDeployable([...lambdaCases(false), halfSecond])).toThrow(
      /candidates the stack cannot deploy:\n.*batch 100 \(window 0\.5 s\).*256 MB: .*maxBatchingWindowSeconds/,
    );
  });
});
