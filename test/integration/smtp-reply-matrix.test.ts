import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dispatchJob, type DispatchDeps } from '#core/dispatch-job.js';
import type { SendAction } from '#core/send-outcome.js';
import type { SmtpSink, SmtpStage } from '#local/smtp-sink.js';
import { createSmtpTransport } from '#transports/smtp-transport.js';
import { emailJobFactory } from '../support/factories.js';
import { startSmtpDispatch } from '../support/smtp-dispatch.js';

let smtp: Awaited<ReturnType<typeof startSmtpDispatch>>;
let sink: SmtpSink;
let deps: DispatchDeps;

beforeAll(async () => {
  smtp = await startSmtpDispatch({ smtp: { maxConnections: 2 } });
  ({ sink, deps } = smtp);
});
afterAll(async () => {
  await smtp.stop();
});

// The replies real servers give, and what each must lead to (RFC 5321 4.2, RFC 3463, the SES SMTP interface).
const replies: Array<{ code: number; message: string; expected: SendAction }> = [
  { code: 421, message: '4.3.2 Service not available, closing transmission channel', expected: 'retry' },
  { code: 450, message: '4.2.1 Mailbox busy, try again later', expected: 'retry' },
  { code: 451, message: '4.3.0 Local error in processing', expected: 'retry' },
  { code: 452, message: '4.3.1 Insufficient system storage', expected: 'retry' },
  { code: 454, message: 'Throttling failure: Maximum sending rate exceeded.', expected: 'throttled' },
  { code: 550, message: '5.1.1 Mailbox unavailable', expected: 'rejected' },
  { code: 552, message: '5.3.4 Message size exceeds fixed limit', expected: 'rejected' },
  { code: 553, message: '5.1.3 Mailbox name not allowed', expected: 'rejected' },
  { code: 554, message: '5.0.0 Transaction failed', expected: 'rejected' },
];
const stages: SmtpStage[] = ['mail', 'rcpt', 'data', 'end'];

describe('the SMTP reply matrix against a real server', () => {
  for (const stage of stages) {
    for (const reply of replies) {
      it(`maps ${reply.code} at ${stage} to ${reply.expected}`, async () => {
        // Prepare
        sink.clearRules();
        sink.addRule({ stage, reply: { code: reply.code, message: reply.message } });
        const before = sink.received.length;

        // Act
        const outcome = await dispatchJob(emailJobFactory(), deps);

        // Assess
        expect(outcome.action).toBe(reply.expected);
        expect(outcome.responseCode).toBe(reply.code);
        expect(sink.received.length).toBe(before);
      });
    }
  }

  it('treats 552 "too many recipients" as transient (RFC 5321 4.5.3.1.10)', async () => {
    sink.clearRules();
    sink.addRule({ stage: 'rcpt', reply: { code: 552, message: '5.5.3 Too many recipients' } });
    const outcome = await dispatchJob(emailJobFactory(), deps);
    expect(outcome.action).toBe('retry');
  });

  it('treats a rate-type 421 as throttling', async () => {
    sink.clearRules();
    sink.addRule({
      stage: 'mail',
      reply: { code: 421, message: '4.7.0 Too many connections from your host, slow down' },
    });
    const outcome = await dispatchJob(emailJobFactory(), deps);
    expect(outcome.action).toBe('throttled');
  });

  it('treats a policy refusal of our sender at MAIL FROM as our own setup', async () => {
    sink.clearRules();
    sink.addRule({ stage: 'mail', reply: { code: 550, message: '5.7.1 Sender not authorized for this relay' } });
    const outcome = await dispatchJob(emailJobFactory(), deps);
    expect(outcome.action).toBe('blocked');
  });

  it('records a partial recipient rejection as delivered with the refused recipient listed', async () => {
    sink.clearRules();
    sink.addRule({ stage: 'rcpt', address: '*@bounce.test', reply: { code: 550, message: '5.1.1 No such user' } });
    const before = sink.received.length;
    const outcome = await dispatchJob(emailJobFactory({ to: ['ok@example.net', 'gone@bounce.test'] }), deps);
    expect(outcome.action).toBe('delivered');
    expect(outcome.recipients).toEqual([
      { recipient: 'ok@example.net', status: 'accepted' },
      { recipient: 'gone@bounce.test', status: 'rejected', responseCode: 550, enhancedStatus: '5.1.1' },
    ]);
    expect(sink.received.length).toBe(before + 1);
    expect(sink.received.at(-1)?.to).toEqual(['ok@example.net']);
  });

  it('retries when every recipient is refused but one only transiently', async () => {
    sink.clearRules();
    sink.addRule({ stage: 'rcpt', address: '*@bounce.test', reply: { code: 550, message: '5.1.1 No such user' } });
    sink.addRule({
      stage: 'rcpt',
      address: '*@slow.test',
      reply: { code: 451, message: '4.7.1 Greylisted, try again' },
    });
    const outcome = await dispatchJob(emailJobFactory({ to: ['gone@bounce.test', 'later@slow.test'] }), deps);
    expect(outcome.action).toBe('retry');
  });

  it('classifies a dropped socket at each stage as retry, with nothing delivered', async () => {
    for (const stage of ['connect', ...stages] as SmtpStage[]) {
      // A fresh pool, so that the drop meets a new connection rather than a reused one.
      await deps.transports.smtp?.close();
      sink.clearRules();
      sink.addRule({ stage, drop: true });
      const before = sink.received.length;
      const outcome = await dispatchJob(emailJobFactory(), deps);
      expect({ stage, action: outcome.action, delivered: sink.received.length - before }).toEqual({
        stage,
        action: 'retry',
        delivered: 0,
      });
    }
  });

  it('moves a message to a new connection when one is dropped before a byte was sent', async () => {
    await deps.transports.smtp?.close();
    sink.clearRules();
    sink.addRule({ stage: 'connect', drop: true, times: 1 });
    const before = sink.received.length;
    const outcome = await dispatchJob(emailJobFactory(), deps);
    expect(outcome.action).toBe('delivered');
    expect(sink.received.length).toBe(before + 1);
  });

  it('classifies a server that stalls past the socket timeout as retry', async () => {
    const slow = createSmtpTransport(
      { host: sink.host, port: sink.port, security: 'starttls', tls: { ca: smtp.cert.cert }, socketTimeoutMs: 300 },
      { get: async () => smtp.credentials },
    );
    sink.clearRules();
    sink.addRule({ stage: 'end', delayMs: 1500, reply: { code: 250, message: 'late' }, times: 1 });
    const outcome = await dispatchJob(emailJobFactory(), { ...deps, transports: { smtp: slow } });
    await slow.close();
    expect(outcome.action).toBe('retry');
    expect(outcome.reason).toMatch(/etimedout|econnection|esocket/);
  });
});
