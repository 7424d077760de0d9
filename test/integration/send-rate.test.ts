import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dispatchJob, type DispatchDeps } from '#core/dispatch-job.js';
import type { MailTransport } from '#core/mail-transport.js';
import { startSmtpSink, type SmtpSink } from '#local/smtp-sink.js';
import { createSmtpTransport } from '#transports/smtp-transport.js';
import { emailJobFactory } from '../support/factories.js';

let sink: SmtpSink;
const transports: MailTransport[] = [];

beforeAll(async () => {
  sink = await startSmtpSink();
});
afterAll(async () => {
  for (const transport of transports) await transport.close();
  await sink.stop();
});

const depsWith = (transport: MailTransport): DispatchDeps => {
  transports.push(transport);
  return {
    transports: { [transport.name]: transport },
    defaultTransport: transport.name as 'smtp' | 'ses',
    suppressions: { findSuppressed: async () => new Set() },
    loadAttachment: async () => new Uint8Array(),
    messageIdDomain: 'example.com',
  };
};

describe('a rate reply slows the whole instance down', () => {
  it('spaces the jobs after a 454 at half the rate, though they never met the reply themselves', async () => {
    // Prepare: 10 recipients a second (9.5 with the headroom); the relay answers one RCPT with SES's rate reply.
    const deps = depsWith(
      createSmtpTransport({ host: sink.host, port: sink.port, security: 'none', maxSendRate: 10, maxConnections: 3 }),
    );
    sink.addRule({
      stage: 'rcpt',
      reply: { code: 454, message: 'Throttling failure: Maximum sending rate exceeded.' },
      times: 1,
    });

    // Act: the job that meets the reply, then five others at once.
    const throttled = await dispatchJob(emailJobFactory(), deps);
    const started = Date.now();
    const outcomes = await Promise.all(Array.from({ length: 5 }, () => dispatchJob(emailJobFactory(), deps)));
    const seconds = (Date.now() - started) / 1000;

    // Assess: at 4.75/s the five take 5 × 0.21 s (the first waits out the pause the reply left); at the full rate they
    // would have taken 0.42 s.
    expect(throttled.action).toBe('throttled');
    expect(outcomes.map((o) => o.action)).toEqual(Array.from({ length: 5 }, () => 'delivered'));
    expect(seconds).toBeGreaterThanOrEqual(0.9);
  });
});
