import { describe, expect, it } from 'vitest';
import { classifyRecipientRefusal } from '#core/classify-outcome.js';
import { dispatchJob, type DispatchDeps } from '#core/dispatch-job.js';
import { listRecipients } from '#core/email-job.js';
import {
  decodeFollowUp,
  deferredRecipients,
  encodeFollowUp,
  followUpKey,
  signFollowUp,
  verifyFollowUp,
} from '#core/follow-up.js';
import type { MailTransport, OutgoingMessage, SendReceipt } from '#core/mail-transport.js';
import { toMessageId, toReportKeyring } from '#core/message-id.js';
import { emailJobFactory } from '../../support/factories.js';

describe('a recipient refused while others were accepted', () => {
  it.each([
    [450, '450 4.2.0 Greylisted', 'deferred'],
    [451, '451 4.7.1 Try again later', 'deferred'],
    [452, '452 4.5.3 Too many recipients', 'deferred'],
    [454, '454 Throttling failure: Maximum sending rate exceeded.', 'deferred'],
    [552, '552 5.5.3 Too many recipients', 'deferred'],
    [550, '550 5.1.1 No such user', 'rejected'],
    [553, '553 5.1.3 Mailbox name not allowed', 'rejected'],
    [554, '554 5.7.1 Relay access denied', 'rejected'],
  ] as const)('answered %i is %s', (responseCode, response, expected) => {
    expect(classifyRecipientRefusal({ responseCode, response })).toBe(expected);
  });
});

describe('the follow-up attribute', () => {
  it('reads back what was written, with and without a template version', () => {
    // Prepare
    const plain = { attempts: 3, recipients: [0, 2], dateMs: 1_764_400_000_000 };
    const template = { ...plain, templateVersion: 4 };

    // Act
    const read = [plain, template].map((f) => decodeFollowUp(encodeFollowUp(f), 3));

    // Assess
    expect(encodeFollowUp(plain)).toBe('3:0,2:1764400000000:');
    expect(read).toEqual([plain, template]);
  });

  it.each([
    ['', 'attempts spent'],
    ['0:0:1', 'attempts spent'],
    ['1:3:1:', 'positions from 0 to 2'],
    ['1:-1:1:', 'positions from 0 to 2'],
    ['1::1:', 'positions from 0 to 2'],
    ['1:1,1:1:', 'twice'],
    ['1:0:soon:', 'epoch milliseconds'],
    ['1:0:1:0', 'template version'],
    ['1:0:1:2:3', 'template version'],
    [`1:${'0,'.repeat(500)}0:1:`, 'too long'],
  ])('refuses %j, saying why', (value, why) => {
    const decoded = decodeFollowUp(value, 3);
    expect(decoded).toEqual({ problem: expect.stringContaining(why) });
    expect((decoded as { problem: string }).problem).toMatch(/^followUp: /);
  });
});

describe('the follow-up an outcome calls for', () => {
  it('names the deferred recipients by their place in the job, with the attempts and the message date', () => {
    // Prepare
    const recipients = ['a@x.test', 'B@x.test', 'c@x.test'];
    const outcome = {
      dateMs: 1000,
      recipients: [
        { recipient: 'a@x.test', status: 'accepted' as const },
        { recipient: 'b@x.test', status: 'deferred' as const },
        { recipient: 'c@x.test', status: 'rejected' as const },
      ],
    };

    // Act
    const followUp = deferredRecipients(recipients, outcome, 2, 7);
    const none = deferredRecipients(recipients, { ...outcome, recipients: outcome.recipients.slice(0, 1) }, 2);

    // Assess
    expect(followUp).toEqual({ attempts: 2, recipients: [1], dateMs: 1000, templateVersion: 7 });
    expect(none).toBeUndefined();
  });

  it('goes under a key no producer can give (keys are printable ASCII) and one per attempt', () => {
    const keys = [followUpKey('order-1', 1), followUpKey('order-1', 2)];
    expect(keys).toEqual(['order-1§deferred-1', 'order-1§deferred-2']);
    for (const key of keys) expect(key).not.toMatch(/^[\x21-\x7e]{1,128}$/);
  });
});

/** A transport that takes every message and refuses the recipients in `refuse` with their reply. */
function recordingTransport(refuse: Record<string, { responseCode: number; response: string }> = {}) {
  const sent: OutgoingMessage[] = [];
  const transport: MailTransport = {
    name: 'smtp',
    async send(message): Promise<SendReceipt> {
      sent.push(message);
      const envelope = message.envelopeTo ?? [];
      return {
        accepted: envelope.filter((r) => !refuse[r]),
        rejected: envelope.flatMap((r) => (refuse[r] ? [{ recipient: r, ...refuse[r] }] : [])),
      };
    },
    close: async () => {},
  };
  return { sent, transport };
}

const depsWith = (transport: MailTransport, suppressed: string[] = []): DispatchDeps => ({
  transports: { smtp: transport },
  defaultTransport: 'smtp',
  suppressions: { findSuppressed: async (addresses) => new Set(addresses.filter((a) => suppressed.includes(a))) },
  loadAttachment: async () => new Uint8Array(),
  messageIdDomain: 'example.com',
});

describe('dispatchJob with a follow-up', () => {
  const job = emailJobFactory({
    idempotencyKey: 'order-9',
    to: ['a@x.test', 'b@x.test'],
    cc: ['c@x.test'],
  });

  it('lists deferred and rejected recipients apart, and gives the message date', async () => {
    // Prepare
    const { transport } = recordingTransport({
      'b@x.test': { responseCode: 450, response: '450 4.2.0 Greylisted' },
      'c@x.test': { responseCode: 550, response: '550 5.1.1 No such user' },
    });

    // Act
    const outcome = await dispatchJob(job, depsWith(transport));

    // Assess
    expect(outcome.action).toBe('delivered');
    expect(outcome.recipients.map((r) => [r.recipient, r.status])).toEqual([
      ['a@x.test', 'accepted'],
      ['b@x.test', 'deferred'],
      ['c@x.test', 'rejected'],
    ]);
    expect(outcome.dateMs).toBe(Math.floor((outcome.dateMs as number) / 1000) * 1000);
  });

  it("sends the job's message (Message-ID, Date, headers) with the envelope restricted to its recipients", async () => {
    // Prepare
    const { sent, transport } = recordingTransport();
    const followUp = { messageKey: 'order-9', recipients: ['c@x.test'], dateMs: 1_764_400_000_000 };

    // Act
    await dispatchJob(job, depsWith(transport));
    const outcome = await dispatchJob(
      { ...job, idempotencyKey: 'order-9§deferred-1' },
      depsWith(transport),
      undefined,
      {
        followUp,
      },
    );

    // Assess
    const [first, second] = sent;
    expect(second?.envelopeTo).toEqual(['c@x.test']);
    expect(first?.envelopeTo).toEqual(listRecipients(job));
    expect(second?.messageId).toBe(toMessageId('order-9', 'example.com'));
    expect(second?.messageId).toBe(first?.messageId);
    expect(second?.headers).toEqual(first?.headers);
    expect([second?.to, second?.cc]).toEqual([first?.to, first?.cc]);
    expect(second?.date?.getTime()).toBe(followUp.dateMs);
    expect(outcome.recipients).toEqual([{ recipient: 'c@x.test', status: 'accepted' }]);
  });

  it('does not send to a follow-up recipient suppressed meanwhile', async () => {
    // Prepare
    const { sent, transport } = recordingTransport();
    const followUp = { messageKey: 'order-9', recipients: ['b@x.test', 'c@x.test'], dateMs: 1000 };

    // Act
    const outcome = await dispatchJob(job, depsWith(transport, ['c@x.test']), undefined, { followUp });
    const allSuppressed = await dispatchJob(job, depsWith(transport, ['b@x.test', 'c@x.test']), undefined, {
      followUp,
    });

    // Assess
    expect(sent.map((m) => m.envelopeTo)).toEqual([['b@x.test']]);
    expect(outcome.recipients.map((r) => [r.recipient, r.status])).toEqual([
      ['b@x.test', 'accepted'],
      ['c@x.test', 'suppressed'],
    ]);
    expect(allSuppressed).toMatchObject({ action: 'rejected', reason: 'all-recipients-suppressed' });
  });
});

describe('the signed follow-up attribute', () => {
  const followUp = { attempts: 1, recipients: [1, 2], dateMs: 1_764_400_000_000 };
  const K1 = 'first-report-key-'.repeat(2);
  const K2 = 'second-report-key-'.repeat(2);
  const keyring = toReportKeyring({ current: 'k1', k1: K1 }, 'reports');
  const refused = 'a producer may not send this attribute';

  it("reads back the value, for the job it was signed for, with the deployment's keys", () => {
    // Act
    const signed = signFollowUp(followUp, 'shop order-1', keyring);

    // Assess
    expect(signed).toMatch(/^1:1,2:1764400000000::k1\.[\w-]{22}$/);
    expect(verifyFollowUp(signed, 'shop order-1', keyring)).toEqual({ value: encodeFollowUp(followUp) });
  });

  it.each([
    ['another job', 'shop order-2', keyring, `followUp: signature does not match this job and value; ${refused}`],
    ["another tenant's job of the same key", 'other order-1', keyring, 'followUp: signature does not match'],
    ['a key of the same id but another secret', 'shop order-1', toReportKeyring({ current: 'k1', k1: K2 }, 'r'), ''],
    ['no key of its id', 'shop order-1', toReportKeyring({ current: 'k2', k2: K2 }, 'r'), 'key "k1", which'],
    ['no report keys at all', 'shop order-1', undefined, 'followUp: cannot be verified: this deployment has no'],
  ])('is refused when checked for %s', (_, jobKey, keys, problem) => {
    // Act
    const verified = verifyFollowUp(signFollowUp(followUp, 'shop order-1', keyring), jobKey, keys);

    // Assess
    expect(verified).toEqual({ problem: expect.stringContaining(problem || 'signature does not match') });
  });

  it.each([
    ['positions widened', (s: string) => s.replace(':1,2:', ':0,1,2:')],
    ['attempts raised', (s: string) => s.replace(/^1:/, '7:')],
    ['date changed', (s: string) => s.replace(':1764400000000:', ':1764400000001:')],
    ['template version added', (s: string) => s.replace('::k1.', ':3:k1.')],
    ['MAC changed', (s: string) => `${s.slice(0, -1)}${s.endsWith('A') ? 'B' : 'A'}`],
  ])('is refused with its %s', (_, tamper) => {
    // Act
    const verified = verifyFollowUp(tamper(signFollowUp(followUp, 'order-1', keyring)), 'order-1', keyring);

    // Assess
    expect(verified).toEqual({ problem: `followUp: signature does not match this job and value; ${refused}` });
  });

  it.each([
    ['unsigned', '1:1,2:1764400000000:'],
    ['with a malformed signature', '1:1,2:1764400000000::k1.short'],
    ['too long', `1:1,2:1764400000000::k1.${'A'.repeat(500)}`],
  ])('is refused %s', (_, value) => {
    // Act
    const verified = verifyFollowUp(value, 'order-1', keyring);

    // Assess
    expect(verified).toEqual({ problem: expect.stringMatching(/^followUp: (not signed by the dispatcher|too long)/) });
  });

  it('signed before a key rotation is still read while the old key is listed', () => {
    // Prepare: signed with k1; the deployment now signs with k2 and keeps k1 for what is in flight.
    const signed = signFollowUp(followUp, 'order-1', keyring);
    const rotated = toReportKeyring({ current: 'k2', k1: K1, k2: K2 }, 'reports');

    // Act
    const resigned = signFollowUp(followUp, 'order-1', rotated);

    // Assess
    expect(verifyFollowUp(signed, 'order-1', rotated)).toEqual({ value: encodeFollowUp(followUp) });
    expect(resigned).toMatch(/:k2\.[\w-]{22}$/);
    expect(verifyFollowUp(resigned, 'order-1', rotated)).toEqual({ value: encodeFollowUp(followUp) });
    expect(verifyFollowUp(resigned, 'order-1', keyring)).toEqual({ problem: expect.stringContaining('key "k2"') });
  });
});
