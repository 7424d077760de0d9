import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/**
 * The deployment's report keys: one signs what we send, every listed one verifies what comes back. A key id names
 * each, so that a key can be rotated: sign with the new one while the old one stays listed for reports about mail
 * it signed.
 */
export type ReportKeyring = { signing: ReportKey; verifying: ReportKey[] };
type ReportKey = { id: string; secret: string };

const KEY_ID = /^[a-z0-9]{1,8}$/;
const MIN_SECRET_LENGTH = 32;

/**
 * Checks the report-key secret's parsed JSON, `{"current": "k2", "k1": "…", "k2": "…"}`: `current` names the
 * signing key, every other field is a key (id: 1–8 of a-z 0-9; secret: at least 32 characters). Names what is wrong
 * without echoing any value.
 */
export function toReportKeyring(value: unknown, secretName: string): ReportKeyring {
  const record = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  const problems: string[] = [];
  const keys: ReportKey[] = [];
  for (const [id, secret] of Object.entries(record)) {
    if (id === 'current') continue;
    if (!KEY_ID.test(id)) problems.push(`key id "${id.slice(0, 20)}" must be 1–8 of a-z 0-9`);
    else if (typeof secret !== 'string' || secret.length < MIN_SECRET_LENGTH) {
      problems.push(`key ${id} must be a string of at least ${MIN_SECRET_LENGTH} characters`);
    } else keys.push({ id, secret });
  }
  const signing = keys.find((k) => k.id === record.current);
  if (typeof record.current !== 'string') problems.push('"current" must name the signing key');
  else if (!signing && problems.length === 0) {
    problems.push(`"current" names key ${record.current.slice(0, 20)}, which the secret does not hold`);
  }
  if (problems.length > 0 || !signing) {
    throw new Error(`report-key secret ${secretName} is not usable: ${problems.join('; ')}`);
  }
  return { signing, verifying: keys };
}

// RFC 4648 base32, lowercase: survives MTAs that change the case of a local part, and needs no padding here.
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

function toBase32(bytes: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = ((value << 8) | byte) & 0xfff;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

/** Decodes lowercase base32 (no padding); undefined for any other character. */
export function fromBase32(text: string): Buffer | undefined {
  const bytes: number[] = [];
  let bits = 0;
  let value = 0;
  for (const char of text) {
    const digit = BASE32.indexOf(char);
    if (digit < 0) return undefined;
    value = ((value << 5) | digit) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bytes.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(bytes);
}

const HANDLE_LENGTH = 26; // 16 bytes
const MAC_LENGTH = 16; // 10 bytes (80 bits): a forger gets one guess per report, never an oracle
/**
 * `<key id>.<handle>.<mac>`: at most 52 characters, so `bounces+<token>` fits a 64-octet local part
 * (RFC 5321 4.5.3.1.1).
 */
const TOKEN = /^([a-z0-9]{1,8})\.([a-z2-7]{26})\.([a-z2-7]{16})$/;

/**
 * The handle of a job: the MD5 of its idempotency key's JSON, which is the digest Powertools idempotency names the
 * key's record by. A report that carries the handle leads straight to the job's stored result, with no extra index.
 */
export function toRecordHandle(idempotencyKey: string): string {
  return toBase32(createHash('md5').update(JSON.stringify(idempotencyKey)).digest());
}

const macOf = (key: ReportKey, handle: string) => {
  const mac = createHmac('sha256', key.secret).update(`email-dispatch/report-token/v1\0${key.id}\0${handle}`).digest();
  return toBase32(mac.subarray(0, 10)).slice(0, MAC_LENGTH);
};

/** The token a message carries so that reports about it can be told from forgeries: `<key id>.<handle>.<mac>`. */
export function toReportToken(idempotencyKey: string, keyring: ReportKeyring): string {
  const handle = toRecordHandle(idempotencyKey);
  return `${keyring.signing.id}.${handle}.${macOf(keyring.signing, handle)}`;
}

/**
 * Checks a token (any case) against every verifying key; returns the job's handle and the key that signed it, or
 * undefined for anything else. Constant-time comparison of the MAC.
 */
export function verifyReportToken(
  candidate: string,
  keyring: ReportKeyring,
): { handle: string; keyId: string } | undefined {
  if (candidate.length > 60) return undefined;
  const match = TOKEN.exec(candidate.toLowerCase());
  if (!match) return undefined;
  const [, keyId, handle, mac] = match as unknown as [string, string, string, string];
  const key = keyring.verifying.find((k) => k.id === keyId);
  if (!key || handle.length !== HANDLE_LENGTH) return undefined;
  return sameMac(macOf(key, handle), mac) ? { handle, keyId } : undefined;
}

/**
 * The Message-ID for a job, derived from its idempotency key so that every attempt carries the same one: a message
 * resent after the unavoidable '.'→'250' window (RFC 1047) is recognisable downstream as the same message.
 * With the deployment's keys, its local part is the report token (the same key under the same signing key gives the
 * same Message-ID); without them, a hash of the key. Producers' keys never appear in mail headers.
 */
export function toMessageId(idempotencyKey: string, domain: string, keyring?: ReportKeyring): string {
  return `<${keyring ? toReportToken(idempotencyKey, keyring) : toDispatchId(idempotencyKey)}@${domain}>`;
}

/** The token in a Message-ID (`<token@domain>`), if its local part has a token's shape; not verified. */
export function tokenOfMessageId(messageId: string): string | undefined {
  const at = messageId.lastIndexOf('@');
  if (at <= 0 || messageId.length > 200) return undefined;
  const local = messageId.slice(messageId.startsWith('<') ? 1 : 0, at);
  return TOKEN.test(local.toLowerCase()) ? local.toLowerCase() : undefined;
}

/** The local part VERP addresses start with: `bounces+<token>@<bounce domain>`. */
const VERP_PREFIX = 'bounces+';

/** The VERP envelope sender of a message: bounces come back to an address that names the message. */
export function toVerpAddress(token: string, bounceDomain: string): string {
  return `${VERP_PREFIX}${token}@${bounceDomain}`;
}

/** The token in a VERP address at `bounceDomain` (any case), if it has a token's shape; not verified. */
export function tokenOfVerpAddress(address: string, bounceDomain: string): string | undefined {
  const lower = address.trim().toLowerCase().replace(/^<|>$/g, '');
  const suffix = `@${bounceDomain.toLowerCase()}`;
  if (lower.length > 320 || !lower.startsWith(VERP_PREFIX) || !lower.endsWith(suffix)) return undefined;
  const token = lower.slice(VERP_PREFIX.length, lower.length - bounceDomain.length - 1);
  return TOKEN.test(token) ? token : undefined;
}

/** A stable, opaque id for a job, safe for headers and logs. */
export function toDispatchId(idempotencyKey: string): string {
  return createHash('sha256').update(`email-dispatch:${idempotencyKey}`).digest('hex').slice(0, 32);
}

/**
 * A recipient's address as it may appear in logs, metrics and at-rest stores: a truncated SHA-256 of the lowercase
 * address. The same address always gives the same hash, which is what the suppression list is keyed on.
 */
export function hashAddress(address: string): string {
  return createHash('sha256').update(address.trim().toLowerCase()).digest('hex').slice(0, 24);
}

const recipientMac = (key: ReportKey, address: string) =>
  createHmac('sha256', key.secret)
    .update(`email-dispatch/recipient/v1\0${address.trim().toLowerCase()}`)
    .digest('hex')
    .slice(0, 32);

/**
 * A recipient as a job's stored result keeps it: `<key id>:<HMAC of the lowercase address>`. Keyed with the
 * deployment's key, so a leaked table cannot be reversed by hashing a list of likely addresses.
 */
export function hashRecipient(address: string, keyring: ReportKeyring): string {
  return `${keyring.signing.id}:${recipientMac(keyring.signing, address)}`;
}

/** Whether `address` is the one a stored recipient hash was made from, under any verifying key. */
export function isRecipientHash(address: string, stored: string, keyring: ReportKeyring): boolean {
  const colon = stored.indexOf(':');
  const key = colon > 0 ? keyring.verifying.find((k) => k.id === stored.slice(0, colon)) : undefined;
  if (!key) return false;
  return sameMac(recipientMac(key, address), stored.slice(colon + 1));
}

/** Whether a MAC given from outside is the one expected, compared in constant time. */
export function sameMac(expected: string, given: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}
