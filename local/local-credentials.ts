import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import { toLoginCredentials, type CredentialSource, type LoginCredentials } from '#core/credential-source.js';
import { toReportKeyring, type ReportKeyring } from '#core/message-id.js';

/**
 * The twin's stand-in for Secrets Manager: one JSON file of named secrets, created with random passwords, and the
 * report keys (`{"current": "k1", "k1": "<random>"}`, the shape of the report-key secret).
 */
export type LocalSecrets = { smtp: LoginCredentials; imap: LoginCredentials; reports: ReportKeyring };

const newReportKeys = () => ({ current: 'k1', k1: randomBytes(32).toString('base64url') });

/** Reads (or first creates) `.local/credentials.json`. Only the local twin uses it; AWS reads Secrets Manager. */
export function loadLocalSecrets(path: string): LocalSecrets {
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true });
    const secrets = {
      smtp: { username: 'twin-relay', password: randomBytes(12).toString('hex') },
      imap: { username: 'bounces', password: randomBytes(12).toString('hex') },
      reports: newReportKeys(),
    };
    writeFileSync(path, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600 });
  }
  const parsed = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  if (parsed.reports === undefined) {
    // A file from before report keys: add them, keeping everything else.
    parsed.reports = newReportKeys();
    writeFileSync(path, `${JSON.stringify(parsed, null, 2)}\n`, { mode: 0o600 });
  }
  return {
    smtp: toLoginCredentials(parsed.smtp, `${path}#smtp`),
    imap: toLoginCredentials(parsed.imap, `${path}#imap`),
    reports: toReportKeyring(parsed.reports, `${path}#reports`),
  };
}

/**
 * A CredentialSource backed by the local secrets file, plugged in where production uses Secrets Manager.
 * `refresh` re-reads the file, as a forced fetch re-reads a rotated secret.
 */
export function createLocalFileCredentials<K extends keyof LocalSecrets>(
  path: string,
  name: K,
): CredentialSource<LocalSecrets[K]> {
  let cached: LocalSecrets[K] | undefined;
  return {
    async get({ refresh = false } = {}) {
      if (!cached || refresh) cached = loadLocalSecrets(path)[name];
      return cached;
    },
  };
}
