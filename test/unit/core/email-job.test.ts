import { readFileSync } from 'node:fs';
import Ajv2020 from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { toEmailJobJsonSchema } from '#core/email-job-json-schema.js';
import { EmailJobSchema, listRecipients } from '#core/email-job.js';
import { parseJobRecord } from '#core/parse-job-record.js';
import { emailJobFactory, templateJobFactory } from '../../support/factories.js';

describe('the email job schema', () => {
  it('accepts a full job', () => {
    const job = emailJobFactory({
      from: { address: 'shop@example.com', name: 'Shöp, Inc.' },
      to: ['a@example.net', { address: 'b@exämple.de', name: 'B' }],
      cc: ['c@example.org'],
      bcc: ['d@example.org'],
      replyTo: ['help@example.com'],
      html: '<p>hi</p>',
      headers: { 'X-Campaign': 'spring', 'List-Unsubscribe': '<https://example.com/u>' },
      attachments: [{ filename: 'a.txt', contentType: 'text/plain', content: 'aGVsbG8=' }],
      tags: { campaign: 'spring' },
      transport: 'ses',
    });
    expect(EmailJobSchema.safeParse(job).success).toBe(true);
  });

  it.each([
    [{ idempotencyKey: '' }, 'idempotencyKey'],
    [{ idempotencyKey: 'has space' }, 'idempotencyKey'],
    [{ to: [] }, 'to'],
    [{ to: ['Alice <a@example.net>'] }, 'to.0'],
    [{ to: Array.from({ length: 51 }, (_, i) => `u${i}@example.net`) }, 'to'],
    [{ subject: 'a\nb' }, 'subject'],
    [{ text: undefined }, 'text'],
    [{ headers: { Bcc: 'x@example.net' } }, 'headers.Bcc'],
    [{ headers: { 'X-Dispatch-Id': 'spoof' } }, 'headers.X-Dispatch-Id'],
    [{ attachments: [{ filename: 'a.txt', content: '***' }] }, 'attachments.0.content'],
    [{ attachments: [{ filename: 'a.txt', content: 'AB=C' }] }, 'attachments.0.content'],
    [{ attachments: [{ filename: 'a.txt', content: 'ABC' }] }, 'attachments.0.content'],
    [{ attachments: [{ filename: 'a.txt' }] }, 'attachments.0'],
    [{ attachments: [{ filename: '../etc/passwd', content: 'aGVsbG8=' }] }, 'attachments.0.filename'],
    [{ version: 2 }, 'version'],
    [{ unexpected: true }, 'unknown key "unexpected"'],
  ] as const)('rejects %j, naming %s', async (override, field) => {
    const result = await parseJobRecord(JSON.stringify({ ...emailJobFactory(), ...override }));
    expect(result.success).toBe(false);
    if (!result.success) {
      expect(result.reason).toBe('invalid-job');
      expect(result.detail.startsWith(field.includes(' ') ? field : `${field}:`)).toBe(true);
    }
  });

  it('checks megabytes of base64 without running out of stack, and reports the size rather than throwing', () => {
    // A claim-checked job can carry far more than the queue's 1 MiB inline.
    const content = Buffer.alloc(20 * 1024 * 1024, 9).toString('base64');

    const result = EmailJobSchema.safeParse(emailJobFactory({ attachments: [{ filename: 'big.bin', content }] }));

    expect(result.success).toBe(false);
    expect(result.error?.issues.map((i) => i.message)).toEqual([
      'inline attachments exceed 524288 bytes; put large files in S3',
    ]);
  });

  it.each([
    [{ idempotencyKey: 5 }, 'idempotencyKey: must be a string, not a number'],
    [{ to: 'a@example.net' }, 'to: must be a list, not a string'],
    [{ transport: 'fax' }, 'transport: must be one of "smtp", "ses", not "fax"'],
    [{ to: [{ address: 'a@example.net', title: 'Dr' }] }, 'to.0: unknown key "title" (known keys: address, name)'],
  ] as const)('says why in words for a wrong type, option or key: %j', async (override, detail) => {
    const result = await parseJobRecord(JSON.stringify({ ...emailJobFactory(), ...override }));
    expect(result).toMatchObject({ success: false, reason: 'invalid-job', detail });
  });

  it('says a body is not JSON', async () => {
    const result = await parseJobRecord('{not json');
    expect(result).toMatchObject({ success: false, reason: 'invalid-json' });
  });

  it('lists envelope recipients once, case-insensitively', () => {
    expect(listRecipients({ to: ['A@x.io', { address: 'b@x.io' }], cc: ['a@X.io'], bcc: ['c@x.io'] })).toEqual([
      'A@x.io',
      'b@x.io',
      'c@x.io',
    ]);
  });

  it('ships a JSON Schema that matches the zod schema', () => {
    const committed = JSON.parse(readFileSync(new URL('../../../schema/email-job.v1.json', import.meta.url), 'utf8'));
    expect(committed).toEqual(toEmailJobJsonSchema());
  });

  it('ships a JSON Schema whose patterns any validator compiles, and that checks addresses as the dispatcher does', () => {
    const schema = toEmailJobJsonSchema();
    const patterns: string[] = [];
    JSON.stringify(schema, (key, value) => {
      if (key === 'pattern') patterns.push(value);
      return value;
    });
    const validate = new Ajv2020.default({ strict: false }).compile(schema);
    const job = (to: unknown[]) => ({ ...emailJobFactory(), to });

    expect(patterns.length).toBeGreaterThan(5);
    // Python's re has no \p{…}, Go's RE2 no lookaround; both compile what JavaScript compiles without the u flag.
    for (const pattern of patterns) {
      expect(pattern).not.toMatch(/\\[pP]\{|\(\?<?[=!]/);
      expect(() => new RegExp(pattern)).not.toThrow();
    }
    expect(validate(job(['alice@example.net', 'jörg@bücher.de', { address: 'b@exämple.de', name: 'B' }]))).toBe(true);
    for (const to of ['Alice <a@example.net>', 'a b@example.net', 'a@b', 'a"b@example.net', `${'a'.repeat(250)}@x.de`])
      expect([to, validate(job([to]))]).toEqual([to, false]);
  });
});

describe('a job rendered from a template', () => {
  it('gives a template instead of subject, text and html', async () => {
    const job = templateJobFactory({ name: 'order-receipt', version: 1, data: { order: { total: 1 } } });

    const result = await parseJobRecord(JSON.stringify(job));

    expect(result).toMatchObject({ success: true, job: { template: { name: 'order-receipt', version: 1 } } });
  });

  it('takes exactly one of the two ways, and names every problem', async () => {
    const both = { ...emailJobFactory({ html: '<p>x</p>' }), template: { name: 'Order Receipt', version: 0 } };
    const neither = templateJobFactory({ name: 'x' });
    delete (neither as { template?: unknown }).template;

    const [twice, none] = await Promise.all([
      parseJobRecord(JSON.stringify(both)),
      parseJobRecord(JSON.stringify(neither)),
    ]);

    expect(twice).toMatchObject({
      success: false,
      reason: 'invalid-job',
      detail:
        'template.name: must be a template name like order-receipt; template.version: must be a whole number from 1; ' +
        'subject: must not be given with template; text: must not be given with template; ' +
        'html: must not be given with template',
    });
    expect(none).toMatchObject({ success: false, detail: 'subject: required; text: needs text, html or both' });
  });
});

describe('the data of a template job', () => {
  /** Data whose innermost value sits `levels` objects and arrays deep, the data itself the first. */
  const nested = (levels: number) => {
    let value: unknown = 'end';
    for (let i = 1; i < levels; i += 1) value = i % 2 === 0 ? [value] : { next: value };
    return { next: value };
  };

  it('may nest 32 levels of objects and arrays, and not one more', async () => {
    const deepest = templateJobFactory({ name: 'welcome', data: nested(32) });
    const deeper = templateJobFactory({ name: 'welcome', data: nested(33) });

    const [accepted, refused] = await Promise.all([
      parseJobRecord(JSON.stringify(deepest)),
      parseJobRecord(JSON.stringify(deeper)),
    ]);

    expect(accepted).toMatchObject({ success: true });
    expect(refused).toMatchObject({
      success: false,
      reason: 'invalid-job',
      detail: 'template.data: nested deeper than 32 levels of objects and arrays',
    });
  });
});
