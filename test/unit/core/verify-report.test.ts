import { describe, expect, it } from 'vitest';
import {
  hashRecipient,
  isRecipientHash,
  toMessageId,
  toRecordHandle,
  toReportKeyring,
  toReportToken,
  toVerpAddress,
  tokenOfVerpAddress,
  verifyReportToken,
  type ReportKeyring,
} from '#core/message-id.js';
import { verifyReport, type ReportEvidence, type SentMessages } from '#core/verify-report.js';

const secret = (c: string) => c.repeat(40);
const oldKeys: ReportKeyring = toReportKeyring({ current: 'k1', k1: secret('a') }, 'test');
const rotated: ReportKeyring = toReportKeyring({ current: 'k2', k1: secret('a'), k2: secret('b') }, 'test');
const retired: ReportKeyring = toReportKeyring({ current: 'k2', k2: secret('b') }, 'test');
const otherDeployment: ReportKeyring = toReportKeyring({ current: 'k1', k1: secret('z') }, 'test');

/** What the dispatcher stored: one job with its accepted recipients, hashed with the keys of the time. */
const sentWith = (keyring: ReportKeyring, key: string, recipients: string[]): SentMessages => ({
  sentMessageOf: async (handle) =>
    handle === toRecordHandle(key)
      ? { recipientHashes: recipients.map((r) => hashRecipient(r, keyring)), tenant: 'shop', key: `shop ${key}` }
      : undefined,
});

describe('report tokens', () => {
  it('round-trips through a Message-ID and a VERP address within a 64-octet local part, in any case', () => {
    const token = toReportToken('order-4711-receipt', oldKeys);
    const verp = toVerpAddress(token, 'bounces.example.com');

    expect(verp.split('@')[0]?.length).toBeLessThanOrEqual(64);
    expect(toMessageId('order-4711-receipt', 'example.com', oldKeys)).toBe(`<${token}@example.com>`);
    expect(tokenOfVerpAddress(verp.toUpperCase(), 'bounces.example.com')).toBe(token);
    const handle = toRecordHandle('order-4711-receipt');
    expect(verifyReportToken(token.toUpperCase(), oldKeys)).toEqual({ handle, keyId: 'k1' });
  });

  it('refuses a token with a changed handle or MAC, or one another deployment made', () => {
    const token = toReportToken('order-4711-receipt', oldKeys);
    const [keyId, handle, mac] = token.split('.') as [string, string, string];
    const flip = (s: string) => (s[0] === 'a' ? 'b' : 'a') + s.slice(1);

    expect(verifyReportToken(`${keyId}.${flip(handle)}.${mac}`, oldKeys)).toBeUndefined();
    expect(verifyReportToken(`${keyId}.${handle}.${flip(mac)}`, oldKeys)).toBeUndefined();
    expect(verifyReportToken(toReportToken('order-4711-receipt', otherDeployment), oldKeys)).toBeUndefined();
  });

  it('verifies a message signed with the old key while the old key is listed, and not after it is retired', () => {
    const signedBefore = toReportToken('job-1', oldKeys);

    expect(toReportToken('job-2', rotated).startsWith('k2.')).toBe(true);
    expect(verifyReportToken(signedBefore, rotated)).toMatchObject({ keyId: 'k1' });
    expect(verifyReportToken(signedBefore, retired)).toBeUndefined();
    expect(isRecipientHash('a@example.net', hashRecipient('A@Example.net', oldKeys), rotated)).toBe(true);
  });

  it('keeps recipients as keyed hashes that a plain hash of the address does not match', () => {
    const stored = hashRecipient('ceo@customer.example', oldKeys);

    expect(stored).toMatch(/^k1:[0-9a-f]{32}$/);
    expect(isRecipientHash('ceo@customer.example', stored, oldKeys)).toBe(true);
    expect(isRecipientHash('ceo@customer.example', stored, otherDeployment)).toBe(false);
    expect(isRecipientHash('cfo@customer.example', stored, oldKeys)).toBe(false);
  });

  it('names what is wrong with a report-key secret without echoing it', () => {
    expect(() => toReportKeyring({ current: 'k9', k1: secret('a') }, 'report-keys')).toThrow(/"current" names key k9/);
    expect(() => toReportKeyring({ current: 'k1', k1: 'short' }, 'x')).toThrow(/key k1 must be a string of at least/);
    expect(() => toReportKeyring({ k1: secret('a') }, 'x')).toThrow(/"current" must name the signing key/);
  });
});

type Case = [string, ReportEvidence, string[], string];

describe('verifyReport', () => {
  const key = 'invoice-2026-11-29';
  const sent = sentWith(oldKeys, key, ['ceo@customer.example', 'cfo@customer.example']);
  const deps = { keyring: oldKeys, sent, bounceDomain: 'bounces.example.com' };
  const messageId = toMessageId(key, 'example.com', oldKeys);
  const ceo = 'ceo@customer.example';
  const intern = 'intern@customer.example';
  const madeUp = `<k1.${'a'.repeat(26)}.${'a'.repeat(16)}@x.test>`;
  const elsewhere = toVerpAddress(toReportToken(key, oldKeys), 'evil.test');

  it('verifies a report that quotes our Message-ID about one of its recipients', async () => {
    const verdict = await verifyReport({ messageIds: [messageId] }, ['CEO@customer.example'], deps);
    expect(verdict).toMatchObject({ verified: true, via: 'message-id', keyId: 'k1' });
  });

  it('names the tenant and scoped key of the job a verified report is about, so its rates and status count it', async () => {
    const verdict = await verifyReport({ messageIds: [messageId] }, [ceo], deps);
    const unverified = await verifyReport({ messageIds: [messageId] }, [intern], deps);
    expect(verdict).toMatchObject({ verified: true, tenant: 'shop', key: expect.stringMatching(/^shop /) });
    expect(unverified.tenant).toBeUndefined();
    expect(unverified.key).toBeUndefined();
  });

  it('verifies a report that quotes nothing through its VERP envelope recipient', async () => {
    const verp = toVerpAddress(toReportToken(key, oldKeys), 'bounces.example.com');
    const verdict = await verifyReport({ messageIds: [], envelopeTo: [verp] }, ['cfo@customer.example'], deps);
    expect(verdict).toMatchObject({ verified: true, via: 'envelope' });
  });

  it.each([
    ['quoting nothing', { messageIds: [] }, [ceo], 'no-token'],
    ['quoting a made-up Message-ID', { messageIds: [madeUp] }, [ceo], 'forged-token'],
    ['quoting a real Message-ID about someone else', { messageIds: [messageId] }, [intern], 'not-a-recipient'],
    ['naming a recipient and an outsider', { messageIds: [messageId] }, [ceo, intern], 'not-a-recipient'],
    ['with a VERP address at another domain', { envelopeTo: [elsewhere] }, [ceo], 'no-token'],
  ] as Case[])('does not verify a report %s', async (_, evidence, addresses, reason) => {
    expect(await verifyReport(evidence, addresses, deps)).toMatchObject({ verified: false, reason });
  });

  it('does not verify a genuine token whose job has no stored result', async () => {
    const unknown = toMessageId('never-completed', 'example.com', oldKeys);
    const verdict = await verifyReport({ messageIds: [unknown] }, [ceo], deps);
    expect(verdict).toMatchObject({ verified: false, reason: 'unknown-message' });
  });
});
