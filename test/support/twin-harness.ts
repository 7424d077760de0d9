import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_SETTINGS } from '#infra/settings.js';
import { DeleteMessageBatchCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { startTwin, type Twin, type TwinOptions } from '#local/twin.js';

/**
 * The whole twin for one test file, every server on a free loopback port, in a directory of its own, with retries
 * fast enough for a test and the web console on.
 */
export async function startTestTwin(options: Partial<TwinOptions> = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), 'email-dispatch-twin-'));
  const twin = await startTwin({
    dataDir,
    ports: { aws: 0, dynamodb: 0, ses: 0, smtp: 0, imap: 0 },
    settings: { ...DEFAULT_SETTINGS, retry: { baseDelaySeconds: 1, maxDelaySeconds: 2, lifetimeSeconds: 600 } },
    pollIntervalSeconds: 10,
    console: { port: 0 },
    ...options,
  });
  return {
    twin,
    dataDir,
    /** The console's base URL. */
    console: twin.manifest.console ?? '',
    async stop() {
      await twin.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export type TestTwin = Awaited<ReturnType<typeof startTestTwin>>;

/** Reads what a twin published from its events tap into `events`, and waits (bounded) for a condition on them. */
export function eventTap(twinOf: () => Twin, events: Array<Record<string, unknown>>) {
  const collectEvents = async () => {
    const { clients, resources } = twinOf();
    const QueueUrl = resources.eventsTapQueueUrl;
    const receive = new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 });
    const r = await clients.sqsClient.send(receive);
    const messages = r.Messages ?? [];
    for (const m of messages) events.push(JSON.parse(m.Body ?? '{}') as Record<string, unknown>);
    if (messages.length === 0) return;
    const Entries = messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle }));
    await clients.sqsClient.send(new DeleteMessageBatchCommand({ QueueUrl, Entries }));
  };
  const waitFor = async (what: string, done: () => boolean | Promise<boolean>, timeoutMs = 45_000) => {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      await collectEvents();
      if (await done()) return;
    }
    throw new Error(`timed out waiting for ${what}`);
  };
  return { collectEvents, waitFor };
}
