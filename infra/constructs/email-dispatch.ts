import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { PolicyStatement, ServicePrincipal, type IGrantable } from 'aws-cdk-lib/aws-iam';
import { TableKeys } from '#aws/table-keys.js';
import { DEFAULT_TENANT } from '#core/tenant.js';
import { Key } from 'aws-cdk-lib/aws-kms';
import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { BlockPublicAccess, Bucket, BucketEncryption, ObjectOwnership } from 'aws-cdk-lib/aws-s3';
import { Secret, type ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import type { StackConfig } from '../stack-config.js';
import { DispatchFunction } from './dispatch-function.js';
import { JobsQueue } from './jobs-queue.js';
import { MailboxPoller } from './mailbox-poller.js';
import { referenceSecret } from './secret-reference.js';
import { SesEvents } from './ses-events.js';
import { Monitoring } from './monitoring.js';
import { StateTables } from './state-tables.js';

/** The whole system as one construct, for teams that embed it in a stack of their own. */
export class EmailDispatch extends Construct {
  readonly jobs: JobsQueue;
  readonly tables: StateTables;
  readonly eventsTopic: Topic;
  readonly bucket: Bucket;
  readonly dispatch: DispatchFunction;
  readonly poller?: MailboxPoller;
  /** The report keys every message is signed with and every bounce or complaint verified against. */
  readonly reportKeys: ISecret;
  /** With SES: the configuration set's event destination and its consumer. */
  readonly sesEvents?: SesEvents;
  readonly monitoring: Monitoring;

  constructor(scope: Construct, id: string, config: StackConfig) {
    super(scope, id);
    const logRetention = (Object.values(RetentionDays) as number[]).includes(config.logRetentionDays)
      ? (config.logRetentionDays as RetentionDays)
      : RetentionDays.ONE_MONTH;

    // One customer managed key for both topics: CloudWatch alarms can only publish to a topic whose key lets them.
    const key = new Key(this, 'TopicKey', {
      enableKeyRotation: true,
      description: 'email-dispatch SNS topics',
      removalPolicy: RemovalPolicy.RETAIN,
    });
    key.grant(new ServicePrincipal('cloudwatch.amazonaws.com'), 'kms:Decrypt', 'kms:GenerateDataKey*');

    this.jobs = new JobsQueue(this, 'Jobs', config.settings);
    this.tables = new StateTables(this, 'State');
    this.eventsTopic = new Topic(this, 'EventsTopic', {
      displayName: 'email-dispatch events',
      masterKey: key,
      enforceSSL: true,
    });

    const accessLogs = new Bucket(this, 'AccessLogs', {
      encryption: BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      objectOwnership: ObjectOwnership.BUCKET_OWNER_PREFERRED,
      lifecycleRules: [{ expiration: Duration.days(90) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.bucket = new Bucket(this, 'Bucket', {
      encryption: BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      serverAccessLogsBucket: accessLogs,
      serverAccessLogsPrefix: 'bucket/',
      lifecycleRules: [
        // Claim-checked jobs and attachments outlive the job's whole life, DLQ included (14 days).
        { prefix: 'jobs/', expiration: Duration.days(15) },
        { prefix: 'attachments/', expiration: Duration.days(15) },
        { prefix: 'inbound/', expiration: Duration.days(90) },
      ],
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // Kept on stack deletion: without the keys, reports about mail already sent can no longer be verified.
    this.reportKeys = config.reportKeysSecret
      ? referenceSecret(this, 'ReportKeys', config.reportKeysSecret)
      : new Secret(this, 'ReportKeys', {
          description: 'email-dispatch report keys: {"current": "<id>", "<id>": "<secret>", ...}; README: rotation',
          generateSecretString: {
            secretStringTemplate: JSON.stringify({ current: 'k1' }),
            generateStringKey: 'k1',
            passwordLength: 64,
            excludePunctuation: true,
          },
          removalPolicy: RemovalPolicy.RETAIN,
        });
    const shared = { config, tables: this.tables, events: this.eventsTopic, key, logRetention };
    if (config.transports.includes('ses')) {
      this.sesEvents = new SesEvents(this, 'SesEvents', { ...shared, reportKeys: this.reportKeys });
    }
    const sesConfigurationSetName = this.sesEvents?.configurationSet.configurationSetName;
    const { jobs, bucket } = this;
    const reportKeys = this.reportKeys;
    const dispatchProps = { ...shared, jobs, bucket, reportKeys, sesConfigurationSetName };
    this.dispatch = new DispatchFunction(this, 'Dispatch', dispatchProps);
    if (config.mailboxes.length > 0) {
      this.poller = new MailboxPoller(this, 'Poller', { ...shared, bucket, reportKeys: this.reportKeys });
    }
    const { dispatch, poller, sesEvents } = this;
    this.monitoring = new Monitoring(this, 'Monitoring', { config, jobs, dispatch, poller, sesEvents, key });
  }

  /**
   * Lets a producer put jobs on the queue and claim-checked bodies and attachments in the bucket, and cancel and
   * ask the status of its jobs.
   */
  grantSend(grantee: IGrantable) {
    this.jobs.grantSend(grantee);
    this.bucket.grantPut(grantee, 'jobs/*');
    this.bucket.grantPut(grantee, 'attachments/*');
    this.grantJobControl(grantee);
  }

  /**
   * Lets a producer cancel and read the status of its own jobs only: GetItem and UpdateItem on the job status table
   * for keys of its tenant (`dynamodb:LeadingKeys`: `<tenant> <key>`; the default tenant's keys are bare, so any key
   * without a space), and the update may touch only what a cancel writes.
   */
  grantJobControl(grantee: IGrantable, tenant: string = DEFAULT_TENANT) {
    const keys =
      tenant === DEFAULT_TENANT
        ? { 'ForAllValues:StringNotLike': { 'dynamodb:LeadingKeys': ['* *'] } }
        : { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': [`${tenant} *`] } };
    const table = this.tables.jobStatus.tableArn;
    grantee.grantPrincipal.addToPrincipalPolicy(
      new PolicyStatement({ actions: ['dynamodb:GetItem'], resources: [table], conditions: keys }),
    );
    const written = ['state', 'cancelledAt', 'updatedAt', TableKeys.jobStatus.ttlAttribute];
    grantee.grantPrincipal.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ['dynamodb:UpdateItem'],
        resources: [table],
        conditions: {
          ...keys,
          'ForAllValues:StringEquals': { 'dynamodb:Attributes': [TableKeys.jobStatus.partitionKey, ...written] },
        },
      }),
    );
  }

  /** Lets a consumer subscribe to outcome and inbound events. */
  grantSubscribe(grantee: IGrantable) {
    this.eventsTopic.grantSubscribe(grantee);
  }
}
