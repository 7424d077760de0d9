import type { IGrantable } from 'aws-cdk-lib/aws-iam';
import type { ReputationPolicy } from '#core/reputation.js';
import type { StateTables } from './state-tables.js';

/** The variables that turn the reputation guardrail on in a function (read by functions/config.ts). */
export function reputationEnvironment(policy: ReputationPolicy, tables: StateTables): Record<string, string> {
  return {
    TENANT_STATE_TABLE: tables.tenantState.tableName,
    REPUTATION_MAX_BOUNCE_RATE: String(policy.maxBounceRate),
    REPUTATION_MAX_COMPLAINT_RATE: String(policy.maxComplaintRate),
    REPUTATION_MIN_RECIPIENTS: String(policy.minRecipients),
    REPUTATION_MIN_REPORTS: String(policy.minReports),
    REPUTATION_WINDOW_SECONDS: String(policy.windowSeconds),
    REPUTATION_BUCKET_SECONDS: String(policy.bucketSeconds),
  };
}

/**
 * What each side of the guardrail does to the tenant table: the dispatcher reads standings and adds to counters; the
 * report side also reads windows (BatchGetItem) and writes pauses (conditional UpdateItem). Nobody deletes.
 */
export function grantReputation(grantee: IGrantable, tables: StateTables, side: 'dispatch' | 'reports') {
  const actions = side === 'dispatch' ? ['dynamodb:GetItem'] : ['dynamodb:BatchGetItem'];
  tables.tenantState.grant(grantee, ...actions, 'dynamodb:UpdateItem');
}
