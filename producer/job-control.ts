import {
  fromStatusItem,
  JOB_STATUS_KEYS,
  JOB_STATUS_TTL_SECONDS,
  type JobState,
  type JobStatus,
  type StatusItem,
} from '#core/job-status.js';
import { DEFAULT_TENANT, scopedJobKey } from '#core/tenant.js';

/** The one DynamoDB client method used: any release of `@aws-sdk/client-dynamodb`'s client fits. */
type DynamoDBLike = { send(command: never): Promise<unknown> };

export type JobControlOptions = {
  /** A DynamoDB client (`new DynamoDBClient({})`), with the region and credentials of your service. */
  dynamodb: DynamoDBLike;
  /** The stack's `JobStatusTableName` output. */
  tableName: string;
  /** @default Date.now */
  clock?: () => number;
};

/** Names a job: its key, and the tenant the producer sends as (@default the default tenant). */
export type JobKeyOptions = { tenant?: string };

/** What a cancel came to. */
export type CancelResult =
  | {
      cancelled: true;
      idempotencyKey: string;
      /** What the job was before: scheduled, deferred, an attempt that died before its end, or unseen yet. */
      previousState: 'scheduled' | 'deferred' | 'sending' | 'unseen';
      sendAt?: string;
    }
  | {
      cancelled: false;
      idempotencyKey: string;
      /** `sent`: delivered or refused by the provider (or reported since); `in-progress`: an attempt is sending now. */
      reason: 'sent' | 'in-progress' | 'failed' | 'already-cancelled';
      state: JobState;
      status?: JobStatus;
    };

const S = (value: string) => ({ S: value });
const N = (value: number) => ({ N: String(Math.round(value)) });

/**
 * Cancel and status of jobs, from the job status table (one item per job, keyed by the tenant-scoped key). A cancel
 * is one conditional UpdateItem on that item; the dispatcher's claim before each send is another on the same item,
 * so exactly one of them wins: a cancelled job is never sent, and a job being sent is not reported cancelled.
 */
export function createJobControl(options: JobControlOptions) {
  const clock = options.clock ?? Date.now;
  const client = options.dynamodb as unknown as { send(command: unknown): Promise<Record<string, unknown>> };
  const sdk = () => import('@aws-sdk/client-dynamodb');
  const keyOf = (idempotencyKey: string, tenant: string) => ({
    [JOB_STATUS_KEYS.partitionKey]: S(scopedJobKey(tenant, idempotencyKey)),
  });

  const getStatus = async (idempotencyKey: string, keyOptions: JobKeyOptions = {}): Promise<JobStatus | undefined> => {
    const tenant = keyOptions.tenant ?? DEFAULT_TENANT;
    const { GetItemCommand } = await sdk();
    const { Item } = (await client.send(
      new GetItemCommand({ TableName: options.tableName, Key: keyOf(idempotencyKey, tenant), ConsistentRead: true }),
    )) as { Item?: StatusItem };
    return fromStatusItem(Item, { tenant, idempotencyKey }, clock());
  };

  /**
   * Stops a job that has not been sent: a scheduled or deferred one, one not seen by the dispatcher yet (a job
   * with this key that comes later is not sent either), or one whose last attempt died before its end (that attempt
   * may have reached the relay, as any ambiguous attempt). A job being sent right now, or already sent, is not
   * cancelled; the answer says which. The dispatcher drops the job and publishes `email.cancelled` when it next
   * meets it. A reschedule is a cancel and a new job with a new key.
   */
  const cancel = async (idempotencyKey: string, keyOptions: JobKeyOptions = {}): Promise<CancelResult> => {
    const tenant = keyOptions.tenant ?? DEFAULT_TENANT;
    const { UpdateItemCommand } = await sdk();
    const now = clock();
    try {
      const { Attributes } = (await client.send(
        new UpdateItemCommand({
          TableName: options.tableName,
          Key: keyOf(idempotencyKey, tenant),
          UpdateExpression: 'SET #state = :cancelled, #cancelledAt = :now, #updatedAt = :now, #expiresAt = :expires',
          ConditionExpression:
            'attribute_not_exists(#state) OR #state IN (:scheduled, :deferred) OR (#state = :sending AND #leaseUntil < :now)',
          ExpressionAttributeNames: {
            '#state': 'state',
            '#cancelledAt': 'cancelledAt',
            '#updatedAt': 'updatedAt',
            '#expiresAt': JOB_STATUS_KEYS.ttlAttribute,
            '#leaseUntil': 'leaseUntil',
          },
          ExpressionAttributeValues: {
            ':cancelled': S('cancelled'),
            ':scheduled': S('scheduled'),
            ':deferred': S('deferred'),
            ':sending': S('sending'),
            ':now': N(now),
            ':expires': N(now / 1000 + JOB_STATUS_TTL_SECONDS),
          },
          ReturnValues: 'ALL_OLD',
        }),
      )) as { Attributes?: StatusItem };
      const before = fromStatusItem(Attributes, { tenant, idempotencyKey }, now);
      const previousState = (before?.state ?? 'unseen') as 'scheduled' | 'deferred' | 'sending' | 'unseen';
      return { cancelled: true, idempotencyKey, previousState, sendAt: before?.sendAt };
    } catch (error) {
      if ((error as Error).name !== 'ConditionalCheckFailedException') throw error;
    }
    const status = await getStatus(idempotencyKey, { tenant });
    const state = status?.state ?? 'sending';
    const reason =
      state === 'cancelled'
        ? 'already-cancelled'
        : state === 'failed'
          ? 'failed'
          : state === 'sending'
            ? 'in-progress'
            : 'sent';
    return { cancelled: false, idempotencyKey, reason, state, status };
  };

  return { cancel, getStatus };
}
