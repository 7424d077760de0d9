import type { Logger } from '@aws-lambda-powertools/logger';
import { MetricUnit, type Metrics } from '@aws-lambda-powertools/metrics';
import type { SQSRecord } from 'aws-lambda';
import type { DeadLetterSink, PublishedOutcomes, VisibilityControl } from '#core/dispatch-ports.js';
import { listRecipients, type TransportName } from '#core/email-job.js';
import { RetryLaterError } from '#core/errors.js';
import {
  EventTypes,
  publishAll,
  toOutcomeEvent,
  type DispatchEvent,
  type EmailOutcomeEvent,
  type EventPublisher,
} from '#core/events.js';
import { hashAddress, isRecipientHash, toMessageId, type ReportKeyring } from '#core/message-id.js';
import { lifetimeStartOf } from './route-job.js';
import { DispatchMetrics, TENANT_DIMENSION } from '#core/metric-names.js';
import { DEFAULT_TENANT, scopedJobKey } from '#core/tenant.js';
import { salvageKey } from '#core/parse-job-record.js';
import { TENANT_ATTRIBUTE, tenantOf, type TenantJob } from '#core/tenant-identity.js';
import { toMaskedRecipients, type JobStatusStore, type JobTransition } from '#core/job-status.js';
import { scheduleRetry, type RetryPolicy } from '#core/retry-schedule.js';
import { encodeFollowUp, FOLLOW_UP_ATTRIBUTE, followUpKey, signFollowUp, type FollowUp } from '#core/follow-up.js';
import type { JobRequeue } from '#core/send-router.js';
import type { RecipientResult, SendOutcome } from '#core/send-outcome.js';

/** What the idempotency store keeps for a completed job: no addresses, no content (they are personal data). */
export type StoredResult = {
  action: 'delivered' | 'rejected';
  reason: string;
  messageId: string;
  providerMessageId?: string;
  recipients: Array<{ hash: string; status: string; responseCode?: number }>;
  replayed?: boolean;
  /** The queue message that completed the job: only its return (or its redrive) republishes the event. */
  sourceMessageId?: string;
  /** Set on the record of a message handed back after its event went out (see PublishedOutcomes): none is due. */
  published?: boolean;
  /** The job's tenant: reports about the job suppress for it (complaints) and count against its reputation. */
  tenant?: string;
  /** The job's (scoped) key, so that a verified report can name the job (see job-reports). */
  key?: string;
  /** The follow-up this attempt called for (follow-up.ts's attribute value): a replay of the record queues it again. */
  followUp?: string;
};

/**
 * An outcome event waiting to be published with nine others (or with the batch's last). `idempotencyKey` is set for
 * the outcome of a completed record: if its event cannot be published, the message is handed back once the batch is
 * done, and its return publishes the event.
 */
export type OutboxEntry = { event: DispatchEvent; record: SQSRecord; idempotencyKey?: string };

export type PolicyDeps = {
  logger: Logger;
  metrics: Metrics;
  events: EventPublisher;
  deadLetters: DeadLetterSink;
  visibility: VisibilityControl;
  published?: PublishedOutcomes;
  retry: RetryPolicy;
  /** The queue's maxReceiveCount, when known: the last receive gives up instead of postponing. */
  maxReceiveCount?: number;
  messageIdDomain: string;
  defaultTransport: TransportName;
  /** The report keys the stored recipient hashes were made with (see message-id), to name recipients again. */
  reportKeys?: () => Promise<ReportKeyring | undefined>;
  clock: () => number;
  random: () => number;
  /** A tenant as the value of the outcome metrics' `tenant` dimension; without it they have none. */
  tenantDimension?: (tenant: string) => string;
  /** The job status table: deferrals and outcomes are written to it (see job-status); without it, nothing is. */
  jobStatus?: JobStatusStore;
  /**
   * Where follow-ups go (the jobs queue, delayed; see follow-up.ts). Without it, recipients an SMTP relay refused for
   * now while it took the others are not sent to again: the job's outcome lists them as deferred, and that is all.
   */
  followUps?: JobRequeue;
};

/** A record being sent as a follow-up: what it is for (its attribute) and the key of the job it follows. */
export type FollowUpOf = FollowUp & { jobKey: string };

type Failed = Array<{ event: DispatchEvent; error: string }>;

const recipientHashes = (recipients: RecipientResult[]) =>
  recipients.map((r) => ({ hash: hashAddress(r.recipient), status: r.status, responseCode: r.responseCode }));

/**
 * What happens to a job once its record has been parsed and, perhaps, attempted: the retry schedule, the dead-letter
 * queue, the outcome events and how they are kept when they cannot be published. One place for these decisions, so
 * the per-record flow in the handler reads as a sequence of steps.
 */
export function createDispatchPolicy(deps: PolicyDeps) {
  const { logger, metrics } = deps;
  const dispatchIdOf = (job: { idempotencyKey: string; tenant?: string }) =>
    toMessageId(scopedJobKey(tenantOf(job), job.idempotencyKey), deps.messageIdDomain);
  /** The key a job's records are stored under (its tenant's scope). */
  const storedKeyOf = (job: TenantJob) => scopedJobKey(tenantOf(job), job.idempotencyKey);
  /** A record's tenant attribute: checked by the tenant step before anything else, so the tenant it was given. */
  const recordTenant = (record: SQSRecord) => record.messageAttributes?.[TENANT_ATTRIBUTE]?.stringValue || undefined;
  /** The job key of a record not read as a job, if its body names one, and the dispatch id that goes with it. */
  const keyOfRecord = (record: SQSRecord) => {
    const idempotencyKey = salvageKey(record.body);
    const tenant = recordTenant(record) ?? DEFAULT_TENANT;
    return { idempotencyKey, tenant, dispatchId: idempotencyKey && dispatchIdOf({ idempotencyKey, tenant }) };
  };
  // Per-tenant counts since the last flush: one EMF document per tenant and metric per batch, not one per job.
  const tenantCounts = new Map<string, Map<string, number>>();
  /** Counts an outcome metric, and once more (at the end of the batch) with the tenant as a dimension. */
  const count = (metric: string, tenant: string | undefined, value = 1) => {
    metrics.addMetric(metric, MetricUnit.Count, value);
    if (!deps.tenantDimension || tenant === undefined) return;
    const dimension = deps.tenantDimension(tenant);
    const counts = tenantCounts.get(dimension) ?? new Map<string, number>();
    counts.set(metric, (counts.get(metric) ?? 0) + value);
    tenantCounts.set(dimension, counts);
  };
  /** Writes a job's status; a failed write is logged, never fails the record (the status is a view, not the truth). */
  const recordStatus = async (job: { idempotencyKey: string; tenant?: string }, transition: JobTransition) => {
    // The tenant the dispatcher resolved for the record names the job: its status is under the scoped key.
    const ref = { tenant: tenantOf(job), idempotencyKey: job.idempotencyKey };
    await deps.jobStatus?.record(ref, transition).catch((error: unknown) => {
      logger.warn('job status not written', {
        dispatchId: dispatchIdOf(ref),
        tenant: ref.tenant,
        error: error as Error,
      });
    });
  };
  const factsOf = (job: TenantJob, attempt: number, outcome?: SendOutcome) => ({
    idempotencyKey: job.idempotencyKey,
    tenant: tenantOf(job),
    messageId: outcome?.messageId ?? dispatchIdOf(job),
    transport: outcome?.transport ?? job.transport ?? deps.defaultTransport,
    attempts: attempt,
    tags: job.tags,
  });

  const logOutcome = (
    level: 'info' | 'warn',
    message: string,
    job: TenantJob,
    outcome: SendOutcome,
    attempt: number,
    retryInSeconds?: number,
  ) =>
    logger[level](message, {
      tenant: tenantOf(job),
      retryInSeconds,
      ambiguous: outcome.ambiguous,
      dispatchId: dispatchIdOf(job),
      action: outcome.action,
      reason: outcome.reason,
      detail: outcome.detail,
      responseCode: outcome.responseCode,
      enhancedStatus: outcome.enhancedStatus,
      providerMessageId: outcome.providerMessageId,
      attempt,
      recipients:
        outcome.recipients.length > 0
          ? recipientHashes(outcome.recipients)
          : listRecipients(job).map((r) => ({ hash: hashAddress(r) })),
    });

  /** A follow-up's attribute, signed over its job's tenant-scoped key; undefined without report keys. */
  const signedFollowUp = async (of: FollowUpOf, tenant: string) => {
    const keyring = await deps.reportKeys?.();
    return keyring ? signFollowUp(of, scopedJobKey(tenant, of.jobKey), keyring) : undefined;
  };

  /** Gives a job up: the dead-letter queue with its reason, an email.failed event, a log line, a metric. */
  const giveUp = async (
    outbox: OutboxEntry[],
    record: SQSRecord,
    job: TenantJob | undefined,
    outcome: SendOutcome,
    attempt: number,
    followUp?: FollowUpOf,
  ) => {
    await deps.deadLetters.send(record.body, {
      // A follow-up given up stays one, signed as queued: a redrive sends to its recipients only. Without report keys
      // it is left unsigned, naming its recipients for an operator; a redrive of it is refused, as any unsigned one.
      followUp: followUp
        ? ((await signedFollowUp(followUp, tenantOf(job ?? {}))) ?? encodeFollowUp(followUp))
        : record.messageAttributes?.[FOLLOW_UP_ATTRIBUTE]?.stringValue,
      failureClass: 'exhausted',
      failureReason: `${outcome.action}:${outcome.reason}`,
      failureDetail: outcome.detail ?? '',
      sourceMessageId: record.messageId,
      idempotencyKey: job?.idempotencyKey ?? keyOfRecord(record).idempotencyKey,
      tenant: job ? tenantOf(job) : recordTenant(record),
    });
    count(DispatchMetrics.failed, job ? tenantOf(job) : recordTenant(record));
    if (!job) {
      // Given up before it was read (no time left to start, on its last receive): its producer still hears of it.
      const { idempotencyKey, tenant, dispatchId } = keyOfRecord(record);
      logger.warn('job failed: retry lifetime spent', {
        sqsMessageId: record.messageId,
        dispatchId,
        reason: outcome.reason,
        attempt,
      });
      if (idempotencyKey)
        outbox.push({
          event: toOutcomeEvent('failed', { idempotencyKey, tenant, attempts: attempt }, outcome),
          record,
        });
      return;
    }
    logOutcome('warn', 'job failed: retry lifetime spent', job, outcome, attempt);
    outbox.push({ event: toOutcomeEvent('failed', factsOf(job, attempt, outcome), outcome), record });
  };

  /**
   * When the record's next receive is due, on the retry schedule; none once the lifetime is spent or this was the
   * last receive SQS allows (it would move the job to the dead-letter queue without saying why).
   */
  const nextReceive = (record: SQSRecord, spent: number) => {
    const nowMs = deps.clock();
    // A record redriven from the dead-letter queue starts the schedule again, a follow-up's too (the attempts its job
    // had spent still number its key, not its receives).
    const redriven = record.messageAttributes?.redrivenFrom !== undefined;
    const attempt = redriven ? Number(record.attributes.ApproximateReceiveCount) || 1 : spent;
    const decision = scheduleRetry(
      deps.retry,
      // A job put back by an open circuit carries where its lifetime started (see route-job).
      { attempt, firstEnqueuedAtMs: lifetimeStartOf(record, nowMs), nowMs },
      deps.random(),
    );
    if (decision.retry && deps.maxReceiveCount !== undefined && attempt >= deps.maxReceiveCount)
      return { retry: false as const };
    return decision;
  };

  /**
   * Postpones a record on the retry schedule (its visibility timeout) and reports it failed, or gives the job up
   * once the lifetime is spent. Every receive that does not end a job passes here, so receives follow the schedule
   * that maxReceiveCount is derived from.
   */
  const postpone = async (
    outbox: OutboxEntry[],
    record: SQSRecord,
    job: TenantJob | undefined,
    outcome: SendOutcome,
    attempt: number,
    message: string,
    metric: string,
  ): Promise<void> => {
    const decision = nextReceive(record, attempt);
    if (!decision.retry) return giveUp(outbox, record, job, outcome, attempt);
    count(metric, job && tenantOf(job));
    if (outcome.ambiguous) metrics.addMetric(DispatchMetrics.ambiguous, MetricUnit.Count, 1);
    if (job) logOutcome('warn', message, job, outcome, attempt, decision.delaySeconds);
    else
      logger.warn(message, {
        sqsMessageId: record.messageId,
        reason: outcome.reason,
        attempt,
        retryInSeconds: decision.delaySeconds,
      });
    const { reason, detail } = outcome;
    const nextAttemptAtMs = deps.clock() + decision.delaySeconds * 1000;
    // A copy that found the send in progress elsewhere leaves the job's status to that attempt: a deferral written
    // over its claim would let a cancel through while it sends.
    const owned = reason !== 'in-progress-elsewhere';
    await Promise.all([
      job && owned && recordStatus(job, { state: 'deferred', attempts: attempt, reason, detail, nextAttemptAtMs }),
      deps.visibility.postpone(record, decision.delaySeconds).catch((error: unknown) => {
        logger.error('could not postpone record; it returns after the queue visibility timeout', {
          sqsMessageId: record.messageId,
          dispatchId: job && dispatchIdOf(job),
          error: error as Error,
        });
      }),
    ]);
    throw new RetryLaterError(`${outcome.action}: ${outcome.reason}`, decision.delaySeconds);
  };

  /** Every outcome event of the batch is also its job's final status (recipients masked). */
  const recordOutcome = async (event: DispatchEvent) => {
    const kind = (['delivered', 'rejected', 'failed'] as const).find((k) => event.type === EventTypes[k]);
    if (!kind || deps.jobStatus === undefined) return;
    const e = event as EmailOutcomeEvent;
    const recipients = toMaskedRecipients(e.recipients);
    const { reason, detail, messageId, providerMessageId, transport } = e;
    const outcome = { reason, detail, messageId, providerMessageId, transport, recipients };
    await recordStatus(e, { state: kind, attempts: e.attempts, outcome });
  };

  return {
    logOutcome,
    dispatchIdOf,

    /** Publishes the per-tenant copies of the outcome metrics counted since the last call. */
    flushTenantMetrics(): void {
      for (const [tenant, counts] of tenantCounts) {
        for (const [metric, value] of counts) {
          const single = metrics.singleMetric();
          // Powertools gives a single metric a console of its own (stdout): it writes where this instance does,
          // so that the twin's and the tests' stand-ins for CloudWatch see it too.
          Object.assign(single, { console: (metrics as unknown as { console: unknown }).console });
          single.addDimension(TENANT_DIMENSION, tenant);
          single.addMetric(metric, MetricUnit.Count, value);
        }
      }
      tenantCounts.clear();
    },

    /**
     * Marks on the records of these (stored) keys, whose messages go back to the queue, whether their outcome events
     * went out (see PublishedOutcomes). A mark not written only means an event may be published once more.
     */
    async markPublished(marks: Array<{ key: string; published: boolean }>): Promise<void> {
      await Promise.all(
        marks.map(({ key, published }) =>
          deps.published?.mark(key, published).catch((error: Error) => {
            logger.warn('outcome publication not marked on its record', {
              dispatchId: dispatchIdOf({ idempotencyKey: key }),
              published,
              error,
            });
          }),
        ),
      );
    },

    /**
     * A record whose job is done but whose outcome event is still unpublished: postponed on the retry schedule, so
     * its return publishes the event. Resolves false once no receive is left: the job is dead-lettered with that
     * reason instead (a redrive replays it, which publishes the event).
     */
    async handBackUnpublished(record: SQSRecord): Promise<boolean> {
      const attempt = Number(record.attributes.ApproximateReceiveCount) || 1;
      const decision = nextReceive(record, attempt);
      const { idempotencyKey, dispatchId } = keyOfRecord(record);
      if (decision.retry) {
        await deps.visibility.postpone(record, decision.delaySeconds).catch((error: unknown) => {
          logger.error('could not postpone record; it returns after the queue visibility timeout', {
            sqsMessageId: record.messageId,
            dispatchId,
            error: error as Error,
          });
        });
        return true;
      }
      logger.error('outcome event still unpublished on the last receive; dead-lettered for a redrive to publish it', {
        sqsMessageId: record.messageId,
        dispatchId,
      });
      await deps.deadLetters
        .send(record.body, {
          failureClass: 'exhausted',
          failureReason: 'outcome-unpublished',
          failureDetail: 'the job was done; its outcome event could not be published (a redrive publishes it)',
          sourceMessageId: record.messageId,
          idempotencyKey,
          tenant: recordTenant(record),
        })
        .catch((error: unknown) =>
          logger.error('could not dead-letter a job with an unpublished outcome', {
            sqsMessageId: record.messageId,
            dispatchId,
            error: error as Error,
          }),
        );
      return false;
    },

    /**
     * A job that will never be sent: dead-letter queue with its reason, a rejected event, a log line, a metric.
     * `tenant` is the tenant the record was checked to be (or its sender's own, for a refused claim): the dead
     * letter carries it, so a redrive re-sends it as that tenant and no other.
     */
    async rejectInvalid(
      outbox: OutboxEntry[],
      record: SQSRecord,
      reason: string,
      detail: string,
      idempotencyKey?: string,
      tenant?: string,
    ): Promise<void> {
      await deps.deadLetters.send(record.body, {
        failureClass: 'invalid',
        failureReason: reason,
        failureDetail: detail,
        sourceMessageId: record.messageId,
        idempotencyKey,
        tenant,
      });
      count(DispatchMetrics.invalid, tenant);
      logger.warn('job rejected as invalid', { sqsMessageId: record.messageId, tenant, reason, detail });
      if (idempotencyKey)
        outbox.push({
          event: toOutcomeEvent('rejected', { idempotencyKey, tenant }, { reason, detail, recipients: [] }),
          record,
        });
    },

    /** A retryable outcome of an attempt: back off through the visibility timeout, or give up. */
    deferOrGiveUp(
      outbox: OutboxEntry[],
      record: SQSRecord,
      job: TenantJob,
      outcome: SendOutcome,
      attempt: number,
    ): Promise<void> {
      const message = outcome.ambiguous
        ? 'job deferred; ambiguous attempt: the provider may already have it'
        : 'job deferred';
      return postpone(
        outbox,
        record,
        job,
        outcome,
        attempt,
        message,
        DispatchMetrics[outcome.action as 'retry' | 'throttled' | 'blocked'],
      );
    },

    /**
     * The one place a record is postponed without an attempt having sent anything: too little time left to start,
     * an attempt aborted before its commit point, a provider known to be unavailable. Same schedule as retries.
     * `job` is undefined when the record was not read yet.
     */
    postponeWithoutAttempt(
      outbox: OutboxEntry[],
      record: SQSRecord,
      job: TenantJob | undefined,
      reason: string,
      attempt: number,
      detail?: string,
    ): Promise<void> {
      return postpone(
        outbox,
        record,
        job,
        { action: 'retry', reason, detail, recipients: [] },
        attempt,
        'job handed back without an attempt',
        DispatchMetrics.handedBack,
      );
    },

    /**
     * A job held on the queue without an attempt (see job-hold) until `untilMs`: its status says deferred, with the
     * reason and when it is looked at next, its attempts as they were. The record itself is done (the hold re-sent
     * it).
     */
    held(job: TenantJob, reason: string, untilMs: number, detail?: string): Promise<void> {
      return recordStatus(job, { state: 'deferred', reason, detail, nextAttemptAtMs: untilMs });
    },

    /**
     * A job this attempt delivered or had rejected: metrics, a log line, its outcome event. `recorded` says whether
     * the completion record was written: only then can the event be kept on it.
     */
    completed(
      outbox: OutboxEntry[],
      record: SQSRecord,
      job: TenantJob,
      outcome: SendOutcome,
      action: StoredResult['action'],
      attempt: number,
      recorded = true,
    ): void {
      const suppressed = outcome.recipients.filter((r) => r.status === 'suppressed').length;
      if (suppressed > 0) count(DispatchMetrics.suppressed, tenantOf(job), suppressed);
      count(DispatchMetrics[action], tenantOf(job));
      logOutcome(action === 'delivered' ? 'info' : 'warn', `job ${action}`, job, outcome, attempt);
      outbox.push({
        event: toOutcomeEvent(action, factsOf(job, attempt, outcome), outcome),
        record,
        idempotencyKey: recorded ? storedKeyOf(job) : undefined,
      });
    },

    /**
     * Queues the follow-up a completed attempt calls for (its deferred recipients; see follow-up.ts): the job's body
     * again, delayed on the retry schedule, its lifetime and attempts spent as a retry's would be. Once they are
     * spent, the deferred recipients end failed here: dead-lettered as a follow-up (a redrive sends to them only),
     * with an email.failed event under the follow-up's key. A requeue that fails throws: the record returns, and its
     * replay queues the follow-up again (the follow-up's own key makes a second copy send nothing); with `final`
     * (the record will not return: its completion record was not saved), it ends failed, dead-lettered as a follow-up.
     */
    async followUp(
      outbox: OutboxEntry[],
      record: SQSRecord,
      job: TenantJob,
      of: FollowUpOf,
      outcome: SendOutcome,
      final = false,
    ): Promise<void> {
      if (!deps.followUps) return;
      const followUpJob = { ...job, idempotencyKey: followUpKey(of.jobKey, of.attempts) };
      const deferred = outcome.recipients.filter((r) => r.status === 'deferred');
      const decision = nextReceive(record, of.attempts);
      const attribute = await signedFollowUp(of, tenantOf(job));
      if (attribute === undefined) {
        // Unsigned, it would be refused on arrival: its recipients end failed at once, where an operator sees it.
        const detail = `${deferred.length} recipient(s) refused for now; no follow-up: no report keys to sign it`;
        const failed = { action: 'retry' as const, reason: 'follow-up-not-signed', detail, recipients: deferred };
        return giveUp(outbox, record, followUpJob, failed, of.attempts, of);
      }
      if (!decision.retry) {
        const codes = [...new Set(deferred.map((r) => r.responseCode ?? 'no code'))].join(', ');
        const detail = `${deferred.length} recipient(s) refused for now (${codes}); no attempt or lifetime left`;
        const failed = { action: 'retry' as const, reason: 'recipients-deferred', detail, recipients: deferred };
        return giveUp(outbox, record, followUpJob, failed, of.attempts, of);
      }
      const lifetimeStartMs = lifetimeStartOf(record, deps.clock());
      const { delaySeconds } = decision;
      const requeued = deps.followUps.requeue(record.body, {
        delaySeconds,
        lifetimeStartMs,
        tenant: tenantOf(job),
        attributes: { [FOLLOW_UP_ATTRIBUTE]: attribute },
      });
      if (final) {
        const failure = await requeued.then(
          () => undefined,
          (error: Error) => error,
        );
        if (failure) {
          const detail = `${deferred.length} recipient(s) refused for now; not queued: ${failure.message}`;
          const failed = { action: 'retry' as const, reason: 'follow-up-not-queued', detail, recipients: deferred };
          return giveUp(outbox, record, followUpJob, failed, of.attempts, of);
        }
      } else await requeued;
      count(DispatchMetrics.followUp, tenantOf(job));
      logger.info('recipients deferred: follow-up queued', {
        dispatchId: dispatchIdOf(job),
        followUpId: dispatchIdOf(followUpJob),
        tenant: tenantOf(job),
        recipients: recipientHashes(deferred),
        attempt: of.attempts,
        retryInSeconds: delaySeconds,
      });
    },

    /**
     * A key already done: nothing is sent. The return of the message that completed it (handed back with its outcome
     * event unpublished, or back after its invocation died), or its redrive, publishes the event, rebuilt from the
     * job, unless the record says it went out (a message handed back for another reason; see PublishedOutcomes). A
     * first publication is otherwise not recorded (a write a job, for a rare repeat), so this may be the second.
     * Copies under other message ids (a producer's repeat) publish nothing: the original does.
     */
    async replayed(
      outbox: OutboxEntry[],
      record: SQSRecord,
      job: TenantJob,
      stored: StoredResult,
      attempt: number,
    ): Promise<void> {
      // A job redriven from the dead-letter queue comes as a new message: an operator's replay, which publishes too.
      const redriven = record.messageAttributes?.redrivenFrom !== undefined;
      const republish = stored.published !== true && (stored.sourceMessageId === record.messageId || redriven);
      metrics.addMetric(DispatchMetrics.duplicate, MetricUnit.Count, 1);
      const facts = { dispatchId: stored.messageId, tenant: tenantOf(job), action: stored.action, republish };
      logger.info('duplicate job skipped', facts);
      if (!republish) return;
      // The store keeps recipients only as hashes: the job names them again.
      const keyring = await deps.reportKeys?.();
      const recipients: RecipientResult[] = listRecipients(job).map((recipient) => {
        const bare = hashAddress(recipient);
        const kept = stored.recipients.find(
          (r) => r.hash === bare || (keyring !== undefined && isRecipientHash(recipient, r.hash, keyring)),
        );
        return {
          recipient,
          status: (kept?.status ?? 'accepted') as RecipientResult['status'],
          responseCode: kept?.responseCode,
        };
      });
      const outcome = {
        action: stored.action,
        reason: stored.reason,
        providerMessageId: stored.providerMessageId,
        recipients,
      };
      outbox.push({
        event: toOutcomeEvent(stored.action, factsOf(job, attempt, outcome), outcome),
        record,
        idempotencyKey: storedKeyOf(job),
      });
    },

    /**
     * Publishes the batch's events (PublishBatch) within `bounded`'s deadline, retrying the failed ones once (if
     * time is left), and writes each job's final status meanwhile. Resolves with the records whose outcome is still
     * unpublished: handed back, their return publishes it. The sends already happened: nothing here sends again.
     */
    async publish(
      outbox: OutboxEntry[],
      bounded: (publish: () => Promise<Failed>) => Promise<Failed>,
    ): Promise<SQSRecord[]> {
      if (outbox.length === 0) return [];
      // The statuses are a view of the outcomes, not of their publication: written beside it, never failing.
      const recorded = Promise.all(outbox.map((e) => recordOutcome(e.event)));
      const attempt = (events: DispatchEvent[]) =>
        bounded(() => publishAll(deps.events, events)).catch((error: Error) =>
          events.map((event) => ({ event, error: error.message })),
        );
      let failed = await attempt(outbox.map((e) => e.event));
      if (failed.length > 0) failed = await attempt(failed.map((f) => f.event));
      const unpublished = new Map(failed.map((f) => [f.event, f.error]));
      await recorded;
      const handBack: SQSRecord[] = [];
      for (const entry of outbox) {
        const error = unpublished.get(entry.event);
        if (error === undefined) continue;
        metrics.addMetric(DispatchMetrics.eventPublishFailed, MetricUnit.Count, 1);
        const dispatchId = entry.idempotencyKey ? dispatchIdOf({ idempotencyKey: entry.idempotencyKey }) : undefined;
        const details = {
          eventType: entry.event.type,
          eventId: entry.event.id,
          dispatchId,
          sqsMessageId: entry.record.messageId,
          error,
        };
        if (!entry.idempotencyKey) {
          // Invalid and given-up jobs are on the dead-letter queue with their reason: the lasting record of them. A job
          // whose completion record is missing is not handed back: its return could send it again.
          logger.error('outcome event not published', details);
          continue;
        }
        logger.warn('outcome event not published; its message handed back, and its return publishes it', details);
        handBack.push(entry.record);
      }
      return handBack;
    },
  };
}
