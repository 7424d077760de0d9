import { request } from 'node:http';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDeadLetterSink } from '#aws/sqs-dispatch-queues.js';
import { hashAddress } from '#core/message-id.js';
import { buildDsn } from '#local/dsn.js';
import type { Twin } from '#local/twin.js';
import { emailJobFactory } from '../support/factories.js';
import { startTestTwin, type TestTwin } from '../support/twin-harness.js';

let running: TestTwin;
let twin: Twin;
let base: string;

beforeAll(async () => {
  running = await startTestTwin();
  twin = running.twin;
  base = running.console;
});
afterAll(async () => {
  await running?.stop();
});

/** A response whose JSON the assertions read freely. */
type Answer = Omit<Response, 'json'> & { json: () => Promise<Record<string, any>> };
const get = (path: string) => fetch(`${base}${path}`) as Promise<Answer>;
const send = (method: string, path: string, body?: unknown) =>
  fetch(`${base}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  }) as Promise<Answer>;
const waitFor = async <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 45_000): Promise<T> => {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  throw new Error(`timed out waiting for ${what}`);
};
const outboxEntry = (key: string) =>
  waitFor(`the message of ${key} with its outcome`, async () => {
    const { messages } = await (await get(`/api/messages?q=${encodeURIComponent(key)}`)).json();
    const found = messages.find((m: { job?: { idempotencyKey: string } }) => m.job?.idempotencyKey === key);
    return found as Record<string, any> | undefined;
  });

describe('the console API', { timeout: 120_000 }, () => {
  it('serves the page on loopback with a strict Content-Security-Policy, and refuses other Host names', async () => {
    // Act
    const page = await get('/');
    const malformed = await get('/api/messages/%E0%A4%A');
    const stats = await (await get('/api/stats')).json();
    const rebound = await new Promise<number>((resolve, reject) => {
      const url = new URL(base);
      request(
        { host: url.hostname, port: url.port, path: '/api/stats', headers: { host: 'attacker.example' } },
        (res) => resolve(res.statusCode ?? 0),
      )
        .on('error', reject)
        .end();
    });

    // Assess
    expect(new URL(base).hostname).toBe('127.0.0.1');
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<script type="module" src="/app.js">');
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(rebound).toBe(421);
    expect(malformed.status).toBe(400);
    expect(stats).toMatchObject({
      jobs: { visible: expect.any(Number), inFlight: expect.any(Number), delayed: expect.any(Number) },
      deadLetters: { visible: expect.any(Number) },
      outbox: expect.any(Number),
      events: expect.any(Object),
    });
  });

  it("queues a test job, then lists its message newest first with the job's key and outcome", async () => {
    // Prepare
    const key = `console-${Date.now()}-html`;

    // Act
    const queued = await send('POST', '/api/jobs', {
      idempotencyKey: key,
      to: 'alice@example.net',
      subject: 'Console check',
      text: 'plain part',
      html: '<p>Hello</p><script>alert(1)</script><img src="https://tracker.example/p.gif">',
      attachments: [
        { filename: 'notes.txt', content: Buffer.from('attached text').toString('base64'), contentType: 'text/plain' },
      ],
    });
    const entry = await outboxEntry(key);
    const generated = await (
      await send('POST', '/api/jobs', {
        idempotencyKey: '',
        to: 'alice@example.net',
        subject: 'Key left empty',
        text: 'x',
        html: '',
      })
    ).json();
    const bySubject = await (await get('/api/messages?q=console%20check')).json();
    const byRecipient = await (await get('/api/messages?q=alice@example')).json();

    // Assess
    expect(queued.status).toBe(200);
    expect(await queued.json()).toMatchObject({ idempotencyKey: key, sqsMessageId: expect.any(String) });
    expect(entry).toMatchObject({
      via: 'smtp',
      to: ['alice@example.net'],
      subject: 'Console check',
      attachments: 1,
      job: { idempotencyKey: key, outcome: 'delivered', reason: 'accepted' },
    });
    expect(generated.idempotencyKey).toMatch(/^[0-9a-f-]{36}$/);
    expect(bySubject.messages.map((m: { id: string }) => m.id)).toContain(entry.id);
    expect(byRecipient.messages[0].id).toBe(entry.id);
  });

  it("shows a message's parts; its HTML under a CSP without scripts or remote loads", async () => {
    // Prepare
    const key = `console-${Date.now()}-view`;
    await send('POST', '/api/jobs', {
      idempotencyKey: key,
      to: 'bob@example.net',
      subject: 'View me',
      text: 'the text part',
      html: '<p>the html</p><script>1</script>',
      attachments: [{ filename: 'a.txt', content: Buffer.from('A!').toString('base64') }],
    });
    const { id } = await outboxEntry(key);

    // Act
    const message = await (await get(`/api/messages/${id}`)).json();
    const html = await get(`/api/messages/${id}/html`);
    const raw = await get(`/api/messages/${id}/raw`);
    const attachment = await get(`/api/messages/${id}/attachments/0`);
    const missing = await get('/api/messages/smtp-nope');

    // Assess
    expect(message).toMatchObject({
      subject: 'View me',
      text: expect.stringContaining('the text part'),
      hasHtml: true,
      job: { idempotencyKey: key, outcome: 'delivered' },
    });
    expect(message.headers).toContainEqual(['Subject', 'View me']);
    expect(message.attachmentList).toEqual([{ index: 0, filename: 'a.txt', contentType: 'text/plain', size: 2 }]);
    expect(await html.text()).toContain('<p>the html</p>');
    const csp = html.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain('sandbox');
    expect(csp).not.toMatch(/script-src|https?:/);
    expect(await raw.text()).toMatch(/^[\s\S]*Subject: View me[\s\S]*$/);
    expect(raw.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(raw.headers.get('content-security-policy')).toBe("default-src 'none'; sandbox");
    expect(attachment.headers.get('content-security-policy')).toBe("default-src 'none'; sandbox");
    expect(attachment.headers.get('content-disposition')).toBe('attachment; filename="a.txt"');
    expect(await attachment.text()).toBe('A!');
    expect(missing.status).toBe(404);
  });

  it('refuses a bad test job with 400 and a message naming the field; nothing is queued', async () => {
    // Act
    const bad = await send('POST', '/api/jobs', { to: 'not an address', subject: 'x', text: 'x' });
    const notJson = await fetch(`${base}/api/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: 'to=a@b.c',
    });
    const crossSite = await fetch(`${base}/api/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: 'https://evil.example' },
      body: '{}',
    });

    // Assess
    expect(bad.status).toBe(400);
    expect((await bad.json()).error).toMatch(/to/);
    expect(notJson.status).toBe(415);
    expect(crossSite.status).toBe(403);
  });

  it('lists events as published, filtered by type and key', async () => {
    // Prepare
    const key = `console-${Date.now()}-events`;
    await send('POST', '/api/jobs', { idempotencyKey: key, to: 'nobody@reject.test', subject: 'Rejected', text: 'x' });

    // Act
    const events = await waitFor('the rejected event', async () => {
      const { events: found } = await (await get(`/api/events?type=email.rejected&key=${key}`)).json();
      return found.length > 0 ? found : undefined;
    });
    const byPrefix = await (await get(`/api/events?type=email.&key=${key}`)).json();
    const otherType = await (await get(`/api/events?type=email.delivered&key=${key}`)).json();

    // Assess
    expect(events).toEqual([
      expect.objectContaining({
        type: 'email.rejected',
        idempotencyKey: key,
        event: expect.objectContaining({ reason: 'smtp-rcpt-550' }),
      }),
    ]);
    expect(byPrefix.events).toHaveLength(1);
    expect(otherType.events).toEqual([]);
  });

  it("shows depths and each dead letter's class, reason and field; redrives the selected one", async () => {
    // Prepare: an invalid job dead-lettered by the handler, and a job given up after retries (as the handler writes it)
    const invalidKey = `console-${Date.now()}-invalid`;
    await twin.clients.sqsClient.send(
      new SendMessageCommand({
        QueueUrl: twin.resources.jobsQueueUrl,
        MessageBody: JSON.stringify({
          version: 1,
          idempotencyKey: invalidKey,
          to: ['x@example.net'],
          subject: 'Hi\r\nBcc: victim@example.net',
          text: 'x',
        }),
      }),
    );
    const exhausted = emailJobFactory({ to: ['carol@example.net'] });
    await createDeadLetterSink(async () => twin.clients.sqsClient, twin.resources.deadLetterQueueUrl).send(
      JSON.stringify(exhausted),
      {
        failureClass: 'exhausted',
        failureReason: 'retry:smtp-451',
        failureDetail: '451 4.3.0 Temporary local problem',
        sourceMessageId: 'm-1',
        idempotencyKey: exhausted.idempotencyKey,
      },
    );
    const letters = await waitFor('both dead letters', async () => {
      const { deadLetters } = await (await get('/api/dead-letters')).json();
      return deadLetters.length >= 2 ? (deadLetters as Array<Record<string, any>>) : undefined;
    });
    const depths = await (await get('/api/jobs')).json();

    // Act
    const target = letters.find((l) => l.idempotencyKey === exhausted.idempotencyKey);
    const redriven = await (await send('POST', '/api/dead-letters/redrive', { ids: [target?.id] })).json();
    const entry = await outboxEntry(exhausted.idempotencyKey);
    const after = await (await get('/api/dead-letters')).json();
    const empty = await send('POST', '/api/dead-letters/redrive', {});

    // Assess
    expect(letters.find((l) => l.idempotencyKey === invalidKey)).toMatchObject({
      failureClass: 'invalid',
      reason: 'invalid: invalid-job',
      fields: ['subject'],
    });
    expect(target).toMatchObject({
      failureClass: 'exhausted',
      reason: 'exhausted: retry:smtp-451',
      detail: '451 4.3.0 Temporary local problem',
    });
    expect(depths).toMatchObject({
      jobs: { visible: expect.any(Number), inFlight: expect.any(Number), delayed: expect.any(Number) },
      deadLetters: { visible: expect.any(Number) },
    });
    expect(depths.deadLetters.visible + depths.deadLetters.inFlight).toBeGreaterThanOrEqual(2);
    expect(redriven).toMatchObject({ moved: 1 });
    expect(entry.job).toMatchObject({ outcome: 'delivered' });
    expect(after.deadLetters.map((l: { idempotencyKey?: string }) => l.idempotencyKey)).toContain(invalidKey);
    expect(after.deadLetters.map((l: { idempotencyKey?: string }) => l.idempotencyKey)).not.toContain(
      exhausted.idempotencyKey,
    );
    expect(empty.status).toBe(400);
  });

  it('redrives every dead letter of one reason', async () => {
    // Prepare
    const jobs = [emailJobFactory({ to: ['dan@example.net'] }), emailJobFactory({ to: ['eve@example.net'] })];
    const sink = createDeadLetterSink(async () => twin.clients.sqsClient, twin.resources.deadLetterQueueUrl);
    for (const job of jobs)
      await sink.send(JSON.stringify(job), {
        failureClass: 'exhausted',
        failureReason: 'retry:smtp-421',
        failureDetail: '',
        sourceMessageId: 'm',
        idempotencyKey: job.idempotencyKey,
      });

    // Act
    const report = await (
      await send('POST', '/api/dead-letters/redrive', { reason: 'exhausted: retry:smtp-421' })
    ).json();
    const entries = await Promise.all(jobs.map((j) => outboxEntry(j.idempotencyKey)));

    // Assess
    expect(report).toMatchObject({ moved: 2 });
    expect(entries.map((e) => e.job.outcome)).toEqual(['delivered', 'delivered']);
  });

  it('lists and removes suppressions (published); the mailbox shows what the poller read', async () => {
    // Prepare: a bounce through the relay, the DSN into IMAP, the poller suppressing the address
    const key = `console-${Date.now()}-bounce`;
    await send('POST', '/api/jobs', { idempotencyKey: key, to: 'gone@bounce.test', subject: 'Bounce me', text: 'x' });
    const entry = await waitFor(
      'the suppression',
      async () => {
        const { suppressions } = await (await get('/api/suppressions')).json();
        return (suppressions as Array<Record<string, any>>).find(
          (s) => s.addressHash === hashAddress('gone@bounce.test'),
        );
      },
      60_000,
    );
    // The suppression is written before the event is published: the mailbox shows it a moment later.
    const inbound = await waitFor('the bounce in the mailbox', async () => {
      const { messages } = await (await get('/api/mailbox')).json();
      return (messages as Array<Record<string, any>>).find((m) => m.type === 'bounce.detected');
    });

    // Act
    const removed = await fetch(`${base}/api/suppressions/${entry.addressHash}`, { method: 'DELETE' });
    const again = await send('DELETE', `/api/suppressions/${entry.addressHash}`);
    const event = await waitFor('suppression.removed', async () => {
      const { events } = await (await get('/api/events?type=suppression.removed')).json();
      return events[0] as Record<string, any> | undefined;
    });
    const after = await (await get('/api/suppressions')).json();

    // Assess
    expect(entry).toMatchObject({
      maskedAddress: 'g***@bounce.test',
      reason: 'hard-bounce',
      count: 1,
      firstSeen: expect.any(String),
    });
    expect(inbound).toMatchObject({
      type: 'bounce.detected',
      event: expect.objectContaining({ classification: expect.objectContaining({ kind: 'bounce' }) }),
    });
    expect(removed.status).toBe(200);
    expect(again.status).toBe(404);
    expect(event.event).toMatchObject({
      addressHash: entry.addressHash,
      maskedAddress: 'g***@bounce.test',
      removedBy: 'operator:console',
    });
    expect(after.suppressions.map((s: { addressHash: string }) => s.addressHash)).not.toContain(entry.addressHash);
  });

  it('shows every kind of message the poller read in the mailbox, a delay warning and a plain one too', async () => {
    // Prepare: a delay DSN (RFC 3464 Action: delayed) and a message that is no report, straight into the mailbox
    const tag = `console-${Date.now()}-mailbox`;
    const dsn = buildDsn({
      reportingMta: 'relay.example.org',
      to: 'bounces@bounces.twin.test',
      recipient: 'later@example.org',
      status: '4.4.7',
      diagnostic: '451 4.4.7 delivery delayed',
      originalHeaders: `Subject: ${tag} delayed\r\nMessage-ID: <${tag}@twin.test>\r\n`,
    }).replace('Action: failed', 'Action: delayed');
    twin.imap?.deliver(dsn);
    twin.imap?.deliver(
      [
        'From: someone@example.org',
        'To: bounces@bounces.twin.test',
        `Subject: ${tag} hello`,
        `Message-ID: <${tag}-plain@example.org>`,
        `Date: ${new Date().toUTCString()}`,
        '',
        'Just a message.',
        '',
      ].join('\r\n'),
    );

    // Act
    const types = await waitFor(
      'both messages in the mailbox',
      async () => {
        const { messages } = await (await get('/api/mailbox')).json();
        const found = new Set(
          (messages as Array<{ type: string; event: unknown }>)
            .filter((m) => JSON.stringify(m.event).includes(tag))
            .map((m) => m.type),
        );
        return found.size >= 2 ? found : undefined;
      },
      60_000,
    );
    const limited = await get('/api/mailbox?limit=0');

    // Assess
    expect([...types].sort()).toEqual(['bounce.delayed', 'inbound.received']);
    expect(limited.status).toBe(400);
    expect(await limited.json()).toMatchObject({ field: 'limit' });
  });

  it('lists the special recipients and streams published events and stats as server-sent events', async () => {
    // Prepare
    const special = await (await get('/api/special-recipients')).json();
    const controller = new AbortController();
    const stream = await fetch(`${base}/api/stream`, { signal: controller.signal });
    const reader = (stream.body as ReadableStream<Uint8Array>).getReader();
    const key = `console-${Date.now()}-stream`;

    // Act
    await send('POST', '/api/jobs', { idempotencyKey: key, to: 'frank@example.net', subject: 'Streamed', text: 'x' });
    let received = '';
    const until = Date.now() + 45_000;
    while (Date.now() < until && !(received.includes(key) && received.includes('event: stats'))) {
      const { value, done } = await reader.read();
      if (done) break;
      received += Buffer.from(value).toString('utf8');
    }
    controller.abort();
    // A page that connects when nothing changes still gets the figures at once.
    const quiet = new AbortController();
    const second = (await fetch(`${base}/api/stream`, { signal: quiet.signal })).body as ReadableStream<Uint8Array>;
    const secondReader = second.getReader();
    let first = '';
    for (let i = 0; i < 10 && !first.includes('event: stats'); i += 1) {
      first += Buffer.from((await secondReader.read()).value ?? []).toString('utf8');
    }
    quiet.abort();

    // Assess
    expect(special.specialRecipients.map((r: { address: string }) => r.address)).toEqual([
      '*@reject.test',
      '*@slow.test',
      '*@throttled.test',
      '*@bounce.test',
    ]);
    expect(stream.headers.get('content-type')).toBe('text/event-stream');
    expect(received).toMatch(new RegExp(`event: published\\ndata: \\{[^\\n]*"idempotencyKey":"${key}"`));
    expect(received).toContain('event: stats');
    expect(first).toMatch(/event: stats\ndata: \{"jobs":/);
  });
});
