import type { TransportName } from './email-job.js';
import type { SendAction } from './send-outcome.js';

/** A transport's breaker as every instance shares it: closed, or open with the time of the next probe. */
export type BreakerState =
  | { state: 'closed' }
  | {
      state: 'open';
      openedAtMs: number;
      /** No job goes over the transport before this, except the one probe that claims it. */
      nextProbeAtMs: number;
      /** The wait after the next probe, should it fail too. */
      probeIntervalMs: number;
      /** The outcome reason that opened it, e.g. `smtp-eauth-535`. */
      reason: string;
    };

/**
 * Where breakers live, shared by every instance (one DynamoDB item per transport). Writes are conditional, so that
 * of many instances one opens the breaker, one claims each probe, and a close is not undone by a stale open.
 */
export interface BreakerStore {
  read(transport: TransportName): Promise<BreakerState>;
  /**
   * Opens a closed breaker; false if it was open already, or if it closed after `attemptStartedAtMs` (the failed
   * attempt began before the fix that closed it).
   */
  open(
    transport: TransportName,
    state: Extract<BreakerState, { state: 'open' }>,
    attemptStartedAtMs?: number,
  ): Promise<boolean>;
  /**
   * Claims the probe due at `dueAtMs` by moving the next one to `next.nextProbeAtMs`; false if another instance
   * claimed it first or the breaker closed.
   */
  claimProbe(
    transport: TransportName,
    dueAtMs: number,
    next: { nextProbeAtMs: number; probeIntervalMs: number },
  ): Promise<boolean>;
  /** Closes an open breaker. */
  close(transport: TransportName): Promise<void>;
}

export type BreakerOptions = {
  /** The wait before the first probe, ms. @default 30000 */
  firstProbeAfterMs?: number;
  /** Probes back off by doubling up to this, ms. @default 600000 (10 minutes) */
  maxProbeIntervalMs?: number;
  /** How long an instance trusts the state it read, ms: the shared state costs one read per this. @default 5000 */
  cacheMs?: number;
};

/** What the breaker says about sending now. */
export type BreakerVerdict =
  | { verdict: 'closed' }
  /** Open, and this caller holds the one probe: send, and report the outcome. */
  | { verdict: 'probe' }
  /** Open: no attempt; the probe is due in `probeInMs`. */
  | { verdict: 'open'; probeInMs: number };

/** What an outcome did to a breaker: opened it, closed it, or nothing. */
export type BreakerChange = 'opened' | 'closed' | undefined;

export type CircuitBreaker = ReturnType<typeof createCircuitBreaker>;

/**
 * A circuit breaker per transport over a shared store. A `blocked` outcome (our own setup is wrong: credentials,
 * TLS, an unverified sender, a paused account) opens it for every instance; while it is open no job is attempted
 * except one probe at a time, on a schedule that backs off from `firstProbeAfterMs` to `maxProbeIntervalMs`;
 * the first delivery closes it. A relay that may lock the account after failed logins sees one login per probe.
 */
export function createCircuitBreaker(
  store: BreakerStore,
  options: BreakerOptions = {},
  clock: () => number = Date.now,
) {
  const firstProbeAfterMs = options.firstProbeAfterMs ?? 30_000;
  const maxProbeIntervalMs = options.maxProbeIntervalMs ?? 600_000;
  const cacheMs = options.cacheMs ?? 5_000;
  const cache = new Map<TransportName, { state: BreakerState; readAtMs: number }>();

  const remember = (transport: TransportName, state: BreakerState) =>
    cache.set(transport, { state, readAtMs: clock() });
  // The jobs of a batch ask at once, before any answer is cached: one read under way answers all of them.
  const reading = new Map<TransportName, Promise<BreakerState>>();
  const stateOf = async (transport: TransportName, fresh = false): Promise<BreakerState> => {
    const cached = cache.get(transport);
    if (!fresh && cached && clock() - cached.readAtMs < cacheMs) return cached.state;
    const pending = reading.get(transport);
    if (!fresh && pending) return pending;
    const read = store.read(transport).then((state) => {
      remember(transport, state);
      return state;
    });
    reading.set(transport, read);
    const forget = () => reading.get(transport) === read && reading.delete(transport);
    read.then(forget, forget);
    return read;
  };

  return {
    /** The state as this instance knows it (cached), for routing. */
    state: stateOf,

    /** Whether a job may go over `transport` now. */
    async check(transport: TransportName): Promise<BreakerVerdict> {
      let state = await stateOf(transport);
      if (state.state === 'closed') return { verdict: 'closed' };
      const now = clock();
      if (now >= state.nextProbeAtMs) {
        const probeIntervalMs = Math.min(maxProbeIntervalMs, state.probeIntervalMs * 2);
        const next = { nextProbeAtMs: now + state.probeIntervalMs, probeIntervalMs };
        if (await store.claimProbe(transport, state.nextProbeAtMs, next)) {
          remember(transport, { ...state, ...next });
          return { verdict: 'probe' };
        }
        state = await stateOf(transport, true);
        if (state.state === 'closed') return { verdict: 'closed' };
      }
      return { verdict: 'open', probeInMs: Math.max(0, state.nextProbeAtMs - clock()) };
    },

    /**
     * Takes an attempt's outcome: `blocked` opens the breaker (unless it closed after `attemptStartedAtMs`, epoch ms:
     * a stale failure does not undo a probe's success), a delivery closes it.
     */
    async record(
      transport: TransportName,
      action: SendAction,
      reason: string,
      attemptStartedAtMs?: number,
    ): Promise<BreakerChange> {
      const known = cache.get(transport)?.state;
      if (action === 'blocked' && known?.state !== 'open') {
        const now = clock();
        const opened = {
          state: 'open' as const,
          openedAtMs: now,
          nextProbeAtMs: now + firstProbeAfterMs,
          probeIntervalMs: firstProbeAfterMs,
          reason,
        };
        const won = await store.open(transport, opened, attemptStartedAtMs);
        if (won) remember(transport, opened);
        else await stateOf(transport, true);
        return won ? 'opened' : undefined;
      }
      if (action === 'delivered' && known?.state === 'open') {
        await store.close(transport);
        remember(transport, { state: 'closed' });
        return 'closed';
      }
      return undefined;
    },
  };
}
