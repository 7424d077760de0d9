import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestTwin, type TestTwin } from '../support/twin-harness.js';

let running: TestTwin;

beforeAll(async () => {
  running = await startTestTwin({ transport: 'ses' });
});
afterAll(async () => {
  await running?.stop();
});

describe('the console with the SES transport', { timeout: 120_000 }, () => {
  it("lists the SES emulator's mail with its job's outcome, and the special recipients SES answers", async () => {
    // Prepare
    const base = running.console;
    const key = `console-ses-${Date.now()}`;
    await fetch(`${base}/api/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        idempotencyKey: key,
        to: 'henry@example.net',
        subject: 'Through SES',
        text: 'ses text',
        html: '<p>ses html</p>',
      }),
    });

    // Act
    let entry: Record<string, any> | undefined;
    for (let i = 0; i < 150 && !entry?.job; i += 1) {
      const { messages } = (await (await fetch(`${base}/api/messages?q=${key}`)).json()) as {
        messages: Array<Record<string, any>>;
      };
      entry = messages[0];
      if (!entry?.job) await new Promise((resolve) => setTimeout(resolve, 300));
    }
    const message = (await (await fetch(`${base}/api/messages/${entry?.id}`)).json()) as Record<string, any>;
    const html = await (await fetch(`${base}/api/messages/${entry?.id}/html`)).text();
    const special = (await (await fetch(`${base}/api/special-recipients`)).json()) as {
      specialRecipients: Array<{ address: string }>;
    };

    // Assess
    expect(entry).toMatchObject({
      via: 'ses',
      to: ['henry@example.net'],
      subject: 'Through SES',
      job: { idempotencyKey: key, outcome: 'delivered' },
    });
    expect(message).toMatchObject({ text: expect.stringContaining('ses text'), hasHtml: true });
    expect(html).toContain('<p>ses html</p>');
    expect(special.specialRecipients.map((r) => r.address)).toEqual([
      '*@bounce.test',
      '*@complaint.test',
      '*@slow.test',
    ]);
  });
});
