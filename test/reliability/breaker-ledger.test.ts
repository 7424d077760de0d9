import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toDispatchId } from '#core/message-id.js';
import { startSesLocal, type Emulator } from '#local/emulators.js';
import { emailJobFactory } from '../support/factories.js';
import { SMTP_USER, type DispatchHarness, useAwsEmulators } from '../support/dispatch-harness.js';
import { printSummary } from './ledger.js';

const env = useAwsEmulators();
let ses: Emulator;
let h: DispatchHarness;

beforeAll(async () => {
  ses = await startSesLocal();
});
afterAll(async () => {
  await ses.stop();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const WRONG_SECRET = { username: SMTP_USER.username, password: 'rotated-away' };
// Probes after one second, backing off to two: the one-hour outage of production, compressed.
const BREAKER_ENV = {
  RETRY_BASE_SECONDS: '1',
  RETRY_MAX_DELAY_SECONDS: '2',
  BREAKER_FIRST_PROBE_SECONDS: '1',
  BREAKER_MAX_PROBE_SECONDS: '2',
};

/** Every job that reached a provider, by key: the SMTP sink by X-Dispatch-Id, the SES emulator by subject. */
/** Terminal outcome events per key: none is missing, none is repeated. */
function eventCounts(keys: string[], published: Array<Record<string, unknown>>) {
  const outcomes = new Map<string, number>();
  for (const e of published) {
    if (['email.delivered', 'email.rejected', 'email.failed'].includes(String(e.type))) {
      const key = String(e.idempotencyKey);
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
    }
  }
  const eventsMissing = keys.filter((k) => !outcomes.has(k)).length;
  const eventsDuplicated = keys.reduce((n, k) => n + Math.max(0, (outcomes.get(k) ?? 0) - 1), 0);
  return { eventsMissing, eventsDuplicated };
}

async function deliveredCounts(keys: string[]) {
  const byDispatchId = new Map(keys.map((k) => [toDispatchId(k), k]));
  const smtp = new Map<string, number>();
  for (const message of h.sink.received) {
    const id = /^X-Dispatch-Id:\s*([a-f0-9]{32})\s*$/im.exec(message.raw.toString('utf8'))?.[1] ?? '';
    const key = byDispatchId.get(id);
    if (key) smtp.set(key, (smtp.get(key) ?? 0) + 1);
  }
  const store = (await (await fetch(`${ses.endpoint}/store`)).json()) as { emails: Array<{ subject: string }> };
  const viaSes = new Map<string, number>();
  for (const email of store.emails) {
    const key = email.subject.replace(/^job /, '');
    if (keys.includes(key)) viaSes.set(key, (viaSes.get(key) ?? 0) + 1);
  }
  const total = (key: string) => (smtp.get(key) ?? 0) + (viaSes.get(key) ?? 0);
  return {
    smtp,
    viaSes,
    lost: keys.filter((k) => total(k) === 0).length,
    duplicated: keys.reduce((sum, k) => sum + Math.max(0, total(k) - 1), 0),
  };
}

/** Jobs arrive two at a time while the handler polls, for `ms`. */
async function trafficFor(ms: number, prefix: string, keys: string[]) {
  const until = Date.now() + ms;
  for (let i = 0; Date.now() < until && i < 200; i += 1) {
    for (const n of [0, 1]) {
      const key = `${prefix}-${i}-${n}`;
      keys.push(key);
      await h.enqueue(emailJobFactory({ idempotencyKey: key, subject: `job ${key}` }));
    }
    await h.deliver();
    await sleep(250);
  }
}

/** Polls until every key is delivered (or the bound is reached); jobs waiting on the circuit come back delayed. */
async function drainUntilDelivered(keys: string[], boundMs: number) {
  const until = Date.now() + boundMs;
  while (Date.now() < until) {
    await h.deliver();
    if ((await deliveredCounts(keys)).lost === 0 && (await h.queueDepth()) === 0) return;
    await sleep(300);
  }
}

/** Settles the ledger of `keys`, prints it under `label` with `note(counts)`, and returns what it was made of. */
async function settleLedger(
  label: string,
  keys: string[],
  note: (counts: Awaited<ReturnType<typeof deliveredCounts>>) => string,
) {
  const counts = await deliveredCounts(keys);
  const deadLetters = await h.deadLetters();
  const published = await h.events();
  printSummary(
    label,
    {
      jobs: keys.length,
      delivered: keys.length - counts.lost,
      lost: counts.lost,
      duplicated: counts.duplicated,
      rejected: 0,
      inDlq: deadLetters.length,
      ...eventCounts(keys, published),
    },
    note(counts),
  );
  return { counts, deadLetters, published };
}

describe('the circuit breaker, with the relay refusing our login for a while', () => {
  it('logs in about once per probe while the secret is wrong, and delivers every job once after the fix', async () => {
    // Prepare
    h = await env.harness({ env: BREAKER_ENV });
    h.setCredentials(WRONG_SECRET);
    const keys: string[] = [];

    // Act: six seconds of outage with jobs arriving, then the secret is fixed.
    const outageStarted = Date.now();
    await trafficFor(6000, 'outage', keys);
    const outageSeconds = (Date.now() - outageStarted) / 1000;
    const loginsDuringOutage = h.sink.authAttempts.length;
    h.setCredentials(SMTP_USER);
    await trafficFor(1500, 'after', keys);
    await drainUntilDelivered(keys, 40_000);

    // Assess
    const { counts, deadLetters } = await settleLedger(
      'breaker',
      keys,
      () =>
        `${loginsDuringOutage} login attempts in ${outageSeconds.toFixed(1)} s of outage, ${h.output.metric('PostponedJobs')} postponements`,
    );
    expect({ lost: counts.lost, duplicated: counts.duplicated, inDlq: deadLetters.length }).toEqual({
      lost: 0,
      duplicated: 0,
      inDlq: 0,
    });
    // The first batch meets the closed circuit (up to one login per record); after that, one probe per interval.
    expect(loginsDuringOutage).toBeLessThanOrEqual(10 + Math.ceil(outageSeconds) + 1);
    expect(loginsDuringOutage).toBeLessThan(keys.filter((k) => k.startsWith('outage')).length);
    expect(h.output.metric('PostponedJobs')).toBeGreaterThan(0);
    expect(h.output.metric('CircuitOpen')).toBeGreaterThan(0);
  });
});

describe('the circuit breaker, with a backlog queued when the secret goes wrong', () => {
  it('logs in once for a full batch of 100 jobs, not once per job, and delivers them all after the fix', async () => {
    // Prepare: a hundred jobs already queued; the production batch size (100) and jobs in flight (50).
    h = await env.harness({ env: BREAKER_ENV });
    h.setCredentials(WRONG_SECRET);
    const keys = Array.from({ length: 100 }, (_, i) => `backlog-${i}`);
    for (const key of keys) await h.enqueue(emailJobFactory({ idempotencyKey: key, subject: `job ${key}` }));

    // Act: the first poll meets the wrong secret; four more seconds of polling; then the secret is fixed.
    await h.deliver();
    const loginsFirstBatch = h.sink.authAttempts.length;
    const until = Date.now() + 4000;
    while (Date.now() < until) {
      await h.deliver();
      await sleep(300);
    }
    const loginsDuringOutage = h.sink.authAttempts.length;
    h.setCredentials(SMTP_USER);
    await drainUntilDelivered(keys, 60_000);

    // Assess
    const { counts, deadLetters } = await settleLedger(
      'breaker-backlog',
      keys,
      () => `${loginsFirstBatch} login attempts for the first batch, ${loginsDuringOutage} in the outage`,
    );
    expect({ lost: counts.lost, duplicated: counts.duplicated, inDlq: deadLetters.length }).toEqual({
      lost: 0,
      duplicated: 0,
      inDlq: 0,
    });
    // The pool's first login is refused and its other jobs do not try (the pool has 5 connections); then one login
    // per probe (after 1 s, then every 2 s).
    expect(loginsFirstBatch).toBe(1);
    expect(loginsDuringOutage).toBeLessThanOrEqual(loginsFirstBatch + 4);
  });
});

describe('failover smtp>ses', () => {
  it('carries the jobs over SES while the relay refuses our login, and returns to SMTP when it takes it again', async () => {
    // Prepare
    h = await env.harness({
      env: {
        ...BREAKER_ENV,
        TRANSPORTS: 'smtp,ses',
        DEFAULT_TRANSPORT: 'smtp',
        FAILOVER: 'smtp>ses',
        SES_MAX_SEND_RATE: '100',
      },
      environment: {
        sesClient: {
          region: 'eu-west-1',
          endpoint: ses.endpoint,
          credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
        },
      },
    });
    h.setCredentials(WRONG_SECRET);
    const keys: string[] = [];

    // Act: an outage, the fix, then time for a probe to close the circuit, then more jobs.
    await trafficFor(5000, 'outage', keys);
    const loginsDuringOutage = h.sink.authAttempts.length;
    h.setCredentials(SMTP_USER);
    await trafficFor(4000, 'recovery', keys);
    const closed = h.output.lines.some((line) => line.includes('circuit closed'));
    const afterClose: string[] = [];
    await trafficFor(1500, 'closed', afterClose);
    keys.push(...afterClose);
    await drainUntilDelivered(keys, 40_000);

    // Assess
    const { counts, deadLetters, published } = await settleLedger(
      'failover',
      keys,
      (c) =>
        `${c.smtp.size} over SMTP, ${c.viaSes.size} over SES, ${loginsDuringOutage} login attempts during the outage`,
    );
    expect({ lost: counts.lost, duplicated: counts.duplicated, inDlq: deadLetters.length }).toEqual({
      lost: 0,
      duplicated: 0,
      inDlq: 0,
    });
    expect(counts.viaSes.size).toBeGreaterThan(0);
    expect(h.output.metric('SentOnFallback')).toBe(counts.viaSes.size);
    expect(h.output.metric('CircuitOpen')).toBeGreaterThan(0);
    expect(closed).toBe(true);
    // Each delivered event names the transport that carried the job.
    const events = published.filter((e) => e.type === 'email.delivered');
    expect(events.filter((e) => e.transport === 'ses').length).toBe(counts.viaSes.size);
    // Once the probe succeeded, the traffic is back on SMTP.
    expect(afterClose.every((key) => counts.smtp.get(key) === 1)).toBe(true);
  });
});

describe('a producer that names a sender the relay will not take', () => {
  it('has its own job held back (blocked, retried), and does not open the circuit for everyone else', async () => {
    // Prepare: the relay refuses one foreign sender by policy; the deployment's own sender is fine.
    h = await env.harness({
      env: BREAKER_ENV,
      sink: {
        rules: [
          {
            stage: 'mail',
            address: '*@foreign.example',
            reply: { code: 553, message: '5.7.1 Sender address rejected: not owned by user' },
          },
        ],
      },
    });
    const keys: string[] = [];

    // Act: one job with the foreign sender, then the rest of the traffic.
    await h.enqueue(
      emailJobFactory({ idempotencyKey: 'foreign-0', subject: 'job foreign-0', from: 'ceo@foreign.example' }),
    );
    await h.deliver();
    await trafficFor(2000, 'others', keys);
    for (let polls = 0; polls < 60 && (await deliveredCounts(keys)).lost > 0; polls += 1) {
      await h.deliver();
      await sleep(300);
    }

    // Assess: nobody else waited on a circuit; the foreign job was not sent.
    const counts = await deliveredCounts([...keys, 'foreign-0']);
    expect(counts.smtp.get('foreign-0')).toBeUndefined();
    expect(counts.lost).toBe(1);
    expect(counts.duplicated).toBe(0);
    expect(h.output.metric('PostponedJobs')).toBe(0);
    expect(h.output.metric('Blocked')).toBeGreaterThan(0);
    expect(h.output.lines.some((line) => line.includes('circuit opened'))).toBe(false);
  });
});
