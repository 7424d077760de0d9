import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort } from '#local/loopback.js';
import { COMMANDS, runCommandLine as run, STACK_FRAME } from '../support/command-line.js';

const noTwin = mkdtempSync(join(tmpdir(), 'email-dispatch-cli-none-'));
const files = mkdtempSync(join(tmpdir(), 'email-dispatch-cli-files-'));

// Each case starts its own processes and shares nothing: they run side by side.
describe.concurrent('every command explains itself', () => {
  it.each(Object.keys(COMMANDS) as Array<keyof typeof COMMANDS>)(
    '%s --help prints its usage and exits 0, doing nothing else',
    async (command) => {
      const result = await run(command, ['--help'], { twinDir: noTwin });

      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/^Usage: npm (run |start)/);
      expect(result.stdout).toContain('-h, --help');
      expect(result.stderr).toBe('');
    },
  );

  it.each(Object.keys(COMMANDS) as Array<keyof typeof COMMANDS>)(
    '%s rejects an unknown flag with one line and the usage, exit 2',
    async (command) => {
      const result = await run(command, ['--bogus'], { twinDir: noTwin });

      expect(result.code).toBe(2);
      expect(result.stderr.split('\n')[0]).toBe('unknown option --bogus');
      expect(result.stderr).toContain('Usage: npm ');
      expect(result.stderr).not.toMatch(STACK_FRAME);
    },
  );

  it('says which flag lacks its value, and rejects a stray argument', async () => {
    const missing = await run('send', ['--to'], { twinDir: noTwin });
    const stray = await run('send', ['hello'], { twinDir: noTwin });

    expect([missing.code, missing.stderr.split('\n')[0]]).toEqual([2, '--to needs a value']);
    expect([stray.code, stray.stderr.split('\n')[0]]).toEqual([
      2,
      'unexpected argument hello: every value follows its --flag',
    ]);
  });

  it('names the file and the JSON error for a broken job file, and a missing one, exit 2', async () => {
    writeFileSync(join(files, 'broken.json'), '{"version": 1, "to": [');

    const broken = await run('send', ['--file', join(files, 'broken.json')], { twinDir: noTwin });
    const missing = await run('send', ['--file', join(files, 'nope.json')], { twinDir: noTwin });
    const stdin = await run('send', ['--file', '-'], { twinDir: noTwin, stdin: 'not json' });

    expect(broken.code).toBe(2);
    expect(broken.stderr.split('\n')[0]).toMatch(new RegExp(`^${join(files, 'broken.json')} is not valid JSON: `));
    expect(missing.code).toBe(2);
    expect(missing.stderr.split('\n')[0]).toBe(`--file ${join(files, 'nope.json')}: no such file`);
    expect(stdin.code).toBe(2);
    expect(stdin.stderr.split('\n')[0]).toMatch(/^stdin is not valid JSON: /);
    for (const r of [broken, missing, stdin]) expect(r.stderr).not.toMatch(STACK_FRAME);
  });

  it('refuses a tenant name no deployment could have before looking for a queue', async () => {
    const result = await run('send', ['--to', 'a@example.net', '--subject', 'Hi', '--text', 'x', '--tenant', 'Shop'], {
      twinDir: noTwin,
    });

    expect([result.code, result.stderr.split('\n')[0]]).toEqual([
      2,
      '--tenant must be 1–32 of a-z 0-9 and inner hyphens, not "Shop"',
    ]);
  });

  it('reports every problem of an invalid job before looking for a queue', async () => {
    const job = { version: 1, idempotencyKey: 'k-1', to: ['a@example.net'], text: 'x', transport: 'pigeon' };

    const result = await run('send', ['--file', '-'], { twinDir: noTwin, stdin: JSON.stringify(job) });

    expect(result.code).toBe(2);
    expect(result.stderr.split('\n')[0]).toMatch(/^invalid email job: (?=.*subject: required)(?=.*transport: )/);
  });

  it('refuses bad values of redrive and start with the allowed ones', async () => {
    const only = await run('redrive', ['--only', 'some'], { twinDir: noTwin });
    const rate = await run('redrive', ['--rate', 'fast'], { twinDir: noTwin });
    const transport = await run('start', ['--transport', 'pigeon'], { twinDir: noTwin });
    writeFileSync(join(files, 'imap.json'), JSON.stringify({ host: '', port: 99999, security: 'tls' }));
    const imap = await run('start', ['--imap', join(files, 'imap.json')], { twinDir: noTwin });
    const consolePort = await run('start', ['--console-port', '70000'], { twinDir: noTwin });

    expect([only.code, only.stderr.split('\n')[0]]).toEqual([2, '--only must be transient or all, not "some"']);
    expect([rate.code, rate.stderr.split('\n')[0]]).toEqual([
      2,
      '--rate must be a whole number from 1 to 500, not "fast"',
    ]);
    expect([transport.code, transport.stderr.split('\n')[0]]).toEqual([
      2,
      '--transport must be smtp or ses, not "pigeon"',
    ]);
    expect([consolePort.code, consolePort.stderr.split('\n')[0]]).toEqual([
      2,
      '--console-port must be a port number from 0 to 65535',
    ]);
    expect(imap.code).toBe(2);
    expect(imap.stderr.split('\n')[0]).toBe(
      `--imap ${join(files, 'imap.json')}: host: required, a host name; port: required, 1 to 65535; ` +
        'security: must be one of implicit, starttls, none',
    );
  });

  it('tells every command that needs the twin to start it when nothing listens where it was', async () => {
    // A twin that has stopped leaves its manifest behind; its port is free now.
    const stale = mkdtempSync(join(tmpdir(), 'email-dispatch-cli-stale-'));
    const port = await freePort();
    writeFileSync(
      join(stale, 'twin.json'),
      JSON.stringify({
        region: 'eu-west-1',
        endpoints: {
          sqs: `http://127.0.0.1:${port}`,
          sns: `http://127.0.0.1:${port}`,
          s3: `http://127.0.0.1:${port}`,
          dynamodb: `http://127.0.0.1:${port}`,
        },
        resources: { suppressionTable: 's', tenantStateTable: 't', jobStatusTable: 'j', eventsTopicArn: 'e' },
      }),
    );

    const runs = await Promise.all([
      run('send', ['--to', 'a@example.net', '--subject', 'Hi', '--text', 'Hello'], { twinDir: stale }),
      run('redrive', ['--dry-run'], { twinDir: stale }),
      run('status', ['some-key'], { twinDir: stale }),
      run('suppression', ['list'], { twinDir: stale }),
      run('tenant', ['status'], { twinDir: stale }),
    ]);

    for (const r of runs) {
      expect(r.code).toBe(1);
      expect(r.stderr.trim()).toBe(`nothing is listening on 127.0.0.1:${port} — start the twin with npm start`);
    }
  });
});
