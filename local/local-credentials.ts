import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import { toLoginCredentials, type CredentialSource, type LoginCredentials } from '#core/credential-source.js';

/** The twin's stand-in for Secrets Manager: one JSON file of named secrets, created with random passwords. */
export type LocalSecrets = { smtp: LoginCredentials; imap: LoginCredentials };

/** Reads (or first creates) `.local/credentials.json`. Only the local twin uses it; AWS reads Secrets Manager. */
export function loadLocalSecrets(path: string): LocalSecrets {
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true });
    const secrets: LocalSecrets = {
      smtp: { username: 'twin-relay', password: randomBytes(12).toString('hex') },
      imap: { username: 'bounces', password: randomBytes(12).toString('hex') },
    };
    writeFileSync(path, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600 });
  }
  const parsed = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  return { smtp: toLoginCredentials(parsed.smtp, `${path}#smtp`), imap: toLoginCredentials(parsed.imap, `${path}#imap`) };
}

/**
 * A CredentialSource backed by the local secrets file, plugged in where production uses Secrets Manager.
 * `refresh` re-reads the file, as a forced fetch re-reads a rotated secret.
 */
export function createLocalFileCredentials(path: string, name: keyof LocalSecrets): CredentialSource<LoginCredentials> {
  let cached: LoginCredentials | undefined;
  return {
    async get({ refresh = false } = {}) {
      if (!cached || refresh) cached = loadLocalSecrets(path)[name];
      return cached;
    },
  };
}
