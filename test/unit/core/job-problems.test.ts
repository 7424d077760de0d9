import { describe, expect, it } from 'vitest';
import { nearestKey } from '#core/job-problems.js';
import { parseJobRecord } from '#core/parse-job-record.js';
import { InvalidEmailJobError, validateEmailJob } from '#producer/index.js';
import { emailJobFactory } from '../../support/factories.js';

/** What the producer says and what the handler writes on the dead letter: the same words. */
async function problemsOf(input: unknown): Promise<{ producer: string; handler: string }> {
  let producer = '';
  try {
    validateEmailJob(input);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidEmailJobError);
    producer = (error as InvalidEmailJobError).detail;
  }
  const parsed = await parseJobRecord(JSON.stringify(input));
  return { producer, handler: parsed.success ? '' : parsed.detail };
}

describe('validation problems name the key and the fix', () => {
  it('says a missing field is required', async () => {
    const { subject: _, ...job } = emailJobFactory();

    const { producer, handler } = await problemsOf(job);

    expect(producer).toBe('subject: required');
    expect(handler).toBe(producer);
  });

  it('lists the allowed values', async () => {
    expect((await problemsOf({ ...emailJobFactory(), transport: 'pigeon' })).producer).toBe(
      'transport: must be one of "smtp", "ses", not "pigeon"',
    );
  });

  it('names an unknown key and the known key nearest to it', async () => {
    const { transport: _, ...job } = emailJobFactory({ transport: 'smtp' });

    const { producer, handler } = await problemsOf({ ...job, transprt: 'smtp' });

    expect(producer).toBe('unknown key "transprt" (did you mean "transport"?)');
    expect(handler).toBe(producer);
  });

  it('lists the known keys when an unknown one is near none of them', async () => {
    expect((await problemsOf({ ...emailJobFactory(), to: [{ address: 'a@example.net', title: 'Dr' }] })).producer).toBe(
      'to.0: unknown key "title" (known keys: address, name)',
    );
  });

  it('reports every problem at once, each with its path, the job-wide rules included', async () => {
    const job = { version: 2, to: 'a@example.net', subject: 5, attachments: [null], transprt: 'ses' };

    const { producer, handler } = await problemsOf(job);

    expect(producer.split('; ')).toEqual([
      'version: must be 1',
      'idempotencyKey: required',
      'to: must be a list, not a string',
      'subject: must be a string, not a number',
      'attachments.0: must be an object, not null',
      'unknown key "transprt" (did you mean "transport"?)',
      'text: needs text, html or both',
    ]);
    expect(handler).toBe(producer);
  });

  it('says what a list item is wrong with, whichever form it took', async () => {
    const { producer } = await problemsOf({
      ...emailJobFactory(),
      to: ['Alice <a@example.net>', 5, { address: 'b@example.net', name: 'B\r\nBcc: x@example.net' }],
    });

    expect(producer.split('; ')).toEqual([
      'to.0: must be a bare address like user@example.com (no display name, quotes or spaces)',
      'to.1: must be a string or an object, not a number',
      'to.2.name: must not contain control characters or line breaks',
    ]);
  });

  it('names a misspelt key of a recipient object and the field it left missing', async () => {
    const { producer, handler } = await problemsOf({
      ...emailJobFactory(),
      to: [{ adress: 'a@example.net', name: 'A' }],
      replyTo: [{ address: 'r@example.net', nmae: 'R' }],
    });

    expect(producer.split('; ')).toEqual([
      'to.0: unknown key "adress" (did you mean "address"?), address: required',
      'replyTo.0: unknown key "nmae" (did you mean "name"?)',
    ]);
    expect(handler).toBe(producer);
  });

  it('says what a job that is not an object is', async () => {
    expect((await problemsOf(['not', 'a', 'job'])).producer).toBe('must be an object, not a list');
  });

  it('caps a report at twenty problems and says how many more there are', async () => {
    const job = { ...emailJobFactory(), ...Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`extra${i}`, i])) };
    const many = { ...job, to: Array.from({ length: 30 }, () => 5) };

    const { producer } = await problemsOf(many);

    expect(producer.split('; ')).toHaveLength(21);
    expect(producer).toMatch(/; and \d+ more$/);
  });

  it('suggests a key only when it is close to a known one', () => {
    expect(nearestKey('idempotencykey', ['idempotencyKey', 'subject'])).toBe('idempotencyKey');
    expect(nearestKey('subjct', ['idempotencyKey', 'subject'])).toBe('subject');
    expect(nearestKey('priority', ['idempotencyKey', 'subject', 'transport'])).toBeUndefined();
  });
});
