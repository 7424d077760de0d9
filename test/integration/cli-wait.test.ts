import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS } from '#infra/settings.js';
import { startTwin, type Twin } from '#local/twin.js';
import { runCommandLine as run } from '../support/command-line.js';
import { emailJobFactory } from '../support/factories.js';

const files = mkdtempSync(join(tmpdir(), 'email-dispatch-cli-files-'));

describe('send against a running twin', () => {
  let twin: Twin;
  let twinDir: string;

  beforeAll(async () => {
    twinDir = mkdtempSync(join(tmpdir(), 'email-dispatch-cli-twin-'));
    twin = await startTwin({
      dataDir: twinDir,
      ports: { aws: 0, dynamodb: 0, ses: 0, smtp: 0, imap: 0 },
      settings: { ...DEFAULT_SETTINGS, retry: { baseDelaySeconds: 1, maxDelaySeconds: 2, lifetimeSeconds: 600 } },
      pollIntervalSeconds: 30,
    });
  });
  afterAll(async () => {
    await twin?.stop();
  });

  it('reads the body from files and stdin, and with --wait prints delivered', async () => {
    // Over the 128 KiB one argument may have, and over SQS's 1 MiB: the job goes as a claim check.
    writeFileSync(join(files, 'body.txt'), `${'A body from a file.\n'.repeat(60_000)}The end of the file.\n`);

    const result = await run(
      'send',
      [
        '--to',
        'alice@example.net',
        '--subject',
        'Report',
        '--text-file',
        join(files, 'body.txt'),
        '--html-file',
        '-',
        '--key',
        'cli-delivered',
        '--wait',
      ],
      {
        twinDir,
        stdin: '<p>From stdin</p>',
      },
    );

    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^queued cli-delivered on local twin \(.+\) \(claim check tenants\/default\/.+\)$/m);
    expect(result.stdout.trim().split('\n').at(-1)).toBe('delivered: accepted');
    const message = twin.smtp.received.find((m) => m.to.includes('alice@example.net'));
    expect(message?.raw.toString()).toContain('From stdin');
    expect(message?.raw.toString()).toContain('The end of the file.');
  });

  it('without --wait says how to ask what became of the job, and that command tells', async () => {
    const sent = await run(
      'send',
      ['--to', 'plain@example.net', '--subject', 'Hi', '--text', 'x', '--key', 'cli-plain'],
      {
        twinDir,
      },
    );

    expect(sent.code).toBe(0);
    expect(sent.stdout.trim().split('\n').at(-1)).toBe('what became of it: npm run status -- cli-plain');
    await expect
      .poll(async () => (await run('status', ['cli-plain'], { twinDir })).code, { timeout: 60_000, interval: 1000 })
      .toBe(0);
  });

  it('with --wait prints rejected when every recipient is suppressed', async () => {
    const added = await run('suppression', ['add', 'gone@example.net', '--reason', 'manual'], { twinDir });

    const result = await run(
      'send',
      ['--to', 'gone@example.net', '--subject', 'Hi', '--text', 'x', '--key', 'cli-suppressed', '--wait'],
      { twinDir },
    );

    expect(added.code).toBe(0);
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toMatch(/^rejected: all-recipients-suppressed\b.*; gone@example\.net suppressed$/);
  });

  it('with --wait prints rejected with the reply, exit 1', async () => {
    const result = await run(
      'send',
      ['--to', 'nobody@reject.test', '--subject', 'Hi', '--text', 'x', '--key', 'cli-rejected', '--wait'],
      { twinDir },
    );

    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toMatch(/^rejected: .+; nobody@reject\.test rejected \(550 5\.1\.1\)$/);
  });

  it('with --wait prints rejected when a key is reused for other content', async () => {
    const job = emailJobFactory({ idempotencyKey: 'cli-reused' });
    const first = await run('send', ['--file', '-', '--wait'], { twinDir, stdin: JSON.stringify(job) });

    const second = await run('send', ['--file', '-', '--wait'], {
      twinDir,
      stdin: JSON.stringify({ ...job, subject: 'Something else' }),
    });

    expect(first.code).toBe(0);
    expect(second.code).toBe(1);
    expect(second.stderr.trim()).toBe(
      'rejected: idempotency-key-conflict: this idempotencyKey was already used for a job with different content',
    );
  });

  it('with --wait prints each deferral with its reason, and exit 3 when time is up', async () => {
    const result = await run(
      'send',
      [
        '--to',
        'later@slow.test',
        '--subject',
        'Hi',
        '--text',
        'x',
        '--key',
        'cli-deferred',
        '--wait',
        '--timeout',
        '8',
      ],
      { twinDir },
    );

    expect(result.code).toBe(3);
    expect(result.stdout).toMatch(/^deferred: retry: .+451.*; next attempt in \d+ s …$/m);
    expect(result.stdout.trim().split('\n').at(-1)).toMatch(
      /^deferred: retry: .+; still not sent after 8 s .*the job stays queued and is retried$/,
    );
  });
});
