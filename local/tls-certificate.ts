import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type TlsCertificate = { key: string; cert: string };

let cached: TlsCertificate | undefined;

/**
 * A self-signed certificate for 127.0.0.1 and localhost, made with openssl, for the local SMTP and IMAP servers.
 * Clients trust it by passing it as their CA: verification stays on, as in production.
 */
export function localTlsCertificate(): TlsCertificate {
  if (cached) return cached;
  const dir = mkdtempSync(join(tmpdir(), 'email-dispatch-tls-'));
  try {
    try {
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-days',
          '7',
          '-subj',
          '/CN=localhost',
          '-addext',
          'subjectAltName=IP:127.0.0.1,DNS:localhost',
          '-keyout',
          join(dir, 'key.pem'),
          '-out',
          join(dir, 'cert.pem'),
        ],
        { stdio: 'ignore' },
      );
    } catch (error) {
      const missing = (error as { code?: string }).code === 'ENOENT';
      throw new Error(
        missing
          ? 'openssl is needed to make the local TLS certificate: install it (apt-get install openssl)'
          : `openssl could not make the local TLS certificate: ${(error as Error).message}`,
        { cause: error },
      );
    }
    cached = { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8') };
    return cached;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
