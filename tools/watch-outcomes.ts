import { randomUUID } from 'node:crypto';
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SNSClient, SubscribeCommand, UnsubscribeCommand } from '@aws-sdk/client-sns';
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  DeleteQueueCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
} from '@aws-sdk/client-sqs';
import { DEFAULT_TENANT } from '#core/tenant.js';
import type { DeferralEntry } from '#local/deferral-journal.js';
import { CommandError } from './cli.js';
import type { Target } from './target.js';

/** What became of a job: a terminal outcome event, or the deferrals seen while waiting for one. */
export type JobOutcome =
  | {
      kind: 'delivered' | 'rejected' | 'failed';
      reason: string;
      detail?: string;
      attempts?: number;
      recipients: Recipient[];
    }
  | { kind: 'deferred'; reason?: string; detail?: string; attempts?: number; retryInSeconds?: number };

type Recipient = { recipient: string; status: string; responseCode?: number; enhancedStatus?: string };
type OutcomeEvent = {
  type?: string;
  idempotencyKey?: string;
  tenant?: string;
  reason?: string;
  detail?: string;
  attempts?: number;
  recipients?: Recipient[];
};

const TERMINAL: Record<string, 'delivered' | 'rejected' | 'failed'> = {
  'email.delivered': 'delivered',
  'email.rejected': 'rejected',
  'email.failed': 'failed',
};

/** New lines of a JSON-lines file since the last call, read from where the previous call stopped. */
function tailLines(file: string) {
  let offset = existsSync(file) ? statSync(file).size : 0;
  return (): string[] => {
    if (!existsSync(file)) return [];
    const size = statSync(file).size;
    if (size <= offset) return [];
    const buffer = Buffer.alloc(Math.min(size - offset, 1024 * 1024));
    const fd = openSync(file, 'r');
    try {
      readSync(fd, buffer, 0, buffer.length, offset);
    } finally {
      closeSync(fd);
    }
    const text = buffer.toString('utf8');
    const complete = text.lastIndexOf('\n') + 1;
    offset += Buffer.byteLength(text.slice(0, complete));
    return text.slice(0, complete).split('\n').filter(Boolean);
  };
}

/**
 * Watches the outcome events of the target's events topic through a queue of its own (subscribed before the job is
 * sent, so no outcome is missed; removed afterwards), and on the twin also its record of deferred attempts.
 */
export async function watchOutcomes(target: Target) {
  if (!target.eventsTopicArn)
    throw new CommandError(
      '--wait needs the events topic: pass --outputs cdk-outputs.json (its EventsTopicArn), or use the twin',
    );
  const sns = new SNSClient({
    region: target.region,
    endpoint: target.twin?.manifest.endpoints.sns,
    credentials: target.twin ? { accessKeyId: 'local', secretAccessKey: 'local' } : undefined,
  });
  const queue = await target.sqs.send(
    new CreateQueueCommand({
      QueueName: `email-dispatch-watch-${randomUUID().slice(0, 8)}`,
      Attributes: { MessageRetentionPeriod: '3600' },
    }),
  );
  const queueUrl = queue.QueueUrl ?? '';
  let subscriptionArn: string | undefined;
  try {
    const attributes = await target.sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }),
    );
    const queueArn = attributes.Attributes?.QueueArn ?? '';
    if (!target.twin) {
      // In AWS the topic may deliver to this queue only if the queue says so.
      const policy = {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Principal: { Service: 'sns.amazonaws.com' },
            Action: 'sqs:SendMessage',
            Resource: queueArn,
            Condition: { ArnEquals: { 'aws:SourceArn': target.eventsTopicArn } },
          },
        ],
      };
      const { SetQueueAttributesCommand } = await import('@aws-sdk/client-sqs');
      await target.sqs.send(
        new SetQueueAttributesCommand({ QueueUrl: queueUrl, Attributes: { Policy: JSON.stringify(policy) } }),
      );
    }
    const subscribed = await sns.send(
      new SubscribeCommand({
        TopicArn: target.eventsTopicArn,
        Protocol: 'sqs',
        Endpoint: queueArn,
        Attributes: { RawMessageDelivery: 'true' },
        ReturnSubscriptionArn: true,
      }),
    );
    subscriptionArn = subscribed.SubscriptionArn;
  } catch (error) {
    await target.sqs.send(new DeleteQueueCommand({ QueueUrl: queueUrl })).catch(() => {});
    throw error;
  }
  const deferrals = target.twin ? tailLines(join(target.twin.dataDir, 'deferrals.jsonl')) : () => [];

  return {
    /**
     * Waits until the job's outcome event arrives or `timeoutMs` passes; reports each deferral as it is seen, and
     * resolves with the outcome, or with the last deferral (or none) when time is up.
     */
    async waitFor(
      idempotencyKey: string,
      options: {
        timeoutMs: number;
        /** The job's tenant: keys are per tenant, so another tenant's job may have the same one. @default default */
        tenant?: string;
        onDeferred?: (d: Extract<JobOutcome, { kind: 'deferred' }>) => void;
      },
    ): Promise<JobOutcome | undefined> {
      const deadline = Date.now() + options.timeoutMs;
      let deferred: Extract<JobOutcome, { kind: 'deferred' }> | undefined;
      while (Date.now() < deadline) {
        const wait = Math.max(0, Math.min(2, Math.floor((deadline - Date.now()) / 1000)));
        const received = await target.sqs.send(
          new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: wait }),
        );
        const messages = received.Messages ?? [];
        if (messages.length > 0) {
          await target.sqs.send(
            new DeleteMessageBatchCommand({
              QueueUrl: queueUrl,
              Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })),
            }),
          );
        }
        for (const message of messages) {
          let event: OutcomeEvent;
          try {
            event = JSON.parse(message.Body ?? '') as OutcomeEvent;
          } catch {
            continue;
          }
          const kind = event.type ? TERMINAL[event.type] : undefined;
          const ours = (event.tenant ?? DEFAULT_TENANT) === (options.tenant ?? DEFAULT_TENANT);
          if (kind && event.idempotencyKey === idempotencyKey && ours) {
            return {
              kind,
              reason: event.reason ?? '',
              detail: event.detail,
              attempts: event.attempts,
              recipients: event.recipients ?? [],
            };
          }
        }
        for (const line of deferrals()) {
          const entry = JSON.parse(line) as DeferralEntry;
          if (entry.idempotencyKey !== idempotencyKey) continue;
          deferred = {
            kind: 'deferred',
            reason: entry.reason ? `${entry.action}: ${entry.reason}` : undefined,
            detail: entry.detail,
            attempts: entry.attempt,
            retryInSeconds: entry.retryInSeconds,
          };
          options.onDeferred?.(deferred);
        }
        if (wait === 0) await new Promise((resolve) => setTimeout(resolve, 250));
      }
      return deferred;
    },
    async close(): Promise<void> {
      if (subscriptionArn && subscriptionArn !== 'pending confirmation')
        await sns.send(new UnsubscribeCommand({ SubscriptionArn: subscriptionArn })).catch(() => {});
      await target.sqs.send(new DeleteQueueCommand({ QueueUrl: queueUrl })).catch(() => {});
    },
  };
}

/**
 * Waits for a job's outcome and prints it as the commands do: each deferral as it happens, then the outcome. Answers
 * the exit code (0 delivered, 3 still deferred when the time is up); a rejected or failed job is a CommandError.
 */
export async function reportOutcome(
  watcher: Awaited<ReturnType<typeof watchOutcomes>>,
  idempotencyKey: string,
  timeoutSeconds: number,
  tenant?: string,
): Promise<number> {
  const outcome = await watcher.waitFor(idempotencyKey, {
    tenant,
    timeoutMs: timeoutSeconds * 1000,
    onDeferred: (d) =>
      console.log(
        `deferred${d.reason ? `: ${[d.reason, d.detail].filter(Boolean).join(': ')}` : ''}; ` +
          `next attempt in ${d.retryInSeconds} s …`,
      ),
  });
  const line = describeOutcome(outcome, timeoutSeconds);
  if (outcome?.kind === 'delivered') {
    console.log(line);
    return 0;
  }
  if (outcome === undefined || outcome.kind === 'deferred') {
    console.log(line);
    return 3;
  }
  throw new CommandError(line);
}

const replyOf = (r: Recipient) =>
  r.responseCode ? ` (${[r.responseCode, r.enhancedStatus].filter(Boolean).join(' ')})` : '';

/** One line for a person: what happened and why. */
export function describeOutcome(outcome: JobOutcome | undefined, waitedSeconds: number): string {
  if (!outcome) return `no outcome within ${waitedSeconds} s: the job is still queued (is the dispatcher running?)`;
  const why = [outcome.reason, outcome.detail].filter(Boolean).join(': ');
  const attempts = outcome.attempts && outcome.attempts > 1 ? ` after ${outcome.attempts} attempts` : '';
  if (outcome.kind === 'deferred') {
    const next = outcome.retryInSeconds ? ` (next attempt ${outcome.retryInSeconds} s after the last)` : '';
    const still = `still not sent after ${waitedSeconds} s${next}; the job stays queued and is retried`;
    return `deferred${why ? `: ${why}` : ''}; ${still}`;
  }
  const refused = outcome.recipients.filter((r) => r.status !== 'accepted');
  const recipients =
    refused.length > 0 ? `; ${refused.map((r) => `${r.recipient} ${r.status}${replyOf(r)}`).join(', ')}` : '';
  return `${outcome.kind}${why ? `: ${why}` : ''}${attempts}${recipients}`;
}
