import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS } from '#infra/settings.js';
import { startTwin, type Twin } from '#local/twin.js';
import { runCommandLine as run } from '../support/command-line.js';

describe('npm run template -- render --send against a running twin', () => {
  let twin: Twin;
  let twinDir: string;
  let files: string;

  beforeAll(async () => {
    files = mkdtempSync(join(tmpdir(), 'email-dispatch-template-send-'));
    twinDir = mkdtempSync(join(tmpdir(), 'email-dispatch-template-twin-'));
    twin = await startTwin({
      dataDir: twinDir,
      ports: { aws: 0, dynamodb: 0, ses: 0, smtp: 0, imap: 0 },
      settings: { ...DEFAULT_SETTINGS, retry: { baseDelaySeconds: 1, maxDelaySeconds: 2, lifetimeSeconds: 600 } },
      pollIntervalSeconds: 30,
    });
  });
  afterAll(async () => {
    await twin?.stop();
    rmSync(files, { recursive: true, force: true });
    rmSync(twinDir, { recursive: true, force: true });
  });

  it('queues the template job; the twin renders it from templates/ and mails it to its outbox', async () => {
    // Prepare
    const data = { name: 'Zoë', product: 'Bücher', resetUrl: 'https://books.example/r/1', expiresInMinutes: 15 };
    writeFileSync(join(files, 'reset.json'), JSON.stringify(data));
    const args = ['render', 'password-reset', '--data', join(files, 'reset.json'), '--out', join(files, 'reset.eml')];

    // Act
    const result = await run(
      'template',
      [...args, '--to', 'zoe@example.net', '--key', 'tpl-send-1', '--send', '--wait'],
      {
        twinDir,
      },
    );

    // Assess
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^queued tpl-send-1 on local twin/m);
    expect(result.stdout.trim().split('\n').at(-1)).toBe('delivered: accepted');
    const received = twin.smtp.received.find((m) => m.to.includes('zoe@example.net'));
    expect(received).toBeDefined();
    const message = await simpleParser(received?.raw ?? Buffer.alloc(0));
    expect(message.subject).toBe('Reset your Bücher password');
    expect(message.text).toContain('https://books.example/r/1');
    expect(message.headers.get('x-dispatch-id')).toBeTruthy();
  });
});
