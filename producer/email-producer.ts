import { createHash, randomUUID } from 'node:crypto';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { SendMessageBatchCommand, SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { DEFAULT_TENANT, isTenantName, tenantObjectPrefix } from '#core/tenant.js';
import {
  describeIssues,
  EmailJobSchema,
  inlineAttachmentBytes,
  toJobProblem,
  MAX_INLINE_ATTACHMENT_BYTES,
  MAX_JOB_ATTACHMENT_BYTES,
  type EmailJob,
  type S3Reference,
} from '#core/email-job.js';
import { decideSchedule, MAX_SEND_AT_AHEAD_SECONDS } from '#core/job-status.js';
import type { JobTemplates } from './template-data.js';

export type EmailProducerOptions = {
  sqs: SQSClient;
  queueUrl: string;
  /** Where large attachments and claim-checked jobs go (the stack's BucketName). Without it, large jobs are refused. */
  s3?: S3Client;
  bucket?: string;
  /** The queue's MaximumMessageSize. @default 1048576 */
  maxMessageBytes?: number;
  /**
   * The tenant this service sends as: the one its role was granted (`grantSend(role, { tenant })`). Jobs carry it as
   * the `tenant` message attribute and as MessageGroupId (SQS fair queues); objects go under `tenants/<tenant>/`.
   * @default 'default'
   */
  tenant?: string;
  /**
   * The dispatcher's templates (a templates folder, or `loadTemplates(dir)`): a template job's data is checked
   * against them before it is queued. @default none (the dispatcher still checks, and rejects what fails)
   */
  templates?: string | JobTemplates;
};

/** A job the producer refused before sending, with the field and the reason. */
export class InvalidEmailJobError extends Error {
  constructor(readonly detail: string) {
    super(`invalid email job: ${detail}`);
    this.name = 'InvalidEmailJobError';
  }
}

export type SentJob = { idempotencyKey: string; sqsMessageId: string; claimCheck?: S3Reference };
export type FailedJob = { index: number; idempotencyKey?: string; reason: string; retryable: boolean };

const bytes = (text: string) => Buffer.byteLength(text, 'utf8');
const safeName = (name: string) => name.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 100);
const sha256 = (body: Buffer) => createHash('sha256').update(body).digest('base64');

/**
 * The producer API: validates jobs against the same schema the handler uses, moves what is too large for the queue
 * to S3 (attachments by reference, or the whole job as a claim check), and sends in batches of ten.
 */
export function createEmailProducer(options: EmailProducerOptions) {
  const limit = options.maxMessageBytes ?? 1024 * 1024;
  // Room for SQS's own overhead (attributes) within the limit.
  const budget = limit - 4 * 1024;
  const tenant = options.tenant ?? DEFAULT_TENANT;
  if (!isTenantName(tenant))
    throw new TypeError(`tenant: must be 1–32 of a-z 0-9 and inner hyphens, got "${String(tenant).slice(0, 40)}"`);
  // The dispatcher checks the attribute against the tenant the sending role was granted; the group is the tenant.
  const tenancy = {
    MessageGroupId: tenant,
    MessageAttributes: { tenant: { DataType: 'String', StringValue: tenant } },
  };

  /**
   * Stores a body under the tenant's prefix with a random name (nothing another producer could predict from the
   * job) and returns its reference with the size and SHA-256 the dispatcher checks before using it.
   */
  const putObject = async (folder: 'jobs' | 'attachments', name: string, content: Buffer, contentType: string) => {
    if (!options.s3 || !options.bucket)
      throw new InvalidEmailJobError(
        'the job is larger than the queue allows and no bucket is configured for attachments and claim checks',
      );
    const key = `${tenantObjectPrefix(tenant)}${folder}/${randomUUID()}/${name}`;
    const digest = sha256(content);
    await options.s3.send(
      new PutObjectCommand({
        Bucket: options.bucket,
        Key: key,
        Body: content,
        ContentType: contentType,
        // S3 refuses the upload if the bytes it received are not these.
        ChecksumSHA256: digest,
      }),
    );
    return { bucket: options.bucket, key, size: content.byteLength, sha256: digest };
  };

  // Loaded on the first template job: a producer that sends none never loads the template engine.
  let templates: Promise<(job: EmailJob) => Promise<void>> | undefined;
  const checkTemplate = (job: EmailJob) => {
    const given = options.templates;
    if (!job.template || given === undefined) return Promise.resolve();
    templates ??= import('./template-data.js').then((m) => {
      const loaded = typeof given === 'string' ? m.loadTemplates(given) : given;
      return (checked: EmailJob) => m.checkTemplateJob(loaded, checked);
    });
    return templates.then((check) => check(job));
  };

  /** Validates a job and turns it into a queue body, offloading to S3 what does not fit. */
  const prepare = async (input: unknown): Promise<{ job: EmailJob; body: string; claimCheck?: S3Reference }> => {
    let job = validateEmailJob(input);
    await checkTemplate(job);
    const inline = inlineAttachmentBytes(job);
    if (inline > MAX_JOB_ATTACHMENT_BYTES)
      throw new InvalidEmailJobError(
        `attachments: ${inline} bytes together; at most ${MAX_JOB_ATTACHMENT_BYTES} go in one message`,
      );
    let body = JSON.stringify(job);
    if (inline > MAX_INLINE_ATTACHMENT_BYTES || bytes(body) > budget) {
      const attachments = await Promise.all(
        (job.attachments ?? []).map(async (a, i) =>
          a.content
            ? {
                ...a,
                content: undefined,
                s3: await putObject(
                  'attachments',
                  `${i}-${safeName(a.filename)}`,
                  Buffer.from(a.content, 'base64'),
                  a.contentType ?? 'application/octet-stream',
                ),
              }
            : a,
        ),
      );
      job = { ...job, attachments: JSON.parse(JSON.stringify(attachments)) as EmailJob['attachments'] };
      body = JSON.stringify(job);
    }
    const check = EmailJobSchema.safeParse(job, { error: toJobProblem });
    if (!check.success) throw new InvalidEmailJobError(describeIssues(check.error.issues));
    if (bytes(body) <= budget) return { job, body };
    // Still too large (a huge html body): the claim check. The queue carries a reference, the handler fetches it.
    const claimCheck = await putObject('jobs', 'job.json', Buffer.from(body, 'utf8'), 'application/json');
    // The handler's ClaimCheckSchema (functions/core/parse-job-record.ts) reads this.
    const reference = { version: 1, idempotencyKey: job.idempotencyKey, claimCheck };
    return { job, body: JSON.stringify(reference), claimCheck };
  };

  return {
    /** Sends one job; throws InvalidEmailJobError naming the field, or the SDK's error. */
    async sendEmail(job: EmailJob): Promise<SentJob> {
      const prepared = await prepare(job);
      const result = await options.sqs.send(
        new SendMessageCommand({ QueueUrl: options.queueUrl, MessageBody: prepared.body, ...tenancy }),
      );
      return {
        idempotencyKey: prepared.job.idempotencyKey,
        sqsMessageId: result.MessageId ?? '',
        claimCheck: prepared.claimCheck,
      };
    },

    /** Sends many jobs in SendMessageBatch calls of up to ten (and up to the size limit); reports each failure. */
    async sendEmails(jobs: EmailJob[]): Promise<{ sent: SentJob[]; failed: FailedJob[] }> {
      const sent: SentJob[] = [];
      const failed: FailedJob[] = [];
      const ready: Array<{ index: number; prepared: Awaited<ReturnType<typeof prepare>> }> = [];
      for (const [index, job] of jobs.entries()) {
        try {
          ready.push({ index, prepared: await prepare(job) });
        } catch (error) {
          failed.push({
            index,
            idempotencyKey: (job as { idempotencyKey?: string }).idempotencyKey,
            reason: (error as Error).message,
            retryable: !(error instanceof InvalidEmailJobError),
          });
        }
      }
      let batch: typeof ready = [];
      let batchBytes = 0;
      const flush = async () => {
        if (batch.length === 0) return;
        const entries = batch.map((b, n) => ({ Id: `${n}`, MessageBody: b.prepared.body, ...tenancy }));
        const current = batch;
        batch = [];
        batchBytes = 0;
        try {
          const result = await options.sqs.send(
            new SendMessageBatchCommand({ QueueUrl: options.queueUrl, Entries: entries }),
          );
          for (const ok of result.Successful ?? []) {
            const entry = current[Number(ok.Id)];
            if (entry)
              sent.push({
                idempotencyKey: entry.prepared.job.idempotencyKey,
                sqsMessageId: ok.MessageId ?? '',
                claimCheck: entry.prepared.claimCheck,
              });
          }
          for (const bad of result.Failed ?? []) {
            const entry = current[Number(bad.Id)];
            if (entry)
              failed.push({
                index: entry.index,
                idempotencyKey: entry.prepared.job.idempotencyKey,
                reason: `${bad.Code}: ${bad.Message ?? ''}`,
                retryable: !bad.SenderFault,
              });
          }
        } catch (error) {
          for (const entry of current)
            failed.push({
              index: entry.index,
              idempotencyKey: entry.prepared.job.idempotencyKey,
              reason: (error as Error).message,
              retryable: true,
            });
        }
      };
      for (const item of ready) {
        const size = bytes(item.prepared.body);
        if (batch.length === 10 || batchBytes + size > budget) await flush();
        batch.push(item);
        batchBytes += size;
      }
      await flush();
      return { sent, failed: failed.sort((a, b) => a.index - b.index) };
    },
  };
}

/**
 * Checks a job against the schema the handler uses and returns it typed; throws InvalidEmailJobError naming every
 * problem. Inline attachments over the inline limit pass: the producer moves them to S3 before sending.
 */
export function validateEmailJob(input: unknown): EmailJob {
  // The wording is passed per parse: a library must not change the zod configuration of the service using it.
  const parsed = EmailJobSchema.safeParse(input, { error: toJobProblem });
  if (parsed.success) {
    // The dispatcher allows some slack for the time a job spends in the queue; the producer holds to the limit.
    const schedule = decideSchedule(parsed.data.sendAt, Date.now(), MAX_SEND_AT_AHEAD_SECONDS, 0);
    if (schedule.action === 'refuse') throw new InvalidEmailJobError(schedule.detail);
    return parsed.data;
  }
  const movable = (i: { path: PropertyKey[]; message: string }) =>
    i.path[0] === 'attachments' && /inline attachments exceed/.test(i.message);
  const issues = parsed.error.issues.filter((i) => !movable(i));
  if (issues.length > 0) throw new InvalidEmailJobError(describeIssues(issues));
  return input as EmailJob;
}

/** A fresh idempotency key, for producers that have no natural one. Prefer a key from your own domain (order id). */
export const newIdempotencyKey = () => randomUUID();
