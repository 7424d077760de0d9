import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { IdempotencyConfig, makeIdempotent } from '@aws-lambda-powertools/idempotency';
import type { BasePersistenceLayer } from '@aws-lambda-powertools/idempotency/persistence';
import type { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { MetricUnit, type Metrics } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import type { Tracer } from '@aws-lambda-powertools/tracer';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import middy from '@middy/core';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { toIdempotencyRecordId } from '#aws/idempotency-store.js';
import { dispatchJob, type DispatchDeps } from '#core/dispatch-job.js';
import { JOB_CONTENT_JMESPATH, listRecipients, type EmailJob } from '#core/email-job.js';
import { RetryLaterError, SendDeferredError } from '#core/errors.js';
import { publishAll, toOutcomeEvent, type DispatchEvent, type EventPublisher } from '#core/events.js';
import { hashAddress, hashRecipient, toMessageId } from '#core/message-id.js';
import { parseJobRecord } from '#core/parse-job-record.js';
import { scheduleRetry, type RetryPolicy } from '#core/retry-schedule.js';
import { DispatchMetrics } from '#core/metric-names.js';
import { isRetryable, type SendOutcome } from '#core/send-outcome.js';
import type { TransportName } from '#core/email-job.js';
import { createRouteStep, lifetimeStartOf, type RoutingDeps } from './route-job.js';

/** Where a job that will never be sent goes, with its reason as message attributes: the dead-letter queue. */
export interface DeadLetterSink {
  send(body: string, reason: { failureClass: 'invalid' | 'exhausted'; failureReason: string; failureDetail: string; sourceMessageId: string; idempotencyKey?: string }): Promise<void>;
}

/** Postpones a received message: the backoff of the retry schedule, through its visibility timeout. */
export interface VisibilityControl {
  postpone(record: SQSRecord, delaySeconds: number): Promise<void>;
}

/** Claim check: a job body stored in S3 with only a reference on the queue. */
export type ClaimCheckLoader = (reference: { bucket: string; key: string }) => Promise<string>;

export type SendEmailDeps = {
  logger: Logger;
  metrics: Metrics;
  tracer?: Tracer;
  dispatch: DispatchDeps;
  persistenceStore: BasePersistenceLayer;
  /** Registers a listener for attempts that take over a dead attempt's in-progress record (see idempotency-store). */
  onIdempotencyTakeover?: (listener: (recordId: string) => void) => void;
  /** How long a key is remembered after its job completed, seconds. */
  idempotencyTtlSeconds: number;
  events: EventPublisher;
  deadLetters: DeadLetterSink;
  visibility: VisibilityControl;
  retry: RetryPolicy;
  /** Records not finished this close to the Lambda deadline are handed back to the queue. */
  deadlineMarginMs: number;
  loadClaimCheck?: ClaimCheckLoader;
  /** Circuit breakers and failover; without them every job goes straight to its transport. */
  routing?: RoutingDeps;
  clock?: () => number;
  random?: () => number;
};

/** What the idempotency store keeps for a completed job: no addresses, no content (they are personal data). */
type StoredResult = {
  action: 'delivered' | 'rejected';
  reason: string;
  messageId: string;
  providerMessageId?: string;
  recipients: Array<{ hash: string; status: string; responseCode?: number }>;
  replayed?: boolean;
};

/**
 * Builds the SQS handler of the dispatch function: each record is parsed, sent at most once per idempotency key,
 * and ends delivered, rejected, retried later (through its visibility timeout) or given up — never silently dropped.
 */
export function createSendEmailHandler(deps: SendEmailDeps) {
  const { logger, metrics } = deps;
  const clock = deps.clock ?? Date.now;
  const random = deps.random ?? Math.random;
  const routing = deps.routing ? createRouteStep(deps.routing, deps, clock, random) : undefined;

  const idempotencyConfig = new IdempotencyConfig({
    eventKeyJmesPath: 'idempotencyKey',
    payloadValidationJmesPath: JOB_CONTENT_JMESPATH,
    throwOnNoIdempotencyKey: true,
    expiresAfterSeconds: deps.idempotencyTtlSeconds,
    responseHook: (response) => ({ ...(response as object), replayed: true }),
  });

  /** The one place a job is sent. Throws SendDeferredError for retryable outcomes so the key is released. */
  const sendOnce = makeIdempotent(
    async (job: EmailJob, run: { outcome?: SendOutcome; transport?: TransportName }): Promise<StoredResult> => {
      const outcome = await dispatchJob(job, deps.dispatch, run.transport);
      run.outcome = outcome;
      if (routing && run.transport) await routing.settle(run.transport, outcome);
      if (isRetryable(outcome.action)) throw new SendDeferredError(outcome);
      // Recipients are kept as keyed hashes: a report is checked against them, and they cannot be reversed by a list.
      const keyring = await deps.dispatch.reportKeys?.();
      // Plain JSON (no undefined values): the persistence layer marshals it into DynamoDB as it is.
      return JSON.parse(
        JSON.stringify({
          action: outcome.action,
          reason: outcome.reason,
          messageId: outcome.messageId ?? toMessageId(job.idempotencyKey, deps.dispatch.messageIdDomain),
          providerMessageId: outcome.providerMessageId,
          recipients: outcome.recipients.map((r) => ({
            hash: keyring ? hashRecipient(r.recipient, keyring) : hashAddress(r.recipient),
            status: r.status,
            responseCode: r.responseCode,
          })),
        }),
      ) as StoredResult;
    },
    { persistenceStore: deps.persistenceStore, config: idempotencyConfig, keyPrefix: 'email-job', dataIndexArgument: 0 },
  );

  // Jobs being claimed right now, by their idempotency record id, for the takeover listener (which runs deep inside
  // the DynamoDB client and is told only the record's id).
  const claiming = new Map<string, { job: EmailJob; attempt: number }>();
  deps.onIdempotencyTakeover?.((recordId) => {
    const current = claiming.get(recordId);
    metrics.addMetric(DispatchMetrics.ambiguous, MetricUnit.Count, 1);
    // The attempt before this one died after claiming the job: it may have sent it (the '.'→'250' window, or a
    // crash before the completion record). This attempt sends again, with the same Message-ID.
    logger.warn('ambiguous attempt: the previous attempt died after claiming this job and may have sent it', {
      dispatchId: current ? toMessageId(current.job.idempotencyKey, deps.dispatch.messageIdDomain) : undefined,
      attempt: current?.attempt,
    });
  });

  // Outcome events wait in the invocation's outbox and go out together when the batch is done (PublishBatch).
  const flush = async (events: DispatchEvent[]) => {
    const failed = await publishAll(deps.events, events);
    for (const { event, error } of failed) {
      // The sends already happened; failing the records now would only send them again. Count it and alarm instead.
      metrics.addMetric(DispatchMetrics.eventPublishFailed, MetricUnit.Count, 1);
      logger.error('outcome event not published', { eventType: event.type, eventId: event.id, error });
    }
  };

  const logOutcome = (level: 'info' | 'warn', message: string, job: EmailJob, outcome: SendOutcome, attempt: number, retryInSeconds?: number) =>
    logger[level](message, {
      retryInSeconds,
      ambiguous: outcome.ambiguous,
      dispatchId: toMessageId(job.idempotencyKey, deps.dispatch.messageIdDomain),
      action: outcome.action,
      reason: outcome.reason,
      detail: outcome.detail,
      responseCode: outcome.responseCode,
      enhancedStatus: outcome.enhancedStatus,
      providerMessageId: outcome.providerMessageId,
      attempt,
      recipients: outcome.recipients.length > 0 ? outcome.recipients.map((r) => ({ hash: hashAddress(r.recipient), status: r.status, responseCode: r.responseCode })) : listRecipients(job).map((r) => ({ hash: hashAddress(r) })),
    });

  /** A job that will never be sent: dead-letter queue with its reason, a rejected event, a log line, a metric. */
  const rejectInvalid = async (outbox: DispatchEvent[], record: SQSRecord, reason: string, detail: string, idempotencyKey?: string) => {
    await deps.deadLetters.send(record.body, { failureClass: 'invalid', failureReason: reason, failureDetail: detail, sourceMessageId: record.messageId, idempotencyKey });
    metrics.addMetric(DispatchMetrics.invalid, MetricUnit.Count, 1);
    logger.warn('job rejected as invalid', { sqsMessageId: record.messageId, reason, detail });
    if (idempotencyKey) outbox.push(toOutcomeEvent('rejected', { idempotencyKey }, { reason, detail, recipients: [] }));
  };

  /** A retryable outcome: back off through the visibility timeout, or give up once the lifetime is spent. */
  const deferOrGiveUp = async (outbox: DispatchEvent[], record: SQSRecord, job: EmailJob, outcome: SendOutcome, attempt: number): Promise<never | void> => {
    const firstEnqueuedAtMs = lifetimeStartOf(record, clock());
    const decision = scheduleRetry(deps.retry, { attempt, firstEnqueuedAtMs, nowMs: clock() }, random());
    if (!decision.retry) {
      await deps.deadLetters.send(record.body, {
        failureClass: 'exhausted',
        failureReason: `${outcome.action}:${outcome.reason}`,
        failureDetail: outcome.detail ?? '',
        sourceMessageId: record.messageId,
        idempotencyKey: job.idempotencyKey,
      });
      metrics.addMetric(DispatchMetrics.failed, MetricUnit.Count, 1);
      logOutcome('warn', 'job failed: retry lifetime spent', job, outcome, attempt);
      outbox.push(toOutcomeEvent('failed', { idempotencyKey: job.idempotencyKey, messageId: outcome.messageId ?? toMessageId(job.idempotencyKey, deps.dispatch.messageIdDomain), transport: job.transport ?? deps.dispatch.defaultTransport, attempts: attempt, tags: job.tags }, outcome));
      return;
    }
    metrics.addMetric(DispatchMetrics[outcome.action as 'retry' | 'throttled' | 'blocked'], MetricUnit.Count, 1);
    if (outcome.ambiguous) metrics.addMetric(DispatchMetrics.ambiguous, MetricUnit.Count, 1);
    logOutcome('warn', outcome.ambiguous ? 'job deferred; ambiguous attempt: the provider may already have it' : 'job deferred', job, outcome, attempt, decision.delaySeconds);
    await deps.visibility.postpone(record, decision.delaySeconds).catch((error: unknown) => {
      logger.error('could not postpone record; it returns after the queue visibility timeout', { sqsMessageId: record.messageId, error: error as Error });
    });
    throw new RetryLaterError(`${outcome.action}: ${outcome.reason}`, decision.delaySeconds);
  };

  const processRecord = async (record: SQSRecord, context: Context, outbox: DispatchEvent[]): Promise<void> => {
    const parsed = await parseJobRecord(record.body, deps.loadClaimCheck);
    if (!parsed.success) return rejectInvalid(outbox, record, parsed.reason, parsed.detail, parsed.idempotencyKey);
    const job = parsed.job;
    const attempt = Number(record.attributes.ApproximateReceiveCount) || 1;
    if (context.getRemainingTimeInMillis() < deps.deadlineMarginMs) throw new RetryLaterError('too close to the deadline to start', 0);

    const requested = job.transport ?? deps.dispatch.defaultTransport;
    const routed = routing ? await routing.route(record, job, requested) : undefined;
    if (routed === 'postponed') return;
    const run: { outcome?: SendOutcome; transport?: TransportName } = { transport: routed?.transport };
    let stored: StoredResult;
    try {
      const recordId = toIdempotencyRecordId('email-job', job.idempotencyKey);
      claiming.set(recordId, { job, attempt });
      try {
        stored = await sendOnce(job, run);
      } finally {
        claiming.delete(recordId);
      }
    } catch (error) {
      const name = (error as Error).name;
      if (name === 'IdempotencyValidationError') {
        return rejectInvalid(outbox, record, 'idempotency-key-conflict', 'this idempotencyKey was already used for a job with different content', job.idempotencyKey);
      }
      if (error instanceof SendDeferredError) return deferOrGiveUp(outbox, record, job, error.outcome, attempt);
      if (run.outcome && !isRetryable(run.outcome.action)) {
        // Sent (or finally refused), but the completion record was not written. Deleting the message now is what
        // keeps a redelivery from sending again; the in-progress record expires on its own.
        logger.error('completion record not saved after send', { error: error as Error });
        stored = { action: run.outcome.action as StoredResult['action'], reason: run.outcome.reason, messageId: '', recipients: [] };
      } else if (name === 'IdempotencyAlreadyInProgressError') {
        return deferOrGiveUp(outbox, record, job, { action: 'retry', reason: 'in-progress-elsewhere', recipients: [] }, attempt);
      } else {
        logger.error('attempt failed unexpectedly', { sqsMessageId: record.messageId, error: error as Error });
        return deferOrGiveUp(outbox, record, job, { action: 'retry', reason: `internal-${name}`, detail: (error as Error).message, recipients: [] }, attempt);
      }
    }

    if (stored.replayed) {
      metrics.addMetric(DispatchMetrics.duplicate, MetricUnit.Count, 1);
      logger.info('duplicate job skipped', { dispatchId: stored.messageId, action: stored.action });
      return;
    }
    const outcome = run.outcome as SendOutcome;
    const suppressed = outcome.recipients.filter((r) => r.status === 'suppressed').length;
    if (suppressed > 0) metrics.addMetric(DispatchMetrics.suppressed, MetricUnit.Count, suppressed);
    metrics.addMetric(DispatchMetrics[stored.action], MetricUnit.Count, 1);
    logOutcome(stored.action === 'delivered' ? 'info' : 'warn', `job ${stored.action}`, job, outcome, attempt);
    outbox.push(
      toOutcomeEvent(
        stored.action,
        { idempotencyKey: job.idempotencyKey, messageId: outcome.messageId ?? toMessageId(job.idempotencyKey, deps.dispatch.messageIdDomain), transport: run.transport ?? requested, attempts: attempt, tags: job.tags },
        outcome,
      ),
    );
  };

  const lambdaHandler = async (event: SQSEvent, context: Context): Promise<SQSBatchResponse> => {
    idempotencyConfig.registerLambdaContext(context);
    const finished = new Set<string>();
    // A processor per invocation: it holds the batch's state, and the local twin runs several batches at once
    // through one handler (Lambda never does; a shared processor would mix their results up).
    const processor = new BatchProcessor(EventType.SQS);
    const events: DispatchEvent[] = [];
    const work = processPartialResponse(
      event,
      async (record: SQSRecord) => {
        await processRecord(record, context, events);
        finished.add(record.messageId);
      },
      processor,
      { context, throwOnFullBatchFailure: false },
    );
    // A Lambda timeout returns no partial response and the whole batch comes back: answer before the deadline with
    // whatever has finished, and hand the rest back.
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<SQSBatchResponse>((resolve) => {
      timer = setTimeout(
        () => {
          logger.warn('deadline near: handing unfinished records back', { unfinished: event.Records.length - finished.size });
          resolve({ batchItemFailures: event.Records.filter((r) => !finished.has(r.messageId)).map((r) => ({ itemIdentifier: r.messageId })) });
        },
        Math.max(0, context.getRemainingTimeInMillis() - deps.deadlineMarginMs),
      );
    });
    try {
      return await Promise.race([work, deadline]);
    } finally {
      clearTimeout(timer);
      await flush(events.splice(0));
    }
  };

  const handler = middy(lambdaHandler).use(injectLambdaContext(logger, { resetKeys: true })).use(logMetrics(metrics));
  return deps.tracer ? handler.use(captureLambdaHandler(deps.tracer)) : handler;
}
