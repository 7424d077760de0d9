import { describe, expect, it } from 'vitest';
import { createBreakerStore } from '#aws/breaker-store.js';
import { TableKeys } from '#aws/table-keys.js';
import { createCircuitBreaker } from '#core/circuit-breaker.js';
import { useDynalite } from '../support/dynalite.js';

const TABLE = 'transport-state';
const dynalite = useDynalite([[TABLE, TableKeys.transportState.partitionKey]]);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('the breakers in DynamoDB', () => {
  it('are not reopened by an attempt that started before they closed, only by one that started after', async () => {
    // Prepare: two instances; the first opens the breaker, then its probe delivers and closes it.
    const store = createBreakerStore(dynalite.clients.documents, TABLE);
    const options = { firstProbeAfterMs: 0, cacheMs: 0 };
    const prober = createCircuitBreaker(store, options);
    const other = createCircuitBreaker(store, options);
    expect(await prober.record('smtp', 'blocked', 'smtp-eauth-535')).toBe('opened');
    const staleAttemptStartedAt = Date.now();
    await sleep(20);
    expect(await prober.check('smtp')).toEqual({ verdict: 'probe' });
    expect(await prober.record('smtp', 'delivered', 'accepted')).toBe('closed');
    await sleep(20);

    // Act and assess: the other instance's attempt, begun while the old secret was in use, ends blocked now.
    expect(await other.record('smtp', 'blocked', 'smtp-eauth-535', staleAttemptStartedAt)).toBeUndefined();
    expect(await store.read('smtp')).toEqual({ state: 'closed' });
    // An attempt begun after the close is new evidence.
    expect(await other.record('smtp', 'blocked', 'smtp-eauth-535', Date.now())).toBe('opened');
    expect((await store.read('smtp')).state).toBe('open');
  });
});
