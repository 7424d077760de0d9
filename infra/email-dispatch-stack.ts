import { CfnOutput, Stack, Validations, type StackProps } from 'aws-cdk-lib';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import { EmailDispatch } from './constructs/email-dispatch.js';
import type { StackConfig } from './stack-config.js';

/** The deployable stack: the EmailDispatch construct, the outputs producers need, and the reviewed nag findings. */
export class EmailDispatchStack extends Stack {
  readonly system: EmailDispatch;

  constructor(scope: Construct, id: string, config: StackConfig, props?: StackProps) {
    super(scope, id, props);
    this.system = new EmailDispatch(this, 'EmailDispatch', config);
    const { jobs, eventsTopic, bucket, monitoring } = this.system;

    new CfnOutput(this, 'JobsQueueUrl', { value: jobs.queue.queueUrl, description: 'Where producers send email jobs' });
    new CfnOutput(this, 'JobsQueueArn', { value: jobs.queue.queueArn });
    new CfnOutput(this, 'DeadLetterQueueUrl', {
      value: jobs.deadLetterQueue.queueUrl,
      description: 'Jobs that will not be sent, with their reason; see npm run redrive',
    });
    new CfnOutput(this, 'EventsTopicArn', {
      value: eventsTopic.topicArn,
      description: 'Subscribe to email.* and inbound events',
    });
    new CfnOutput(this, 'BucketName', {
      value: bucket.bucketName,
      description: 'Claim-checked jobs (jobs/), attachments (attachments/), inbound mail (inbound/)',
    });
    new CfnOutput(this, 'SuppressionTableName', {
      value: this.system.tables.suppression.tableName,
      description: 'The suppression list; see npm run suppression',
    });
    new CfnOutput(this, 'SuppressionTtlDays', {
      value: String(config.suppressionTtlDays),
      description: 'Days a suppression for a non-permanent reason lasts, as npm run suppression -- add gives it',
    });
    new CfnOutput(this, 'TenantStateTableName', {
      value: this.system.tables.tenantState.tableName,
      description: 'Per-tenant reputation and pauses; see npm run tenant',
    });
    new CfnOutput(this, 'JobStatusTableName', {
      value: this.system.tables.jobStatus.tableName,
      description: "Each job's status and cancel mark; see npm run status and npm run cancel",
    });
    new CfnOutput(this, 'ReputationLimits', {
      value: JSON.stringify(config.reputation),
      description: "The guardrail's limits, as npm run tenant -- status judges tenants by them",
    });
    new CfnOutput(this, 'AlarmTopicArn', { value: monitoring.alarmTopic.topicArn });
    new CfnOutput(this, 'DashboardName', { value: monitoring.dashboard.dashboardName });

    acknowledgeReviewedFindings(this);
  }
}

/** Findings of the cdk-nag packs that were reviewed and accepted, each with its reason. */
function acknowledgeReviewedFindings(stack: EmailDispatchStack) {
  const { system } = stack;
  const functions = [system.dispatch.fn, ...(system.poller ? [system.poller.fn] : [])];
  for (const fn of functions) {
    Validations.of(fn).acknowledge(
      {
        id: 'Serverless-LambdaDLQ',
        reason:
          'Not invoked asynchronously with payloads to keep: the dispatch function is fed by SQS (its queue has a DLQ), and a missed poller run is covered by the next one from its checkpoint.',
      },
      {
        id: 'Serverless-LambdaConcurrency',
        reason:
          'Dispatch concurrency is capped by the event source MaximumConcurrency (reserved concurrency alone lets the poller over-read and dead-letter valid mail); the poller is serialised per mailbox by a DynamoDB lease. Reserved concurrency would also fail on accounts with the default 10-unit limit.',
      },
    );
  }
  Validations.of(system.dispatch.fn).acknowledge({
    id: 'Serverless-LambdaEventSourceMappingDestination',
    reason:
      'SQS event source mappings do not support on-failure destinations; failed records return to the queue and its redrive policy moves them to the DLQ.',
  });
  for (const fn of [...functions, ...(system.sesEvents ? [system.sesEvents.fn] : [])]) {
    Validations.of(fn.role ?? fn).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'Only the X-Ray statement (xray:PutTraceSegments, xray:PutTelemetryRecords) that active tracing adds: X-Ray has no resource-level permissions.',
    });
  }
  const bucketArn = stack.resolve(system.bucket.bucketArn) as { 'Fn::GetAtt': [string, string] };
  const bucketToken = `<${bucketArn['Fn::GetAtt'][0]}.Arn>`;
  Validations.of(system.dispatch.fn.role ?? system.dispatch.fn).acknowledge({
    id: `AwsSolutions-IAM5[Resource::${bucketToken}/tenants/*]`,
    reason:
      "GetObject on the tenants' prefix of the deployment bucket: object names are random, chosen by producers; the function holds each job to its own tenant's prefix and checks each object's size and SHA-256.",
  });
  if (system.poller) {
    Validations.of(system.poller.rule).acknowledge({
      id: 'Serverless-EventBusDLQ',
      reason:
        'A scheduled tick carries no data: a tick that fails to invoke the poller is covered by the next one, which resumes from the mailbox checkpoint; the heartbeat alarm catches a poller that stays down.',
    });
    Validations.of(system.poller.fn.role ?? system.poller.fn).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${bucketToken}/inbound/*]`,
      reason:
        'PutObject on the inbound prefix: one object per received message, keyed by mailbox, UIDVALIDITY and UID.',
    });
  }
  for (const subscription of system.monitoring.alarmTopic.node
    .findAll()
    .filter((c) => c.node.id === 'Resource' && c.node.scope?.node.id.includes('@'))) {
    Validations.of(subscription).acknowledge({
      id: 'Serverless-SNSRedrivePolicy',
      reason:
        'The e-mail subscription of the alarm topic: alarm state lives in CloudWatch, and an undelivered notification is sent again at the next state change.',
    });
  }
  if (system.reportKeys instanceof Secret) {
    Validations.of(system.reportKeys).acknowledge({
      id: 'AwsSolutions-SMG4',
      reason:
        'The report keys rotate by key id, by hand: a new key becomes current while the old one stays listed ' +
        'until reports about mail it signed stop coming (README, key rotation). An automatic rotation would drop ' +
        'the old key and with it every verifiable report.',
    });
  }
  if (system.sesEvents) {
    Validations.of(system.sesEvents.deadLetterQueue).acknowledge({
      id: 'Serverless-SQSRedrivePolicy',
      reason: 'This is the dead-letter queue of the SES event consumer itself; an alarm watches it.',
    });
  }
  Validations.of(system.jobs.deadLetterQueue).acknowledge({
    id: 'Serverless-SQSRedrivePolicy',
    reason:
      'This is the dead-letter queue itself, the end of the line; npm run redrive moves its jobs back to the jobs queue.',
  });
}
