import { describe, expect, it } from 'vitest';
import { classifyInbound } from '#inbound/classify-inbound.js';
import { UnparsableMessageError, UnparsableReasons, type UnparsableReason } from '#inbound/errors.js';
import { parseInbound, parseInboundSync } from '#inbound/parse-inbound.js';
import {
  deeplyNested,
  hugeHeader,
  longAddressField,
  longRecipientReport,
  manyPartsReport,
} from '#test/support/hostile-mail.js';
import { bounceMessage } from '#test/support/mail-samples.js';

const headers = (contentType: string) => [
  'From: MAILER-DAEMON@mx.example.net',
  'To: bounces@example.com',
  'Subject: Undelivered Mail Returned to Sender',
  'MIME-Version: 1.0',
  `Content-Type: ${contentType}`,
  '',
];

/** A multipart/report of `count` tiny parts: the 7 KB message that used to make the parser throw on every run. */
function manyParts(count: number): string {
  const parts = Array.from({ length: count }, (_, i) => `--B\r\n\r\n${i}`);
  return [...headers('multipart/report; report-type=delivery-status; boundary="B"'), ...parts, '--B--', ''].join(
    '\r\n',
  );
}

/** Multiparts nested `depth` deep, each with its own boundary. */
function nested(depth: number): string {
  const open = Array.from(
    { length: depth },
    (_, i) => `--b${i}\r\nContent-Type: multipart/mixed; boundary="b${i + 1}"\r\n`,
  );
  const close = Array.from({ length: depth }, (_, i) => `--b${depth - i}--`);
  return [
    ...headers('multipart/mixed; boundary="b0"'),
    ...open,
    `--b${depth}\r\nContent-Type: text/plain\r\n\r\ninnermost`,
    ...close,
    '--b0--',
    '',
  ].join('\r\n');
}

async function rejection(raw: string | Buffer): Promise<UnparsableReason | 'parsed'> {
  try {
    await parseInbound(Buffer.isBuffer(raw) ? raw : Buffer.from(raw));
    return 'parsed';
  } catch (error) {
    if (error instanceof UnparsableMessageError) return error.reason;
    throw error;
  }
}

describe('a message that breaks a parsing limit', () => {
  it('is refused with a typed error when it has 1,001 MIME parts', async () => {
    const raw = manyParts(1001);

    const result = await rejection(raw);

    expect(raw.length).toBeLessThan(16_000);
    expect(result).toBe(UnparsableReasons.tooManyParts);
  });

  it('is refused when its multiparts nest 100 deep', async () => {
    expect(await rejection(nested(100))).toBe(UnparsableReasons.tooDeep);
  });

  it('is refused when one address field holds 1 MB', async () => {
    const to = Array.from({ length: 50_000 }, (_, i) => `user${i}@example.net`).join(', ');
    const raw = `From: someone@example.org\r\nTo: ${to}\r\nSubject: hi\r\n\r\nbody\r\n`;

    expect(raw.length).toBeGreaterThan(1_000_000);
    expect(await rejection(raw)).toBe(UnparsableReasons.fieldTooLarge);
  });

  it('is refused when one address field of 1 MB is folded over many lines', async () => {
    const to = Array.from({ length: 40_000 }, (_, i) => `user${i}@example.net`).join(',\r\n ');

    expect(await rejection(`From: someone@example.org\r\nTo: ${to}\r\n\r\nbody\r\n`)).toBe(
      UnparsableReasons.fieldTooLarge,
    );
  });

  it('is refused when its header is 10 MB of fields', async () => {
    const field = `X-Filler: ${'a'.repeat(990)}\r\n`;
    const raw = Buffer.from(`From: someone@example.org\r\n${field.repeat(10_500)}\r\nbody\r\n`);

    expect(raw.length).toBeGreaterThan(10_000_000);
    expect(await rejection(raw)).toBe(UnparsableReasons.headerTooLarge);
  });

  it('is refused when a part inside the report has a 10 MB header', async () => {
    const raw = [
      ...headers('multipart/mixed; boundary="B"'),
      '--B',
      `Content-Type: text/plain\r\nX-Filler: ${'a'.repeat(10_000_000)}`,
      '',
      'text',
      '--B--',
      '',
    ].join('\r\n');

    expect(await rejection(raw)).toBe(UnparsableReasons.fieldTooLarge);
  });

  it('is refused, the same way every time, when it is larger than the message limit', async () => {
    const raw = Buffer.alloc(60 * 1024 * 1024, 'a');

    expect([await rejection(raw), await rejection(raw)]).toEqual([
      UnparsableReasons.tooLarge,
      UnparsableReasons.tooLarge,
    ]);
  });
});

describe('a message that is hostile but within the limits', () => {
  it('is read when a multipart has 499 parts', async () => {
    const parsed = await parseInbound(Buffer.from(manyParts(499)));

    expect(parsed.parts).toHaveLength(499);
  });

  it('is read when a delivery report names a 1 MB recipient field', async () => {
    const raw = [
      ...headers('multipart/report; report-type=delivery-status; boundary="B"'),
      '--B',
      'Content-Type: message/delivery-status',
      '',
      'Reporting-MTA: dns; mx.example.net',
      '',
      `Final-Recipient: rfc822; ${'a.'.repeat(500_000)}@`,
      'Action: failed',
      'Status: 5.1.1',
      '--B--',
      '',
    ].join('\r\n');

    const result = classifyInbound(await parseInbound(Buffer.from(raw)));

    expect(result).toMatchObject({ kind: 'bounce', recipients: [] });
  });

  it('is read when a plain-text bounce is 1 MB of near-addresses and codes', async () => {
    const noise = Array.from(
      { length: 15_000 },
      (_, i) => `  a.b.c.d.e.f${i}@@x.y.z..5.5.5.5 550-550 <<<< ${'.'.repeat(20)}`,
    ).join('\r\n');
    const raw = [
      'From: MAILER-DAEMON@mx.example.net',
      'Subject: Mail delivery failed',
      '',
      'This message was created automatically by mail delivery software.',
      '',
      '  gone@example.net',
      '    550 5.1.1 no such user',
      '',
      noise,
      '',
    ].join('\r\n');

    const result = classifyInbound(await parseInbound(Buffer.from(raw)));

    expect(raw.length).toBeGreaterThan(1_000_000);
    expect(result).toMatchObject({
      kind: 'bounce',
      recipients: [{ recipient: 'gone@example.net', reason: 'user-unknown' }],
    });
  });

  it('reads a multipart whose declared boundary never appears as one text body', async () => {
    const raw = [
      ...headers('multipart/report; report-type=delivery-status; boundary="missing"'),
      'Hi. This is the qmail-send program at mx.example.net.',
      '',
      '<gone@example.net>:',
      'Sorry, no mailbox here by that name. (#5.1.1)',
      '',
    ].join('\r\n');

    expect(classifyInbound(await parseInbound(Buffer.from(raw)))).toMatchObject({
      kind: 'bounce',
      recipients: [{ recipient: 'gone@example.net', suppress: true }],
    });
  });

  it('reads a report whose Content-Type mangled the boundary, by the delimiter the body uses', async () => {
    const raw = bounceMessage('gone@example.net').replace(
      'boundary="BOUNDARY"',
      'boundary="BOUNDARY" Message-Id: <x@example.net>',
    );

    expect(classifyInbound(await parseInbound(Buffer.from(raw)))).toMatchObject({
      kind: 'bounce',
      format: 'delivery-status',
      recipients: [{ recipient: 'gone@example.net' }],
    });
  });

  it('reads a report without its close delimiter, and with a part that reuses its parent boundary', async () => {
    const unterminated = bounceMessage('gone@example.net').replace(/--BOUNDARY--\r\n$/, '');
    const reused = bounceMessage('gone@example.net').replace(
      'Content-Type: text/plain; charset=us-ascii',
      'Content-Type: multipart/mixed; boundary="BOUNDARY"',
    );

    for (const raw of [unterminated, reused]) {
      expect(classifyInbound(await parseInbound(Buffer.from(raw)))).toMatchObject({
        kind: 'bounce',
        recipients: [{ recipient: 'gone@example.net' }],
      });
    }
  });

  it('reads a message that is nothing but boundaries and garbage', async () => {
    const raw = [
      ...headers('multipart/mixed; boundary="B"'),
      ...Array.from({ length: 400 }, () => '--B\r\n--B--\r\n--B\r\n\u0000\u0001'),
      '',
    ].join('\r\n');

    expect(await rejection(raw)).toBe('parsed');
  });
});

/** Milliseconds `run` takes, the best of `tries` (the least disturbed by other work on the machine). */
function bestOf(tries: number, run: () => void): number {
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < tries; i += 1) {
    const start = performance.now();
    run();
    best = Math.min(best, performance.now() - start);
  }
  return best;
}

describe('classifying a plain-text bounce', () => {
  /**
   * `count` recipients listed without a reason, a heading that gives them all one, and `count` lines below it: every
   * line below the heading used to be added to every recipient, re-measuring each one's diagnostic each time.
   */
  const manyUnexplained = (count: number) =>
    [
      'From: MAILER-DAEMON@mx.example.net',
      'Subject: Mail delivery failed',
      '',
      'This message was created automatically by mail delivery software.',
      '',
      ...Array.from({ length: count }, (_, i) => `u${i}@example.net`),
      'last@example.net: no such user',
      '',
      'for the following reason:',
      ...Array.from({ length: count }, () => 'x'),
      '',
    ].join('\r\n');

  it('takes time in proportion to its size when many recipients share one reason', async () => {
    const small = Buffer.from(manyUnexplained(150));
    const large = Buffer.from(manyUnexplained(1200));
    const classify = (raw: Buffer) => () => void classifyInbound(parseInboundSync(raw));

    // Eight small messages are as much text as one large one: linear work takes about as long for both.
    const eightSmall = bestOf(3, () => {
      for (let i = 0; i < 8; i += 1) classify(small)();
    });
    const oneLarge = bestOf(3, classify(large));

    expect(large.length).toBeGreaterThan(7 * small.length);
    expect(oneLarge).toBeLessThan(4 * eightSmall + 20);
    expect(classifyInbound(parseInboundSync(large))).toMatchObject({ kind: 'bounce' });
  }, 300_000);
});

describe('reading a hostile message', () => {
  /** Builders of each hostile shape at a scale: eight times the scale is about eight times the bytes. */
  const shapes: Array<[string, (scale: number) => string]> = [
    ['many MIME parts', (scale) => manyPartsReport(60 * scale)],
    ['a long address field', (scale) => longAddressField(6 * 1024 * scale)],
    [
      'an address field of open quotes',
      (scale) => `To: ${'"a,'.repeat(700 * scale)}\r\n${bounceMessage('x@y.example')}`,
    ],
    ['a long recipient', (scale) => longRecipientReport(128 * 1024 * scale)],
    ['nested multiparts', (scale) => deeplyNested(12 * scale)],
    ['a huge folded header', (scale) => hugeHeader(48 * 1024 * scale)],
    [
      'nothing but boundaries',
      (scale) =>
        [...headers('multipart/mixed; boundary="B"'), '--B\r\n--B--\r\n--B\r\n'.repeat(50 * scale)].join('\r\n'),
    ],
  ];

  it.each(shapes)('takes time in proportion to its size: %s', (_, build) => {
    // Prepare
    const small = Buffer.from(build(1));
    const large = Buffer.from(build(8));
    const read = (raw: Buffer) => () => {
      try {
        classifyInbound(parseInboundSync(raw));
      } catch (error) {
        if (!(error instanceof UnparsableMessageError)) throw error;
      }
    };

    // Act: eight small messages are as much input as one large one; linear work takes about as long for both.
    const eightSmall = bestOf(3, () => {
      for (let i = 0; i < 8; i += 1) read(small)();
    });
    const oneLarge = bestOf(3, read(large));

    // Assess
    expect(large.length).toBeGreaterThan(5 * small.length);
    expect(oneLarge).toBeLessThan(4 * eightSmall + 20);
  });
});
