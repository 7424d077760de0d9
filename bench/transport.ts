import nodemailer from 'nodemailer';
import { dispatchJob, type DispatchDeps } from '#core/dispatch-job.js';
import { startSmtpSink } from '#local/smtp-sink.js';
import { localTlsCertificate } from '#local/tls-certificate.js';
import { createSmtpTransport } from '#transports/smtp-transport.js';
import { toDispatchId, toMessageId } from '#core/message-id.js';
import { record, withConcurrency } from './measure.js';
import { benchJob } from './jobs.js';

const CONNECTIONS = 5;

/**
 * The transport ceiling (raw nodemailer pool) against our dispatch layer over the same pool settings, to the same
 * loopback sink with STARTTLS and AUTH. Same messages, same number of connections, same in-flight count.
 */
export async function benchTransport(count: number) {
  const cert = localTlsCertificate();
  const credentials = { username: 'bench', password: 'bench-pass' };
  const sink = await startSmtpSink({ tls: cert, credentials });
  const jobs = Array.from({ length: count }, (_, i) => benchJob(`t-${i}`));
  try {
    const raw = nodemailer.createTransport({ pool: true, host: sink.host, port: sink.port, secure: false, requireTLS: true, auth: { user: credentials.username, pass: credentials.password }, maxConnections: CONNECTIONS, maxMessages: Infinity, tls: { ca: cert.cert }, logger: false });
    const rawRun = async () => {
      const start = performance.now();
      await withConcurrency(jobs, 50, async (job) => {
        // The same message ours builds: both bodies, the derived Message-ID and the dispatch header.
        await raw.sendMail({ from: 'noreply@example.com', to: job.to as string[], subject: job.subject, text: job.text, html: job.html, messageId: toMessageId(job.idempotencyKey, 'example.com'), headers: { 'X-Dispatch-Id': toDispatchId(job.idempotencyKey) } });
      });
      return (count / (performance.now() - start)) * 1000;
    };
    const ours = createSmtpTransport({ host: sink.host, port: sink.port, security: 'starttls', tls: { ca: cert.cert }, maxConnections: CONNECTIONS, maxMessagesPerConnection: 100_000 }, { get: async () => credentials });
    const deps: DispatchDeps = { transports: { smtp: ours }, defaultTransport: 'smtp', suppressions: { findSuppressed: async () => new Set() }, loadAttachment: async () => new Uint8Array(), messageIdDomain: 'example.com' };
    const oursRun = async () => {
      const start = performance.now();
      await withConcurrency(jobs, 50, async (job) => {
        const outcome = await dispatchJob(job, deps);
        if (outcome.action !== 'delivered') throw new Error(`bench send failed: ${outcome.reason}`);
      });
      return (count / (performance.now() - start)) * 1000;
    };
    // Warm both pools, then alternate, best of five each: these machines are noisy.
    await rawRun();
    await oursRun();
    const rawRates: number[] = [];
    const ourRates: number[] = [];
    for (let i = 0; i < 5; i += 1) {
      rawRates.push(await rawRun());
      ourRates.push(await oursRun());
    }
    raw.close();
    await ours.close();
    const ceiling = record('transport (SMTP, 5 connections, STARTTLS+AUTH)', 'raw nodemailer pool', Math.max(...rawRates), 'msg/s');
    const ourRate = record('transport (SMTP, 5 connections, STARTTLS+AUTH)', 'dispatchJob + SMTP adapter', Math.max(...ourRates), 'msg/s');
    record('transport (SMTP, 5 connections, STARTTLS+AUTH)', 'ratio ours / raw', ourRate / ceiling, '×', 'target ≥ 0.9');
    return { ceiling };
  } finally {
    await sink.stop();
  }
}
