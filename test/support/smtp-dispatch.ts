import type { DispatchDeps } from '#core/dispatch-job.js';
import { startSmtpSink, type SmtpSinkOptions } from '#local/smtp-sink.js';
import { localTlsCertificate } from '#local/tls-certificate.js';
import { createSmtpTransport, type SmtpSettings } from '#transports/smtp-transport.js';

/**
 * The core dispatch against a real SMTP sink on loopback (STARTTLS + AUTH), without queues or tables: for tests of
 * what the transport and the classifier make of each server answer.
 */
export async function startSmtpDispatch(options: { sink?: SmtpSinkOptions; smtp?: Partial<SmtpSettings> } = {}) {
  const cert = localTlsCertificate();
  const credentials = { username: 'dispatch', password: 'dispatch-pass' };
  const sink = await startSmtpSink({ tls: cert, credentials, ...options.sink });
  const deps: DispatchDeps = {
    transports: {
      smtp: createSmtpTransport(
        { host: sink.host, port: sink.port, security: 'starttls', tls: { ca: cert.cert }, ...options.smtp },
        { get: async () => credentials },
      ),
    },
    defaultTransport: 'smtp',
    suppressions: { findSuppressed: async () => new Set() },
    loadAttachment: async () => new Uint8Array(),
    messageIdDomain: 'example.com',
  };
  return {
    sink,
    deps,
    cert,
    credentials,
    async stop() {
      await deps.transports.smtp?.close();
      await sink.stop();
    },
  };
}
