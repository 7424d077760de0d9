import type { MailTransport, OutgoingMessage } from './mail-transport.js';
import { untilAborted, type SendBudget } from './attempt-budget.js';
import type { ByteBudget } from './byte-budget.js';
import { classifyOutcome, classifyRecipientRefusal, parseEnhancedStatus } from './classify-outcome.js';
import { InvalidJobError } from './errors.js';
import { toTransmittableAddresses } from './international-address.js';
import {
  inlineAttachmentBytes,
  listRecipients,
  MAX_JOB_ATTACHMENT_BYTES,
  toAddress,
  type EmailJob,
  type Mailbox,
  type S3Reference,
  type TransportName,
} from './email-job.js';
import { toDispatchId, toMessageId, toReportToken, toVerpAddress, type ReportKeyring } from './message-id.js';
import type { RecipientResult, SendOutcome } from './send-outcome.js';
import { tenantOf, type TenantJob } from './tenant-identity.js';
import { TransportError, type TransportFailure } from './transport-failure.js';

/** The suppression list as the sender sees it: which of these addresses must not be mailed. */
interface SuppressionList {
  /**
   * Returns the suppressed ones among `addresses` for `tenant`'s mail (global and its own entries), lowercased; given
   * up (rejecting) once `signal` aborts.
   */
  findSuppressed(addresses: string[], tenant: string, signal?: AbortSignal): Promise<Set<string>>;
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
  /**
   * The deployment's report keys: each message carries a token made with them (in its Message-ID, its VERP envelope
   * sender and its SES tags) so that reports about it can be verified. Without them, Message-IDs carry no token and
   * no report about the message can ever suppress anyone.
   */
  reportKeys?: () => Promise<ReportKeyring>;
  /** Bounces go to `bounces+<token>@<bounceDomain>` (VERP) when set and the transport controls the envelope (SMTP). */
  bounceDomain?: string;
};

/** SES message tags that tie SES's events back to the job: its key (base64url) and its report token. */
export const DispatchTags = { key: 'dispatch-key', token: 'dispatch-token' } as const;

/** A report token as an SES tag value (letters, digits, `_` and `-` only). */
export const toTagToken = (token: string) => token.replaceAll('.', '-');
/** The tags of a message: its job's key (base64url) and its report token, both SES-legal. */
const toDispatchTags = (idempotencyKey: string, token: string) => ({
  [DispatchTags.key]: Buffer.from(idempotencyKey).toString('base64url'),
  [DispatchTags.token]: toTagToken(token),
});
/** The report token in an SES tag value. */
export const fromTagToken = (value: string) => value.replaceAll('-', '.');

const rejectedJob = (reason: string, detail: string, recipients: RecipientResult[] = []): SendOutcome => ({
  action: 'rejected',
  reason,
  detail,
  recipients,
});

const keep = (list: Mailbox[] | undefined, suppressed: Set<string>) =>
  (list ?? []).filter((m) => !suppressed.has(toAddress(m).toLowerCase()));

/**
 * A follow-up's send (see follow-up.ts): the job's message as first sent (Message-ID and report token from
 * `messageKey`, the job's scoped key), to `recipients` only (a subset of the job's, in the SMTP envelope).
 */
export type FollowUpSend = { messageKey: string; recipients: string[]; dateMs: number };

/**
 * Sends one valid job once, over `routedTo` or else the job's transport: drops suppressed recipients, builds the
 * message with its derived Message-ID, hands it to the transport and classifies the result. Never throws for a
 * provider's answer; the outcome says what to do. With a `budget`, every wait before the send is given up when
 * `budget.signal` aborts, and so is the send before its commit point: it then throws AttemptAbortedError, and
 * nothing was sent. With `held.followUp`, the message goes to the follow-up's recipients only. With
 * `held.suppressed`, the lookup of the job's recipients already under way (begun beside the claim) is awaited here
 * instead of a new one.
 */
export async function dispatchJob(
  job: TenantJob,
  deps: DispatchDeps,
  budget?: SendBudget,
  held: { inline?: boolean; followUp?: FollowUpSend; suppressed?: Promise<Set<string>> } = {},
  routedTo?: TransportName,
): Promise<SendOutcome> {
  // The router may send a job over the failover transport; the job itself (and so its idempotency hash) is unchanged.
  const transportName = routedTo ?? job.transport ?? deps.defaultTransport;
  const transport = deps.transports[transportName];
  if (!transport)
    return rejectedJob('transport-unavailable', `transport "${transportName}" is not enabled in this deployment`);
  // A template job is rendered before it gets here (the handler's template step); this only guards the type.
  if (job.subject === undefined) return rejectedJob('template-not-rendered', 'the job has no subject');
  const from = job.from ?? deps.defaultFrom;
  if (!from) return rejectedJob('from-missing', 'the job has no from and the deployment has no default sender');

  // Every recipient is looked up: the headers list those not suppressed, as the first send's did.
  const listed = listRecipients(job);
  const lookup = held.suppressed ?? deps.suppressions.findSuppressed(listed, tenantOf(job));
  const suppressed = await untilAborted(lookup, budget?.signal);
  const only = held.followUp && new Set(held.followUp.recipients.map((r) => r.toLowerCase()));
  const recipients = only ? listed.filter((r) => only.has(r.toLowerCase())) : listed;
  const suppressedResults: RecipientResult[] = recipients
    .filter((r) => suppressed.has(r.toLowerCase()))
    .map((recipient) => ({ recipient, status: 'suppressed' }));
  if (suppressedResults.length === recipients.length) {
    return rejectedJob('all-recipients-suppressed', 'every recipient is on the suppression list', suppressedResults);
  }

  let release: (() => void) | undefined;
  try {
    release = await reserveAttachmentMemory(job, deps, budget?.signal, held.inline === true);
    return await buildAndSend(
      { ...job, subject: job.subject },
      deps,
      transport,
      from,
      recipients,
      suppressed,
      suppressedResults,
      budget,
      held.followUp,
    );
  } catch (error) {
    if (error instanceof InvalidJobError) return rejectedJob(error.reason, error.message);
    throw error;
  } finally {
    release?.();
  }
}

/** A refusal of the sender, where that sender is one the job named rather than the deployment's default. */
function refusesJobSender(job: EmailJob, deps: DispatchDeps, failure: TransportFailure): boolean {
  const own = deps.defaultFrom ? toAddress(deps.defaultFrom).toLowerCase() : undefined;
  if (!job.from || toAddress(job.from).toLowerCase() === own) return false;
  if (failure.provider === 'ses') return failure.name === 'MessageRejected';
  // Exchange Online checks the From against SendAs only at the final dot (SendAsDeniedException).
  return failure.command === 'MAIL FROM' || /SendAsDenied/i.test(failure.response ?? '');
}

/**
 * Reserves the size of the job's S3 attachments and of its decoded inline ones in the memory budget (unless the
 * inline ones are already held, with a claim-checked body); refuses a job whose attachments, inline and S3
 * together, are too big for one message.
 */
/** Names the attachment an error about its stored object is about: `attachments.2.s3: …`. */
const naming =
  (index: number) =>
  (error: unknown): never => {
    if (error instanceof InvalidJobError)
      throw new InvalidJobError(error.reason, `attachments.${index}.s3: ${error.message}`, { cause: error });
    throw error;
  };

async function reserveAttachmentMemory(
  job: EmailJob,
  deps: DispatchDeps,
  signal: AbortSignal | undefined,
  inlineHeld: boolean,
): Promise<(() => void) | undefined> {
  const refs = (job.attachments ?? []).flatMap((a, index) => (a.s3 ? [{ ref: a.s3, index }] : []));
  const inline = inlineAttachmentBytes(job);
  if ((refs.length === 0 && inline === 0) || !deps.attachmentMemory) return undefined;
  const { size, budget } = deps.attachmentMemory;
  const sizes = refs.map(({ ref, index }) => size(ref).catch(naming(index)));
  const stored = (await untilAborted(Promise.all(sizes), signal)).reduce((sum, bytes) => sum + bytes, 0);
  if (stored + inline > MAX_JOB_ATTACHMENT_BYTES) {
    throw new InvalidJobError(
      'attachments-too-large',
      `the attachments add up to ${stored + inline} bytes; at most ${MAX_JOB_ATTACHMENT_BYTES} go in one message`,
    );
  }
  const bytes = stored + (inlineHeld ? 0 : inline);
  return bytes > 0 ? budget.acquire(bytes, signal) : undefined;
}

async function buildAndSend(
  job: EmailJob & { subject: string },
  deps: DispatchDeps,
  transport: MailTransport,
  from: Mailbox,
  recipients: string[],
  suppressed: Set<string>,
  suppressedResults: RecipientResult[],
  budget?: SendBudget,
  followUp?: FollowUpSend,
): Promise<SendOutcome> {
  const messageKey = followUp?.messageKey ?? job.idempotencyKey;
  // Whole seconds, as the header says it: a follow-up's message carries the same.
  const date = new Date(followUp?.dateMs ?? Math.floor(Date.now() / 1000) * 1000);
  const loading = Promise.all(
    (job.attachments ?? []).map(async (a, index) => ({
      filename: a.filename,
      contentType: a.contentType,
      contentId: a.contentId,
      content: a.s3 ? await deps.loadAttachment(a.s3).catch(naming(index)) : Buffer.from(a.content ?? '', 'base64'),
    })),
  );
  const addresses = toTransmittableAddresses(
    { from: [from], to: job.to ?? [], cc: job.cc ?? [], bcc: job.bcc ?? [], replyTo: job.replyTo ?? [] },
    transport.smtpUtf8 === true,
  );
  if ('refused' in addresses) {
    loading.catch(() => {});
    return rejectedJob('address-not-transmittable', addresses.refused, suppressedResults);
  }
  const { sentAs } = addresses;
  const transmit = (mailbox: Mailbox): Mailbox =>
    typeof mailbox === 'string'
      ? (sentAs.get(mailbox) ?? mailbox)
      : { ...mailbox, address: sentAs.get(mailbox.address) ?? mailbox.address };
  const keyring = await deps.reportKeys?.();
  const token = keyring ? toReportToken(messageKey, keyring) : undefined;
  const messageId = toMessageId(messageKey, deps.messageIdDomain, keyring);
  const envelopeTo = recipients.filter((r) => !suppressed.has(r.toLowerCase())).map((r) => sentAs.get(r) ?? r);
  const attachments: OutgoingMessage['attachments'] = await untilAborted(loading, budget?.signal);
  const message: OutgoingMessage = {
    messageId,
    envelopeFrom: token && deps.bounceDomain ? toVerpAddress(token, deps.bounceDomain) : undefined,
    envelopeTo,
    from: transmit(from),
    to: keep(job.to, suppressed).map(transmit),
    cc: keep(job.cc, suppressed).map(transmit),
    bcc: keep(job.bcc, suppressed).map(transmit),
    replyTo: (job.replyTo ?? []).map(transmit),
    subject: job.subject,
    date,
    text: job.text,
    html: job.html,
    // The dispatch id survives providers that replace Message-ID (SES does for SendRawEmail-style sends).
    headers: { ...job.headers, 'X-Dispatch-Id': toDispatchId(messageKey) },
    attachments,
    tags: {
      ...job.tags,
      ...(token ? toDispatchTags(messageKey, token) : {}),
    },
  };

  try {
    const receipt = await transport.send(message, budget);
    const refused = new Map(receipt.rejected.map((r) => [r.recipient.toLowerCase(), r]));
    const results: RecipientResult[] = recipients.map((recipient) => {
      const key = recipient.toLowerCase();
      if (suppressed.has(key)) return { recipient, status: 'suppressed' };
      const refusal = refused.get((sentAs.get(recipient) ?? recipient).toLowerCase());
      if (!refusal) return { recipient, status: 'accepted' };
      return {
        recipient,
        status: classifyRecipientRefusal(refusal),
        responseCode: refusal.responseCode,
        enhancedStatus: parseEnhancedStatus(refusal.response),
      };
    });
    return {
      action: 'delivered',
      reason: refused.size > 0 ? 'partial' : suppressed.size > 0 ? 'partial-suppressed' : 'accepted',
      providerMessageId: receipt.providerMessageId,
      recipients: results,
      messageId,
      dateMs: date.getTime(),
    };
  } catch (error) {
    if (!(error instanceof TransportError)) throw error;
    const classified = classifyOutcome(error.failure);
    const jobSender = classified.action === 'blocked' && refusesJobSender(job, deps, error.failure);
    const outcome = jobSender ? { ...classified, jobSender } : classified;
    // Per-recipient refusals are already in the outcome; list the rest (suppressed ones too) for the record.
    const listed = new Set(outcome.recipients.map((r) => r.recipient.toLowerCase()));
    const rest = suppressedResults.filter((r) => !listed.has(r.recipient.toLowerCase()));
    return { ...outcome, recipients: [...outcome.recipients, ...rest], messageId };
  }
}
