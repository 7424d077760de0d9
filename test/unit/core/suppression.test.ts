import { describe, expect, it } from 'vitest';
import { isActive, maskAddress, mergeSuppression } from '#core/suppression.js';

const t0 = new Date('2030-01-01T00:00:00Z');
const days = (n: number) => new Date(t0.getTime() + n * 86_400_000);

describe('mergeSuppression', () => {
  it('makes hard bounces, complaints, unsubscribes and manual entries permanent, other reasons expire', () => {
    const entryFor = (reason: string) =>
      mergeSuppression(undefined, { address: 'a@x.example', reason, source: 's' }, t0, 30);
    const hard = entryFor('hard-bounce');
    const soft = entryFor('mailbox-full');
    // An opt-out that lapsed after a month would mail someone who asked not to be mailed.
    const lasting = ['complaint', 'unsubscribe', 'manual'].map((reason) => entryFor(reason).record);

    expect(hard.record).toMatchObject({
      permanent: true,
      expiresAt: undefined,
      count: 1,
      firstSeen: t0.toISOString(),
      scope: 'global',
    });
    expect(soft.record).toMatchObject({ permanent: false, expiresAt: days(30).getTime() / 1000 });
    expect(lasting.map((r) => [r.reason, r.permanent, r.expiresAt])).toEqual([
      ['complaint', true, undefined],
      ['unsubscribe', true, undefined],
      ['manual', true, undefined],
    ]);
  });

  it('never turns a permanent entry into an expiring one, nor shortens an expiry', () => {
    const hard = mergeSuppression(undefined, { address: 'a@x.example', reason: 'complaint', source: 's1' }, t0).record;
    const later = mergeSuppression(
      undefined,
      { address: 'b@x.example', reason: 'soft', source: 's1', expiresAt: days(20).toISOString() },
      t0,
    ).record;

    const afterSoft = mergeSuppression(
      hard,
      { address: 'a@x.example', reason: 'mailbox-full', source: 's2' },
      days(1),
      7,
    );
    const shorter = mergeSuppression(later, { address: 'b@x.example', reason: 'soft', source: 's2' }, days(1), 7);

    expect(afterSoft).toMatchObject({
      created: false,
      record: {
        permanent: true,
        expiresAt: undefined,
        count: 2,
        firstSeen: t0.toISOString(),
        lastSeen: days(1).toISOString(),
        source: 's2',
      },
    });
    expect(shorter.record.expiresAt).toBe(days(20).getTime() / 1000);
  });

  it('starts afresh after an entry expired', () => {
    const soft = mergeSuppression(undefined, { address: 'a@x.example', reason: 'soft', source: 's1' }, t0, 1).record;

    const again = mergeSuppression(soft, { address: 'a@x.example', reason: 'soft', source: 's2' }, days(2), 1);

    expect(isActive(soft, days(2))).toBe(false);
    expect(again).toMatchObject({ created: true, record: { count: 1, firstSeen: days(2).toISOString() } });
  });
});

describe('maskAddress', () => {
  it('keeps the first letter and the domain, lowercased', () => {
    expect(maskAddress('Carol@Customer.Example')).toBe('c***@customer.example');
    expect(maskAddress('not-an-address')).toBe('***');
  });
});
