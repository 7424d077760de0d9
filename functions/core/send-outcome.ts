/**
 * What became of one attempt to send a job.
 *
 * - `delivered`: the provider accepted it for at least one recipient. Final. Recipients the SMTP relay refused for
 *   now (4xx at RCPT TO) are `deferred`: a follow-up sends them the same message later (see follow-up.ts).
 * - `retry`: transient (4xx, connection, timeout, unknown). Try again after a backoff.
 * - `throttled`: the provider asked us to slow down. Try again after a backoff.
 * - `blocked`: our own setup is wrong (credentials, unverified sender, paused account, no TLS). Retried, and alarmed:
 *   an operator has to act, and the job should go out once they have.
 * - `rejected`: permanent for this job (5xx for every recipient, invalid job, all recipients suppressed). Final.
 */
const SendActions = {
  delivered: 'delivered',
  retry: 'retry',
  throttled: 'throttled',
  blocked: 'blocked',
  rejected: 'rejected',
} as const;
export type SendAction = (typeof SendActions)[keyof typeof SendActions];

/** Whether an action asks for another attempt. */
export const isRetryable = (action: SendAction): boolean =>
  action === 'retry' || action === 'throttled' || action === 'blocked';

/**
 * One recipient's fate: accepted by the provider, refused by it for good, refused for now while others were accepted
 * (`deferred`: a follow-up sends to it), or never tried because it is suppressed.
 */
export type RecipientResult = {
  recipient: string;
  status: 'accepted' | 'rejected' | 'deferred' | 'suppressed';
  /** SMTP reply code for a refusal. */
  responseCode?: number;
  /** RFC 3463 enhanced status, e.g. `5.1.1`. */
  enhancedStatus?: string;
};

export type SendOutcome = {
  action: SendAction;
  /** Short machine-friendly reason, e.g. `smtp-550` or `ses-MessageRejected`; never contains addresses. */
  reason: string;
  /** The provider's reply text, trimmed; for operators. Addresses in it are masked by the classifier. */
  detail?: string;
  responseCode?: number;
  enhancedStatus?: string;
  /** The provider's id for the accepted message (SMTP queue id or SES MessageId). */
  providerMessageId?: string;
  /** The transport that carried the attempt when the router chose another than the job's (failover). */
  transport?: 'smtp' | 'ses';
  recipients: RecipientResult[];
  /**
   * The attempt failed in a way that may have happened after the provider took the message (a connection lost
   * with no reply, a timeout): a retry may send it twice (with the same Message-ID).
   */
  ambiguous?: boolean;
  /** The Message-ID the attempt's message carried (with the deployment's keys, it holds the report token). */
  messageId?: string;
  /** The Date header of a delivered message, epoch ms (a follow-up's message carries the same). */
  dateMs?: number;
  /**
   * A `blocked` refusal of the sender this job named itself, not the deployment's own: another job's sender may be
   * fine, so it is retried per job and never opens the transport's circuit (a producer cannot stop everyone's mail).
   */
  jobSender?: boolean;
};
