/** The CloudWatch namespace and service dimension of every custom metric (Powertools adds `service`). */
export const METRIC_NAMESPACE = 'EmailDispatch';
export const SERVICE_NAME = 'email-dispatch';

/** Dispatch metrics, one per outcome, for the dashboard and alarms. */
export const DispatchMetrics = {
  delivered: 'Delivered',
  rejected: 'Rejected',
  retry: 'Retried',
  throttled: 'Throttled',
  blocked: 'Blocked',
  failed: 'Failed',
  invalid: 'InvalidJobs',
  duplicate: 'Duplicates',
  suppressed: 'SuppressedRecipients',
  eventPublishFailed: 'EventPublishFailures',
  ambiguous: 'AmbiguousAttempts',
  /** Records postponed without an attempt having sent anything (no time left to start, aborted before commit). */
  handedBack: 'HandedBack',
  /** Completion writes that failed after their retries: the key is unprotected once the claim expires. */
  completionNotSaved: 'CompletionNotSaved',
} as const;

/** Mailbox poller metrics. */
export const PollerMetrics = {
  /** One per mailbox polled to the end without error: the heartbeat the staleness alarm watches. */
  polled: 'MailboxPolled',
  /** Seconds between the oldest message handled in a poll arriving and its event being published. */
  lag: 'PollLagSeconds',
  processed: 'InboundProcessed',
  bounces: 'BouncesDetected',
  complaints: 'ComplaintsDetected',
  suppressed: 'AddressesSuppressed',
  pollFailed: 'MailboxPollFailures',
  leaseBusy: 'MailboxLeaseBusy',
} as const;
