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
  /** Jobs put back without an attempt because their transport's circuit is open. */
  postponed: 'PostponedJobs',
  /** Emitted while a transport's circuit is open (each postponed job): the alarm's signal. */
  circuitOpen: 'CircuitOpen',
  /** Jobs sent over the failover's secondary transport. */
  sentOnFallback: 'SentOnFallback',
  /** Records postponed without an attempt having sent anything (no time left to start, aborted before commit). */
  handedBack: 'HandedBack',
  /** Completion writes that failed after their retries: the key is unprotected once the claim expires. */
  completionNotSaved: 'CompletionNotSaved',
  /** Messages refused for their tenant: a sender not granted, or a tenant attribute its sender may not claim. */
  tenantRefused: 'TenantRefused',
  /** Hops of scheduled jobs put back on the queue until their sendAt. */
  held: 'HeldJobs',
  /** Jobs dropped unsent because their producer cancelled them. */
  cancelled: 'CancelledJobs',
  /** Follow-ups queued for recipients an SMTP relay refused for now while it took the others (see follow-up.ts). */
  followUp: 'FollowUps',
} as const;

/** The dimension (beside `service`) of the per-tenant copies of the outcome metrics: a configured tenant or `other`. */
export const TENANT_DIMENSION = 'tenant';

/** The dimension (beside `service`) of the poller's per-mailbox metrics; its value is the mailbox's id. */
export const MAILBOX_DIMENSION = 'Mailbox';

/** Mailbox poller metrics. */
export const PollerMetrics = {
  /** One per mailbox polled to the end without error, per mailbox (`Mailbox`): the heartbeat its alarm watches. */
  polled: 'MailboxPolled',
  /** Seconds between the oldest message handled in a poll arriving and its event being published, per mailbox. */
  lag: 'PollLagSeconds',
  /** Messages published as `inbound.unparsable` (kept raw in S3). */
  unparsable: 'InboundUnparsable',
  /** Runs that stopped because another run took their mailbox's lease over. */
  leaseLost: 'MailboxLeaseLost',
  processed: 'InboundProcessed',
  bounces: 'BouncesDetected',
  delays: 'DelaysDetected',
  /**
   * Bounce and delay reports with a recipient failed for a sender-side reason (sender-problem, policy-or-blocked,
   * rate-limited, spam-or-content): our setup or reputation needs attention. Watched as a share of all reports.
   */
  senderSideBounces: 'SenderSideBounces',
  complaints: 'ComplaintsDetected',
  suppressed: 'AddressesSuppressed',
  pollFailed: 'MailboxPollFailures',
  /** A mailbox whose sign-in our setup blocks: token endpoint refused the client or grant, or the login was refused. */
  signInBlocked: 'MailboxSignInBlocked',
  leaseBusy: 'MailboxLeaseBusy',
} as const;

/** Suppression list metrics, counted wherever entries are added (poller, SES events). */
export const SuppressionMetrics = {
  /** Addresses newly suppressed (not repeats of a live entry): a spike means forged or misread reports. */
  added: 'SuppressionsAdded',
} as const;

/** Sign-in credentials, counted by whichever function signs in (dispatch over SMTP, the poller). */
export const CredentialMetrics = {
  /**
   * A refresh token the provider rotated could not be written back to its secret. This container keeps using the new
   * one, but a new container reads the old one from the secret, which the provider may refuse: sign-in then stops.
   */
  refreshTokenNotSaved: 'RefreshTokenNotSaved',
} as const;

/** Report verification and the SES event consumer. */
export const ReportMetrics = {
  /** Bounces and complaints that did not verify (forged, or about mail we did not send): published, never acted on. */
  unverified: 'UnverifiedReports',
  /** SES events handled, and those refused for their origin (another topic or account). */
  sesEvents: 'SesEventsHandled',
  sesEventsRefused: 'SesEventsRefused',
} as const;

/** The per-tenant reputation guardrail. */
export const ReputationMetrics = {
  /** Tenants newly paused (by the guardrail or an operator). */
  tenantsPaused: 'TenantsPaused',
  /** Jobs of a paused tenant put back without an attempt: emitted as long as a paused tenant has mail waiting. */
  heldJobs: 'TenantJobsHeld',
  /** Flushes of the per-tenant counters that failed (kept for the next flush in the instance). */
  countersNotWritten: 'ReputationCountersNotWritten',
} as const;
