import { describe, expect, it } from 'vitest';
import { decideSchedule, fromStatusItem, MAX_SEND_AT_AHEAD_SECONDS, toMaskedRecipients } from '#core/job-status.js';

const NOW = Date.parse('2026-12-01T12:00:00Z');

describe('the schedule of a job', () => {
  it('sends a job without sendAt, or whose time has come or passed, now', () => {
    expect(decideSchedule(undefined, NOW)).toEqual({ action: 'send' });
    expect(decideSchedule('2026-12-01T12:00:00Z', NOW)).toEqual({ action: 'send' });
    expect(decideSchedule('2026-11-30T12:00:00+01:00', NOW)).toEqual({ action: 'send' });
  });

  it('holds a job due later, never sending it early, with the offset taken into account', () => {
    expect(decideSchedule('2026-12-01T12:00:00.200Z', NOW)).toEqual({ action: 'hold', untilMs: NOW + 200 });
    expect(decideSchedule('2026-12-01T14:00:00+01:00', NOW)).toEqual({ action: 'hold', untilMs: NOW + 3600_000 });
  });

  it('refuses a time beyond the limit with the reason, allowing the dispatcher slack the producer does not get', () => {
    const limit = NOW + MAX_SEND_AT_AHEAD_SECONDS * 1000;
    const justOver = new Date(limit + 60_000).toISOString();
    expect(decideSchedule(new Date(limit).toISOString(), NOW, MAX_SEND_AT_AHEAD_SECONDS, 0).action).toBe('hold');
    expect(decideSchedule(justOver, NOW, MAX_SEND_AT_AHEAD_SECONDS, 0)).toEqual({
      action: 'refuse',
      detail: 'sendAt: must be at most 72 hours ahead; schedule later jobs closer to their time',
    });
    expect(decideSchedule(justOver, NOW).action).toBe('hold');
    expect(decideSchedule(new Date(limit + 16 * 60_000).toISOString(), NOW).action).toBe('refuse');
  });
});

describe('a status record', () => {
  it('masks recipients and reads back what was stored, and nothing once expired', () => {
    const recipients = toMaskedRecipients([{ recipient: 'Alice@Example.net', status: 'accepted', responseCode: 250 }]);
    const item = {
      state: { S: 'deferred' },
      updatedAt: { N: String(NOW) },
      attempts: { N: '2' },
      deferral: { S: JSON.stringify({ reason: 'smtp-rcpt-451', nextAttemptAtMs: NOW + 30_000 }) },
      expiresAt: { N: String(NOW / 1000 + 60) },
    };
    const job = { tenant: 'default', idempotencyKey: 'k' };
    expect(recipients).toEqual([{ address: 'a***@example.net', status: 'accepted', responseCode: 250 }]);
    expect(fromStatusItem(item, job, NOW)).toEqual({
      ...job,
      state: 'deferred',
      updatedAt: '2026-12-01T12:00:00.000Z',
      attempts: 2,
      nextAttemptAt: '2026-12-01T12:00:30.000Z',
      lastReason: 'smtp-rcpt-451',
    });
    expect(fromStatusItem(item, job, NOW + 61_000)).toBeUndefined();
    expect(fromStatusItem({ state: { S: 'bogus' } }, job, NOW)).toBeUndefined();
  });
});
