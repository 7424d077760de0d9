import { describe, expect, it } from 'vitest';
import { cpuShareControl } from '../../../bench/cpu-share.js';

/** Spins for `ms` of wall time; returns the CPU it got, ms. */
async function spin(ms: number) {
  const cpu = process.cpuUsage();
  const started = performance.now();
  while (performance.now() - started < ms) {
    // Busy on purpose: the work a share holds back.
  }
  const used = process.cpuUsage(cpu);
  return (used.user + used.system) / 1000;
}

const control = cpuShareControl();

describe.skipIf(!control)("a memory size's CPU share", () => {
  it('holds the process to its share while the work runs, and lets it go after', async () => {
    const share = control as NonNullable<typeof control>;
    try {
      // A fifth of a CPU over 600 ms: about 120 ms of CPU, a period's quota (20 ms) of slack either way. A loaded
      // machine only gives less.
      const held = await share.run(0.2, () => spin(600));
      expect(held).toBeLessThan(0.2 * 600 + 100);
      expect(held).toBeGreaterThan(0);
      // Out of the group again: the same spin is no longer held to a fifth (unless the machine is saturated).
      const free = await spin(600);
      expect(free).toBeGreaterThan(held);
    } finally {
      share.release();
    }
  });
});
