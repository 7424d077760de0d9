import { afterEach, describe, expect, it } from 'vitest';
import { dispatchJob, type DispatchDeps } from '#core/dispatch-job.js';
import { startSmtpSink, type SmtpSink } from '#local/smtp-sink.js';
import { localTlsCertificate } from '#local/tls-certificate.js';
import { createSmtpTransport } from '#transports/smtp-transport.js';
import { emailJobFactory } from '../support/factories.js';

const GOOD = { username: 'dispatch', password: 'dispatch-pass' };
const cert = localTlsCertificate();
let sink: SmtpSink | undefined;
let deps: DispatchDeps | undefined;

afterEach(async () => {
  await deps?.transports.smtp?.close();
  await sink?.stop();
});

/** The core dispatch over a pool of five connections to a relay that wants `GOOD`, logging in with `login()`. */
async function relayWithLogin(login: () => { username: string; password: string }, rules = {}) {
  sink = await startSmtpSink({ tls: cert, credentials: GOOD, ...rules });
  const transport = createSmtpTransport(
    { host: sink.host, port: sink.port, security: 'starttls', tls: { ca: cert.cert }, maxConnections: 5 },
    { get: async () => login() },
  );
  deps = {
    transports: { smtp: transport },
    defaultTransport: 'smtp',
    suppressions: { findSuppressed: async () => new Set() },
    loadAttachment: async () => new Uint8Array(),
    messageIdDomain: 'example.com',
  };
  return { sink, deps };
}

describe('a relay refusing our login', () => {
  it('sees one login for twenty jobs at once over a pool of five connections, one more for the next pool', async () => {
    // Prepare
    let credentials = { ...GOOD, password: 'rotated-away' };
    const { sink, deps } = await relayWithLogin(() => credentials);

    // Act: twenty jobs at once, then (the secret fixed) one more, as the breaker's probe would be.
    const outcomes = await Promise.all(Array.from({ length: 20 }, () => dispatchJob(emailJobFactory(), deps)));
    const loginsForTheBatch = sink.authAttempts.length;
    credentials = GOOD;
    const probe = await dispatchJob(emailJobFactory(), deps);

    // Assess: every job of the batch is blocked (our setup), after a single refused login; the next pool logs in.
    expect(new Set(outcomes.map((o) => o.action))).toEqual(new Set(['blocked']));
    expect(outcomes.every((o) => o.ambiguous !== true)).toBe(true);
    expect(loginsForTheBatch).toBe(1);
    expect(probe.action).toBe('delivered');
    expect(sink.authAttempts).toHaveLength(2);
    expect(sink.received).toHaveLength(1);
  });

  it('lets the other jobs through when the first job of a pool had its own sender refused at MAIL FROM', async () => {
    // Prepare: the relay refuses one foreign sender by policy; the login is fine.
    const { sink, deps } = await relayWithLogin(() => GOOD, {
      rules: [
        { stage: 'mail', address: '*@foreign.example', reply: { code: 553, message: '5.7.1 Sender address rejected' } },
      ],
    });

    // Act: the foreign job first, nine others at once behind it.
    const foreign = dispatchJob(emailJobFactory({ from: 'ceo@foreign.example' }), deps);
    const others = Array.from({ length: 9 }, () => dispatchJob(emailJobFactory(), deps));
    const [first, ...rest] = await Promise.all([foreign, ...others]);

    // Assess
    expect(first?.action).toBe('blocked');
    expect(rest.map((o) => o.action)).toEqual(Array.from({ length: 9 }, () => 'delivered'));
    expect(sink.received).toHaveLength(9);
  });
});
