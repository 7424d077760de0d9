import { Duration, Stack } from 'aws-cdk-lib';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { deriveQueueSettings } from '../settings.js';
import type { StackConfig } from '../stack-config.js';
import type { JobsQueue } from './jobs-queue.js';
import { grantPublish } from './grant-publish.js';
import { NodeFunction } from './node-function.js';
import { referenceSecret } from './secret-reference.js';
import type { StateTables } from './state-tables.js';

export type DispatchFunctionProps = {
  config: StackConfig;
  jobs: JobsQueue;
  tables: StateTables;
  events: ITopic;
  key: IKey;
  bucket: IBucket;
  logRetention: RetentionDays;
};

/**
 * The dispatch function on the jobs queue: batches with partial responses, under the concurrency cap, with exactly
 * the permissions it uses.
 */
export class DispatchFunction extends Construct {
  readonly fn: NodeFunction;

  constructor(scope: Construct, id: string, props: DispatchFunctionProps) {
    super(scope, id);
    const { config, jobs, tables, events, key, bucket } = props;
    const settings = config.settings;
    const usesSmtp = config.transports.includes('smtp');
    const usesSes = config.transports.includes('ses');
    const smtpSecret = usesSmtp && config.smtpSecret ? referenceSecret(this, 'SmtpSecret', config.smtpSecret) : undefined;

    this.fn = new NodeFunction(this, 'Function', {
      entry: 'send-email.ts',
      description: 'Sends email jobs from the jobs queue over SMTP or SES, once per idempotency key',
      timeout: Duration.seconds(settings.functionTimeoutSeconds),
      memorySize: 1024,
      logRetention: props.logRetention,
      environment: {
        JOBS_QUEUE_URL: jobs.queue.queueUrl,
        DEAD_LETTER_QUEUE_URL: jobs.deadLetterQueue.queueUrl,
        IDEMPOTENCY_TABLE: tables.idempotency.tableName,
        SUPPRESSION_TABLE: tables.suppression.tableName,
        EVENTS_TOPIC_ARN: events.topicArn,
        ATTACHMENT_BUCKET: bucket.bucketName,
        DEFAULT_FROM: config.defaultFrom,
        DEFAULT_TRANSPORT: config.transport,
        TRANSPORTS: config.transports.join(','),
        RETRY_BASE_SECONDS: String(settings.retry.baseDelaySeconds),
        RETRY_MAX_DELAY_SECONDS: String(settings.retry.maxDelaySeconds),
        RETRY_LIFETIME_SECONDS: String(settings.retry.lifetimeSeconds),
        MAX_RECEIVE_COUNT: String(deriveQueueSettings(settings).maxReceiveCount),
        ...(usesSmtp
          ? { SMTP_HOST: config.smtpHost ?? '', SMTP_PORT: String(config.smtpPort), SMTP_SECURITY: config.smtpSecurity, SMTP_SECRET_ID: smtpSecret?.secretArn ?? '' }
          : {}),
        ...(usesSes
          ? {
              // Stay under the account's send rate with every instance of the concurrency cap sending at once.
              SES_RATE_PER_SECOND: String(Math.max(1, Math.floor(config.sesMaxSendRate / settings.maxConcurrency))),
              ...(config.sesConfigurationSet ? { SES_CONFIGURATION_SET: config.sesConfigurationSet } : {}),
            }
          : {}),
      },
    });

    this.fn.addEventSource(
      new SqsEventSource(jobs.queue, {
        batchSize: settings.batchSize,
        maxBatchingWindow: Duration.seconds(settings.maxBatchingWindowSeconds),
        maxConcurrency: settings.maxConcurrency,
        reportBatchItemFailures: true,
      }),
    );
    // The event source grants receive, delete and ChangeMessageVisibility (the retry backoff) on the jobs queue.
    jobs.deadLetterQueue.grantSendMessages(this.fn);
    tables.idempotency.grant(this.fn, 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem');
    tables.suppression.grant(this.fn, 'dynamodb:BatchGetItem');
    grantPublish(this.fn, events, key);
    // Claim-checked jobs and attachments only; grantRead would add List* and GetBucket* it never uses.
    this.fn.addToRolePolicy(new PolicyStatement({ actions: ['s3:GetObject'], resources: [bucket.arnForObjects('jobs/*'), bucket.arnForObjects('attachments/*')] }));
    // Without s3:ListBucket S3 answers 403 for a missing object, as for a forbidden one: the function could not tell a
    // job naming a missing attachment (rejected) from its own missing permission (retried).
    this.fn.addToRolePolicy(new PolicyStatement({ actions: ['s3:ListBucket'], resources: [bucket.bucketArn] }));
    smtpSecret?.grantRead(this.fn);

    if (usesSes) {
      const stack = Stack.of(this);
      const identityArn = stack.formatArn({ service: 'ses', resource: 'identity', resourceName: config.sesIdentity });
      const resources = [identityArn];
      if (config.sesConfigurationSet) resources.push(stack.formatArn({ service: 'ses', resource: 'configuration-set', resourceName: config.sesConfigurationSet }));
      const fromCondition = config.sesIdentity.includes('@') ? config.sesIdentity : `*@${config.sesIdentity}`;
      this.fn.addToRolePolicy(
        new PolicyStatement({
          actions: ['ses:SendEmail', 'ses:SendRawEmail'],
          resources,
          conditions: { StringLike: { 'ses:FromAddress': fromCondition } },
        }),
      );
    }
  }
}
