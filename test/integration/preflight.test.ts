import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

describe('the preflight of a test run', () => {
  it('stops a run on a machine without Dovecot and openssl before any test, with the command that installs them', () => {
    // A machine without them: Dovecot is not where it is looked for, and no directory on PATH has openssl.
    const emptyPath = mkdtempSync(join(tmpdir(), 'email-dispatch-no-programs-'));
    const runDirs = mkdtempSync(join(tmpdir(), 'email-dispatch-preflight-'));
    const { EMAIL_DISPATCH_TEST_RUN_DIR: _ownRun, ...env } = process.env;

    const run = spawnSync(
      process.execPath,
      ['node_modules/vitest/vitest.mjs', 'run', '--project', 'quick', 'test/unit/support/system-dependencies.test.ts'],
      {
        env: { ...env, PATH: emptyPath, DOVECOT_BIN: join(emptyPath, 'dovecot'), TMPDIR: runDirs, CI: 'true' },
        encoding: 'utf8',
        timeout: 120_000,
      },
    );
    const output = `${run.stdout}\n${run.stderr}`;

    expect(run.status).toBe(1);
    expect(output).toContain(`${join(emptyPath, 'dovecot')} (dovecot-imapd): the IMAP server of the poller tests`);
    expect(output).toContain('openssl (openssl): TLS certificates');
    expect(output).toContain('sudo apt-get install -y --no-install-recommends openssl dovecot-imapd');
    // No test ran, and the run left no directory behind.
    expect(output).not.toMatch(/Tests\s+\d+ passed/);
    expect(readdirSync(runDirs)).toEqual([]);
  });
});
