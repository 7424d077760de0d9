import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bounceLogFacts, hasSenderSideFailure, maskAddresses } from '#inbound/bounce-log.js';
import { classifyInbound } from '#inbound/classify-inbound.js';
import { parseInboundSync } from '#inbound/parse-inbound.js';

const OWN = join(import.meta.dirname, '../../fixtures/bounces/messages/own');
const classifyFile = (name: string) => classifyInbound(parseInboundSync(readFileSync(join(OWN, name))));

describe('what the logs say about a bounce', () => {
  it('masks every address, keeping its domain', () => {
    expect(maskAddresses('550 5.1.1 <gone@example.net>: unknown; RCPT TO:<a.b+c@sub.example.org>')).toBe(
      '550 5.1.1 <***@example.net>: unknown; RCPT TO:<***@sub.example.org>',
    );
  });

  it('gives reason, permanence, status, reply code and the masked diagnostic per recipient, and no address', () => {
    // Act
    const facts = bounceLogFacts(classifyFile('exim-user-unknown.eml'));

    // Assess
    expect(facts).toEqual({
      format: 'exim',
      recipients: [
        {
          domain: 'mail.example.org',
          reason: 'user-unknown',
          permanent: true,
          status: '5.1.1',
          replyCode: 550,
          suppress: true,
          diagnostic: expect.stringContaining('<***@mail.example.org>'),
        },
      ],
    });
    expect(JSON.stringify(facts)).not.toContain('nobody@');
  });

  it("tells the reports that blame our side from the recipient's own failures", () => {
    const blamed = [
      'postfix-sender-domain.eml',
      'postfix-spf-fail.eml',
      'o365-ip-blocked.eml',
      'zimbra-rate-limited.eml',
      'gmail-delay-reputation.eml',
    ];
    const own = ['exim-user-unknown.eml', 'qmail-mailbox-full.eml', 'domino-not-listed.eml'];

    expect(blamed.map((f) => hasSenderSideFailure(classifyFile(f)))).toEqual(blamed.map(() => true));
    expect(own.map((f) => hasSenderSideFailure(classifyFile(f)))).toEqual(own.map(() => false));
  });
});
