import type { MailTransport, OutgoingMessage } from '#transports/mail-transport.js';
import { untilAborted, type SendBudget } from './attempt-budget.js';
import type { ByteBudget } from './byte-budget.js';
import { classifyOutcome, parseEnhancedStatus } from './classify-outcome.js';
import { InvalidJobError } from './errors.js';
import { inlineAttachmentBytes, listRecipients, MAX_JOB_ATTACHMENT_BYTES, toAddress, type EmailJob, type Mailbox, type S3Reference, type TransportName } from './email-job.js';
import { toDispatchId, toMessageId } from './message-id.js';
import type { RecipientResult, SendOutcome } from './send-outcome.js';
import { TransportError } from './transport-failure.js';

/** The suppression list as the sender sees it: which of these addresses must not be mailed. */
export interface SuppressionList {
  /** Returns the suppressed ones among `addresses`, lowercased. */
  findSuppressed(addresses: string[]): Promise<Set<string>>;
}

export type DispatchDeps = {
  transports: Partial<Record<TransportName, MailTransport>>;
  defaultTransport: TransportName;
  suppressions: SuppressionList;
  /** Reads an attachment stored in S3. */
  loadAttachment: (ref: S3Reference) => Promise<Uint8Array>;
  /**
   * The instance's one memory budget: a job reserves the size of its S3 attachments (read with `size`) and of its
   * decoded inline attachments before it reads or decodes them, and holds it until its send is over; the rest wait.
   * (A claim-checked job's body is reserved before it is read, by the handler, inline content included.)
   * Without it, no bound.
   */
  attachmentMemory?: { size: (ref: S3Reference) => Promise<number>; budget: ByteBudget };
  /** Used when a job has no `from`. */
  defaultFrom?: Mailbox;
  /** The domain part of generated Message-IDs. */
  messageIdDomain: string;
};

const rejectedJob = (reason: string, detail: string, recipients: RecipientResult[] = []): SendOutcome => ({
  action: 'rejected',
  reason,
  detail,
  recipients,
});

const keep = (list: Mailbox[] | undefined, suppressed: Set<string>) => (list ?? []).filter((m) => !suppressed.has(toAddress(m).toLowerCase()));

/**
 * Sends one valid job once: drops suppressed recipients, builds the message with its derived Message-ID, hands it to
 * the chosen transport and classifies the result. Never throws for a provider's answer; the outcome says what to do.
 * With a `budget`, every wait before the send is given up when `budget.signal` aborts, and so is the send before
 * its commit point: it then throws AttemptAbortedError, and nothing was sent.
 */
export async function dispatchJob(
  job: EmailJob,
  deps: DispatchDeps,
  budget?: SendBudget,
  held: { inline?: boolean } = {},
): Promise<SendOutcome> {
  const transportName = job.transport ?? deps.defaultTransport;
  const transport = deps.transports[transportName];
  if (!transport) return rejectedJob('transport-unavailable', `transport "${transportName}" is not enabled in this deployment`);
  const from = job.from ?? deps.defaultFrom;
  if (!from) return rejectedJob('from-missing', 'the job has no from and the deployment has no default sender');

  const recipients = listRecipients(job);
  const suppressed = await untilAborted(deps.suppressions.findSuppressed(recipients), budget?.signal);
  const suppressedResults: RecipientResult[] = recipients
    .filter((r) => suppressed.has(r.toLowerCase()))
    .map((recipient) => ({ recipient, status: 'suppressed' }));
  if (suppressedResults.length === recipients.length) {
    return rejectedJob('all-recipients-suppressed', 'every recipient is on the suppression list', suppressedResults);
  }

  let release: (() => void) | undefined;
  try {
    release = await reserveAttachmentMemory(job, deps, budget?.signal, held.inline === true);
    return await buildAndSend(job, deps, transport, from, recipients, suppressed, suppressedResults, budget);
  } catch (error) {
    if (error instanceof InvalidJobError) return rejectedJob(error.reason, error.message);
    throw error;
  } finally {
    release?.();
  }
}

/**
 * Reserves the size of the job's S3 attachments and of its decoded inline ones in the memory budget (unless the
 * inline ones are already held, with a claim-checked body); refuses a job whose attachments, inline and S3
 * together, are too big for one message.
 */
async function reserveAttachmentMemory(
  job: EmailJob,
  deps: DispatchDeps,
  signal: AbortSignal | undefined,
  inlineHeld: boolean,
): Promise<(() => void) | undefined> {
  const refs = (job.attachments ?? []).flatMap((a) => (a.s3 ? [a.s3] : []));
  const inline = inlineAttachmentBytes(job);
  if ((refs.length === 0 && inline === 0) || !deps.attachmentMemory) return undefined;
  const { size, budget } = deps.attachmentMemory;
  const stored = (await untilAborted(Promise.all(refs.map(size)), signal)).reduce((sum, bytes) => sum + bytes, 0);
  if (stored + inline > MAX_JOB_ATTACHMENT_BYTES) {
    throw new InvalidJobError('attachments-too-large', `the attachments add up to ${stored + inline} bytes; at most ${MAX_JOB_ATTACHMENT_BYTES} go in one message`);
  }
  const bytes = stored + (inlineHeld ? 0 : inline);
  return bytes > 0 ? budget.acquire(bytes, signal) : undefined;
}

async function buildAndSend(
  job: EmailJob,
  deps: DispatchDeps,
  transport: MailTransport,
  from: Mailbox,
  recipients: string[],
  suppressed: Set<string>,
  suppressedResults: RecipientResult[],
  budget?: SendBudget,
): Promise<SendOutcome> {
  const loading = Promise.all(
    (job.attachments ?? []).map(async (a) => ({
      filename: a.filename,
      contentType: a.contentType,
      contentId: a.contentId,
      content: a.s3 ? await deps.loadAttachment(a.s3) : Buffer.from(a.content ?? '', 'base64'),
    })),
  );
  const attachments: OutgoingMessage['attachments'] = await untilAborted(loading, budget?.signal);
  const message: OutgoingMessage = {
    messageId: toMessageId(job.idempotencyKey, deps.messageIdDomain),
    from,
    to: keep(job.to, suppressed),
    cc: keep(job.cc, suppressed),
    bcc: keep(job.bcc, suppressed),
    replyTo: job.replyTo ?? [],
    subject: job.subject,
    text: job.text,
    html: job.html,
    // The dispatch id survives providers that replace Message-ID (SES does for SendRawEmail-style sends).
    headers: { ...job.headers, 'X-Dispatch-Id': toDispatchId(job.idempotencyKey) },
    attachments,
    tags: job.tags ?? {},
  };

  try {
    const receipt = await transport.send(message, budget);
    const refused = new Map(receipt.rejected.map((r) => [r.recipient.toLowerCase(), r]));
    const results: RecipientResult[] = recipients.map((recipient) => {
      const key = recipient.toLowerCase();
      if (suppressed.has(key)) return { recipient, status: 'suppressed' };
      const refusal = refused.get(key);
      if (!refusal) return { recipient, status: 'accepted' };
      return { recipient, status: 'rejected', responseCode: refusal.responseCode, enhancedStatus: parseEnhancedStatus(refusal.response) };
    });
    return {
      action: 'delivered',
      reason: refused.size > 0 ? 'partial' : suppressed.size > 0 ? 'partial-suppressed' : 'accepted',
      providerMessageId: receipt.providerMessageId,
      recipients: results,
    };
  } catch (error) {
    if (!(error instanceof TransportError)) throw error;
    const outcome = classifyOutcome(error.failure);
    // Per-recipient refusals are already in the outcome; list the rest (suppressed ones too) for the record.
    const listed = new Set(outcome.recipients.map((r) => r.recipient.toLowerCase()));
    const rest = suppressedResults.filter((r) => !listed.has(r.recipient.toLowerCase()));
    return { ...outcome, recipients: [...outcome.recipients, ...rest] };
  }
}
