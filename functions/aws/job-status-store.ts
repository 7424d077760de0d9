import { GetItemCommand, UpdateItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { maskAddresses } from '#core/classify-outcome.js';
import {
  FINAL_STATES,
  fromStatusItem,
  JOB_STATUS_KEYS,
  type JobRef,
  type JobStatusStore,
  type StatusItem,
} from '#core/job-status.js';
import { scopedJobKey } from '#core/tenant.js';

const S = (value: string) => ({ S: value });
const N = (value: number) => ({ N: String(Math.round(value)) });
/** Provider and error text as the item keeps it: no plain address (an error message may quote a recipient). */
const masked = (detail: string | undefined) => (detail === undefined ? undefined : maskAddresses(detail));
const isConditionFailure = (error: unknown) => (error as Error).name === 'ConditionalCheckFailedException';

/**
 * The job status table on DynamoDB: one item per job, every write a single UpdateItem (conditional where a cancel
 * may race it), every read one GetItem. Items expire `ttlSeconds` after their last write (the idempotency window).
 */
export function createJobStatusStore(
  client: DynamoDBClient,
  tableName: string,
  options: { ttlSeconds: number; clock?: () => number },
): JobStatusStore {
  const clock = options.clock ?? Date.now;
  const keyOf = (job: JobRef) => ({ [JOB_STATUS_KEYS.partitionKey]: S(scopedJobKey(job.tenant, job.idempotencyKey)) });
  const get = async (job: JobRef, consistent: boolean) => {
    const { Item } = await client.send(
      new GetItemCommand({ TableName: tableName, Key: keyOf(job), ConsistentRead: consistent }),
    );
    return fromStatusItem(Item as StatusItem | undefined, job, clock());
  };
  /** One UpdateItem setting `values` (and the time and expiry); resolves false when `condition` failed. */
  const update = async (
    job: JobRef,
    values: Record<string, { S?: string; N?: string }>,
    condition?: string,
    extra = {},
    extraNames = {},
  ) => {
    const now = clock();
    const all = { ...values, updatedAt: N(now), [JOB_STATUS_KEYS.ttlAttribute]: N(now / 1000 + options.ttlSeconds) };
    const set = Object.keys(all).map((_, i) => `#a${i} = :a${i}`);
    const attributeNames = Object.fromEntries(Object.keys(all).map((name, i) => [`#a${i}`, name]));
    const attributeValues = Object.fromEntries(Object.values(all).map((value, i) => [`:a${i}`, value]));
    try {
      await client.send(
        new UpdateItemCommand({
          TableName: tableName,
          Key: keyOf(job),
          UpdateExpression: `SET ${set.join(', ')}`,
          ConditionExpression: condition,
          ExpressionAttributeNames: { ...attributeNames, ...(condition ? { '#state': 'state' } : {}), ...extraNames },
          ExpressionAttributeValues: { ...attributeValues, ...extra },
        }),
      );
      return true;
    } catch (error) {
      if (condition && isConditionFailure(error)) return false;
      throw error;
    }
  };
  const finals = Object.fromEntries(FINAL_STATES.map((state, i) => [`:f${i}`, S(state)]));
  const notFinal = `NOT #state IN (${Object.keys(finals).join(', ')})`;

  return {
    read: (job) => get(job, false),

    async hold(job, sendAt) {
      const held = await update(
        job,
        { state: S('scheduled'), sendAt: S(sendAt) },
        // Deferred: a hop that went out before its step was cut off and the record handed back (and so deferred).
        'attribute_not_exists(#state) OR #state IN (:scheduled, :deferred)',
        { ':scheduled': S('scheduled'), ':deferred': S('deferred') },
      );
      if (held) return 'held';
      return (await get(job, true))?.state === 'cancelled' ? 'cancelled' : 'held';
    },

    async claim(job, leaseUntilMs, attempt) {
      // A claim never shortens another attempt's lease (one sending now, in an invocation with a later deadline):
      // that would let a cancel through while it sends.
      const claimed = await update(
        job,
        { state: S('sending'), leaseUntil: N(leaseUntilMs), attempts: N(attempt) },
        `(attribute_not_exists(#state) OR ${notFinal}) AND (#state <> :sending OR NOT #leaseUntil > :lease)`,
        { ...finals, ':sending': S('sending'), ':lease': N(leaseUntilMs) },
        { '#leaseUntil': 'leaseUntil' },
      );
      if (claimed) return 'claimed';
      const state = (await get(job, true))?.state;
      // Still `sending` under a longer lease: the job stays claimed against a cancel for this attempt too.
      return state === 'cancelled' ? 'cancelled' : state === 'sending' ? 'claimed' : 'final';
    },

    async record(job, transition) {
      if (transition.state === 'deferred') {
        const { attempts, reason, nextAttemptAtMs } = transition;
        const detail = masked(transition.detail);
        const deferral = { state: S('deferred'), deferral: S(JSON.stringify({ reason, detail, nextAttemptAtMs })) };
        // A deferral written late (a second copy of the job finding it in progress elsewhere, an attempt whose
        // write lagged) never undoes a cancel or an outcome: nothing is sent after a final state.
        await update(
          job,
          attempts === undefined ? deferral : { ...deferral, attempts: N(attempts) },
          `attribute_not_exists(#state) OR ${notFinal}`,
          finals,
        );
        return;
      }
      const facts = { ...transition.outcome, detail: masked(transition.outcome.detail) };
      const values = { state: S(transition.state), outcome: S(JSON.stringify(facts)) };
      // A replayed outcome event (its message back after a crash) must not undo a report that came since.
      await update(
        job,
        transition.attempts === undefined ? values : { ...values, attempts: N(transition.attempts) },
        'attribute_not_exists(#state) OR NOT #state IN (:bounced, :complained)',
        { ':bounced': S('bounced'), ':complained': S('complained') },
      );
    },

    async report(job, kind, recipients) {
      await update(
        job,
        {
          state: S(kind === 'bounce' ? 'bounced' : 'complained'),
          report: S(JSON.stringify({ kind, at: new Date(clock()).toISOString(), recipients })),
        },
        '#state IN (:delivered, :bounced, :complained)',
        { ':delivered': S('delivered'), ':bounced': S('bounced'), ':complained': S('complained') },
      );
    },
  };
}
