import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '../../..');
const OWN = 'test/fixtures/bounces/messages/own';

async function classify(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'tools/classify.ts', ...args], {
      cwd: ROOT,
    });
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const e = error as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}

describe('npm run classify', () => {
  it('prints one JSON line per message of a directory and of a file, with each recipient and why', async () => {
    const { stdout, code } = await classify(OWN, `${OWN}/postfix-sender-domain.eml`);

    const lines = stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { file: string; kind: string; recipients?: unknown[] });
    expect(code).toBe(0);
    expect(lines.length).toBeGreaterThan(20);
    expect(lines.find((l) => l.file.endsWith('exim-user-unknown.eml'))).toMatchObject({
      kind: 'bounce',
      recipients: [
        {
          address: 'nobody@mail.example.org',
          status: '5.1.1',
          replyCode: 550,
          reason: 'user-unknown',
          permanent: true,
          suppress: true,
        },
      ],
    });
    expect(lines.at(-1)).toMatchObject({
      kind: 'bounce',
      recipients: [{ address: 'partner@example.org', reason: 'sender-problem', permanent: true, suppress: false }],
    });
  });

  it('measures a labelled corpus in one command: its disagreements, then the summary line', async () => {
    const { stdout, code } = await classify('--corpus', 'test/fixtures/bounces');

    const lines = stdout.trim().split('\n');
    expect(code).toBe(0);
    expect(lines.at(-1)).toMatch(
      /^bounce corpus: \d+ messages, detected [\d.]+ %, recipients [\d.]+ %, permanent\/temporary [\d.]+ %, false suppressions 0, non-bounces flagged 0$/,
    );
    expect(lines.slice(0, -1).every((l) => l.startsWith('messages/'))).toBe(true);
  });

  it('refuses a directory without labels', async () => {
    const { stderr, code } = await classify('--corpus', 'test/fixtures/bounces/messages/own');

    expect(code).toBe(2);
    expect(stderr).toContain('test/fixtures/bounces/messages/own: no labels.json');
  });

  it('refuses a missing path or an unknown option, one line each, with the usage and no stack trace', async () => {
    const { stderr, code } = await classify('no/such/file.eml', '--verbose');

    expect(code).toBe(2);
    expect(stderr).toContain('unknown option --verbose');
    expect(stderr).toContain('no/such/file.eml: no such file or directory');
    expect(stderr).toContain('npm run classify -- <file.eml | directory>...');
    expect(stderr).not.toContain('    at ');
  });
});
