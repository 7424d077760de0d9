import { describe, expect, it } from 'vitest';
import { simpleParser } from 'mailparser';
import { classifyInbound } from '#inbound/classify-inbound.js';
import { parseHeaderBlock, parseInbound } from '#inbound/parse-inbound.js';
import { bounceMessage, plainMessage } from '#test/support/mail-samples.js';

const ordinary: Array<[string, string]> = [
  ['plain, CRLF', plainMessage(1)],
  ['plain, LF', plainMessage(2).replace(/\r\n/g, '\n')],
  [
    'encoded subject and display names',
    [
      'From: =?UTF-8?B?SsO8cmdlbiBNw7xsbGVy?= <juergen@example.org>',
      'To: "Ops, Team" <ops@example.com>, second@example.com',
      'Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=',
      'Message-ID: <enc-1@example.org>',
      'Date: Tue, 03 Nov 2026 10:00:00 +0100',
      '',
      'Hallo.',
      '',
    ].join('\r\n'),
  ],
  [
    'folded headers, group, Message-ID without brackets',
    [
      'From: sender@example.org',
      'To: undisclosed: a@example.com, b@example.com;,',
      ' c@example.com',
      'Subject: a long subject',
      '  folded onto the next line',
      'Message-ID: bare-id@example.org',
      'Content-Type: text/plain;',
      '\tcharset="iso-8859-1"',
      '',
      'Body',
      '',
    ].join('\r\n'),
  ],
  [
    'auto-reply headers',
    [
      'From: away@example.org',
      'To: us@example.com',
      'Subject: Out of office',
      'Auto-Submitted: auto-replied',
      'Precedence: auto_reply',
      'X-Autoreply: yes',
      '',
      'I am away.',
      '',
    ].join('\r\n'),
  ],
  [
    'raw UTF-8 header values (RFC 6532), a Delivered-To repeating the To',
    [
      'From: Jürgen Müller <juergen@example.org>',
      'To: ops@example.com',
      'Delivered-To: ops@example.com',
      'Subject: Grüße aus Köln',
      'Message-ID: <utf8-1@example.org>',
      '',
      'Hallo.',
      '',
    ].join('\r\n'),
  ],
  ['no Message-ID, no Date, no body', ['From: x@example.org', 'Subject: empty', '', ''].join('\r\n')],
  [
    'multipart/alternative',
    [
      'From: x@example.org',
      'To: y@example.com',
      'Subject: alt',
      'Message-ID: <alt@example.org>',
      'Content-Type: multipart/alternative; boundary="b"',
      '',
      '--b',
      'Content-Type: text/plain',
      '',
      'text',
      '--b',
      'Content-Type: text/html',
      '',
      '<p>html</p>',
      '--b--',
      '',
    ].join('\r\n'),
  ],
];

describe('parsing an inbound message by its header block', () => {
  for (const [name, raw] of ordinary) {
    it(`reads what mailparser reads: ${name}`, async () => {
      // Prepare
      const source = Buffer.from(raw);
      const full = await simpleParser(source);

      // Act
      const fast = parseHeaderBlock(source);

      // Assess
      expect(fast.messageId).toBe(full.messageId);
      expect(fast.subject).toBe(full.subject);
      expect(fast.from).toBe(full.from?.value[0]?.address);
      const to = (Array.isArray(full.to) ? full.to : full.to ? [full.to] : []).flatMap((a) =>
        a.value.flatMap((v) => (v.group ? v.group.map((g) => g.address) : [v.address])),
      );
      expect(fast.to).toEqual(to.filter(Boolean));
      if (full.headers.has('date')) expect(fast.date?.getTime()).toBe(full.date?.getTime());
      expect(fast.contentType).toBe(
        ((full.headers.get('content-type') as { value?: string } | undefined)?.value ?? 'text/plain').toLowerCase(),
      );
      for (const key of ['auto-submitted', 'precedence', 'x-autoreply'])
        expect(fast.headers[key]).toBe(full.headers.get(key));
      expect(classifyInbound(fast)).toEqual(classifyInbound(await parseInbound(source)));
    });
  }

  it('reads the envelope recipient once when Delivered-To and To name the same address', () => {
    const raw =
      'From: x@example.org\r\nDelivered-To: ops@example.com\r\nTo: ops@example.com, b@example.com\r\n\r\nbody';
    const parsed = parseHeaderBlock(Buffer.from(raw));
    expect(parsed.envelopeTo).toEqual(['ops@example.com', 'b@example.com']);
    expect(parsed.to).toEqual(['ops@example.com', 'b@example.com']);
  });

  it('leaves a date it cannot read out instead of inventing one', () => {
    expect(parseHeaderBlock(Buffer.from('From: x@example.org\r\nDate: not a date\r\n\r\nbody')).date).toBeUndefined();
  });

  it('parses a report whole, with its parts, so that it can be classified', async () => {
    const parsed = await parseInbound(Buffer.from(bounceMessage('gone@example.net')));

    expect(parsed.contentType).toBe('multipart/report');
    expect(parsed.parts.map((p) => p.contentType)).toEqual([
      'text/plain',
      'message/delivery-status',
      'text/rfc822-headers',
    ]);
    expect(classifyInbound(parsed)).toMatchObject({
      kind: 'bounce',
      recipients: [{ recipient: 'gone@example.net', status: '5.1.1' }],
    });
  });
});
