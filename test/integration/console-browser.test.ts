import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import nodemailer from 'nodemailer';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDeadLetterSink } from '#aws/sqs-dispatch-queues.js';
import { LOOPBACK, listenOnLoopback } from '#local/loopback.js';
import { localTlsCertificate } from '#local/tls-certificate.js';
import type { Twin } from '#local/twin.js';
import { emailJobFactory } from '../support/factories.js';
import { startTestTwin, type TestTwin } from '../support/twin-harness.js';

/** Debian's Chromium (installed by .ci/run); playwright-core drives it and downloads no browser of its own. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** Screenshots land here (git-ignored), for a person to look at after a run. */
const ARTIFACTS = join(process.cwd(), 'test-artifacts');

let running: TestTwin;
let twin: Twin;
let browser: Browser;
let page: Page;
// A server the message's HTML tries to load an image from: the CSP must keep the frame from reaching it.
let beacon: Server;
let beaconPort = 0;
let beaconHits = 0;

beforeAll(async () => {
  running = await startTestTwin();
  twin = running.twin;
  beacon = createServer((_req, res) => {
    beaconHits += 1;
    res.end();
  });
  beaconPort = await listenOnLoopback(beacon);
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  mkdirSync(ARTIFACTS, { recursive: true });
}, 120_000);
afterAll(async () => {
  await browser?.close();
  await new Promise((resolve) => beacon?.close(resolve));
  await running?.stop();
});

/** `npm run demo` against this test's twin, to its end. */
async function runDemo(): Promise<string> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'tools/demo.ts'], {
    env: { ...process.env, TWIN_DIR: running.dataDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const status = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  if (status !== 0) throw new Error(`the demo failed (${status}): ${output}`);
  return output;
}

describe.skipIf(!existsSync(CHROMIUM))('the console in a real browser', () => {
  it("lists the demo's mail, renders HTML in a sandboxed frame, redrives a dead letter", async () => {
    // Prepare: the demo's batch, and a job given up after retries waiting in the DLQ
    const demo = await runDemo();
    const stuck = emailJobFactory({ to: ['redrive-me@example.net'], subject: 'Redriven from the console' });
    await createDeadLetterSink(async () => twin.clients.sqsClient, twin.resources.deadLetterQueueUrl).send(
      JSON.stringify(stuck),
      {
        failureClass: 'exhausted',
        failureReason: 'retry:smtp-451',
        failureDetail: '451 4.3.0 Temporary local problem, try again later',
        sourceMessageId: 'from-the-browser-test',
        idempotencyKey: stuck.idempotencyKey,
      },
    );

    // Act 1: the outbox
    await page.goto(twin.manifest.console ?? '');
    const rows = page.locator('#outbox-rows tr');
    await rows.filter({ hasText: 'Demo: good' }).filter({ hasText: 'delivered' }).waitFor({ timeout: 30_000 });
    const outboxText = await page.locator('#outbox-rows').textContent();

    // Act 2: a message with HTML, sent from the page's own form
    await page.click('nav a[data-tab="send"]');
    await page.fill('input[name="to"]', 'grace@example.net');
    await page.fill('input[name="subject"]', 'Sandboxed HTML');
    await page.fill(
      'textarea[name="html"]',
      '<h1 id="greeting">Hello Grace</h1>' +
        "<script>document.body.dataset.ran = 'yes'</script>" +
        `<img src="http://${LOOPBACK}:${beaconPort}/pixel.gif">`,
    );
    await page.click('#send-form button[type="submit"]');
    await page.locator('#send-result').filter({ hasText: 'queued' }).waitFor();
    await page.screenshot({ path: join(ARTIFACTS, 'console-send.png'), fullPage: true });
    await page.click('nav a[data-tab="outbox"]');
    await rows.filter({ hasText: 'Sandboxed HTML' }).filter({ hasText: 'delivered' }).click({ timeout: 30_000 });
    const frameElement = page.locator('#message iframe.html-frame');
    await frameElement.waitFor();
    const frame = page.frameLocator('#message iframe.html-frame');
    await frame.locator('#greeting').waitFor();
    const sandbox = await frameElement.getAttribute('sandbox');
    const scriptRan = await frame.locator('body').getAttribute('data-ran');
    await page.screenshot({ path: join(ARTIFACTS, 'console-outbox.png'), fullPage: true });

    // Act 3: the DLQ, and a redrive of the selected job
    await page.click('nav a[data-tab="jobs"]');
    const letter = page.locator('#dlq-rows tr').filter({ hasText: stuck.idempotencyKey });
    await letter.waitFor({ timeout: 30_000 });
    const invalidRow = await page.locator('#dlq-rows tr').filter({ hasText: 'invalid-job' }).first().textContent();
    await page.screenshot({ path: join(ARTIFACTS, 'console-jobs.png'), fullPage: true });
    await letter.locator('input[type="checkbox"]').check();
    await page.click('#redrive-selected');
    await page.locator('#redrive-result').filter({ hasText: 'moved 1' }).waitFor({ timeout: 30_000 });
    await page.click('nav a[data-tab="outbox"]');
    await rows
      .filter({ hasText: 'Redriven from the console' })
      .filter({ hasText: 'delivered' })
      .waitFor({ timeout: 30_000 });
    for (const tab of ['events', 'mailbox', 'suppressions']) {
      await page.click(`nav a[data-tab="${tab}"]`);
      await page.locator(`#${tab} tbody tr`).first().waitFor({ timeout: 30_000 });
      await page.screenshot({ path: join(ARTIFACTS, `console-${tab}.png`), fullPage: true });
    }

    // Act 4: take the demo's bounced address off the suppression list (the page asks first)
    page.once('dialog', (dialog) => void dialog.accept());
    await page
      .locator('#suppression-rows tr')
      .filter({ hasText: '@bounce.test' })
      .getByRole('button', { name: 'Remove' })
      .click();
    await page.locator('#suppressions-empty').waitFor({ timeout: 30_000 });
    const suppressedAfter = await twin.clients.documents.send(
      new ScanCommand({ TableName: twin.resources.suppressionTable }),
    );

    // Assess
    expect(demo).toMatch(/good\s+delivered/);
    expect(outboxText).toContain('alice@example.net');
    expect(outboxText).toContain('Demo: throttled');
    expect(outboxText).not.toContain('Demo: reject');
    expect(sandbox).toBe('');
    expect(scriptRan).toBeNull();
    expect(beaconHits).toBe(0);
    expect(invalidRow).toContain('subject');
    expect(suppressedAfter.Items).toEqual([]);
    expect(await page.locator('#dlq-rows tr').filter({ hasText: stuck.idempotencyKey }).count()).toBe(0);
  }, 240_000);

  it("never lets a message's HTML navigate to a remote page, in the console's frame or opened on its own", async () => {
    // Prepare: an HTML part that refreshes to the beacon, sent through the console's own API
    const consoleUrl = twin.manifest.console ?? '';
    const subject = `Refreshing HTML ${Date.now()}`;
    const before = beaconHits;
    await page.goto(consoleUrl);
    const status = await page.evaluate(
      async ([subject, html]) =>
        (
          await fetch('/api/jobs', {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ to: 'heidi@example.net', subject, html }),
          })
        ).status,
      [subject, `<meta http-equiv="refresh" content="0;url=http://${LOOPBACK}:${beaconPort}/refresh"><p>hi</p>`],
    );
    const rows = page.locator('#outbox-rows tr');
    await rows.filter({ hasText: subject }).filter({ hasText: 'delivered' }).click({ timeout: 30_000 });
    await page.locator('#message iframe.html-frame').waitFor();
    const src = await page.locator('#message iframe.html-frame').getAttribute('src');

    // Act: the frame in the console, then the HTML opened in a tab of its own
    await page.waitForTimeout(1500);
    const alone = await browser.newPage();
    await alone.goto(new URL(src ?? '', consoleUrl).href).catch(() => undefined);
    await alone.waitForTimeout(1500);
    await alone.close();

    // Assess
    expect(status).toBe(200);
    expect(beaconHits - before).toBe(0);
  }, 120_000);

  it('shows hostile text from relayed and inbound mail as text: nothing in it runs or becomes markup', async () => {
    // Prepare: a message handed to the relay by any SMTP client (not through a job), markup in every field the page
    // shows, and an inbound message of the same kind in the bounce mailbox
    const tag = `hostile-${Date.now()}`;
    // The page is open before the mail arrives: the list takes it in through the live updates, with no reload.
    await page.goto(twin.manifest.console ?? '');
    await page.click('nav a[data-tab="outbox"]');
    const payload = (where: string) => `<img src=x onerror="document.body.dataset.pwned='${where}'">`;
    const { smtp: login } = JSON.parse(readFileSync(twin.secretsFile, 'utf8')) as {
      smtp: { username: string; password: string };
    };
    const relay = nodemailer.createTransport({
      host: twin.manifest.smtp.host,
      port: twin.manifest.smtp.port,
      requireTLS: true,
      tls: { ca: localTlsCertificate().cert },
      auth: { user: login.username, pass: login.password },
    });
    await relay.sendMail({
      envelope: { from: 'mallory@example.net', to: ['victim@example.net'] },
      raw: [
        `From: "${payload('from')}" <mallory@example.net>`,
        'To: victim@example.net',
        `Subject: ${tag} ${payload('subject')} <b>bold</b>`,
        `X-Injected: <script>document.body.dataset.pwned='header'</script>`,
        'MIME-Version: 1.0',
        'Content-Type: multipart/mixed; boundary="b"',
        '',
        '--b',
        'Content-Type: text/html; charset=utf-8',
        '',
        `<script>parent.document.body.dataset.pwned='frame'</script><p id="inside">inside</p>`,
        '--b',
        'Content-Type: text/html; name="x.html"',
        `Content-Disposition: attachment; filename="${payload('attachment').replaceAll('"', "'")}.html"`,
        '',
        '<script>alert(1)</script>',
        '--b--',
        '',
      ].join('\r\n'),
    });
    relay.close();
    twin.imap?.deliver(
      [
        `From: "${payload('inbound-from')}" <someone@example.org>`,
        'To: bounces@bounces.twin.test',
        `Subject: ${tag} ${payload('inbound-subject')}`,
        `Message-ID: <${tag}@example.org>`,
        `Date: ${new Date().toUTCString()}`,
        '',
        '<script>document.body.dataset.pwned = "inbound-body"</script>',
        '',
      ].join('\r\n'),
    );
    const dialogs: string[] = [];
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });

    // Act: the list, the message with its headers and attachment, the mailbox
    const row = page.locator('#outbox-rows tr').filter({ hasText: tag });
    await row.click({ timeout: 30_000 });
    await page.frameLocator('#message iframe.html-frame').locator('#inside').waitFor();
    await page.click('#message button[data-view="headers"]');
    await page.locator('#message table.headers').waitFor();
    const listed = await row.textContent();
    const headersText = await page.locator('#message').textContent();
    const attachmentName = await page.locator('#message a.attachment').getAttribute('download');
    await page.click('#message button[data-view="raw"]');
    const rawText = await page.frameLocator('#message iframe.raw-frame').locator('body').textContent();
    const markupInMessage = await page.locator('#outbox-rows img, #message img, #message script, #message b').count();
    await page.click('nav a[data-tab="mailbox"]');
    const inbound = page.locator('#mailbox-rows tr').filter({ hasText: tag });
    await inbound.waitFor({ timeout: 45_000 });
    const inboundText = await inbound.textContent();
    const markupInMailbox = await page.locator('#mailbox-rows img').count();
    await page.screenshot({ path: join(ARTIFACTS, 'console-hostile.png'), fullPage: true });
    const pwned = await page.locator('body').getAttribute('data-pwned');

    // Assess
    expect(listed).toContain(`${payload('subject')} <b>bold</b>`);
    expect(headersText).toContain(payload('from'));
    expect(headersText).toContain("<script>document.body.dataset.pwned='header'</script>");
    expect(attachmentName).toContain("<img src=x onerror='document.body.dataset.pwned=");
    expect(markupInMessage).toBe(0);
    expect(rawText).toContain("X-Injected: <script>document.body.dataset.pwned='header'</script>");
    expect(inboundText).toContain(payload('inbound-subject'));
    expect(markupInMailbox).toBe(0);
    expect(pwned).toBeNull();
    expect(dialogs).toEqual([]);
  }, 120_000);
});
