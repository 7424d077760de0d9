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

  it('publishes outcome events in tens as their jobs finish, not after the batch', async () => {
    // Prepare: eleven jobs; the relay takes 3 s to accept the last one's message.
    h = await env.harness({ sink: { rules: [{ stage: 'end', address: 'slow@example.net', delayMs: 3000 }] } });
    for (let i = 0; i < 10; i += 1) await h.enqueue(emailJobFactory({ idempotencyKey: `early-${i}` }));
    await h.enqueue(emailJobFactory({ idempotencyKey: 'early-slow', to: ['slow@example.net'] }));

    // Act: the batch runs while its events are watched.
    let answered = false;
    // A batch of more than ten gathers over several receives: a window, as the stack sets one.
    const delivering = h.deliver(11, { windowSeconds: 1 }).finally(() => {
      answered = true;
    });
    const seen: Array<Record<string, unknown>> = [];
    // Bounded: at most 60 polls, and the batch answers in a few seconds.
    for (let poll = 0; poll < 60 && !answered && seen.length < 10; poll += 1) {
      seen.push(...(await h.events()));
      if (seen.length < 10) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const eventsBeforeAnswer = seen.length;
    const result = await delivering;
    seen.push(...(await h.events()));

    // Assess: the ten fast jobs' events were out while the slow one was still being sent; the last came after.
    expect(result).toMatchObject({ received: 11, succeeded: 11, failed: 0 });
    expect(eventsBeforeAnswer).toBe(10);
    expect(seen.map((e) => e.type)).toEqual(Array(11).fill('email.delivered'));
    expect(seen.at(-1)?.idempotencyKey).toBe('early-slow');
  });

  it('refuses an in-flight count that is not a whole number', async () => {
    await expect(env.harness({ env: { MAX_IN_FLIGHT: 'many' } })).rejects.toThrow(/MAX_IN_FLIGHT/);
  });
});
