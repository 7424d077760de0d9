import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { BasePersistenceLayer } from '@aws-lambda-powertools/idempotency/persistence';
import type { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { MetricUnit, type Metrics } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import type { Tracer } from '@aws-lambda-powertools/tracer';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import middy from '@middy/core';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { toAttemptBudget, untilAborted, type AttemptBudget } from '#core/attempt-budget.js';
import { createByteBudget } from '#core/byte-budget.js';
import type { DispatchDeps, FollowUpSend } from '#core/dispatch-job.js';
import {
  decodeFollowUp,
  deferredRecipients,
  FOLLOW_UP_ATTRIBUTE,
  followUpKey,
  type FollowUp,
  verifyFollowUp,
} from '#core/follow-up.js';
import type { DeadLetterSink, PublishedOutcomes, VisibilityControl } from '#core/dispatch-ports.js';
import { listRecipients, type S3Reference } from '#core/email-job.js';
import { AttemptAbortedError, SendDeferredError } from '#core/errors.js';
import type { EventPublisher } from '#core/events.js';
import { DispatchMetrics } from '#core/metric-names.js';
import { parseJobRecord } from '#core/parse-job-record.js';
import type { RetryPolicy } from '#core/retry-schedule.js';
import { isRetryable, type SendOutcome } from '#core/send-outcome.js';
import { TemplateRejections, type TemplateRenderer } from '#core/template-renderer.js';
import type { JobRequeue } from '#core/send-router.js';
import { createDispatchPolicy, type FollowUpOf, type OutboxEntry, type StoredResult } from './dispatch-policy.js';
import { createReputationStep, type ReputationDeps } from './reputation-step.js';
import { createTemplateStep, TemplateRefusedError } from './render-template.js';
import { createRouteStep, type RoutingDeps } from './route-job.js';
import { DEFAULT_TENANT, scopedJobKey } from '#core/tenant.js';
import { tenantOf, type TenantJob } from '#core/tenant-identity.js';
import { createTenantStep, type TenantDeps } from './tenant-step.js';
import { createScheduleStep, type ScheduleDeps } from './job-schedule.js';
import { createSendOnce, type AttemptState } from './send-once.js';

/** How long a tenant's standing may take to read before its job goes on without it, ms. */
const STANDING_READ_MS = 1000;

/**
 * A record's suppression lookups begun ahead of their sends: cut through `done` (made with the first), awaited
 * (settled) when it ends.
 */
type LookAhead = { done?: AbortController; started: Array<Promise<unknown>> };

/** Why a lookup begun ahead is cut: its record ended. One reason for all, as an abort without one builds an error. */
const RECORD_ENDED = new Error('the record ended before its lookup was needed');

/** Claim checks: job bodies stored in S3 with only a reference on the queue. */
type ClaimCheckStore = {
  /** The stored body's size in bytes, read before the body is, so its memory can be reserved. */
  size(reference: S3Reference): Promise<number>;
  load(reference: S3Reference): Promise<string>;
};

/**
 * Memory a claim-checked job holds per byte of its stored body, reserved before the body is read: the body as read,
 * as a string and as the parsed job (each near the body's size at their peak), and its inline attachments decoded
 * (three quarters of their base64). `npm run bench` measures it.
 */
const CLAIM_CHECK_MEMORY_FACTOR = 3.75;

/** SNS's PublishBatch takes ten entries: outcome events go out in tens. */
const EVENTS_PER_PUBLISH = 10;
/** PublishBatch requests of one invocation in flight at once. */
const PUBLISHES_IN_FLIGHT = 4;

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
  /** Notes that a completed record's event went out, when its message is handed back all the same. */
  published?: PublishedOutcomes;
  deadLetters: DeadLetterSink;
  visibility: VisibilityControl;
  retry: RetryPolicy;
  /** No send is committed (SMTP '.', the SES request) this close to the Lambda deadline; see AttemptBudget. */
  deadlineMarginMs: number;
  /** The last part of the invocation, kept for the completion write, the events and the answer. */
  finishReserveMs: number;
  /** An attempt starts only with at least this long before its commit deadline; otherwise it is handed back. */
  minAttemptMs: number;
  /** The jobs queue's maxReceiveCount: the last receive gives a job up rather than postponing it. */
  maxReceiveCount?: number;
  /** Jobs of a batch in progress at once (0 or undefined: all); the others wait, unclaimed, for a place. */
  maxInFlight?: number;
  /** Runs `work` with every AWS call inside it cut at `signal` (clients.ts `withCallDeadline`). */
  withCallDeadline?: <T>(signal: AbortSignal, work: () => Promise<T>) => Promise<T>;
  /** Claim-checked bodies, reserved in `dispatch.attachmentMemory`'s budget before they are read. */
  claimChecks?: ClaimCheckStore;
  /** Circuit breakers and failover; without them every job goes straight to its transport. */
  routing?: RoutingDeps;
  /** Who may send as which tenant, and the bucket references are held to; without it every job is the default's. */
  tenants?: TenantDeps;
  /** The per-tenant reputation guardrail; without it no tenant is ever paused. */
  reputation?: ReputationDeps;
  /** Scheduled sends, cancels and job status (see job-schedule); without it `sendAt` is not honoured. */
  schedule?: ScheduleDeps;
  /** The deployment's templates; without them a job naming a template is rejected (`template-unavailable`). */
  templates?: TemplateRenderer;
  /**
   * Where follow-ups go: the jobs queue (see follow-up.ts). Without it, recipients an SMTP relay refused for now
   * while it took the others are listed as deferred in the job's outcome and not sent to again.
   */
  followUps?: JobRequeue;
  clock?: () => number;
  random?: () => number;
};

/**
 * Builds the SQS handler of the dispatch function: each record is parsed, sent at most once per idempotency key,
 * and ends delivered, rejected, retried later (through its visibility timeout) or given up — never silently dropped.
 * Every attempt lives within a budget taken from the invocation's remaining time and has ended when the handler
 * answers: the answer is the last thing an invocation does.
 */
export function createSendEmailHandler(deps: SendEmailDeps) {
  const { logger, metrics } = deps;
  const clock = deps.clock ?? Date.now;
  const bounded = deps.withCallDeadline ?? (<T>(_signal: AbortSignal, work: () => Promise<T>) => work());
  const routing = deps.routing ? createRouteStep(deps.routing, deps, clock, deps.random ?? Math.random) : undefined;
  const tenants = deps.tenants ? createTenantStep(deps.tenants) : undefined;
  const reputation = deps.reputation ? createReputationStep(deps.reputation, deps, clock) : undefined;
  const renderTemplate = createTemplateStep(deps.templates);
  const policy = createDispatchPolicy({
    ...deps,
    tenantDimension: tenants?.dimension,
    messageIdDomain: deps.dispatch.messageIdDomain,
    defaultTransport: deps.dispatch.defaultTransport,
    reportKeys: deps.dispatch.reportKeys,
    clock,
    random: deps.random ?? Math.random,
    jobStatus: deps.schedule?.status,
  });
  const schedule = deps.schedule ? createScheduleStep(deps.schedule, deps, clock) : undefined;

  const { attempt, registerLambdaContext } = createSendOnce(deps, {
    bounded,
    settle: routing?.settle,
    dispatchIdOf: policy.dispatchIdOf,
  });

  /**
   * A record's follow-up attribute, if it has one: the job under its follow-up's key, what it follows, and its send
   * (to the recipients it names, with the job's own Message-ID); or what is wrong with the attribute.
   */
  const readFollowUp = async (record: SQSRecord, job: TenantJob) => {
    const signed = record.messageAttributes?.[FOLLOW_UP_ATTRIBUTE]?.stringValue;
    if (signed === undefined) return { job };
    // Only the dispatcher queues follow-ups: a producer's message carrying one is refused.
    if (tenants && !tenants.fromSystem(record))
      return { problem: `${FOLLOW_UP_ATTRIBUTE}: set by the dispatcher only; a producer may not send this attribute` };
    // Signed by the dispatcher for this very job, whoever sent the record (see follow-up.ts).
    const messageKey = scopedJobKey(tenantOf(job), job.idempotencyKey);
    const verified = verifyFollowUp(signed, messageKey, await deps.dispatch.reportKeys?.());
    if ('problem' in verified) return verified;
    const listed = listRecipients(job);
    const followUp = decodeFollowUp(verified.value, listed.length);
    if ('problem' in followUp) return followUp;
    const send: FollowUpSend = {
      messageKey,
      recipients: followUp.recipients.map((i) => listed[i] as string),
      dateMs: followUp.dateMs,
    };
    return { job: { ...job, idempotencyKey: followUpKey(job.idempotencyKey, followUp.attempts) }, of: followUp, send };
  };

  /**
   * A job's rendering; a follow-up's at the version its job was sent with, so that its recipients get the same
   * message, unless that version is no longer deployed: then at the deployed one (a message a little different
   * rather than none).
   */
  const renderFollowingTemplate = async (job: TenantJob, version: number | undefined) => {
    if (version === undefined || !job.template || job.template.version !== undefined) return renderTemplate(job);
    const pinned = await renderTemplate({ ...job, template: { ...job.template, version } });
    if (!('rejected' in pinned) || pinned.rejected.reason !== TemplateRejections.version) return pinned;
    logger.warn('follow-up rendered at the deployed template version, not the one its job was sent with', {
      dispatchId: policy.dispatchIdOf(job),
      template: job.template.name,
      version,
    });
    return renderTemplate(job);
  };

  /** A claim-checked body, read once its memory is reserved; `held` collects the reservation's release. */
  const claimCheckLoader = (budget: AttemptBudget, held: Array<() => void>, tenant: string) => {
    const store = deps.claimChecks;
    if (!store) return undefined;
    const memory = deps.dispatch.attachmentMemory?.budget;
    return async (ref: S3Reference) => {
      tenants?.checkClaimCheck(ref, tenant);
      const bytes = await store.size(ref);
      if (memory) held.push(await memory.acquire(Math.ceil(bytes * CLAIM_CHECK_MEMORY_FACTOR), budget.signal));
      return store.load(ref);
    };
  };

  /**
   * The suppression lookup of a job's recipients, begun with its key's claim so that the two round trips overlap: the
   * send awaits it (see dispatchJob). An attempt that ends before its send (a replay, a claim held elsewhere) has
   * spent one read; its lookup is cut when its record ends (`ahead`), and awaited by it, so nothing runs on after the
   * answer.
   */
  const lookUpAhead = (job: TenantJob, budget: AttemptBudget, ahead: LookAhead) => {
    ahead.done ??= new AbortController();
    const signal = AbortSignal.any([budget.finishSignal, ahead.done.signal]);
    const lookup = bounded(signal, () =>
      deps.dispatch.suppressions.findSuppressed(listRecipients(job), tenantOf(job), signal),
    );
    ahead.started.push(lookup.catch(() => undefined));
    return lookup;
  };

  /** One record, start to end: check the time, parse, attempt once per key, and let the policy decide the rest. */
  const processRecord = async (record: SQSRecord, budget: AttemptBudget, outbox: OutboxEntry[]): Promise<void> => {
    const held: Array<() => void> = [];
    const ahead: LookAhead = { started: [] };
    try {
      return await processJobRecord(record, budget, outbox, held, ahead);
    } finally {
      ahead.done?.abort(RECORD_ENDED);
      await Promise.all(ahead.started);
      for (const release of held) release();
    }
  };

  const processJobRecord = async (
    record: SQSRecord,
    budget: AttemptBudget,
    outbox: OutboxEntry[],
    held: Array<() => void>,
    ahead: LookAhead,
  ): Promise<void> => {
    let attemptNumber = Number(record.attributes.ApproximateReceiveCount) || 1;
    // The tenant comes first, from the record alone: nothing of a job is read before its sender is known.
    const tenancy = tenants?.resolve(record) ?? { ok: true as const, tenant: DEFAULT_TENANT };
    if (!tenancy.ok) {
      metrics.addMetric(DispatchMetrics.tenantRefused, MetricUnit.Count, 1);
      return policy.rejectInvalid(outbox, record, tenancy.reason, tenancy.detail, undefined, tenancy.tenant);
    }
    const { tenant } = tenancy;
    if (budget.commitBy - clock() < deps.minAttemptMs)
      return policy.postponeWithoutAttempt(outbox, record, undefined, 'no-time-to-start', attemptNumber);
    const loader = claimCheckLoader(budget, held, tenant);
    const parsed = await untilAborted(parseJobRecord(record.body, loader), budget.signal).catch((error: unknown) => {
      if (error instanceof AttemptAbortedError) return undefined;
      throw error;
    });
    if (!parsed) return policy.postponeWithoutAttempt(outbox, record, undefined, 'no-time-to-read-job', attemptNumber);
    if (!parsed.success)
      return policy.rejectInvalid(outbox, record, parsed.reason, parsed.detail, parsed.idempotencyKey, tenant);
    const produced: TenantJob = { ...parsed.job, tenant };
    const outside = tenants?.checkAttachments(produced, tenant);
    if (outside)
      return policy.rejectInvalid(outbox, record, outside.reason, outside.detail, produced.idempotencyKey, tenant);
    // A follow-up is its job's message to some of its recipients, under a key of its own (see follow-up.ts).
    const following = await readFollowUp(record, produced);
    if ('problem' in following)
      return policy.rejectInvalid(
        outbox,
        record,
        'follow-up-invalid',
        following.problem,
        produced.idempotencyKey,
        tenant,
      );
    const { job } = following;
    if (following.of) attemptNumber += following.of.attempts;

    // A job due later waits on the queue, a cancelled one is dropped, one due now is claimed against a cancel.
    const scheduled = schedule
      ? await bounded(budget.signal, () => schedule.step(record, job, tenant, budget, outbox)).catch(
          (error: Error) => ({ unavailable: error.message }),
        )
      : 'proceed';
    if (scheduled === 'done') return;
    if (typeof scheduled === 'object' && 'refused' in scheduled)
      return policy.rejectInvalid(outbox, record, 'send-at-too-far', scheduled.refused, job.idempotencyKey, tenant);
    if (typeof scheduled === 'object')
      return policy.postponeWithoutAttempt(
        outbox,
        record,
        job,
        'schedule-step-failed',
        attemptNumber,
        scheduled.unavailable,
      );

    // A paused tenant's jobs wait on the queue, spending no attempt and no lifetime, until an operator resumes it;
    // other tenants' mail flows. A hold that cannot be made hands the record back the ordinary way.
    // Read within a short bound of its own: a stalled tenant table must not spend the attempt of every tenant's job.
    const standingSignal = AbortSignal.any([budget.signal, AbortSignal.timeout(STANDING_READ_MS)]);
    const pause = reputation ? await bounded(standingSignal, () => reputation.pauseOf(tenant, record)) : undefined;
    if (pause && reputation) {
      const untilMs = await bounded(budget.signal, () => reputation.hold(record, tenant)).catch((error: Error) => {
        logger.warn("paused tenant's job not held; handed back", { tenant, error });
        return undefined;
      });
      if (untilMs === undefined)
        return policy.postponeWithoutAttempt(outbox, record, job, 'tenant-paused', attemptNumber, pause.reason);
      return policy.held(job, 'tenant-paused', untilMs, pause.reason);
    }

    // A template job is rendered here; a refusal is reported as an invalid job with the field path, by the attempt.
    const rendered = await renderFollowingTemplate(job, following.of?.templateVersion);
    if ('unavailable' in rendered) {
      logger.error('templates cannot be loaded; template jobs are handed back until they can', {
        detail: rendered.unavailable,
      });
      return policy.postponeWithoutAttempt(
        outbox,
        record,
        job,
        'templates-unavailable',
        attemptNumber,
        rendered.unavailable,
      );
    }

    // An open circuit puts the job back without an attempt; failover may send it over the other transport.
    const requested = job.transport ?? deps.dispatch.defaultTransport;
    // The breaker's shared state is read within the attempt's budget: a stalled table cannot hold the record past it.
    const routed =
      routing && 'job' in rendered
        ? await bounded(budget.signal, () => routing.route(record, job, requested))
        : undefined;
    if (routed === 'postponed') return;
    const run: AttemptState = {
      transport: routed?.transport,
      content: rendered,
      followUp: following.send,
      attempts: attemptNumber,
      suppressed: 'job' in rendered ? lookUpAhead(job, budget, ahead) : undefined,
    };
    /** Queues the follow-up this job's outcome calls for, if any (see follow-up.ts). */
    const queueFollowUp = async (outcome: SendOutcome, followUp: FollowUp | undefined, final = false) => {
      if (!followUp) return;
      const of: FollowUpOf = { ...followUp, jobKey: produced.idempotencyKey };
      await policy.followUp(outbox, record, job, of, outcome, final);
    };
    let stored: StoredResult;
    try {
      stored = await attempt(job, record, budget, run, held.length > 0);
    } catch (error) {
      const name = (error as Error).name;
      if (error instanceof TemplateRefusedError)
        return policy.rejectInvalid(outbox, record, error.reason, error.message, job.idempotencyKey, tenant);
      if (name === 'IdempotencyValidationError') {
        return policy.rejectInvalid(
          outbox,
          record,
          'idempotency-key-conflict',
          'this idempotencyKey was already used for a job with different content',
          job.idempotencyKey,
          tenant,
        );
      }
      if (error instanceof SendDeferredError)
        return policy.deferOrGiveUp(outbox, record, job, error.outcome, attemptNumber);
      if (error instanceof AttemptAbortedError)
        return policy.postponeWithoutAttempt(outbox, record, job, 'attempt-budget-spent', attemptNumber, error.message);
      if (!run.started && name !== 'IdempotencyAlreadyInProgressError') {
        // The claim itself failed (a stalled or failing table): nothing was sent.
        return policy.postponeWithoutAttempt(
          outbox,
          record,
          job,
          'claim-failed',
          attemptNumber,
          (error as Error).message,
        );
      }
      if (run.outcome && !isRetryable(run.outcome.action)) {
        // Sent (or finally refused), but the completion record was not written, even after its retries. Deleting the
        // message now keeps a redelivery from sending again; a re-produced key may once the claim expires.
        metrics.addMetric(DispatchMetrics.completionNotSaved, MetricUnit.Count, 1);
        logger.error('completion record not saved after send', {
          dispatchId: policy.dispatchIdOf(job),
          tenant,
          error: error as Error,
        });
        policy.completed(
          outbox,
          record,
          job,
          run.outcome,
          run.outcome.action as StoredResult['action'],
          attemptNumber,
          false,
        );
        // The record is done either way: handed back without its completion record, it would send again.
        const version = 'job' in rendered ? rendered.job.template?.version : undefined;
        const next = deferredRecipients(listRecipients(produced), run.outcome, attemptNumber, version);
        return queueFollowUp(run.outcome, next, true).catch((failure: unknown) => {
          logger.error('follow-up neither queued nor dead-lettered; its recipients are not sent to', {
            dispatchId: policy.dispatchIdOf(job),
            tenant,
            error: failure as Error,
          });
        });
      }
      if (name === 'IdempotencyAlreadyInProgressError') {
        return policy.deferOrGiveUp(
          outbox,
          record,
          job,
          { action: 'retry', reason: 'in-progress-elsewhere', recipients: [] },
          attemptNumber,
        );
      }
      logger.error('attempt failed unexpectedly', {
        sqsMessageId: record.messageId,
        dispatchId: policy.dispatchIdOf(job),
        tenant,
        error: error as Error,
      });
      return policy.deferOrGiveUp(
        outbox,
        record,
        job,
        { action: 'retry', reason: `internal-${name}`, detail: (error as Error).message, recipients: [] },
        attemptNumber,
      );
    }

    const recipients = listRecipients(produced);
    const followUp = stored.followUp === undefined ? undefined : decodeFollowUp(stored.followUp, recipients.length);
    const next = followUp && !('problem' in followUp) ? followUp : undefined;
    if (stored.replayed) {
      await policy.replayed(outbox, record, job, stored, attemptNumber);
      // The record that completed the job, back (its follow-up's requeue had failed), or redriven (it had failed on
      // every receive): the follow-up is queued again; if the first did go out, its key makes this one send nothing.
      const redriven = record.messageAttributes?.redrivenFrom !== undefined;
      if (!next || (stored.sourceMessageId !== record.messageId && !redriven)) return;
      const deferred = next.recipients.map((i) => ({
        recipient: recipients[i] as string,
        status: 'deferred' as const,
      }));
      return queueFollowUp({ action: 'delivered', reason: stored.reason, recipients: deferred }, next);
    }
    const outcome = run.outcome as SendOutcome;
    policy.completed(outbox, record, job, outcome, stored.action, attemptNumber);
    reputation?.noteSent(tenant, run.outcome);
    await queueFollowUp(outcome, next);
  };

  const lambdaHandler = async (event: SQSEvent, context: Context): Promise<SQSBatchResponse> => {
    registerLambdaContext(context);
    const budget = toAttemptBudget({
      nowMs: clock(),
      remainingMs: context.getRemainingTimeInMillis(),
      marginMs: deps.deadlineMarginMs,
      finishReserveMs: deps.finishReserveMs,
    });
    // A processor per invocation: it holds the batch's state, and the local twin runs several batches at once
    // through one handler (Lambda never does; a shared processor would mix their results up).
    const processor = new BatchProcessor(EventType.SQS);
    const outbox: OutboxEntry[] = [];
    // Places for the jobs in progress: one waiting past the commit deadline goes in without one, to be postponed.
    const places = deps.maxInFlight ? createByteBudget(deps.maxInFlight) : undefined;
    const inPlace = async (work: () => Promise<void>) => {
      const release = await places?.acquire(1, budget.signal).catch(() => undefined);
      try {
        return await work();
      } finally {
        release?.();
      }
    };
    // Outcome events go out in tens (one PublishBatch each) as their jobs finish, a few tens at a time, not after the
    // whole batch: an event is out within a few sends of its job, and the batch ends soon after its last send.
    const publishing: Array<Promise<SQSRecord[]>> = [];
    const publishPlaces = createByteBudget(PUBLISHES_IN_FLIGHT);
    // The completed jobs' keys by their messages' ids: a message handed back after its event went out is marked.
    const completedKeys = new Map<string, string>();
    const publish = (entries: OutboxEntry[]) => {
      for (const e of entries) if (e.idempotencyKey) completedKeys.set(e.record.messageId, e.idempotencyKey);
      const published = bounded(budget.answerSignal, async () => {
        const release = await publishPlaces.acquire(1, budget.answerSignal).catch(() => undefined);
        try {
          return await policy.publish(entries, (attempt) => bounded(budget.publishSignal, attempt));
        } finally {
          release?.();
        }
      });
      // Awaited with the others below; until then a failure is not an unhandled one.
      published.catch(() => {});
      publishing.push(published);
    };
    const processed = async (record: SQSRecord) => {
      await processRecord(record, budget, outbox);
      while (outbox.length >= EVENTS_PER_PUBLISH) publish(outbox.splice(0, EVENTS_PER_PUBLISH));
    };
    // Every attempt ends by the budget's finish deadline, so the batch is awaited whole: nothing runs on after the
    // answer (a frozen instance would resume it later, after the record was handed back and perhaps sent again).
    const response = await processPartialResponse(
      event,
      (record: SQSRecord) => bounded(budget.answerSignal, () => inPlace(() => processed(record))),
      processor,
      {
        context,
        throwOnFullBatchFailure: false,
      },
    );
    if (outbox.length > 0) publish(outbox.splice(0));
    // The batch's sent counts, one write per tenant, beside the outcomes: a stalled tenant table delays no event,
    // and counts it could not write are kept for the next batch.
    const [, settled] = await Promise.all([
      reputation && bounded(budget.publishSignal, () => reputation.flush()),
      // Every ten settled: one that failed must not let the handler answer while the others still run.
      Promise.allSettled(publishing),
    ]);
    const rejected = settled.find((s) => s.status === 'rejected');
    if (rejected) throw rejected.reason;
    // A record whose event is still unpublished is handed back only now, the batch done: it cannot come back to the
    // queue while this invocation still runs.
    const unpublished = [...new Set(settled.flatMap((s) => (s.status === 'fulfilled' ? s.value : [])))];
    // A completed job's message going back to the queue says on its record whether the event is out: the return of
    // one handed back for another reason after it went out publishes nothing again.
    const stillOwed = new Set(unpublished.map((r) => r.messageId));
    const marks = [...new Set([...response.batchItemFailures.map((f) => f.itemIdentifier), ...stillOwed])].flatMap(
      (id) => {
        const key = completedKeys.get(id);
        return key === undefined ? [] : [{ key, published: !stillOwed.has(id) }];
      },
    );
    const [handBack] = await Promise.all([
      bounded(budget.answerSignal, async () => {
        const kept = await Promise.all(
          unpublished.map(async (r) => ((await policy.handBackUnpublished(r)) ? [r] : [])),
        );
        return kept.flat();
      }),
      bounded(budget.answerSignal, () => policy.markPublished(marks)),
    ]);
    policy.flushTenantMetrics();
    const failed = new Set([
      ...response.batchItemFailures.map((f) => f.itemIdentifier),
      ...handBack.map((r) => r.messageId),
    ]);
    return { batchItemFailures: [...failed].map((itemIdentifier) => ({ itemIdentifier })) };
  };

  const handler = middy(lambdaHandler)
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(logMetrics(metrics));
  return deps.tracer ? handler.use(captureLambdaHandler(deps.tracer)) : handler;
}
