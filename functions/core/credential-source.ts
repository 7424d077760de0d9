/**
 * Where a transport gets its credentials. Production reads Secrets Manager (cached); the local twin reads a file.
 * `refresh` bypasses the cache, used after an authentication failure so that a rotated secret is picked up.
 */
export interface CredentialSource<T> {
  get(options?: { refresh?: boolean }): Promise<T>;
}

/** The JSON stored in an SMTP or IMAP secret: `{ "username": "...", "password": "..." }`. */
export type LoginCredentials = { username: string; password: string };
export type SmtpCredentials = LoginCredentials;

/** Checks a secret's parsed JSON, naming what is missing without echoing any value. */
export function toLoginCredentials(value: unknown, secretName: string): LoginCredentials {
  const record = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  const missing = ['username', 'password'].filter((k) => typeof record[k] !== 'string' || record[k] === '');
  if (missing.length > 0) throw new Error(`secret ${secretName} must be JSON with string fields username and password; missing or empty: ${missing.join(', ')}`);
  return { username: record.username as string, password: record.password as string };
}
