import { afterAll, describe, expect, it } from 'vitest';
import { dispatchJob, type DispatchDeps } from '#core/dispatch-job.js';
import type { SendAction } from '#core/send-outcome.js';
import { localTlsCertificate } from '#local/tls-certificate.js';
import { startSmtpSink } from '#local/smtp-sink.js';
import { createSmtpTransport, type SmtpSettings } from '#transports/smtp-transport.js';
import { emailJobFactory } from '../support/factories.js';
import {
  startPostfixSink,
  type PostfixFault,
  type PostfixSinkOptions,
  type PostfixStage,
} from '../support/postfix-sink.js';

const started: Array<{ stop(): Promise<void> }> = [];
afterAll(async () => {
  await Promise.all(started.map((s) => s.stop()));
});

async function sendThrough(sink: { host: string; port: number }, settings: Partial<SmtpSettings> = {}) {
  const transport = createSmtpTransport({
    host: sink.host,
    port: sink.port,
    security: 'none',
    maxConnections: 1,
    ...settings,
  });
  const deps: DispatchDeps = {
    transports: { smtp: transport },
    defaultTransport: 'smtp',
    suppressions: { findSuppressed: async () => new Set() },
    loadAttachment: async () => new Uint8Array(),
    messageIdDomain: 'example.com',
  };
  try {
    return await dispatchJob(emailJobFactory(), deps);
  } finally {
    await transport.close();
  }
}

async function sendAgainstPostfix(options: PostfixSinkOptions) {
  const sink = await startPostfixSink(options);
  started.push(sink);
  return sendThrough(sink);
}

// EHLO refused alone is no refusal (the client falls back to HELO, RFC 5321 3.2): the session cell refuses both.
const stages: Array<{ name: string; stages: PostfixStage[] }> = [
  { name: 'greeting', stages: ['CONNECT'] },
  { name: 'EHLO and HELO', stages: ['EHLO', 'HELO'] },
  { name: 'MAIL', stages: ['MAIL'] },
  { name: 'RCPT', stages: ['RCPT'] },
  { name: 'DATA', stages: ['DATA'] },
  { name: "'.'", stages: ['.'] },
];
type Cell = { action: SendAction; ambiguous: boolean };
// What each fault at each stage must lead to. A refusal of the session is of us (blocked); a refusal of the
// transaction is of the job (rejected); a disconnect can hide a delivery only after the final '.'.
const expected: Record<string, Record<PostfixFault, Cell>> = {
  greeting: {
    hard: { action: 'blocked', ambiguous: false },
    soft: { action: 'retry', ambiguous: false },
    drop: { action: 'retry', ambiguous: false },
    close421: { action: 'retry', ambiguous: false },
  },
  'EHLO and HELO': {
    hard: { action: 'blocked', ambiguous: false },
    soft: { action: 'retry', ambiguous: false },
    drop: { action: 'retry', ambiguous: false },
    close421: { action: 'retry', ambiguous: false },
  },
  MAIL: {
    hard: { action: 'rejected', ambiguous: false },
    soft: { action: 'retry', ambiguous: false },
    drop: { action: 'retry', ambiguous: false },
    close421: { action: 'retry', ambiguous: false },
  },
  RCPT: {
    hard: { action: 'rejected', ambiguous: false },
    soft: { action: 'retry', ambiguous: false },
    drop: { action: 'retry', ambiguous: false },
    close421: { action: 'retry', ambiguous: false },
  },
  DATA: {
    hard: { action: 'rejected', ambiguous: false },
    soft: { action: 'retry', ambiguous: false },
    drop: { action: 'retry', ambiguous: false },
    close421: { action: 'retry', ambiguous: false },
  },
  "'.'": {
    hard: { action: 'rejected', ambiguous: false },
    soft: { action: 'retry', ambiguous: false },
    drop: { action: 'retry', ambiguous: true },
    close421: { action: 'retry', ambiguous: false },
  },
};
const faults: PostfixFault[] = ['hard', 'soft', 'drop', 'close421'];

describe('the reply and disconnect matrix against Postfix smtp-sink', () => {
  for (const stage of stages) {
    for (const fault of faults) {
      const cell = expected[stage.name]?.[fault] as Cell;
      it(`maps ${fault} at ${stage.name} to ${cell.action}${cell.ambiguous ? ', ambiguous' : ''}`, async () => {
        // Act
        const outcome = await sendAgainstPostfix({ faults: [{ fault, stages: stage.stages }] });

        // Assess
        expect({ action: outcome.action, ambiguous: outcome.ambiguous === true }).toEqual(cell);
      });
    }
  }

  it('delivers when only EHLO is refused, through HELO', async () => {
    const outcome = await sendAgainstPostfix({ faults: [{ fault: 'hard', stages: ['EHLO'] }] });
    expect(outcome.action).toBe('delivered');
  });

  it('delivers through a sink without faults', async () => {
    const outcome = await sendAgainstPostfix({});
    expect({ action: outcome.action, ambiguous: outcome.ambiguous === true }).toEqual({
      action: 'delivered',
      ambiguous: false,
    });
  });
});

describe('TLS mismatches are our setup', () => {
  it('blocks implicit TLS against a plaintext port', async () => {
    const sink = await startPostfixSink();
    started.push(sink);
    const outcome = await sendThrough(sink, { security: 'implicit' });
    expect({ action: outcome.action, ambiguous: outcome.ambiguous === true }).toEqual({
      action: 'blocked',
      ambiguous: false,
    });
    expect(outcome.reason).toMatch(/^smtp-tls-/);
  });

  it('blocks a server certificate we do not trust', async () => {
    const sink = await startSmtpSink({ tls: localTlsCertificate() });
    started.push(sink);
    const outcome = await sendThrough(sink, { security: 'starttls' });
    expect({ action: outcome.action, ambiguous: outcome.ambiguous === true }).toEqual({
      action: 'blocked',
      ambiguous: false,
    });
  });

  it('blocks a relay that greets with 554 5.7.1 (our address on a blocklist)', async () => {
    const sink = await startSmtpSink({
      rules: [{ stage: 'connect', reply: { code: 554, message: '5.7.1 Service unavailable; client host blocked' } }],
    });
    started.push(sink);
    const outcome = await sendThrough(sink);
    expect({ action: outcome.action, responseCode: outcome.responseCode }).toEqual({
      action: 'blocked',
      responseCode: 554,
    });
  });
});
