import { Duration } from 'aws-cdk-lib';
import { Rule, Schedule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import type { StackConfig } from '../stack-config.js';
import { grantPublish } from './grant-publish.js';
import { grantReputation, reputationEnvironment } from './reputation.js';
import { NodeFunction } from './node-function.js';
import { grantPutSecretValue, referenceSecret } from './secret-reference.js';
import type { StateTables } from './state-tables.js';

export type MailboxPollerProps = {
  config: StackConfig;
  tables: StateTables;
  events: ITopic;
  key: IKey;
  bucket: IBucket;
  logRetention: RetentionDays;
  /** The report keys bounces and complaints are verified with. */
  reportKeys: ISecret;
};

/**
 * The scheduled IMAP poller: one run per rate, each mailbox under a lease, checkpoints in the mailbox-state table,
 * raw messages to S3, events to the topic, hard bounces and complaints to the suppression list.
 */
export class MailboxPoller extends Construct {
  readonly fn: NodeFunction;
  readonly rule: Rule;

  constructor(scope: Construct, id: string, props: MailboxPollerProps) {
    super(scope, id);
    const { config, tables, events, key, bucket } = props;
    const secrets = config.mailboxes.map((m, i) => referenceSecret(this, `MailboxSecret${i}`, m.secret));

    this.fn = new NodeFunction(this, 'Function', {
      entry: 'poll-mailbox.ts',
      description: 'Polls IMAP mailboxes for new mail and bounces; a scheduled stand-in for IDLE',
      timeout: Duration.seconds(config.settings.pollerTimeoutSeconds),
      memorySize: 1024,
      logRetention: props.logRetention,
      environment: {
        MAILBOXES: JSON.stringify(config.mailboxes.map((m, i) => ({ ...m, secret: secrets[i]?.secretArn }))),
        MAILBOX_STATE_TABLE: tables.mailboxState.tableName,
        SUPPRESSION_TABLE: tables.suppression.tableName,
        EVENTS_TOPIC_ARN: events.topicArn,
        RAW_MESSAGE_BUCKET: bucket.bucketName,
        POLL_INTERVAL_SECONDS: String(config.settings.pollRateMinutes * 60),
        SUPPRESSION_TTL_DAYS: String(config.suppressionTtlDays),
        REPEAT_WINDOW_DAYS: String(config.repeats.windowDays),
        HOST_UNKNOWN_REPEAT_DAYS: String(config.repeats.hostUnknownDays),
        SOFT_BOUNCE_REPEAT_DAYS: String(config.repeats.softBounceDays),
        REPORT_KEYS_SECRET_ID: props.reportKeys.secretArn,
        IDEMPOTENCY_TABLE: tables.idempotency.tableName,
        JOB_STATUS_TABLE: tables.jobStatus.tableName,
        ...(config.bounceDomain ? { BOUNCE_DOMAIN: config.bounceDomain } : {}),
        ...reputationEnvironment(config.reputation, tables),
      },
    });
    tables.mailboxState.grant(this.fn, 'dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:UpdateItem');
    tables.suppression.grant(this.fn, 'dynamodb:GetItem', 'dynamodb:PutItem');
    // A report is checked against the recipients the dispatcher stored for its job: read only.
    tables.idempotency.grant(this.fn, 'dynamodb:GetItem');
    grantReputation(this.fn, tables, 'reports');
    // A verified bounce or complaint marks its job's status (one conditional update).
    tables.jobStatus.grant(this.fn, 'dynamodb:UpdateItem');
    props.reportKeys.grantRead(this.fn);
    grantPublish(this.fn, events, key);
    this.fn.addToRolePolicy(
      new PolicyStatement({ actions: ['s3:PutObject'], resources: [bucket.arnForObjects('inbound/*')] }),
    );
    for (const secret of secrets) secret.grantRead(this.fn);
    for (const m of config.mailboxes) if (m.secretWriteBack) grantPutSecretValue(this, m.secret, this.fn);

    this.rule = new Rule(this, 'Schedule', {
      description: 'Runs the mailbox poller',
      schedule: Schedule.rate(Duration.minutes(config.settings.pollRateMinutes)),
      // A missed run is covered by the next one: the checkpoint says where to resume.
      targets: [
        new LambdaFunction(this.fn, {
          retryAttempts: 0,
          maxEventAge: Duration.minutes(config.settings.pollRateMinutes),
        }),
      ],
    });
  }
}
