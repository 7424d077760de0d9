import { describe, expect, it } from 'vitest';
import { benchJob, keyFor } from '../../../bench/jobs.js';

describe("the capacity bench's jobs", () => {
  it('are the same size whatever the run they belong to, so that their records cost the same', () => {
    // Prepare: names of runs of every length, as the candidates' labels are
    const names = ['ours-same-region-10-all-5-7', 'loop-same-region-100-20-10-199', 'ours-cross-region-1000-50-10-999'];
    // Act
    const jobs = names.map((name) => benchJob(keyFor(name)));
    // Assess
    expect(new Set(jobs.map((job) => JSON.stringify(job).length)).size).toBe(1);
    expect(jobs.map((job) => job.idempotencyKey)).toEqual(names.map(keyFor));
    expect(keyFor(names[0] as string)).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(new Set(jobs.map((job) => job.idempotencyKey)).size).toBe(names.length);
  });
});
