import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dispatchJob, type DispatchDeps } from '#core/dispatch-job.js';
import { listRecipients, type EmailJob } from '#core/email-job.js';
import { toDispatchId } from '#core/message-id.js';
import { parseJobRecord } from '#core/parse-job-record.js';
import type { SmtpSink } from '#local/smtp-sink.js';
import { startSmtpDispatch } from '../support/smtp-dispatch.js';
import { printSummary } from './ledger.js';

let smtp: Awaited<ReturnType<typeof startSmtpDispatch>>;
let sink: SmtpSink;
let deps: DispatchDeps;

beforeAll(async () => {
  smtp = await startSmtpDispatch({ smtp: { maxConnections: 5, maxMessagesPerConnection: 1000 } });
  ({ sink, deps } = smtp);
});
afterAll(async () => {
  await smtp.stop();
});

let seed = 2024;
const random = () => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed / 2 ** 31;
};
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;

// What attackers put in header-bearing fields to end a header line early or smuggle a recipient in.
const PAYLOADS = [
  '\r\nBcc: evil@attacker.test',
  '\nBcc: evil@attacker.test',
  '\rBcc: evil@attacker.test',
  '%0D%0ABcc: evil@attacker.test',
  '\\r\\nBcc: evil@attacker.test',
  '=0D=0ABcc: evil@attacker.test',
  '\u2028Bcc: evil@attacker.test',
  '\u2029X-Evil: 1',
  '\u0085X-Evil: 1',
  '\u0000Bcc: evil@attacker.test',
  '=?utf-8?Q?=0D=0ABcc:_evil@attacker.test?=',
  '=?utf-8?B?DQpCY2M6IGV2aWxAYXR0YWNrZXIudGVzdA==?=',
  '"evil@attacker.test"@example.net',
  'undisclosed: evil@attacker.test, other@attacker.test;',
  'group: a@b.test, (nested: evil@attacker.test;);',
  '<evil@attacker.test>',
  'ok@example.net, evil@attacker.test',
  'ok@example.net\tBcc: evil@attacker.test',
  `${'x'.repeat(1200)}`,
  `A${'ä'.repeat(600)}`,
  'Ünïcödé 🎉 name',
  'plain text that is fine',
];
const FIELDS = [
  'subject',
  'fromName',
  'toAddress',
  'toName',
  'cc',
  'bcc',
  'replyToName',
  'headerValue',
  'headerName',
  'filename',
  'contentType',
  'tag',
  'text',
  'html',
] as const;

function hostileJob(i: number): { job: Record<string, unknown>; field: (typeof FIELDS)[number] } {
  const field = pick(FIELDS);
  const payload = pick(PAYLOADS);
  const job: Record<string, unknown> = {
    version: 1,
    idempotencyKey: `fuzz-${i}`,
    from: 'noreply@example.com',
    to: ['ok@example.net'],
    subject: 'Hello',
    text: 'Body',
  };
  switch (field) {
    case 'subject':
      job.subject = `Hello ${payload}`;
      break;
    case 'fromName':
      job.from = { address: 'noreply@example.com', name: `Shop ${payload}` };
      break;
    case 'toAddress':
      job.to = [`${payload}`];
      break;
    case 'toName':
      job.to = [{ address: 'ok@example.net', name: payload }];
      break;
    case 'cc':
      job.cc = [payload];
      break;
    case 'bcc':
      job.bcc = [payload];
      break;
    case 'replyToName':
      job.replyTo = [{ address: 'help@example.com', name: payload }];
      break;
    case 'headerValue':
      job.headers = { 'X-Campaign': payload };
      break;
    case 'headerName':
      job.headers = { [`X-${payload}`]: 'v' };
      break;
    case 'filename':
      job.attachments = [{ filename: `${payload}.txt`, content: 'aGk=' }];
      break;
    case 'contentType':
      job.attachments = [{ filename: 'a.txt', contentType: `text/plain${payload}`, content: 'aGk=' }];
      break;
    case 'tag':
      job.tags = { t: payload };
      break;
    case 'text':
      job.text = `line one ${payload}\n${payload}`;
      break;
    case 'html':
      job.html = `<p>${payload}</p>`;
      break;
  }
  return { job, field };
}

const headerBlock = (raw: Buffer) => raw.toString('utf8').split(/\r\n\r\n/)[0] ?? '';
const headerNames = (block: string) =>
  block
    .split('\r\n')
    .filter((l) => /^[^\s:]+:/.test(l))
    .map((l) => l.slice(0, l.indexOf(':')).toLowerCase());
const ALLOWED = new Set([
  'from',
  'to',
  'cc',
  'reply-to',
  'subject',
  'message-id',
  'date',
  'mime-version',
  'content-type',
  'content-transfer-encoding',
  'x-dispatch-id',
  'x-campaign',
]);

describe('ledger: header-injection fuzz', () => {
  it('lets none of 10,000 hostile inputs add a header or a recipient: each is rejected or safely encoded', async () => {
    // Prepare
    const cases = Array.from({ length: 10_000 }, (_, i) => hostileJob(i));
    let rejected = 0;
    const accepted: EmailJob[] = [];

    // Act: the handler's parse, then a real send for what passes
    for (const c of cases) {
      const parsed = await parseJobRecord(JSON.stringify(c.job));
      if (parsed.success) accepted.push(parsed.job);
      else rejected += 1;
    }
    const outcomes = new Map<string, string>();
    for (let i = 0; i < accepted.length; i += 25) {
      await Promise.all(
        accepted
          .slice(i, i + 25)
          .map(async (job) => outcomes.set(job.idempotencyKey, (await dispatchJob(job, deps)).action)),
      );
    }

    // Assess
    const byDispatchId = new Map(accepted.map((j) => [toDispatchId(j.idempotencyKey), j]));
    let extraHeaders = 0;
    let extraRecipients = 0;
    let longLines = 0;
    for (const message of sink.received) {
      const block = headerBlock(message.raw);
      const job = byDispatchId.get(/^X-Dispatch-Id:\s*([a-f0-9]{32})/im.exec(block)?.[1] ?? '');
      const expected = new Set(job ? listRecipients(job).map((a) => a.toLowerCase()) : []);
      if (!job || message.to.some((r) => !expected.has(r.toLowerCase()))) extraRecipients += 1;
      const names = headerNames(block);
      if (names.some((n) => !ALLOWED.has(n))) extraHeaders += 1;
      if (names.filter((n) => n === 'subject' || n === 'from' || n === 'to').length > 3) extraHeaders += 1;
      if (/attacker\.test/i.test(message.to.join(','))) extraRecipients += 1;
      if (
        message.raw
          .toString('utf8')
          .split('\r\n')
          .some((line) => line.length > 998)
      )
        longLines += 1;
    }
    // Decoded, the accepted values come back as they were sent: encoded, not interpreted.
    const sample = sink.received.slice(0, 300);
    for (const message of sample) {
      const parsed = await simpleParser(message.raw);
      expect(parsed.headers.has('bcc')).toBe(false);
      expect(parsed.headers.has('x-evil')).toBe(false);
    }
    const delivered = [...outcomes.values()].filter((a) => a === 'delivered').length;
    // No queue or events topic here: every case's outcome is the validation's rejection or the dispatch's result.
    const eventsMissing = cases.length - rejected - outcomes.size;
    printSummary(
      'header-fuzz',
      {
        jobs: cases.length,
        delivered,
        rejected,
        lost: accepted.length - sink.received.length,
        duplicated: 0,
        eventsMissing,
        eventsDuplicated: 0,
        inDlq: 0,
      },
      `${extraHeaders} extra headers, ${extraRecipients} extra recipients, ${longLines} lines over 998`,
    );
    expect(rejected + accepted.length).toBe(10_000);
    expect(rejected).toBeGreaterThan(5000);
    expect(accepted.length).toBeGreaterThan(1000);
    expect(delivered).toBe(accepted.length);
    expect(sink.received).toHaveLength(accepted.length);
    expect(extraHeaders).toBe(0);
    expect(extraRecipients).toBe(0);
    expect(longLines).toBe(0);
  }, 240_000);
});
