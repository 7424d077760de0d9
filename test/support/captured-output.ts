import type { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';

/**
 * Sends a Powertools logger's and metrics' output to memory instead of stdout, so tests can assert on it.
 * Both write through a `console` property of their own.
 */
export function captureOutput(...targets: Array<Logger | Metrics>) {
  const lines: string[] = [];
  const sink = (...args: unknown[]) => lines.push(args.map(String).join(' '));
  const fakeConsole = { log: sink, info: sink, warn: sink, error: sink, debug: sink, trace: sink };
  for (const target of targets) (target as unknown as { console: typeof fakeConsole }).console = fakeConsole;
  return {
    lines,
    /** Parsed JSON lines (structured logs and EMF blobs). */
    records: () =>
      lines.flatMap((line) => {
        try {
          return [JSON.parse(line) as Record<string, unknown>];
        } catch {
          return [];
        }
      }),
    /**
     * Sum of an EMF metric over everything flushed so far: the service-wide figure, or with `tenant` the copy that
     * carries that tenant as a dimension.
     */
    metric(name: string, tenant?: string): number {
      return this.records()
        .filter((r) => r.tenant === tenant)
        .reduce(
          (sum, r) =>
            sum +
            (typeof r[name] === 'number'
              ? (r[name] as number)
              : Array.isArray(r[name])
                ? (r[name] as number[]).reduce((a, b) => a + b, 0)
                : 0),
          0,
        );
    },
  };
}
