import { CreateTableCommand, UpdateTimeToLiveCommand } from '@aws-sdk/client-dynamodb';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { CreateTopicCommand, SubscribeCommand } from '@aws-sdk/client-sns';
import { CreateQueueCommand, GetQueueAttributesCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { AwsClients } from '#aws/clients.js';
import { TableKeys } from '#aws/table-keys.js';
import { deriveQueueSettings, type SystemSettings } from '#infra/settings.js';

/** Names of the twin's resources. */
export const LOCAL_NAMES = {
  jobsQueue: 'email-dispatch-jobs',
  deadLetterQueue: 'email-dispatch-jobs-dlq',
  eventsTopic: 'email-dispatch-events',
  eventsTapQueue: 'email-dispatch-events-tap',
  bucket: 'email-dispatch-attachments',
  idempotencyTable: 'email-dispatch-idempotency',
  suppressionTable: 'email-dispatch-suppression',
  mailboxStateTable: 'email-dispatch-mailbox-state',
  transportStateTable: 'email-dispatch-transport-state',
  tenantStateTable: 'email-dispatch-tenant-state',
};
/** Resource names; the state and job status tables default to ones named after the idempotency table. */
export type LocalNames = Omit<typeof LOCAL_NAMES, 'transportStateTable' | 'tenantStateTable'> & {
  transportStateTable?: string;
  tenantStateTable?: string;
  jobStatusTable?: string;
};

export type LocalResources = {
  jobsQueueUrl: string;
  jobsQueueArn: string;
  deadLetterQueueUrl: string;
  deadLetterQueueArn: string;
  eventsTopicArn: string;
  /** A queue subscribed to the events topic, so the twin (and tests) can see what was published. */
  eventsTapQueueUrl: string;
  bucket: string;
  idempotencyTable: string;
  suppressionTable: string;
  mailboxStateTable: string;
  transportStateTable: string;
  /** Per-tenant reputation counters and pauses. */
  tenantStateTable: string;
  jobStatusTable: string;
};

async function queueArn(sqs: SQSClient, queueUrl: string): Promise<string> {
  const result = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }));
  return result.Attributes?.QueueArn ?? '';
}

/** Creates an on-demand table keyed by one string attribute (with its TTL attribute), unless it exists. */
export async function createTable(
  clients: Pick<AwsClients, 'dynamodb'>,
  name: string,
  key: string,
  ttlAttribute?: string,
) {
  await clients.dynamodb
    .send(
      new CreateTableCommand({
        TableName: name,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [{ AttributeName: key, AttributeType: 'S' }],
        KeySchema: [{ AttributeName: key, KeyType: 'HASH' }],
      }),
    )
    .catch((error: { name?: string }) => {
      if (error.name !== 'ResourceInUseException') throw error;
    });
  if (ttlAttribute) {
    await clients.dynamodb
      .send(
        new UpdateTimeToLiveCommand({
          TableName: name,
          TimeToLiveSpecification: { AttributeName: ttlAttribute, Enabled: true },
        }),
      )
      .catch(() => {});
  }
}

/**
 * Creates the queues, DLQ, topic, bucket and tables as the stack defines them, from the same settings
 * (visibility, retention, size limit, redrive). Safe to run again on existing resources.
 */
export async function createLocalResources(
  clients: AwsClients,
  settings: SystemSettings,
  names: LocalNames = LOCAL_NAMES,
  options: { tap?: boolean } = {},
): Promise<LocalResources> {
  const queue = deriveQueueSettings(settings);
  const sqs = await clients.sqs();
  const dlq = await sqs.send(
    new CreateQueueCommand({
      QueueName: names.deadLetterQueue,
      Attributes: {
        MessageRetentionPeriod: String(queue.deadLetterRetentionSeconds),
        MaximumMessageSize: String(settings.maxMessageSizeBytes),
      },
    }),
  );
  const deadLetterQueueUrl = dlq.QueueUrl ?? '';
  const deadLetterQueueArn = await queueArn(sqs, deadLetterQueueUrl);
  const jobs = await sqs.send(
    new CreateQueueCommand({
      QueueName: names.jobsQueue,
      Attributes: {
        VisibilityTimeout: String(queue.visibilityTimeoutSeconds),
        MessageRetentionPeriod: String(queue.retentionSeconds),
        MaximumMessageSize: String(settings.maxMessageSizeBytes),
        RedrivePolicy: JSON.stringify({
          deadLetterTargetArn: deadLetterQueueArn,
          maxReceiveCount: queue.maxReceiveCount,
        }),
      },
    }),
  );
  const jobsQueueUrl = jobs.QueueUrl ?? '';
  const topic = await clients.sns.send(new CreateTopicCommand({ Name: names.eventsTopic }));
  const eventsTopicArn = topic.TopicArn ?? '';
  const tap = await sqs.send(new CreateQueueCommand({ QueueName: names.eventsTapQueue }));
  const eventsTapQueueUrl = tap.QueueUrl ?? '';
  // The tap lets the twin and the tests read what was published; benchmarks leave it out (fan-out is SNS's work).
  if (options.tap !== false) {
    await clients.sns.send(
      new SubscribeCommand({
        TopicArn: eventsTopicArn,
        Protocol: 'sqs',
        Endpoint: await queueArn(sqs, eventsTapQueueUrl),
        Attributes: { RawMessageDelivery: 'true' },
      }),
    );
  }
  await (await clients.s3())
    .send(new CreateBucketCommand({ Bucket: names.bucket }))
    .catch((error: { name?: string }) => {
      if (error.name !== 'BucketAlreadyOwnedByYou' && error.name !== 'BucketAlreadyExists') throw error;
    });
  await createTable(
    clients,
    names.idempotencyTable,
    TableKeys.idempotency.partitionKey,
    TableKeys.idempotency.ttlAttribute,
  );
  const { suppression } = TableKeys;
  await createTable(clients, names.suppressionTable, suppression.partitionKey, suppression.ttlAttribute);
  await createTable(
    clients,
    names.mailboxStateTable,
    TableKeys.mailboxState.partitionKey,
    TableKeys.mailboxState.ttlAttribute,
  );
  const transportStateTable = names.transportStateTable ?? `${names.idempotencyTable}-transport-state`;
  await createTable(clients, transportStateTable, TableKeys.transportState.partitionKey);
  const tenantStateTable = names.tenantStateTable ?? `${names.idempotencyTable}-tenant-state`;
  const { tenantState } = TableKeys;
  await createTable(clients, tenantStateTable, tenantState.partitionKey, tenantState.ttlAttribute);
  const jobStatusTable = names.jobStatusTable ?? `${names.idempotencyTable}-job-status`;
  await createTable(clients, jobStatusTable, TableKeys.jobStatus.partitionKey, TableKeys.jobStatus.ttlAttribute);
  return {
    jobsQueueUrl,
    jobsQueueArn: await queueArn(sqs, jobsQueueUrl),
    deadLetterQueueUrl,
    deadLetterQueueArn,
    eventsTopicArn,
    eventsTapQueueUrl,
    bucket: names.bucket,
    idempotencyTable: names.idempotencyTable,
    suppressionTable: names.suppressionTable,
    mailboxStateTable: names.mailboxStateTable,
    transportStateTable,
    tenantStateTable,
    jobStatusTable,
  };
}

/** The dispatch function's environment variables that name these resources, as the stack sets them. */
export function toDispatchEnvironment(resources: LocalResources): Record<string, string> {
  return {
    JOBS_QUEUE_URL: resources.jobsQueueUrl,
    DEAD_LETTER_QUEUE_URL: resources.deadLetterQueueUrl,
    IDEMPOTENCY_TABLE: resources.idempotencyTable,
    SUPPRESSION_TABLE: resources.suppressionTable,
    EVENTS_TOPIC_ARN: resources.eventsTopicArn,
    ATTACHMENT_BUCKET: resources.bucket,
    TRANSPORT_STATE_TABLE: resources.transportStateTable,
    TENANT_STATE_TABLE: resources.tenantStateTable,
    JOB_STATUS_TABLE: resources.jobStatusTable,
  };
}
