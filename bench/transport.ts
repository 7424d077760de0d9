import { SESv2Client, SendEmailCommand } from '@aws-sdk/client-sesv2';
import nodemailer, { type Transporter } from 'nodemailer';
import { dispatchJob, type DispatchDeps } from '#core/dispatch-job.js';
import type { EmailJob, TransportName } from '#core/email-job.js';
import { LOCAL_CREDENTIALS } from '#local/emulators.js';
import { startSmtpSink } from '#local/smtp-sink.js';
import { localTlsCertificate } from '#local/tls-certificate.js';
import type { MailTransport } from '#core/mail-transport.js';
import { createSesTransport } from '#transports/ses-transport.js';
import { createSmtpTransport } from '#transports/smtp-transport.js';
import { toDispatchId, toMessageId } from '#core/message-id.js';
import { startBenchEmulators } from './emulators.js';
import { record, withConcurrency } from './measure.js';
import { benchJob } from './jobs.js';

const CONNECTIONS = 5;
const IN_FLIGHT = 50;

/** The same message ours builds: both bodies, the derived Message-ID and the dispatch header. */
const rawMessage = (job: EmailJob) => ({
  from: 'noreply@example.com',
  to: job.to as string[],
  subject: job.subject,
  text: job.text,
  html: job.html,
  messageId: toMessageId(job.idempotencyKey, 'example.com'),
  headers: { 'X-Dispatch-Id': toDispatchId(job.idempotencyKey) },
});

/**
 * Sends the same jobs through raw nodemailer and through `dispatchJob` with our adapter for `transport`, the same
 * number in flight, each run after `beforeRun`; warms both, then alternates, best of five each (these machines are
 * noisy). Returns the raw rate.
 */
async function compareSenders(
  section: string,
  count: number,
  transport: TransportName,
  raw: Transporter,
  ours: MailTransport,
  beforeRun = async () => {},
): Promise<number> {
  const jobs = Array.from({ length: count }, (_, i) => benchJob(`t-${transport}-${i}`));
  const deps: DispatchDeps = {
    transports: { [transport]: ours },
    defaultTransport: transport,
    suppressions: { findSuppressed: async () => new Set() },
    loadAttachment: async () => new Uint8Array(),
    messageIdDomain: 'example.com',
  };
  const timed = async (send: (job: EmailJob) => Promise<void>) => {
    await beforeRun();
    const start = performance.now();
    await withConcurrency(jobs, IN_FLIGHT, send);
    return (count / (performance.now() - start)) * 1000;
  };
  const rawRun = () => timed(async (job) => void (await raw.sendMail(rawMessage(job))));
  const oursRun = () =>
    timed(async (job) => {
      const outcome = await dispatchJob(job, deps);
      if (outcome.action !== 'delivered') throw new Error(`bench send failed: ${outcome.reason}`);
    });
  await rawRun();
  await oursRun();
  const rawRates: number[] = [];
  const ourRates: number[] = [];
  for (let i = 0; i < 5; i += 1) {
    rawRates.push(await rawRun());
    ourRates.push(await oursRun());
  }
  const ceiling = record(
    section,
    `raw nodemailer ${transport === 'smtp' ? 'pool' : 'SES transport'}`,
    Math.max(...rawRates),
    'msg/s',
  );
  const ourRate = record(section, `dispatchJob + ${transport.toUpperCase()} adapter`, Math.max(...ourRates), 'msg/s');
  record(section, 'ratio ours / raw', ourRate / ceiling, '×', 'target ≥ 0.9');
  return ceiling;
}

/**
 * The transport ceiling (raw nodemailer pool) against our dispatch layer over the same pool settings, to the same
 * loopback sink with STARTTLS and AUTH; and the same for SES (nodemailer's SES transport on the SESv2 client against
 * our SES adapter, which makes one attempt per send) on aws-ses-v2-local in a process of its own.
 */
export async function benchTransport(count: number) {
  const cert = localTlsCertificate();
  const credentials = { username: 'bench', password: 'bench-pass' };
  const sink = await startSmtpSink({ tls: cert, credentials });
  let ceiling: number;
  try {
    const raw = nodemailer.createTransport({
      pool: true,
      host: sink.host,
      port: sink.port,
      secure: false,
      requireTLS: true,
      auth: { user: credentials.username, pass: credentials.password },
      maxConnections: CONNECTIONS,
      maxMessages: Infinity,
      tls: { ca: cert.cert },
      logger: false,
    });
    const ours = createSmtpTransport(
      {
        host: sink.host,
        port: sink.port,
        security: 'starttls',
        tls: { ca: cert.cert },
        maxConnections: CONNECTIONS,
        maxMessagesPerConnection: 100_000,
      },
      { get: async () => credentials },
    );
    try {
      ceiling = await compareSenders(
        `transport (SMTP, ${CONNECTIONS} connections, STARTTLS+AUTH)`,
        count,
        'smtp',
        raw,
        ours,
      );
    } finally {
      raw.close();
      await ours.close();
    }
  } finally {
    await sink.stop();
  }

  const emulators = await startBenchEmulators({ ses: true });
  try {
    const client = { region: 'eu-west-1', credentials: LOCAL_CREDENTIALS, endpoint: emulators.endpoints.ses };
    const raw = nodemailer.createTransport({ SES: { sesClient: new SESv2Client(client), SendEmailCommand } });
    const ours = createSesTransport({ client, maxSendRate: 0 });
    // aws-ses-v2-local keeps every message it is sent and slows down as they pile up: each run starts it empty.
    const clearStore = async () => void (await fetch(`${emulators.endpoints.ses}/clear-store`, { method: 'POST' }));
    await compareSenders(
      `transport (SES API v2, aws-ses-v2-local in a process of its own, ${IN_FLIGHT} in flight)`,
      count,
      'ses',
      raw,
      ours,
      clearStore,
    );
  } finally {
    await emulators.stop();
  }
  return { ceiling };
}
