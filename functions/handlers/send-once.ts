import { IdempotencyConfig, makeIdempotent } from '@aws-lambda-powertools/idempotency';
import type { BasePersistenceLayer } from '@aws-lambda-powertools/idempotency/persistence';
import type { Logger } from '@aws-lambda-powertools/logger';
import { MetricUnit, type Metrics } from '@aws-lambda-powertools/metrics';
import type { Context, SQSRecord } from 'aws-lambda';
import { toIdempotencyRecordId } from '#aws/idempotency-store.js';
import { claimPhaseSignal, type AttemptBudget } from '#core/attempt-budget.js';
import { dispatchJob, type DispatchDeps, type FollowUpSend } from '#core/dispatch-job.js';
import { JOB_CONTENT_JMESPATH, listRecipients, type TransportName } from '#core/email-job.js';
import { SendDeferredError } from '#core/errors.js';
import { deferredRecipients, encodeFollowUp } from '#core/follow-up.js';
import { hashAddress, hashRecipient, toMessageId } from '#core/message-id.js';
import { DispatchMetrics } from '#core/metric-names.js';
import { isRetryable, type SendOutcome } from '#core/send-outcome.js';
import type { JobRequeue } from '#core/send-router.js';
import { scopedJobKey } from '#core/tenant.js';
import { tenantOf, type TenantJob } from '#core/tenant-identity.js';
import type { StoredResult } from './dispatch-policy.js';
import { TemplateRefusedError, type TemplateStepResult } from './render-template.js';

/** What the send-once step needs of the dispatch handler's dependencies (see SendEmailDeps). */
type SendOnceDeps = {
  logger: Logger;
  metrics: Metrics;
  dispatch: DispatchDeps;
  persistenceStore: BasePersistenceLayer;
  onIdempotencyTakeover?: (listener: (recordId: string) => void) => void;
  idempotencyTtlSeconds: number;
  /** Where follow-ups go; without it, deferred recipients are not kept for one (see SendEmailDeps). */
  followUps?: JobRequeue;
};

/** What the record's steps before the attempt decided, and what the attempt did; read by the handler afterwards. */
export type AttemptState = {
  outcome?: SendOutcome;
  started?: boolean;
  transport?: TransportName;
  content?: TemplateStepResult;
  /** A follow-up's send: the job's message to some of its recipients (see follow-up.ts). */
  followUp?: FollowUpSend;
  /** Attempts the job has spent with this one (a follow-up's count on from its job's). */
  attempts: number;
  /** The suppression lookup of the job's recipients, begun before the claim so that the two overlap. */
  suppressed?: Promise<Set<string>>;
};

/** One attempt's state, shared with the idempotent section (which sees only its arguments). */
type AttemptRun = {
  budget: AttemptBudget;
  started(): void;
  claimChecked: boolean;
  /** The transport the router chose (the failover's secondary), when not the job's own. */
  transport?: TransportName;
  /** The job as sent (its template rendered) or its template's refusal; the idempotency hash covers the job as produced. */
  content?: TemplateStepResult;
  outcome?: SendOutcome;
  /** A follow-up's send: the job's message to some of its recipients (see follow-up.ts). */
  followUp?: FollowUpSend;
  /** Attempts the job has spent with this one (a follow-up's count on from its job's). */
  attempts: number;
  /** The suppression lookup under way (see AttemptState). */
  suppressed?: Promise<Set<string>>;
};

/**
 * The dispatch handler's send-once step: a job is sent at most once per (tenant-scoped) idempotency key, through
 * Powertools idempotency; a repeat replays the stored outcome. The claim is made by the budget's commit deadline,
 * the send ends by `finishBy`, the completion write by the answer's deadline. Throws for anything retryable, so the
 * key's claim is released.
 */
export function createSendOnce(
  deps: SendOnceDeps,
  step: {
    /** Runs `work` with every AWS call inside it cut at `signal`. */
    bounded: <T>(signal: AbortSignal, work: () => Promise<T>) => Promise<T>;
    /** Feeds each attempt's outcome back to its transport's breaker (route-job's `settle`). */
    settle?: (transport: TransportName, outcome: SendOutcome, attemptStartedAtMs?: number) => Promise<void>;
    dispatchIdOf: (job: TenantJob) => string;
  },
) {
  const { logger, metrics } = deps;
  const idempotencyConfig = new IdempotencyConfig({
    eventKeyJmesPath: 'idempotencyKey',
    payloadValidationJmesPath: JOB_CONTENT_JMESPATH,
    throwOnNoIdempotencyKey: true,
    expiresAfterSeconds: deps.idempotencyTtlSeconds,
    responseHook: (response) => ({ ...(response as object), replayed: true }),
  });

  /** The one place a job is sent. Throws for anything retryable, so the key's claim is released. */
  const sendOnce = makeIdempotent(
    async (job: TenantJob, run: AttemptRun, sourceMessageId: string): Promise<StoredResult> => {
      run.started();
      // Refused only once the key is claimed: a repeat of a job already done replays its outcome without coming here,
      // whatever became of its template since (removed, or at another version).
      if (run.content && 'rejected' in run.content) throw new TemplateRefusedError(run.content.rejected);
      // The rendered job, under this attempt's (tenant-scoped) key: the Message-ID and report token derive from it.
      const content = run.content?.job ? { ...run.content.job, idempotencyKey: job.idempotencyKey } : job;
      // Wall time, as the breaker store writes its close: a failure of an attempt begun before it is stale.
      const startedAtMs = Date.now();
      // The claim and the completion write run until the answer's deadline; the send only until `finishBy`.
      const outcome = await step.bounded(run.budget.finishSignal, () =>
        dispatchJob(
          content,
          deps.dispatch,
          run.budget,
          { inline: run.claimChecked, followUp: run.followUp, suppressed: run.suppressed },
          run.transport,
        ),
      );
      run.outcome = run.transport ? { ...outcome, transport: run.transport } : outcome;
      // Every outcome goes back to the transport's breaker: `blocked` opens it, a success closes it.
      if (step.settle && run.transport) await step.settle(run.transport, outcome, startedAtMs);
      if (isRetryable(outcome.action)) throw new SendDeferredError(run.outcome);
      // Recipients are kept as keyed hashes, so that a report about this job can be checked against them.
      const keyring = await deps.dispatch.reportKeys?.();
      // Recipients refused for now get a follow-up; kept here too, so that a replay of this record can queue it.
      const version = run.content && 'job' in run.content ? run.content.job.template?.version : undefined;
      const followUp = deferredRecipients(listRecipients(job), outcome, run.attempts, version);
      // Plain JSON (no undefined values): the persistence layer marshals it into DynamoDB as it is.
      return JSON.parse(
        JSON.stringify({
          action: outcome.action,
          reason: outcome.reason,
          messageId: outcome.messageId ?? toMessageId(job.idempotencyKey, deps.dispatch.messageIdDomain),
          // Reports about this message (bounces, complaints) are held against this tenant's mail.
          tenant: tenantOf(job),
          providerMessageId: outcome.providerMessageId,
          recipients: outcome.recipients.map((r) => ({
            hash: keyring ? hashRecipient(r.recipient, keyring) : hashAddress(r.recipient),
            status: r.status,
            responseCode: r.responseCode,
          })),
          sourceMessageId,
          // Not personal data: lets a verified report, which names the record only by its digest, find the job.
          key: job.idempotencyKey,
          followUp: followUp && deps.followUps ? encodeFollowUp(followUp) : undefined,
        }),
      ) as StoredResult;
    },
    {
      persistenceStore: deps.persistenceStore,
      config: idempotencyConfig,
      keyPrefix: 'email-job',
      dataIndexArgument: 0,
    },
  );

  // Jobs being claimed right now, by their idempotency record id, for the takeover listener (which runs deep inside
  // the DynamoDB client and is told only the record's id).
  const claiming = new Map<string, { job: TenantJob; attempt: number }>();
  deps.onIdempotencyTakeover?.((recordId) => {
    const current = claiming.get(recordId);
    metrics.addMetric(DispatchMetrics.ambiguous, MetricUnit.Count, 1);
    // The attempt before this one died after claiming the job: it may have sent it (the '.'→'250' window, or a
    // crash before the completion record). This attempt sends again, with the same Message-ID.
    logger.warn('ambiguous attempt: the previous attempt died after claiming this job and may have sent it', {
      dispatchId: current ? step.dispatchIdOf(current.job) : undefined,
      tenant: current ? tenantOf(current.job) : undefined,
      attempt: current?.attempt,
    });
  });

  /**
   * Runs the idempotent send for one job within the budget: a claim not made by the commit deadline is given up,
   * the send ends by `finishBy`, the completion write by the answer's deadline.
   */
  const attempt = async (
    job: TenantJob,
    record: SQSRecord,
    budget: AttemptBudget,
    run: AttemptState,
    claimChecked: boolean,
  ): Promise<StoredResult> => {
    const attemptNumber = run.attempts;
    // Keys are the tenant's own: the record, the Message-ID and the report token all derive from the scoped key.
    const keyed = { ...job, idempotencyKey: scopedJobKey(tenantOf(job), job.idempotencyKey) };
    const recordId = toIdempotencyRecordId('email-job', keyed.idempotencyKey);
    claiming.set(recordId, { job, attempt: attemptNumber });
    const phase = claimPhaseSignal(budget);
    const attemptRun: AttemptRun = {
      budget,
      claimChecked,
      transport: run.transport,
      content: run.content,
      followUp: run.followUp,
      attempts: run.attempts,
      suppressed: run.suppressed,
      started: () => {
        run.started = true;
        phase.started();
      },
    };
    try {
      return await step.bounded(phase.signal, () => sendOnce(keyed, attemptRun, record.messageId));
    } finally {
      claiming.delete(recordId);
      run.outcome = attemptRun.outcome;
    }
  };

  return {
    attempt,
    registerLambdaContext: (context: Context) => idempotencyConfig.registerLambdaContext(context),
  };
}
