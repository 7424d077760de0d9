import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DeleteMessageBatchCommand, ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { startTwin, type Twin } from '#local/twin.js';
import { createEmailProducer } from '#producer/index.js';
import { resolveTarget, type Target } from './target.js';

// Lambda runs these functions on Node.js 22+; on an older local Node the SDK's upgrade notice is only noise here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/**
 * Sends a small mixed batch through the local twin (the running one, or one it starts) and prints what happened to
 * each job, end to end: good mail, a bounce that comes back as a DSN and suppresses its address, a synchronous
 * rejection, a throttled send that is retried, a duplicate, and an invalid job.
 */
async function twinIsRunning(): Promise<boolean> {
  // The same twin the target resolves to below: $TWIN_DIR, or .local.
  const manifestPath = join(process.env.TWIN_DIR ?? '.local', 'twin.json');
  if (!existsSync(manifestPath)) return false;
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { endpoints: { sqs: string }; pid: number };
  try {
    process.kill(manifest.pid, 0);
    await fetch(manifest.endpoints.sqs, { signal: AbortSignal.timeout(1000) });
    return true;
  } catch {
    return false;
  }
}

let started: Twin | undefined;
if (!(await twinIsRunning())) {
  console.log('no twin running: starting one for the demo …');
  started = await startTwin({});
}
const target: Target = resolveTarget({});
const producer = createEmailProducer({ sqs: target.sqs, s3: target.s3, queueUrl: target.queueUrl, bucket: target.bucket });
const run = randomUUID().slice(0, 8);
const job = (name: string, to: string, extra: object = {}) => ({ version: 1 as const, idempotencyKey: `demo-${run}-${name}`, to: [to], subject: `Demo: ${name}`, text: `The ${name} case of the demo.`, ...extra });

const cases = [
  { name: 'good', job: job('good', 'alice@example.net'), expect: 'delivered' },
  { name: 'bounce', job: job('bounce', `gone-${run}@bounce.test`), expect: 'delivered, then a DSN suppresses the address' },
  { name: 'reject', job: job('reject', 'nobody@reject.test'), expect: 'rejected (550 at RCPT)' },
  { name: 'throttled', job: job('throttled', 'busy@throttled.test'), expect: 'throttled once, retried, delivered' },
  { name: 'duplicate', job: job('good', 'alice@example.net'), expect: 'sent once: same key as "good"' },
];
const sent = await producer.sendEmails(cases.map((c) => c.job));
const invalidKey = `demo-${run}-invalid`;
await target.sqs.send(new SendMessageCommand({ QueueUrl: target.queueUrl, MessageBody: JSON.stringify({ version: 1, idempotencyKey: invalidKey, to: ['x@example.net'], subject: 'Hi\r\nBcc: victim@example.net', text: 'x' }) }));
console.log(`queued ${sent.sent.length + 1} jobs (run ${run}); waiting for outcomes (a throttled retry waits for its backoff) …`);

type Outcome = { type: string; idempotencyKey?: string; reason?: string; detail?: string; attempts?: number; classification?: { kind?: string; recipients?: Array<{ recipient: string }> } };
const outcomes = new Map<string, Outcome>();
const bounces: Outcome[] = [];
const want = new Set([...cases.map((c) => c.job.idempotencyKey), invalidKey]);
let suppressedCheckKey: string | undefined;
const deadline = Date.now() + 120_000;
while (Date.now() < deadline && target.eventsTapQueueUrl) {
  const r = await target.sqs.send(new ReceiveMessageCommand({ QueueUrl: target.eventsTapQueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
  for (const m of r.Messages ?? []) {
    const event = JSON.parse(m.Body ?? '{}') as Outcome;
    if (event.idempotencyKey && want.has(event.idempotencyKey)) outcomes.set(event.idempotencyKey, event);
    if (event.type === 'bounce.detected' && event.classification?.recipients?.some((x) => x.recipient === `gone-${run}@bounce.test`)) {
      bounces.push(event);
      // The bounced address is suppressed now: the next job to it must not go out.
      suppressedCheckKey = `demo-${run}-after-bounce`;
      want.add(suppressedCheckKey);
      await producer.sendEmail(job('after-bounce', `gone-${run}@bounce.test`));
    }
  }
  if (r.Messages?.length) await target.sqs.send(new DeleteMessageBatchCommand({ QueueUrl: target.eventsTapQueueUrl, Entries: r.Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })) }));
  if ([...want].every((k) => outcomes.has(k)) && bounces.length > 0) break;
}

const describe = (o: Outcome | undefined) => (o ? `${o.type.replace('email.', '')}${o.reason && o.reason !== 'accepted' ? ` (${o.reason}${o.detail ? `: ${o.detail}` : ''})` : ''}${o.attempts && o.attempts > 1 ? ` after ${o.attempts} attempts` : ''}` : 'no outcome yet');
console.log('');
for (const c of cases.filter((c) => c.name !== 'duplicate')) console.log(`${c.name.padEnd(13)} ${describe(outcomes.get(c.job.idempotencyKey))}`);
console.log(`${'duplicate'.padEnd(13)} ${outcomes.has(cases[0]!.job.idempotencyKey) ? 'one outcome for both copies of "good" (sent once)' : 'no outcome yet'}`);
console.log(`${'invalid'.padEnd(13)} ${describe(outcomes.get(invalidKey))}; the job waits in the DLQ with its reason (npm run redrive -- --dry-run)`);
console.log(`${'bounce DSN'.padEnd(13)} ${bounces.length > 0 ? 'bounce.detected by the poller; address suppressed' : 'no DSN seen yet'}`);
console.log(`${'after bounce'.padEnd(13)} ${suppressedCheckKey ? describe(outcomes.get(suppressedCheckKey)) : 'not sent (no bounce seen)'}`);
if (started) await started.stop();
process.exit(0);
