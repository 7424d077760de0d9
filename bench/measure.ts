import { readFileSync, writeFileSync } from 'node:fs';

/** Small helpers the benchmarks share: timing, percentiles, and the result table. */
export type Row = { section: string; name: string; value: number; unit: string; note?: string };

export const rows: Row[] = [];

export function record(section: string, name: string, value: number, unit: string, note?: string): number {
  rows.push({ section, name, value: Math.round(value * 100) / 100, unit, note });
  return value;
}

/**
 * For a benchmark run alone: its rows replace those of the same sections in bench/results.json (the rest of the
 * last full run stays), with `extra` set beside them; prints what it replaced.
 */
export function replaceSectionsInResults(
  extra: Record<string, unknown> = {},
  file: URL = new URL('./results.json', import.meta.url),
): void {
  const results = JSON.parse(readFileSync(file, 'utf8')) as { rows: Row[] };
  const sections = new Set(rows.map((r) => r.section));
  results.rows = [...results.rows.filter((r) => !sections.has(r.section)), ...rows];
  writeFileSync(file, `${JSON.stringify({ ...results, ...extra }, null, 2)}\n`);
  console.log(`${rows.length} rows of ${sections.size} section(s) replaced in bench/results.json`);
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

/** Runs `tasks` with at most `limit` in flight. */
export async function withConcurrency<T>(items: T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const item = items[next] as T;
        next += 1;
        await task(item);
      }
    }),
  );
}

export function printTable(): void {
  const width = Math.max(...rows.map((r) => r.name.length), 20);
  let section = '';
  for (const r of rows) {
    if (r.section !== section) {
      section = r.section;
      console.log(`\n${section}`);
    }
    console.log(`  ${r.name.padEnd(width)}  ${String(r.value).padStart(10)} ${r.unit.padEnd(6)} ${r.note ?? ''}`);
  }
}
