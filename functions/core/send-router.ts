import type { CircuitBreaker } from './circuit-breaker.js';
import type { TransportName } from './email-job.js';
import type { SendOutcome } from './send-outcome.js';

/** `smtp>ses`: SMTP carries the mail, SES while SMTP cannot; `ses>smtp` the other way round. */
export type Failover = { primary: TransportName; secondary: TransportName };

/** Parses `smtp>ses` / `ses>smtp`; undefined for anything else. */
export function parseFailover(value: string | undefined): Failover | undefined {
  const match = /^(smtp|ses)>(smtp|ses)$/.exec(value?.trim() ?? '');
  if (!match || match[1] === match[2]) return undefined;
  return { primary: match[1] as TransportName, secondary: match[2] as TransportName };
}

/** Where one job goes: over a transport (as the breaker's probe, or over the fallback), or nowhere yet. */
export type Route =
  | { transport: TransportName; probe: boolean; fallback: boolean; primaryOpen?: boolean }
  | { postponeMs: number; transport: TransportName };

export type SendRouterOptions = {
  breaker: CircuitBreaker;
  failover?: Failover;
  /** Consecutive throttled outcomes after which the primary counts as persistently throttled. @default 5 */
  throttledInARow?: number;
  /** How long a persistently throttled primary hands its traffic to the secondary, ms. @default 60000 */
  throttleFailoverMs?: number;
  clock?: () => number;
};

/**
 * Routes each job by the transports' breakers: over its transport while that is closed; over the failover's
 * secondary while the primary is open or persistently throttled; otherwise postponed without an attempt until the
 * probe is due. One job in a probe interval is the probe, and its outcome closes or keeps the breaker.
 */
export function createSendRouter(options: SendRouterOptions) {
  const { breaker, failover } = options;
  const clock = options.clock ?? Date.now;
  const throttledInARow = options.throttledInARow ?? 5;
  const throttleFailoverMs = options.throttleFailoverMs ?? 60_000;
  const throttled = new Map<TransportName, { inARow: number; untilMs: number }>();

  const isThrottled = (transport: TransportName) => (throttled.get(transport)?.untilMs ?? 0) > clock();

  return {
    async route(requested: TransportName): Promise<Route> {
      const verdict = await breaker.check(requested);
      if (verdict.verdict === 'probe') return { transport: requested, probe: true, fallback: false };
      const secondary = failover?.primary === requested ? failover.secondary : undefined;
      if (verdict.verdict === 'closed') {
        if (secondary && isThrottled(requested) && (await breaker.state(secondary)).state === 'closed') {
          return { transport: secondary, probe: false, fallback: true };
        }
        return { transport: requested, probe: false, fallback: false };
      }
      if (secondary && (await breaker.check(secondary)).verdict !== 'open') {
        return { transport: secondary, probe: false, fallback: true, primaryOpen: true };
      }
      return { postponeMs: verdict.probeInMs, transport: requested };
    },

    /**
     * Takes an attempt's outcome (begun at `attemptStartedAtMs`, epoch ms); never throws (the send already happened).
     * Returns what changed, for the log.
     */
    async settle(
      transport: TransportName,
      outcome: SendOutcome,
      attemptStartedAtMs?: number,
    ): Promise<'opened' | 'closed' | undefined> {
      const count = throttled.get(transport) ?? { inARow: 0, untilMs: 0 };
      if (outcome.action === 'throttled') {
        count.inARow += 1;
        if (count.inARow >= throttledInARow) count.untilMs = clock() + throttleFailoverMs;
      } else if (outcome.action === 'delivered') {
        count.inARow = 0;
      }
      throttled.set(transport, count);
      // The sender this one job named was refused: says nothing of the transport or our setup.
      if (outcome.jobSender) return undefined;
      return breaker.record(transport, outcome.action, outcome.reason, attemptStartedAtMs).catch(() => undefined);
    },
  };
}

export type SendRouter = ReturnType<typeof createSendRouter>;

/**
 * Puts a job back on the queue as a new message for later, its lifetime start carried along (moved on by the wait),
 * so that waiting on an open breaker spends neither the job's retry lifetime nor its receive count.
 */
export interface JobRequeue {
  /**
   * `tenant`: the tenant the job was checked to be; the new message carries it (attribute and group). `attributes`:
   * more string attributes for the new message (a follow-up's).
   */
  requeue(
    body: string,
    options: { delaySeconds: number; lifetimeStartMs: number; tenant?: string; attributes?: Record<string, string> },
  ): Promise<void>;
}

/** The message attribute that carries a requeued job's lifetime start, epoch ms. */
export const LIFETIME_START_ATTRIBUTE = 'lifetimeStartMs';
