import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { bundleFunction } from '#infra/bundle.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const outdir = mkdtempSync(join(tmpdir(), 'email-dispatch-bundle-test-'));
afterAll(() => rmSync(outdir, { recursive: true, force: true }));

/** The npm packages whose code a cold start loads before any configuration is read. */
function eagerPackages(entry: string): Set<string> {
  const report = bundleFunction(join(ROOT, entry), join(outdir, entry.replace(/\W/g, '-')), ROOT);
  return new Set(report.eagerInputs.flatMap((input) => /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(input)?.[1] ?? []));
}

describe('what a cold start loads', () => {
  it('the dispatcher: no transport, and neither S3 nor SQS until a job needs them', () => {
    const packages = eagerPackages('functions/send-email.ts');
    expect(packages).toContain('@aws-sdk/client-dynamodb');
    expect(packages).toContain('@aws-sdk/client-sns');
    // A transport loads when the configuration enables it; S3 with the first stored attachment; SQS with the first
    // job that is dead-lettered or postponed (a batch that is all delivered never needs it); the template engine with
    // the first template job.
    for (const lazy of [
      'handlebars',
      'ajv',
      'html-to-text',
      'nodemailer',
      '@aws-sdk/client-sesv2',
      '@aws-sdk/client-s3',
      '@aws-sdk/client-sqs',
      '@aws-sdk/client-secrets-manager',
    ]) {
      expect(packages).not.toContain(lazy);
    }
  }, 60_000);

  it('the poller: no SQS at all, and the parser only when a message arrives', () => {
    const packages = eagerPackages('functions/poll-mailbox.ts');
    expect(packages).toContain('imapflow');
    for (const lazy of ['@aws-sdk/client-sqs', 'mailparser', '@aws-sdk/client-s3'])
      expect(packages).not.toContain(lazy);
  }, 60_000);
});
