import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { record, replaceSectionsInResults } from '../../../bench/measure.js';

describe('a benchmark run alone', () => {
  it("replaces its own sections' rows in the results file and keeps the others, with what it adds beside them", () => {
    // Prepare: a full run's file, and this run's rows of one of its sections
    const file = pathToFileURL(join(mkdtempSync(join(tmpdir(), 'bench-results-')), 'results.json'));
    const kept = { section: 'transport', name: 'raw', value: 1, unit: 'msg/s' };
    const old = { section: 'fairness alone', name: 'B p50', value: 9, unit: 's' };
    writeFileSync(file, JSON.stringify({ machine: 'm', chosen: 'old', rows: [kept, old] }));
    record('fairness alone', 'B p50', 3, 's');

    // Act
    replaceSectionsInResults({ chosen: 'new' }, file);

    // Assess
    const results = JSON.parse(readFileSync(file, 'utf8'));
    expect(results).toMatchObject({ machine: 'm', chosen: 'new' });
    expect(results.rows).toEqual([kept, { section: 'fairness alone', name: 'B p50', value: 3, unit: 's' }]);
  });
});
