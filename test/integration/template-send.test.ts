import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommandLine as run } from '../support/command-line.js';
import { startTestTwin, type TestTwin } from '../support/twin-harness.js';

describe('npm run template -- render --send against a running twin', () => {
  let test: TestTwin;
  let files: string;

  beforeAll(async () => {
    files = mkdtempSync(join(tmpdir(), 'email-dispatch-template-send-'));
    test = await startTestTwin();
  });
  afterAll(async () => {
    await test?.stop();
    rmSync(files, { recursive: true, force: true });
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
      { twinDir: test.dataDir },
    );

    // Assess
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^queued tpl-send-1 on local twin/m);
    expect(result.stdout.trim().split('\n').at(-1)).toBe('delivered: accepted');
    const received = test.twin.smtp.received.find((m) => m.to.includes('zoe@example.net'));
    expect(received).toBeDefined();
    const message = await simpleParser(received?.raw ?? Buffer.alloc(0));
    expect(message.subject).toBe('Reset your Bücher password');
    expect(message.text).toContain('https://books.example/r/1');
    expect(message.headers.get('x-dispatch-id')).toBeTruthy();
  });
});
