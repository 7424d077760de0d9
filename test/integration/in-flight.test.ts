import { describe, expect, it } from 'vitest';
import type { MailTransport } from '#core/mail-transport.js';
import { emailJobFactory } from '../support/factories.js';
import { type DispatchHarness, useAwsEmulators } from '../support/dispatch-harness.js';

const env = useAwsEmulators();
let h: DispatchHarness;

/** Counts the sends in progress at once through the wired SMTP transport, each held a little so they overlap. */
function countConcurrentSends(transport: MailTransport) {
  const seen = { now: 0, most: 0 };
  const send = transport.send.bind(transport);
  transport.send = async (message, budget) => {
    seen.now += 1;
    seen.most = Math.max(seen.most, seen.now);
    try {
      await new Promise((resolve) => setTimeout(resolve, 50));
      return await send(message, budget);
    } finally {
      seen.now -= 1;
    }
  };
  return seen;
}

describe('jobs in flight', () => {
  it('MAX_IN_FLIGHT holds a batch to that many jobs in progress at once; every job is still sent once', async () => {
    // Prepare
    let seen = { now: 0, most: 0 };
    h = await env.harness({
      env: { MAX_IN_FLIGHT: '2' },
      adjust: (deps) => {
        seen = countConcurrentSends(deps.dispatch.transports.smtp as MailTransport);
      },
    });
    for (let i = 0; i < 6; i += 1) await h.enqueue(emailJobFactory({ idempotencyKey: `in-flight-${i}` }));

    // Act
    const result = await h.deliver(10);

    // Assert
    expect(result).toMatchObject({ received: 6, succeeded: 6, failed: 0 });
    expect(h.sink.received).toHaveLength(6);
    expect(seen.most).toBe(2);
  });

  it('without it the whole batch is in progress at once', async () => {
    // Prepare
    let seen = { now: 0, most: 0 };
    h = await env.harness({
      adjust: (deps) => {
        seen = countConcurrentSends(deps.dispatch.transports.smtp as MailTransport);
      },
    });
    for (let i = 0; i < 6; i += 1) await h.enqueue(emailJobFactory({ idempotencyKey: `all-at-once-${i}` }));

    // Act
    const result = await h.deliver(10);

    // Assert
    expect(result).toMatchObject({ received: 6, succeeded: 6, failed: 0 });
    expect(seen.most).toBe(6);
  });

  it('refuses an in-flight count that is not a whole number', async () => {
    await expect(env.harness({ env: { MAX_IN_FLIGHT: 'many' } })).rejects.toThrow(/MAX_IN_FLIGHT/);
  });
});
