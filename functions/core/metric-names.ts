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

/** Report verification and the SES event consumer. */
export const ReportMetrics = {
  /** Bounces and complaints that did not verify (forged, or about mail we did not send): published, never acted on. */
  unverified: 'UnverifiedReports',
  /** SES events handled, and those refused for their origin (another topic or account). */
  sesEvents: 'SesEventsHandled',
  sesEventsRefused: 'SesEventsRefused',
} as const;
