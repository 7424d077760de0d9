import { describe, expect, it } from 'vitest';
import { classifyInbound } from '#inbound/classify-inbound.js';
import { messageIdsIn } from '#inbound/mail-text.js';
import { parseInbound } from '#inbound/parse-inbound.js';
import { bounceMessage } from '../../support/mail-samples.js';

describe('what a report carries to verify it by', () => {
  it('lists the envelope recipients the receiver recorded, and the Message-ID quoted for the original', async () => {
    const verp = ['bounces+k1.x@bounces.example.com', 'bounces+k1.y@bounces.example.com'];
    const headers = [`Delivered-To: ${verp[0]}`, `X-Original-To: ${verp[1]}`];
    const threading = 'In-Reply-To: <parent@example.com>\r\nReferences: <root@example.com>\r\n <parent@example.com>';
    const raw = bounceMessage('gone@example.net', { originalMessageId: '<k1.a@example.com>', headers }).replace(
      'Subject: Your receipt',
      `${threading}\r\nSubject: Your receipt`,
    );

    const message = await parseInbound(Buffer.from(raw));
    const classification = classifyInbound(message);

    expect(message.envelopeTo).toEqual([...verp, 'bounces@example.com']);
    // The original's own threading names other messages (perhaps other jobs of ours): it is no evidence of this one.
    const messageIds = ['<k1.a@example.com>'];
    expect(classification).toMatchObject({ kind: 'bounce', original: { messageId: '<k1.a@example.com>', messageIds } });
  });

  it('keeps at most 64 Message-IDs however many a hostile report quotes', async () => {
    const references = Array.from({ length: 3000 }, (_, i) => `<id${i}@evil.test>`).join(' ');
    // In the report's own header, where the report's threading is read.
    const raw = `References: ${references}\r\n${bounceMessage('gone@example.net')}`;

    const classification = classifyInbound(await parseInbound(Buffer.from(raw)));

    expect(classification.kind === 'bounce' && classification.original.messageIds.length).toBe(64);
  });
});

describe('message ids in hostile header text', () => {
  it('reads runs of angle brackets in one pass and keeps only well-formed ids', () => {
    const text = `${'<'.repeat(200_000)}a@b.example>${'>'.repeat(200_000)} <no-at-sign> <c d@e.example> <f@g.example>`;

    expect(messageIdsIn(text)).toEqual(['<a@b.example>', '<f@g.example>']);
  });
});
