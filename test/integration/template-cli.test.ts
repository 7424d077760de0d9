import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simpleParser } from 'mailparser';
import { afterAll, describe, expect, it } from 'vitest';
import { runCommandLine as run, STACK_FRAME } from '../support/command-line.js';
import { orderReceiptData } from '../support/factories.js';

const files = mkdtempSync(join(tmpdir(), 'email-dispatch-template-cli-'));
afterAll(() => rmSync(files, { recursive: true, force: true }));
// No twin: render never needs one.
const twinDir = join(files, 'no-twin');

describe('npm run template -- render', () => {
  it('writes the whole message the template makes, as the dispatcher would send it', async () => {
    // Prepare
    const data = orderReceiptData({ customer: { name: 'Zoë <admin@example.com>' } });
    writeFileSync(join(files, 'receipt.json'), JSON.stringify(data));
    const out = join(files, 'receipt.eml');

    // Act
    const result = await run(
      'template',
      ['render', 'order-receipt', '--data', join(files, 'receipt.json'), '--out', out, '--to', 'alice@example.net'],
      { twinDir },
    );

    // Assess
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^wrote .*receipt\.eml: order-receipt@1, \d+ bytes$/m);
    const raw = readFileSync(out);
    expect(raw.toString()).toMatch(/^Subject: =\?UTF-8\?Q\?Your_Example_Sh=C3=B6p_order_A-4711\?=\r$/m);
    const message = await simpleParser(raw);
    expect(message.to).toMatchObject({ value: [{ address: 'alice@example.net' }] });
    expect(message.messageId).toMatch(/^<[0-9a-f]{32}@example\.com>$/);
    expect(String(message.html)).toContain('Hello Zoë &lt;admin@example.com&gt;,');
    expect(message.text).toContain('Hello Zoë <admin@example.com>,');
  });

  it('refuses data the template does not take, naming the field, with exit code 2 and no file', async () => {
    const data = orderReceiptData();
    writeFileSync(join(files, 'bad.json'), JSON.stringify({ ...data, order: { ...data.order, currency: 'euro' } }));
    const out = join(files, 'bad.eml');

    const result = await run('template', ['render', 'order-receipt', '--data', join(files, 'bad.json'), '--out', out], {
      twinDir,
    });

    expect(result.code).toBe(2);
    expect(result.stderr.split('\n')[0]).toBe(
      'template-data-invalid: template.data.order.currency: must match pattern "^[A-Z]{3}$"',
    );
    expect(result.stderr).not.toMatch(STACK_FRAME);
    expect(() => readFileSync(out)).toThrow();
  });

  it('lists the templates with their versions', async () => {
    const result = await run('template', ['list'], { twinDir });

    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^order-receipt@1 {2}.+\npassword-reset@1 {2}.+\n$/);
  });
});
