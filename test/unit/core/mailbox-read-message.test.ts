import { describe, expect, it } from 'vitest';
import type { InboundClassification, InboundMessage } from '#inbound/classify-inbound.js';
import { suppressReported, type SuppressEntry } from '#core/mailbox/classify-and-suppress.js';
import { abandonedMessage, readMessage } from '#core/mailbox/read-message.js';
import { plainMessage } from '../../support/mail-samples.js';

const fetchedOf = (text: string, uid = 7) => ({ uid, source: Buffer.from(text), size: Buffer.byteLength(text) });
const parsedAs = (message: Partial<InboundMessage>) => async (): Promise<InboundMessage> => ({
  to: [],
  envelopeTo: [],
  headers: {},
  contentType: 'text/plain',
  parts: [],
  ...message,
});

/** What a parser that refuses a message beyond its limits throws: an error with a short `reason`. */
class LimitError extends Error {
  readonly reason = 'too-many-parts';
}

describe('readMessage', () => {
  it('keys a parsed message by its Message-ID, so a copy under another UIDVALIDITY is found again', async () => {
    const parse = parsedAs({ messageId: '<a@example.org>' });

    const [first, copy] = await Promise.all([
      readMessage(fetchedOf(plainMessage(1), 1), parse, 1000),
      readMessage(fetchedOf(plainMessage(2), 9), parse, 1000),
    ]);

    expect(first.unparsable).toBeUndefined();
    expect(first.key).toBe(copy.key);
  });

  it('refuses a message over the cap by its whole size, naming the prefix kept when only that was fetched', async () => {
    let parsed = 0;
    const parse = async () => {
      parsed += 1;
      return parsedAs({})();
    };
    const prefix = { uid: 3, source: Buffer.alloc(1001, 'x'), size: 5_000_000 };

    const partial = await readMessage(prefix, parse, 1000);
    const whole = await readMessage(fetchedOf('y'.repeat(1001)), parse, 1000);

    expect(partial.unparsable).toEqual({
      reason: 'too-large',
      detail: '5000000 bytes, over 1000; its first 1001 bytes kept',
    });
    expect(whole.unparsable).toEqual({ reason: 'too-large', detail: '1001 bytes, over 1000' });
    expect(parsed).toBe(0);
  });

  it("keeps a parser's refusal reason in unparsable, and calls any other throw parse-failed", async () => {
    const refused = await readMessage(
      fetchedOf(plainMessage(1)),
      async () => Promise.reject(new LimitError('1,001 parts, at most 100')),
      1_000_000,
    );
    const crashed = await readMessage(
      fetchedOf(plainMessage(1)),
      async () => Promise.reject(new TypeError('x is undefined')),
      1_000_000,
    );

    expect(refused.unparsable).toEqual({ reason: 'too-many-parts', detail: '1,001 parts, at most 100' });
    expect(crashed.unparsable).toEqual({ reason: 'parse-failed', detail: 'x is undefined' });
    // The same bytes give the same key, so a republished copy is still recognised.
    expect(refused.key).toBe(crashed.key);
  });

  it('does not parse a message over the size cap at all', async () => {
    let parsed = 0;
    const parse = async () => {
      parsed += 1;
      return parsedAs({})();
    };

    const read = await readMessage(fetchedOf(plainMessage(1) + 'x'.repeat(2000)), parse, 1000);

    expect(parsed).toBe(0);
    expect(read.unparsable?.reason).toBe('too-large');
  });

  it('gives up on a message runs keep stopping on without reading it', () => {
    expect(abandonedMessage(fetchedOf(plainMessage(1)), 3).unparsable?.reason).toBe('run-did-not-finish');
  });
});

describe('suppressReported', () => {
  it('suppresses the failed addresses of a bounce, never a "recipient" longer than an address can be', async () => {
    // Prepare
    const entries: SuppressEntry[] = [];
    const recipient = (address: string) => ({
      recipient: address,
      action: 'failed' as const,
      status: '5.1.1',
      reason: 'user-unknown' as const,
      permanent: true,
      suppress: true,
    });
    const bounce: InboundClassification = {
      kind: 'bounce',
      format: 'delivery-status',
      recipients: [
        recipient('gone@example.net'),
        recipient(`${'a'.repeat(300)}@example.net`),
        { ...recipient('full@example.net'), status: '5.2.2', reason: 'mailbox-full', permanent: true, suppress: false },
      ],
      original: { messageIds: [] },
    };

    // Act
    const suppressed = await suppressReported(bounce, 'k1', async (entry) => {
      entries.push(entry);
    });

    // Assess
    expect(suppressed).toEqual(entries);
    expect(entries).toEqual([
      {
        address: 'gone@example.net',
        reason: 'hard-bounce',
        source: 'dsn:k1',
        status: '5.1.1',
        permanent: true,
        detail: 'user-unknown',
        verified: true,
      },
    ]);
  });
});
