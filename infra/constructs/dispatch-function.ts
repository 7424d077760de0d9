import { Duration, Stack } from 'aws-cdk-lib';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { join } from 'node:path';
import { loadTemplateSet } from '#rendering/template-renderer.js';
import { deriveQueueSettings } from '../settings.js';
import type { StackConfig } from '../stack-config.js';
import type { JobsQueue } from './jobs-queue.js';
import { grantPublish } from './grant-publish.js';
import { grantReputation, reputationEnvironment } from './reputation.js';
import { NodeFunction, PROJECT_ROOT } from './node-function.js';
import { grantPutSecretValue, referenceSecret } from './secret-reference.js';
import type { StateTables } from './state-tables.js';

/** The templates folder, in the repository and in the bundle alike. */
const TEMPLATES_FOLDER = 'templates';

/** Loads and compiles every template, so that one that would not render stops the deployment; returns the folder. */
function checkTemplates(folder: string): string {
  loadTemplateSet(join(PROJECT_ROOT, folder));
  return folder;
}

export type DispatchFunctionProps = {
  config: StackConfig;
  jobs: JobsQueue;
  tables: StateTables;
  events: ITopic;
  key: IKey;
  bucket: IBucket;
  logRetention: RetentionDays;
  reportKeys: ISecret;
  /** The configuration set SES sends with (its events feed the suppression list). @default sesConfigurationSet */
  sesConfigurationSetName?: string;
};

/**
 * The dispatch function on the jobs queue: batches with partial responses, under the concurrency cap, with exactly
 * the permissions it uses.
 */
/** SES's SMTP interface: it enforces the SES account's send rate, which the function then reads (GetAccount). */
const SES_SMTP_ENDPOINT = /^email-smtp(?:-fips)?\.[a-z0-9-]+\.amazonaws\.com$/i;

export class DispatchFunction extends Construct {
  readonly fn: NodeFunction;

  constructor(scope: Construct, id: string, props: DispatchFunctionProps) {
    super(scope, id);
    const { config, jobs, tables, events, key, bucket } = props;
    const settings = config.settings;
    const usesSmtp = config.transports.includes('smtp');
    const usesSes = config.transports.includes('ses');
    const smtpSecret =
      usesSmtp && config.smtpSecret ? referenceSecret(this, 'SmtpSecret', config.smtpSecret) : undefined;
    const configurationSetName = props.sesConfigurationSetName ?? config.sesConfigurationSet;

    this.fn = new NodeFunction(this, 'Function', {
      entry: 'send-email.ts',
      description: 'Sends email jobs from the jobs queue over SMTP or SES, once per idempotency key',
      timeout: Duration.seconds(settings.functionTimeoutSeconds),
      memorySize: settings.memorySizeMb,
      logRetention: props.logRetention,
      // The templates travel with the code; a broken one fails the synth (checkTemplates), not a job in production.
      assets: [checkTemplates(TEMPLATES_FOLDER)],
      environment: {
        JOBS_QUEUE_URL: jobs.queue.queueUrl,
        DEAD_LETTER_QUEUE_URL: jobs.deadLetterQueue.queueUrl,
        IDEMPOTENCY_TABLE: tables.idempotency.tableName,
        SUPPRESSION_TABLE: tables.suppression.tableName,
        TRANSPORT_STATE_TABLE: tables.transportState.tableName,
        JOB_STATUS_TABLE: tables.jobStatus.tableName,
        ...(config.failover ? { FAILOVER: `${config.failover.primary}>${config.failover.secondary}` } : {}),
        EVENTS_TOPIC_ARN: events.topicArn,
        ATTACHMENT_BUCKET: bucket.bucketName,
        TEMPLATES_DIR: TEMPLATES_FOLDER,
        DEFAULT_FROM: config.defaultFrom,
        DEFAULT_TRANSPORT: config.transport,
        TRANSPORTS: config.transports.join(','),
        RETRY_BASE_SECONDS: String(settings.retry.baseDelaySeconds),
        RETRY_MAX_DELAY_SECONDS: String(settings.retry.maxDelaySeconds),
        RETRY_LIFETIME_SECONDS: String(settings.retry.lifetimeSeconds),
        REPORT_KEYS_SECRET_ID: props.reportKeys.secretArn,
        ...(config.bounceDomain ? { BOUNCE_DOMAIN: config.bounceDomain } : {}),
        MAX_RECEIVE_COUNT: String(deriveQueueSettings(settings).maxReceiveCount),
        ...reputationEnvironment(config.reputation, tables),
        MAX_IN_FLIGHT: String(settings.maxInFlight),
        ...(usesSmtp
          ? {
              SMTP_HOST: config.smtpHost ?? '',
              SMTP_PORT: String(config.smtpPort),
              SMTP_SECURITY: config.smtpSecurity,
              SMTP_SECRET_ID: smtpSecret?.secretArn ?? '',
              SMTP_MAX_CONNECTIONS: String(settings.smtpConnections),
            }
          : {}),
        // Every instance of the concurrency cap may send at once: each takes its share of a rate, fractions included.
        RATE_SHARES: String(settings.maxConcurrency),
        ...(usesSmtp && config.smtpMaxSendRate !== undefined
          ? { SMTP_MAX_SEND_RATE: String(config.smtpMaxSendRate) }
          : {}),
        ...(usesSes
          ? {
              // Without a set rate the function reads the account's quota (GetAccount) and follows it as it grows.
              ...(config.sesMaxSendRate !== undefined ? { SES_MAX_SEND_RATE: String(config.sesMaxSendRate) } : {}),
              ...(configurationSetName ? { SES_CONFIGURATION_SET: configurationSetName } : {}),
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
    tables.idempotency.grant(
      this.fn,
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:UpdateItem',
      'dynamodb:DeleteItem',
    );
    tables.suppression.grant(this.fn, 'dynamodb:BatchGetItem');
    tables.transportState.grant(this.fn, 'dynamodb:GetItem', 'dynamodb:UpdateItem');
    grantReputation(this.fn, tables, 'dispatch');
    tables.jobStatus.grant(this.fn, 'dynamodb:GetItem', 'dynamodb:UpdateItem');
    // Jobs waiting on an open circuit, held jobs (scheduled, or of a paused tenant) and follow-ups for recipients
    // refused for now go back on the queue as new messages.
    jobs.queue.grantSendMessages(this.fn);
    grantPublish(this.fn, events, key);
    // Tenants' claim-checked jobs and attachments only (each job is held to its own tenant's prefix by the
    // function); grantRead would add List* and GetBucket* it never uses.
    this.fn.addToRolePolicy(
      new PolicyStatement({ actions: ['s3:GetObject'], resources: [bucket.arnForObjects('tenants/*')] }),
    );
    // Without s3:ListBucket S3 answers 403 for a missing object, as for a forbidden one: the function could not tell a
    // job naming a missing attachment (rejected) from its own missing permission (retried).
    this.fn.addToRolePolicy(new PolicyStatement({ actions: ['s3:ListBucket'], resources: [bucket.bucketArn] }));
    smtpSecret?.grantRead(this.fn);
    const sesSmtpEndpoint = usesSmtp && SES_SMTP_ENDPOINT.test(config.smtpHost ?? '');
    if ((usesSes && config.sesMaxSendRate === undefined) || (sesSmtpEndpoint && config.smtpMaxSendRate === undefined)) {
      // GetAccount reads the account's send quota; it has no resource to scope to.
      this.fn.addToRolePolicy(new PolicyStatement({ actions: ['ses:GetAccount'], resources: ['*'] }));
    }
    if (smtpSecret && config.smtpSecret && config.smtpSecretWriteBack) {
      grantPutSecretValue(this, config.smtpSecret, this.fn);
    }
    props.reportKeys.grantRead(this.fn);

    if (usesSes) {
      const stack = Stack.of(this);
      const identityArn = stack.formatArn({ service: 'ses', resource: 'identity', resourceName: config.sesIdentity });
      const resources = [identityArn];
      if (configurationSetName) {
        const resourceName = configurationSetName;
        resources.push(stack.formatArn({ service: 'ses', resource: 'configuration-set', resourceName }));
      }
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
