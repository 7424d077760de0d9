import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import {
  CredentialsError,
  toLoginCredentials,
  toMailCredentials,
  type LoginCredentials,
  type MailCredentials,
  type WritableCredentialSource,
} from '#core/credential-source.js';
import { ConfigError } from '#core/errors.js';

/**
 * The twin's stand-in for Secrets Manager: one JSON file of named secrets, created with random passwords. Each entry
 * takes the same JSON as the secret it stands for: a password, or an OAuth2 grant (for an `--imap` server).
 */
export type LocalSecrets = { smtp: MailCredentials; imap: MailCredentials };

const readEntries = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;

/**
 * Reads (or first creates) `.local/credentials.json`, checking both entries and naming every problem of both.
 * Only the local twin uses it; AWS reads Secrets Manager.
 */
export function loadLocalSecrets(path: string): LocalSecrets {
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true });
    const secrets = {
      smtp: { username: 'twin-relay', password: randomBytes(12).toString('hex') },
      imap: { username: 'bounces', password: randomBytes(12).toString('hex') },
    };
    writeFileSync(path, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600 });
  }
  const parsed = readEntries(path);
  const problems: string[] = [];
  const check = (name: keyof LocalSecrets) => {
    try {
      return toMailCredentials(parsed[name], `${path}#${name}`);
    } catch (error) {
      const named = error instanceof CredentialsError ? error.problems.map((p) => `${path}#${name}: ${p}`) : undefined;
      problems.push(...(named ?? [(error as Error).message]));
      return undefined;
    }
  };
  const smtp = check('smtp');
  const imap = check('imap');
  if (!smtp || !imap) throw new ConfigError(problems);
  return { smtp, imap };
}

/** The username and password of an entry for a server the twin runs itself, which signs in only with a password. */
export function localLogin(secrets: LocalSecrets, name: keyof LocalSecrets, path: string): LoginCredentials {
  return toLoginCredentials(secrets[name], `${path}#${name} (a server the twin runs itself)`);
}

/**
 * A credential source backed by the local secrets file, plugged in where production uses Secrets Manager.
 * `refresh` re-reads the file, as a forced fetch re-reads a rotated secret; `update` writes changed fields (a rotated
 * refresh token) into the entry, as PutSecretValue does.
 */
export function createLocalFileCredentials(
  path: string,
  name: keyof LocalSecrets,
): WritableCredentialSource<MailCredentials> {
  let cached: MailCredentials | undefined;
  return {
    async get({ refresh = false } = {}) {
      if (!cached || refresh) cached = loadLocalSecrets(path)[name];
      return cached;
    },
    async update(changes) {
      const entries = readEntries(path);
      entries[name] = { ...(entries[name] as object), ...changes };
      toMailCredentials(entries[name], `${path}#${name}`);
      // Written whole, then renamed over the old file: a reader never sees half a file.
      writeFileSync(`${path}.tmp`, `${JSON.stringify(entries, null, 2)}\n`, { mode: 0o600 });
      renameSync(`${path}.tmp`, path);
      cached = undefined;
    },
  };
}
