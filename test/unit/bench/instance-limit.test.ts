import { describe, expect, it } from 'vitest';
import { limitOf, relayTimeMs, sesSendTimeMs } from '../../../bench/instance.js';
import { LATENCY_PROFILES } from '../../../bench/latency.js';

const same = LATENCY_PROFILES['same-region'];

describe("an instance's limit under injected latency", () => {
  it('is the pool ÷ the time a message holds a connection when enough jobs are in flight to keep it busy', () => {
    // Prepare: ten connections, 50 ms a message, fifty jobs in flight.
    const config = { profile: 'same-region' as const, batchSize: 100, inFlight: 50, pool: 10 };
    // Act / Assess: 10 × 1000 / 50.
    expect(limitOf(config, 50)).toBeCloseTo(200, 10);
  });

  it('is the jobs in flight ÷ the time each holds its place (send and three DynamoDB trips) when they are fewer', () => {
    const config = { profile: 'same-region' as const, batchSize: 100, inFlight: 5, pool: 10 };
    // Five places, each held for the 50 ms send, its status claim, its key's claim (the lookup beside it) and its
    // completion (5 ms each here).
    const placeMs = 50 + 3 * same.http.dynamodb;
    expect(limitOf(config, 50)).toBeCloseTo((5 * 1000) / placeMs, 10);
    expect(limitOf(config, 50)).toBeLessThan((5 * 1000) / 50);
  });

  it("is the instance's share of the SES rate over SES, unless its jobs in flight cannot keep up with it", () => {
    const ses = { profile: 'same-region' as const, batchSize: 100, inFlight: 50, pool: 10, transport: 'ses' as const };
    const sendMs = sesSendTimeMs(ses);
    expect(sendMs).toBe(same.http.ses);
    expect(limitOf({ ...ses, sesRate: 50 }, sendMs)).toBe(50);
    const fewInFlight = { ...ses, inFlight: 2, sesRate: 500 };
    expect(limitOf(fewInFlight, sendMs)).toBeCloseTo((2 * 1000) / (sendMs + 3 * same.http.dynamodb), 10);
  });

  it("takes the relay's part of the send time from the SMTP proxy's figures and the server's overrun, per message", () => {
    const requests = {
      'smtp.CONNECT': { count: 1, bytes: 0, heldMs: 5 },
      'smtp.MAIL': { count: 2, bytes: 60, heldMs: 4 },
      'smtp.END': { count: 2, bytes: 2000, heldMs: 100, overMs: 6 },
      'dynamodb.PutItem': { count: 2, bytes: 400, overMs: 50 },
    };
    // The DynamoDB overrun is no part of the relay's.
    expect(relayTimeMs(requests)).toBeCloseTo((5 + 4 + 100 + 6) / 2, 10);
    expect(relayTimeMs({})).toBe(0);
  });
});
