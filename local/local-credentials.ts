import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import {
  CredentialsError,
  toLoginCredentials,
  toMailCredentials,
  type CredentialSource,
  type LoginCredentials,
  type MailCredentials,
  type WritableCredentialSource,
} from '#core/credential-source.js';
import { ConfigError } from '#core/errors.js';
import { toReportKeyring, type ReportKeyring } from '#core/message-id.js';

/**
 * The twin's stand-in for Secrets Manager: one JSON file of named secrets, created with random passwords, and the
 * report keys (`{"current": "k1", "k1": "<random>"}`, the shape of the report-key secret). Each sign-in entry takes
 * the same JSON as the secret it stands for: a password, or an OAuth2 grant (for an `--imap` server).
 */
export type LocalSecrets = { smtp: MailCredentials; imap: MailCredentials; reports: ReportKeyring };

type SignInEntry = 'smtp' | 'imap';

const newReportKeys = () => ({ current: 'k1', k1: randomBytes(32).toString('base64url') });

const readEntries = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;

/** Written whole, then renamed over the old file: a reader never sees half a file. */
function writeEntries(path: string, entries: Record<string, unknown>) {
  writeFileSync(`${path}.tmp`, `${JSON.stringify(entries, null, 2)}\n`, { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}

/**
 * Reads (or first creates) `.local/credentials.json`, checking every entry and naming every problem of all of them.
 * Only the local twin uses it; AWS reads Secrets Manager.
 */
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
  const parsed = readEntries(path);
  if (parsed.reports === undefined) {
    // A file from before report keys: add them, keeping everything else.
    parsed.reports = newReportKeys();
    writeEntries(path, parsed);
  }
  const problems: string[] = [];
  const check = <T>(name: keyof LocalSecrets, read: (value: unknown, label: string) => T) => {
    try {
      return read(parsed[name], `${path}#${name}`);
    } catch (error) {
      const named = error instanceof CredentialsError ? error.problems.map((p) => `${path}#${name}: ${p}`) : undefined;
      problems.push(...(named ?? [(error as Error).message]));
      return undefined;
    }
  };
  const smtp = check('smtp', toMailCredentials);
  const imap = check('imap', toMailCredentials);
  const reports = check('reports', toReportKeyring);
  if (!smtp || !imap || !reports) throw new ConfigError(problems);
  return { smtp, imap, reports };
}

/** The file's entries as the secrets they stand for hold them, after checking them all (see loadLocalSecrets). */
export function readLocalSecretEntries(path: string): Record<keyof LocalSecrets, object> {
  loadLocalSecrets(path);
  const { smtp, imap, reports } = readEntries(path);
  return { smtp, imap, reports } as Record<keyof LocalSecrets, object>;
}

/** The username and password of an entry for a server the twin runs itself, which signs in only with a password. */
export function localLogin(secrets: LocalSecrets, name: SignInEntry, path: string): LoginCredentials {
  return toLoginCredentials(secrets[name], `${path}#${name} (a server the twin runs itself)`);
}

/**
 * A credential source backed by the local secrets file, plugged in where production uses Secrets Manager.
 * `refresh` re-reads the file, as a forced fetch re-reads a rotated secret; `update` writes changed fields (a rotated
 * refresh token) into the entry, as PutSecretValue does.
 */
export function createLocalFileCredentials(path: string, name: SignInEntry): WritableCredentialSource<MailCredentials> {
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
      writeEntries(path, entries);
      cached = undefined;
    },
  };
}

/** The report keys in the local secrets file, read afresh on `refresh` as a rotated secret would be. */
export function createLocalReportKeys(path: string): CredentialSource<ReportKeyring> {
  let cached: ReportKeyring | undefined;
  return {
    async get({ refresh = false } = {}) {
      if (!cached || refresh) cached = loadLocalSecrets(path).reports;
      return cached;
    },
  };
}
