import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TemplateRenderer } from '#core/template-renderer.js';
import { createTemplateRenderer } from '#rendering/template-renderer.js';
import { emailJobFactory, orderReceiptData, templateJobFactory } from '../support/factories.js';
import { type DispatchHarness, useAwsEmulators } from '../support/dispatch-harness.js';

const env = useAwsEmulators();
let h: DispatchHarness;
let templatesDir: string;

beforeAll(async () => {
  // The repository's templates, plus one whose schema does not cover every variable it uses.
  templatesDir = mkdtempSync(join(tmpdir(), 'templates-'));
  cpSync(resolve('templates'), templatesDir, { recursive: true });
  mkdirSync(join(templatesDir, 'loose-welcome'));
  writeFileSync(join(templatesDir, 'loose-welcome/template.json'), JSON.stringify({ version: 1, subject: 'Welcome' }));
  writeFileSync(join(templatesDir, 'loose-welcome/schema.json'), JSON.stringify({ type: 'object' }));
  writeFileSync(join(templatesDir, 'loose-welcome/html.hbs'), '<p>Welcome, {{user.firstName}}!</p>');
});
afterAll(async () => {
  rmSync(templatesDir, { recursive: true, force: true });
});

const withTemplates = () => env.harness({ env: { TEMPLATES_DIR: templatesDir } });

/** The one message the sink took, raw and parsed. */
async function onlyMessage() {
  expect(h.sink.received).toHaveLength(1);
  const raw = h.sink.received[0]!.raw;
  return { raw: raw.toString('utf8'), parsed: await simpleParser(raw) };
}

describe('a template job sent over SMTP', () => {
  it('arrives rendered in its layout, the data escaped, with a text part made from the html', async () => {
    // Prepare
    h = await withTemplates();
    const data = orderReceiptData({ customer: { name: '<img src=x onerror=alert(1)> & "Bob"' } });
    const job = templateJobFactory({ name: 'order-receipt', data });
    await h.enqueue(job);

    // Act
    const result = await h.deliver();

    // Assess
    expect(result).toEqual({ received: 1, succeeded: 1, failed: 0 });
    const { raw, parsed } = await onlyMessage();
    expect(raw).toMatch(/Content-Type: multipart\/alternative/);
    expect(parsed.subject).toBe('Your Example Shöp order A-4711');
    const html = String(parsed.html);
    // The layout's frame and footer around the template's own content.
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain('Example Shöp · 1 Market Street, Springfield');
    expect(html).toContain('Hello &lt;img src&#x3D;x onerror&#x3D;alert(1)&gt; &amp; &quot;Bob&quot;,');
    expect(html).not.toContain('<img');
    expect(html).toContain('2 × Green tea');
    expect(parsed.text).toContain('Hello <img src=x onerror=alert(1)> & "Bob",');
    expect(parsed.text).toContain('See your order [https://shop.example.com/orders/A-4711]');
    // The items table as rows with aligned columns; the layout's presentation table leaves no trace.
    expect(parsed.text).toMatch(/^2 × Green tea {3}3\.50 EUR\n1 × Teapot {6}24\.00 EUR\nTotal {11}31 EUR$/m);
    const events = await h.events();
    expect(events).toEqual([expect.objectContaining({ type: 'email.delivered', idempotencyKey: job.idempotencyKey })]);
  });

  it('encodes a non-ASCII subject as RFC 2047 words and sends the template text part as written', async () => {
    h = await withTemplates();
    const data = {
      name: 'Zoë',
      product: 'Bücher Straße',
      resetUrl: 'https://books.example/r/abc',
      expiresInMinutes: 30,
    };
    await h.enqueue(templateJobFactory({ name: 'password-reset', data }));

    await h.deliver();

    const { raw, parsed } = await onlyMessage();
    const subjectLine = /^Subject: (.*(?:\r\n[ \t].*)*)/m.exec(raw)?.[1] ?? '';
    expect(subjectLine).toMatch(/=\?UTF-8\?[QB]\?/);
    // The header itself is ASCII: only the encoded words carry the letters.
    expect(/^[\x20-\x7e\r\n\t]*$/.test(subjectLine)).toBe(true);
    expect(parsed.subject).toBe('Reset your Bücher Straße password');
    expect(parsed.text).toContain('Hello Zoë,\n\nSomeone asked to reset the password of your Bücher Straße');
    expect(parsed.text).toContain('https://books.example/r/abc\n\nThe link works for 30 minutes.');
    expect(String(parsed.html)).toContain('<a href="https://books.example/r/abc">Choose a new password</a>');
  });
});

describe('a template job that cannot be rendered', () => {
  it('is rejected naming the field when data breaks the schema: dead-lettered, reported, not retried', async () => {
    // Prepare
    h = await withTemplates();
    const data = orderReceiptData();
    const job = templateJobFactory({ name: 'order-receipt', data: { ...data, order: { ...data.order, total: '31' } } });
    await h.enqueue(job);

    // Act
    const result = await h.deliver();
    const again = await h.deliverAll();

    // Assess
    expect(result).toEqual({ received: 1, succeeded: 1, failed: 0 });
    expect(again.received).toBe(0);
    expect(await h.queueDepth()).toBe(0);
    expect(h.sink.received).toHaveLength(0);
    const dead = await h.deadLetters();
    expect(dead).toHaveLength(1);
    expect(dead[0]?.attributes).toMatchObject({
      failureClass: 'invalid',
      failureReason: 'template-data-invalid',
      failureDetail: 'template.data.order.total: must be number',
      idempotencyKey: job.idempotencyKey,
    });
    expect(await h.events()).toEqual([
      expect.objectContaining({
        type: 'email.rejected',
        idempotencyKey: job.idempotencyKey,
        reason: 'template-data-invalid',
        detail: 'template.data.order.total: must be number',
      }),
    ]);
  });

  it('is rejected naming the variable when the template uses one the data lacks', async () => {
    h = await withTemplates();
    const job = templateJobFactory({ name: 'loose-welcome', data: { user: { lastName: 'Doe' } } });
    await h.enqueue(job);

    await h.deliverAll();

    expect(h.sink.received).toHaveLength(0);
    const dead = await h.deadLetters();
    expect(dead[0]?.attributes).toMatchObject({
      failureClass: 'invalid',
      failureReason: 'template-render-failed',
      failureDetail: 'template.data.user.firstName: missing (the html.hbs uses it at line 1, column 15)',
    });
  });

  it('is rejected naming a template the deployment does not have', async () => {
    h = await withTemplates();
    await h.enqueue(templateJobFactory({ name: 'invoice', data: {} }));

    await h.deliverAll();

    const dead = await h.deadLetters();
    expect(dead[0]?.attributes).toMatchObject({
      failureReason: 'template-unknown',
      failureDetail: expect.stringMatching(/^template\.name: no template "invoice" is deployed \(deployed: /),
    });
  });

  it('is rejected naming the field when its data is nested deeper than any template reads', async () => {
    // Prepare: 60,000 nested arrays fit in one queue message; serialising them again overflows the stack.
    h = await withTemplates();
    const depth = 60_000;
    const job = templateJobFactory({ name: 'loose-welcome', data: { user: { firstName: 'Ann' } } });
    const body = JSON.stringify(job).replace(
      '"firstName":"Ann"',
      `"firstName":"Ann","x":${'['.repeat(depth)}${']'.repeat(depth)}`,
    );
    await h.enqueue(body);

    // Act
    const result = await h.deliverAll(5);

    // Assess
    expect(result).toMatchObject({ received: 1, failed: 0 });
    expect(h.sink.received).toHaveLength(0);
    const dead = await h.deadLetters();
    expect(dead[0]?.attributes).toMatchObject({
      failureClass: 'invalid',
      failureReason: 'invalid-job',
      failureDetail: expect.stringMatching(/^template\.data: nested deeper than \d+ levels/),
      idempotencyKey: job.idempotencyKey,
    });
  });

  it('is rejected by a deployment without templates, whatever it names', async () => {
    h = await env.harness();
    await h.enqueue(templateJobFactory({ name: 'order-receipt', data: orderReceiptData() }));

    await h.deliverAll();

    expect(h.sink.received).toHaveLength(0);
    expect((await h.deadLetters())[0]?.attributes).toMatchObject({ failureReason: 'template-unavailable' });
  });
});

describe('the idempotency key of a template job', () => {
  it('sends a repeated job once, and refuses the same key with other data as a conflict', async () => {
    h = await withTemplates();
    const job = templateJobFactory({ name: 'order-receipt', data: orderReceiptData() });
    await h.enqueue(job);
    await h.deliverAll();
    await h.enqueue(job);
    await h.deliverAll();
    const data = orderReceiptData({ customer: { name: 'Mallory' } });

    await h.enqueue({ ...job, template: { name: 'order-receipt', data } });
    await h.deliverAll();

    expect(h.sink.received).toHaveLength(1);
    const dead = await h.deadLetters();
    expect(dead.map((d) => d.attributes.failureReason)).toEqual(['idempotency-key-conflict']);
  });
});

describe('a template job repeated after its template changed', () => {
  it('replays the first outcome when the template was removed since: no rejection, no dead letter', async () => {
    // Prepare: the deployment's templates can be replaced, as a redeployment does.
    const removed = mkdtempSync(join(tmpdir(), 'templates-'));
    cpSync(templatesDir, removed, { recursive: true });
    rmSync(join(removed, 'order-receipt'), { recursive: true });
    let deployed: TemplateRenderer = createTemplateRenderer(templatesDir);
    h = await env.harness({
      env: { TEMPLATES_DIR: templatesDir },
      adjust: (deps) => {
        deps.templates = { render: (reference, context) => deployed.render(reference, context) };
      },
    });
    const job = templateJobFactory({ name: 'order-receipt', data: orderReceiptData() });
    await h.enqueue(job);
    await h.deliverAll();
    expect(await h.events()).toEqual([expect.objectContaining({ type: 'email.delivered' })]);
    deployed = createTemplateRenderer(removed);

    // Act
    await h.enqueue(job);
    await h.deliverAll();

    // Assess
    expect(h.sink.received).toHaveLength(1);
    expect(await h.deadLetters()).toEqual([]);
    expect(await h.events()).toEqual([]);
    rmSync(removed, { recursive: true, force: true });
  });
});

describe('a deployment whose templates folder is missing', () => {
  it('hands template jobs back with the reason logged as an error, and sends every other job', async () => {
    // Prepare
    const missing = join(templatesDir, 'not-here');
    h = await env.harness({ env: { TEMPLATES_DIR: missing } });
    const templated = templateJobFactory({ name: 'order-receipt', data: orderReceiptData() });
    await h.enqueue(templated);
    await h.enqueue(emailJobFactory());

    // Act
    const result = await h.deliver();

    // Assess: the job is not at fault, so it is neither rejected nor lost; the operator is told why.
    expect(result).toEqual({ received: 2, succeeded: 1, failed: 1 });
    expect(h.sink.received).toHaveLength(1);
    expect(await h.deadLetters()).toEqual([]);
    expect(await h.events()).toEqual([expect.objectContaining({ type: 'email.delivered' })]);
    const errors = h.output.records().filter((r) => r.level === 'ERROR');
    expect(errors).toEqual([
      expect.objectContaining({
        message: 'templates cannot be loaded; template jobs are handed back until they can',
        detail: `templates are broken: ${missing}: no such folder`,
      }),
    ]);
    expect(h.output.records()).toContainEqual(
      expect.objectContaining({ message: 'job handed back without an attempt', reason: 'templates-unavailable' }),
    );
  });
});
