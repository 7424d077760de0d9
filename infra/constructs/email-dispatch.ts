import { Duration, Fn, Lazy, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { CfnRole, PolicyStatement, ServicePrincipal, type IGrantable } from 'aws-cdk-lib/aws-iam';
import { TableKeys } from '#aws/table-keys.js';
import { Key } from 'aws-cdk-lib/aws-kms';
import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { BlockPublicAccess, Bucket, BucketEncryption, ObjectOwnership } from 'aws-cdk-lib/aws-s3';
import { Secret, type ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import { SubscriptionFilter, Topic } from 'aws-cdk-lib/aws-sns';
import { SqsSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { DEFAULT_TENANT, isTenantName, tenantObjectPrefix } from '#core/tenant.js';
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
  /** Principals granted to send, by unique id, with their tenant; and those that re-send checked jobs. */
  readonly #senders: Array<{ grantee: IGrantable; tenant: string; principalId?: string }> = [];
  readonly #systemSenders: string[] = [];

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
        { prefix: 'tenants/', expiration: Duration.days(15) },
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

    // Who may send as which tenant, read when the template is written (grants come after construction). Tenants
    // are on once any producer is granted one other than the default; until then every job is the default's.
    const tenantsOn = () => this.#senders.some((s) => s.tenant !== DEFAULT_TENANT);
    this.dispatch.fn.addEnvironment(
      'TENANT_SENDERS',
      Lazy.string({
        produce: () => {
          if (!tenantsOn()) return '{}';
          const unknown = this.#senders.filter((s) => s.principalId === undefined);
          if (unknown.length > 0)
            throw new Error(
              `grantSend: with tenants, every producer needs a unique id: pass { principalId } for ${unknown
                .map((s) => (s.grantee as unknown as { node?: { path?: string } }).node?.path ?? 'a grantee')
                .join(', ')} (an IAM role's RoleId, AROA…)`,
            );
          const map = Object.fromEntries(this.#senders.map((s) => [s.principalId as string, s.tenant]));
          return Stack.of(this).toJsonString(map);
        },
      }),
    );
    // The dispatcher's own requeue keeps the tenant it checked; so do the roles granted redrive.
    const ownRole = uniqueIdOf(this.dispatch.fn.role);
    if (ownRole) this.#systemSenders.push(ownRole);
    this.dispatch.fn.addEnvironment(
      'SYSTEM_SENDERS',
      Lazy.string({ produce: () => (tenantsOn() ? Fn.join(',', this.#systemSenders) : '') }),
    );
  }

  /**
   * Lets a producer put jobs on the queue as `tenant` (@default 'default') and its claim-checked bodies and
   * attachments under that tenant's prefix, and nowhere else; and cancel and ask the status of that tenant's jobs
   * only (grantJobControl). The dispatcher accepts the producer's jobs only as that tenant: it knows the producer by
   * its unique id (SQS's SenderId), taken from a role made in this app, or given as `principalId` (an imported
   * role's RoleId `AROA…`, a user's UserId `AIDA…`).
   */
  grantSend(grantee: IGrantable, options: { tenant?: string; principalId?: string } = {}) {
    const tenant = options.tenant ?? DEFAULT_TENANT;
    if (!isTenantName(tenant))
      throw new Error(`grantSend: tenant "${tenant}" must be 1–32 of a-z 0-9 and inner hyphens`);
    const principalId = options.principalId ?? uniqueIdOf(grantee);
    const known = this.#senders.find((s) => principalId !== undefined && s.principalId === principalId);
    if (known && known.tenant !== tenant)
      throw new Error(`grantSend: one principal cannot send as two tenants (${known.tenant}, ${tenant})`);
    if (principalId !== undefined && this.#systemSenders.includes(principalId)) throw bothRoles('grantSend');
    this.#senders.push({ grantee, tenant, principalId });
    this.jobs.grantSend(grantee);
    this.bucket.grantPut(grantee, `${tenantObjectPrefix(tenant)}*`);
    this.grantJobControl(grantee, tenant);
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

  /**
   * Lets an operator's role move dead letters back to the jobs queue (`npm run redrive`). Its re-sends keep the
   * tenant the dispatcher wrote on each dead letter, so the role is trusted to carry tenants: grant it to people,
   * not to producers. `principalId` as for grantSend.
   */
  grantRedrive(grantee: IGrantable, options: { principalId?: string } = {}) {
    const principalId = options.principalId ?? uniqueIdOf(grantee);
    if (principalId === undefined)
      throw new Error("grantRedrive: pass { principalId } (the role's RoleId, AROA…) for a role not made in this app");
    if (this.#senders.some((s) => s.principalId === principalId)) throw bothRoles('grantRedrive');
    this.#systemSenders.push(principalId);
    this.jobs.deadLetterQueue.grantConsumeMessages(grantee);
    this.jobs.queue.grantSendMessages(grantee);
  }

  /** Lets a consumer subscribe to outcome and inbound events: every tenant's (an operator's view). */
  grantSubscribe(grantee: IGrantable) {
    this.eventsTopic.grantSubscribe(grantee);
  }

  /**
   * Subscribes a tenant's queue to that tenant's outcome events only (a filter policy on the `tenant` attribute):
   * the stack makes the subscription, so the tenant needs no sns:Subscribe, which would let it choose its own filter.
   */
  subscribeTenant(queue: IQueue, tenant: string) {
    if (!isTenantName(tenant))
      throw new Error(`subscribeTenant: tenant "${tenant}" must be 1–32 of a-z 0-9 and inner hyphens`);
    this.eventsTopic.addSubscription(
      new SqsSubscription(queue, {
        rawMessageDelivery: true,
        filterPolicy: { tenant: SubscriptionFilter.stringFilter({ allowlist: [tenant] }) },
      }),
    );
  }
}

/**
 * A producer's role that could also redrive would send any tenant's jobs (a redrive's claims are trusted); the
 * dispatcher's configuration refuses it at start, so the stack refuses it first.
 */
const bothRoles = (method: string) =>
  new Error(`${method}: a principal granted to send as a tenant cannot also redrive (grant redrive to people)`);

/** The unique id (`AROA…`) of a role made in this app, as SQS reports it in SenderId; undefined for anything else. */
function uniqueIdOf(grantee: IGrantable | undefined): string | undefined {
  const resource = (grantee as { node?: { defaultChild?: unknown } } | undefined)?.node?.defaultChild;
  return resource instanceof CfnRole ? resource.attrRoleId : undefined;
}
