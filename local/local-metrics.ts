/**
 * The twin's stand-in for CloudWatch: Powertools metrics write EMF through a `console` of their own; this one tallies
 * every metric by name instead of printing, for the status line (and prints nothing unless asked).
 */
export function createLocalMetricsConsole(echo?: (line: string) => void) {
  const totals = new Map<string, number>();
  const take = (...args: unknown[]) => {
    const line = args.map(String).join(' ');
    echo?.(line);
    try {
      const record = JSON.parse(line) as {
        _aws?: { CloudWatchMetrics?: Array<{ Metrics: Array<{ Name: string }> }> };
      } & Record<string, unknown>;
      // The per-tenant copies of a metric (a `tenant` dimension) repeat what the service-wide figure counts.
      if (typeof record.tenant === 'string') return;
      for (const definition of record._aws?.CloudWatchMetrics ?? []) {
        for (const { Name } of definition.Metrics) {
          const value = record[Name];
          const sum = Array.isArray(value) ? value.reduce((a: number, b) => a + Number(b), 0) : Number(value ?? 0);
          totals.set(Name, (totals.get(Name) ?? 0) + sum);
        }
      }
    } catch {
      // not an EMF line
    }
  };
  return {
    console: { log: take, info: take, warn: take, error: take, debug: take, trace: take },
    totals,
    get: (name: string) => totals.get(name) ?? 0,
  };
}
