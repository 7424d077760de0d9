import type { SQSRecord } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { lifetimeStartOf } from '#handlers/route-job.js';

const record = (sentTimestamp: string, lifetimeStartMs?: string) =>
  ({
    attributes: { SentTimestamp: sentTimestamp },
    messageAttributes: lifetimeStartMs ? { lifetimeStartMs: { dataType: 'Number', stringValue: lifetimeStartMs } } : {},
  }) as unknown as SQSRecord;

describe('the lifetime start of a job', () => {
  it('is the first enqueue time of a job never postponed', () => {
    expect(lifetimeStartOf(record('1000'), 5)).toBe(1000);
  });

  it('is the carried start of a job requeued while its circuit was open (moved on by the wait)', () => {
    // Enqueued at 1000, requeued later as a new message (SentTimestamp 90000) with its start moved by a 60 s wait.
    expect(lifetimeStartOf(record('90000', String(1000 + 60_000)), 5)).toBe(61_000);
  });

  it('is not pushed into the future by a producer: a start later than a requeue could carry is ignored', () => {
    // A requeue carries at most its SentTimestamp plus SQS's longest delay (900 s); a producer may set any attribute.
    const sent = 1_000_000;
    expect(lifetimeStartOf(record(String(sent), String(sent + 365 * 86_400_000)), 5)).toBe(sent);
    expect(lifetimeStartOf(record(String(sent), String(sent + 900_000)), 5)).toBe(sent + 900_000);
  });

  it('falls back to now when SQS gives no timestamp', () => {
    expect(lifetimeStartOf(record(''), 5)).toBe(5);
  });
});
