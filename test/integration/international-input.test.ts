import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dispatchJob, type DispatchDeps } from '#core/dispatch-job.js';
import { EmailJobSchema, type EmailJob } from '#core/email-job.js';
import { parseJobRecord } from '#core/parse-job-record.js';
import { startSmtpSink, type SmtpSink } from '#local/smtp-sink.js';
import { createSmtpTransport } from '#transports/smtp-transport.js';
import { emailJobFactory } from '../support/factories.js';
import { startPostfixSink, type PostfixSink } from '../support/postfix-sink.js';

let postfix: PostfixSink;
let utf8Sink: SmtpSink;

const depsFor = (sink: { host: string; port: number }, smtpUtf8: boolean): DispatchDeps => ({
  transports: {
    smtp: createSmtpTransport({ host: sink.host, port: sink.port, security: 'none', maxConnections: 1, smtpUtf8 }),
  },
  defaultTransport: 'smtp',
  suppressions: { findSuppressed: async () => new Set() },
  loadAttachment: async () => new Uint8Array(),
  messageIdDomain: 'example.com',
});
let plainDeps: DispatchDeps;
let utf8Deps: DispatchDeps;

beforeAll(async () => {
  // smtp-sink offers no SMTPUTF8; smtp-server does.
  postfix = await startPostfixSink({ capture: true });
  utf8Sink = await startSmtpSink();
  plainDeps = depsFor(postfix, false);
  utf8Deps = depsFor(utf8Sink, true);
});
afterAll(async () => {
  await plainDeps.transports.smtp?.close();
  await utf8Deps.transports.smtp?.close();
  await postfix.stop();
  await utf8Sink.stop();
});

/** The job as the handler sees it: through the schema. */
const parsed = (overrides: Partial<EmailJob>) => EmailJobSchema.parse(emailJobFactory(overrides));
/** Runs `act` and returns the one transaction the sink captured meanwhile (or fails). */
async function captured<T>(act: () => Promise<T>): Promise<{ result: T; raw: Buffer; count: number }> {
  const seen = new Set(postfix.dumps().keys());
  const result = await act();
  const fresh = [...postfix.dumps(seen).values()];
  return { result, raw: fresh[0] ?? Buffer.alloc(0), count: fresh.length };
}
const hasEightBitBytes = (raw: Buffer) => raw.some((byte) => byte > 0x7f);

describe('international addresses, on the raw bytes at a server without SMTPUTF8', () => {
  it('sends IDN domains as A-labels in the envelope and every header, names encoded', async () => {
    // Prepare
    const job = parsed({
      from: { address: 'noreply@bücher.example', name: 'Bücher Versand' },
      to: [{ address: 'anna@münchen.example', name: 'Anna Müller' }],
      replyTo: [{ address: 'hilfe@bücher.example', name: 'Kundendienst Zürich' }],
      subject: 'Ihre Bestellung – danke',
    });

    // Act
    const { result: outcome, raw, count } = await captured(() => dispatchJob(job, plainDeps));

    // Assess
    expect(outcome.action).toBe('delivered');
    expect(outcome.recipients).toEqual([{ recipient: 'anna@münchen.example', status: 'accepted' }]);
    expect(count).toBe(1);
    const text = raw.toString('latin1');
    expect(text).toMatch(/^X-Mail-Args: <noreply@xn--bcher-kva\.example>/m);
    expect(text).toMatch(/^X-Rcpt-Args: <anna@xn--mnchen-3ya\.example>/m);
    expect(text).toMatch(/^Reply-To: =\?UTF-8\?[BQ]\?.+\?=\s+<hilfe@xn--bcher-kva\.example>/m);
    expect(text).toMatch(/^To: =\?UTF-8\?[BQ]\?.+\?= <anna@xn--mnchen-3ya\.example>/m);
    expect(hasEightBitBytes(raw)).toBe(false);
  });

  it('sends a non-ASCII subject and attachment name encoded: nothing but 7-bit bytes on the wire', async () => {
    const job = parsed({
      subject: 'Rechnung März – Größe',
      attachments: [{ filename: 'Rechnung März.pdf', contentType: 'application/pdf', content: 'JVBERi0=' }],
    });
    const { result: outcome, raw } = await captured(() => dispatchJob(job, plainDeps));
    expect(outcome.action).toBe('delivered');
    const text = raw.toString('latin1');
    expect(text).toMatch(/^Subject: =\?UTF-8\?[BQ]\?/m);
    expect(text).toMatch(/filename\*0?\*?=|filename="?=\?UTF-8\?/);
    expect(hasEightBitBytes(raw)).toBe(false);
  });

  it('refuses a non-ASCII local part with the field and the reason, and sends nothing', async () => {
    const { result: outcome, count } = await captured(() =>
      dispatchJob(parsed({ to: ['ok@example.net'], cc: ['jörg@example.net'] }), plainDeps),
    );
    expect(outcome).toMatchObject({ action: 'rejected', reason: 'address-not-transmittable' });
    expect(outcome.detail).toBe(
      'cc.0: its local part (before the @) is not ASCII and the transport does not offer SMTPUTF8 (RFC 6531)',
    );
    expect(count).toBe(0);
  });

  it('refuses a domain whose A-label form is longer than DNS allows, and sends nothing', async () => {
    // 60 letters pass as one label in Unicode; as an A-label the same label is 76 characters (DNS allows 63).
    const label = 'bücherstraßeöäüéèàçñ'.repeat(3).slice(0, 60);
    const job = parsed({ to: ['ok@example.net', `anna@${label}.example`] });
    const { result: outcome, count } = await captured(() => dispatchJob(job, plainDeps));
    expect(outcome).toMatchObject({ action: 'rejected', reason: 'address-not-transmittable' });
    expect(outcome.detail).toMatch(/^to\.1: .*63/);
    expect(count).toBe(0);
  });

  it('passes ASCII message ids in References and In-Reply-To through unchanged', async () => {
    const headers = { 'In-Reply-To': '<a1@example.com>', References: '<a0@example.com> <a1@example.com>' };
    const { result: outcome, raw } = await captured(() => dispatchJob(parsed({ headers }), plainDeps));
    expect(outcome.action).toBe('delivered');
    const text = raw.toString('latin1');
    expect(text).toMatch(/^In-Reply-To: <a1@example\.com>\r?$/m);
    expect(text).toMatch(/^References: <a0@example\.com> <a1@example\.com>\r?$/m);
  });
});

describe('international addresses through a server that offers SMTPUTF8', () => {
  it('sends a non-ASCII local part as UTF-8', async () => {
    const before = utf8Sink.received.length;
    const outcome = await dispatchJob(parsed({ to: ['jörg@münchen.example'] }), utf8Deps);
    expect(outcome.action).toBe('delivered');
    expect(utf8Sink.received.length).toBe(before + 1);
    // smtp-server shows domains in Unicode; the local part went as UTF-8 under SMTPUTF8.
    expect(utf8Sink.received.at(-1)?.to).toEqual(['jörg@münchen.example']);
  });
});

describe('hostile input is refused before it reaches a server', () => {
  it.each([
    [
      'a bidi override in a display name',
      { to: [{ address: 'a@example.net', name: 'Bob \u202Egnp.exe' }] },
      'to.0.name',
    ],
    ['a bidi isolate in the subject', { subject: 'Invoice \u2066x\u2069' }, 'subject'],
    [
      'a right-to-left mark in a filename',
      { attachments: [{ filename: 'invoice\u200Fpdf.exe', content: 'AAAA' }] },
      'attachments.0.filename',
    ],
    [
      'an Arabic letter mark in a reply-to name',
      { replyTo: [{ address: 'a@example.net', name: 'x\u061Cy' }] },
      'replyTo.0.name',
    ],
    ['a whitespace-only subject', { subject: ' \t ' }, 'subject'],
    ['an empty subject', { subject: '' }, 'subject'],
    ['UTF-8 in References', { headers: { References: '<ä@example.com>' } }, 'headers.References'],
    [
      'a References value that is no message id',
      { headers: { References: 'see previous mail' } },
      'headers.References',
    ],
    ['an In-Reply-To without angle brackets', { headers: { 'In-Reply-To': 'a1@example.com' } }, 'headers.In-Reply-To'],
    [
      'a header given twice in different case (SES refuses duplicate headers)',
      { headers: { References: '<a@example.com>', references: '<b@example.com>' } },
      'headers.references',
    ],
    [
      'a custom X- header given twice in different case',
      { headers: { 'X-Campaign': 'a', 'x-campaign': 'b' } },
      'headers.x-campaign',
    ],
    ['a tag value with a dot', { tags: { campaign: 'spring.sale' } }, 'tags.campaign'],
    ['a tag value with an @', { tags: { owner: 'team@example' } }, 'tags.owner'],
    ['a tag value over 256 characters', { tags: { long: 'x'.repeat(257) } }, 'tags.long'],
  ] as Array<[string, Partial<EmailJob>, string]>)('refuses %s, naming the field', async (_name, overrides, path) => {
    // The queue message as a producer sends it, through the handler's own parse.
    const result = await parseJobRecord(JSON.stringify(emailJobFactory(overrides)));
    expect(result).toMatchObject({ success: false, reason: 'invalid-job' });
    expect(result.success === false && result.detail.split('; ').some((p) => p.startsWith(`${path}: `))).toBe(true);
  });

  it('accepts tags as SES allows them', () => {
    expect(
      EmailJobSchema.safeParse(emailJobFactory({ tags: { campaign: 'spring_sale-2026', n: 'x'.repeat(256) } })).success,
    ).toBe(true);
  });
});
