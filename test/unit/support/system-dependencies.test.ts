import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  describeMissing,
  missingDependencies,
  SYSTEM_DEPENDENCIES,
  type SystemDependency,
} from '#test/support/system-dependencies.js';

const bin = mkdtempSync(join(tmpdir(), 'email-dispatch-bin-'));
afterAll(() => rmSync(bin, { recursive: true, force: true }));

describe('the preflight of system programs', () => {
  it('finds a program on PATH and at an absolute path, and reports the rest with one install command', () => {
    writeFileSync(join(bin, 'openssl'), '#!/bin/sh\n');
    chmodSync(join(bin, 'openssl'), 0o755);
    const catalogue: SystemDependency[] = [
      { program: 'openssl', debianPackage: 'openssl', usedFor: 'certificates' },
      { program: join(bin, 'dovecot'), debianPackage: 'dovecot-imapd', usedFor: 'IMAP' },
      { program: join(bin, 'smtp-sink'), debianPackage: 'postfix', usedFor: 'SMTP' },
    ];

    const missing = missingDependencies(catalogue, bin);

    expect(missing.map((d) => d.debianPackage)).toEqual(['dovecot-imapd', 'postfix']);
    expect(describeMissing(missing)).toBe(
      [
        'The tests need programs this machine lacks:',
        `  ${join(bin, 'dovecot')} (dovecot-imapd): IMAP`,
        `  ${join(bin, 'smtp-sink')} (postfix): SMTP`,
        'Install with:',
        '  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends dovecot-imapd postfix',
      ].join('\n'),
    );
  });

  it('does not take a file without the execute bit for the program', () => {
    writeFileSync(join(bin, 'plain'), '');

    expect(missingDependencies([{ program: join(bin, 'plain'), debianPackage: 'x', usedFor: 'y' }], bin)).toHaveLength(
      1,
    );
  });

  it('lists every program the suite starts: openssl, Dovecot, smtp-sink and Chromium', () => {
    expect(SYSTEM_DEPENDENCIES.map((d) => d.debianPackage)).toEqual([
      'openssl',
      'dovecot-imapd',
      'postfix',
      'chromium',
    ]);
  });
});
