import type { EmailJob } from '#core/email-job.js';
import { ExitCode } from './cli.js';

export type QueueJobOptions = {
  /** A jobs queue in AWS, or the stack's outputs file; neither means the running twin. */
  queueUrl?: string;
  outputs?: string;
  /** The tenant to send as (the one the credentials were granted). */
  tenant?: string;
  /** Wait for the outcome and report it (exit code as `reportOutcome` gives it). */
  wait: boolean;
  timeoutSeconds: number;
};

/** Queues one checked job as the commands do (`send`, `template --send`) and, with `wait`, reports its outcome. */
export async function queueJob(job: EmailJob, options: QueueJobOptions): Promise<number> {
  const [{ createEmailProducer }, { connectTarget }, outcomes] = await Promise.all([
    import('#producer/index.js'),
    import('./target.js'),
    import('./watch-outcomes.js'),
  ]);
  const target = await connectTarget({ queueUrl: options.queueUrl, outputs: options.outputs });
  const producer = createEmailProducer({
    sqs: target.sqs,
    s3: target.s3,
    queueUrl: target.queueUrl,
    bucket: target.bucket,
    tenant: options.tenant,
  });
  // Subscribed before the job goes, so its outcome cannot slip past.
  const watcher = options.wait ? await outcomes.watchOutcomes(target) : undefined;
  try {
    const sent = await producer.sendEmail(job);
    const claimCheck = sent.claimCheck ? ` (claim check ${sent.claimCheck.key})` : '';
    console.log(`queued ${sent.idempotencyKey} on ${target.description}${claimCheck}`);
    if (!watcher) {
      // A queue URL alone names no status table: only the twin and a stack's outputs can be asked.
      if (options.queueUrl === undefined)
        console.log(`what became of it: ${statusCommand(sent.idempotencyKey, options)}`);
      return ExitCode.ok;
    }
    return await outcomes.reportOutcome(watcher, sent.idempotencyKey, options.timeoutSeconds, options.tenant);
  } finally {
    await watcher?.close();
  }
}

/** The command that tells what became of a queued job, as a person would type it (`--wait` does it in one go). */
const statusCommand = (key: string, options: QueueJobOptions) =>
  [
    'npm run status --',
    key,
    ...(options.tenant ? ['--tenant', options.tenant] : []),
    ...(options.outputs ? ['--outputs', options.outputs] : []),
  ].join(' ');
