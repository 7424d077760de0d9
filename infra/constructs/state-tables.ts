import { RemovalPolicy } from 'aws-cdk-lib';
import { AttributeType, Billing, TableEncryptionV2, TableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';
import { TableKeys } from '#aws/table-keys.js';

const table = (scope: Construct, id: string, partitionKey: string, ttlAttribute?: string) =>
  new TableV2(scope, id, {
    partitionKey: { name: partitionKey, type: AttributeType.STRING },
    billing: Billing.onDemand(),
    encryption: TableEncryptionV2.awsManagedKey(),
    pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
    deletionProtection: true,
    timeToLiveAttribute: ttlAttribute,
    removalPolicy: RemovalPolicy.RETAIN,
  });

/**
 * The state the system keeps: job idempotency records, the suppression list, mailbox checkpoints and leases, and
 * the transports' circuit breakers (one small item per transport), and each job's status.
 */
export class StateTables extends Construct {
  readonly idempotency: TableV2;
  readonly suppression: TableV2;
  readonly mailboxState: TableV2;
  readonly transportState: TableV2;
  /** Per tenant: reputation counters by time bucket (TTL) and the tenant's standing (paused or not). */
  readonly tenantState: TableV2;
  /** One item per job: its status (what producers ask) and the cancel mark the dispatcher's claim respects. */
  readonly jobStatus: TableV2;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    this.idempotency = table(
      this,
      'Idempotency',
      TableKeys.idempotency.partitionKey,
      TableKeys.idempotency.ttlAttribute,
    );
    const { partitionKey, ttlAttribute } = TableKeys.suppression;
    this.suppression = table(this, 'Suppression', partitionKey, ttlAttribute);
    this.mailboxState = table(
      this,
      'MailboxState',
      TableKeys.mailboxState.partitionKey,
      TableKeys.mailboxState.ttlAttribute,
    );
    this.transportState = table(this, 'TransportState', TableKeys.transportState.partitionKey);
    const { tenantState } = TableKeys;
    this.tenantState = table(this, 'TenantState', tenantState.partitionKey, tenantState.ttlAttribute);
    this.jobStatus = table(this, 'JobStatus', TableKeys.jobStatus.partitionKey, TableKeys.jobStatus.ttlAttribute);
  }
}
