import { Duration, Stack } from 'aws-cdk-lib';
import { PolicyStatement, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import {
  ConfigurationSet,
  ConfigurationSetEventDestination,
  EmailSendingEvent,
  EventDestination,
  type IConfigurationSet,
} from 'aws-cdk-lib/aws-ses';
import { Topic, type ITopic } from 'aws-cdk-lib/aws-sns';
import { LambdaSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { StackConfig } from '../stack-config.js';
import { grantPublish } from './grant-publish.js';
import { grantReputation, reputationEnvironment } from './reputation.js';
import { NodeFunction } from './node-function.js';
import type { StateTables } from './state-tables.js';

export type SesEventsProps = {
  config: StackConfig;
  tables: StateTables;
  events: ITopic;
  key: IKey;
  reportKeys: ISecret;
  logRetention: RetentionDays;
};

/** The SES events the consumer turns into our events and suppressions. */
const SES_EVENT_TYPES = [
  EmailSendingEvent.BOUNCE,
  EmailSendingEvent.COMPLAINT,
  EmailSendingEvent.DELIVERY,
  EmailSendingEvent.DELIVERY_DELAY,
  EmailSendingEvent.REJECT,
];

/**
 * SES's side of the one suppression list: a configuration set (created, or taken by name from `sesConfigurationSet`)
 * whose event destination publishes bounces, complaints, deliveries, delays and rejects to a topic only SES, for this
 * configuration set and account, may publish to; and the consumer function that verifies each event and feeds the
 * suppression store and the events topic as the IMAP poller does.
 */
export class SesEvents extends Construct {
  readonly configurationSet: IConfigurationSet;
  readonly topic: Topic;
  readonly fn: NodeFunction;
  /** Notifications SNS could not deliver to the function, kept for 14 days. */
  readonly deadLetterQueue: Queue;

  constructor(scope: Construct, id: string, props: SesEventsProps) {
    super(scope, id);
    const { config, tables, events, key, reportKeys } = props;
    const stack = Stack.of(this);

    this.configurationSet = config.sesConfigurationSet
      ? ConfigurationSet.fromConfigurationSetName(this, 'ConfigurationSet', config.sesConfigurationSet)
      : new ConfigurationSet(this, 'ConfigurationSet', {});
    const resourceName = this.configurationSet.configurationSetName;
    const configurationSetArn = stack.formatArn({ service: 'ses', resource: 'configuration-set', resourceName });
    const fromOurSes = { StringEquals: { 'AWS:SourceAccount': stack.account, 'AWS:SourceArn': configurationSetArn } };

    const ses = new ServicePrincipal('ses.amazonaws.com');
    const displayName = 'email-dispatch SES events';
    this.topic = new Topic(this, 'Topic', { displayName, masterKey: key, enforceSSL: true });
    const topicArn = this.topic.topicArn;
    const publish = { principals: [ses], actions: ['sns:Publish'], resources: [topicArn], conditions: fromOurSes };
    this.topic.addToResourcePolicy(new PolicyStatement(publish));
    // SES encrypts what it publishes to the topic with the topic's key.
    const kms = ['kms:GenerateDataKey*', 'kms:Decrypt'];
    const encrypt = { principals: [ses], actions: kms, resources: ['*'], conditions: fromOurSes };
    key.addToResourcePolicy(new PolicyStatement(encrypt));

    const destination = new ConfigurationSetEventDestination(this, 'EventDestination', {
      configurationSet: this.configurationSet,
      destination: EventDestination.snsTopic(this.topic),
      events: SES_EVENT_TYPES,
    });
    destination.node.addDependency(this.topic);

    this.deadLetterQueue = new Queue(this, 'DeadLetterQueue', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    this.fn = new NodeFunction(this, 'Function', {
      entry: 'ses-events.ts',
      description: 'Turns SES bounce, complaint, delivery, delay and reject events into events and suppressions',
      timeout: Duration.seconds(30),
      memorySize: 512,
      logRetention: props.logRetention,
      environment: {
        SES_EVENTS_TOPIC_ARN: this.topic.topicArn,
        ACCOUNT_ID: stack.account,
        SUPPRESSION_TABLE: tables.suppression.tableName,
        EVENTS_TOPIC_ARN: events.topicArn,
        REPORT_KEYS_SECRET_ID: reportKeys.secretArn,
        ...reputationEnvironment(config.reputation, tables),
        JOB_STATUS_TABLE: tables.jobStatus.tableName,
      },
      deadLetterQueue: this.deadLetterQueue,
    });
    this.topic.addSubscription(new LambdaSubscription(this.fn, { deadLetterQueue: this.deadLetterQueue }));
    tables.suppression.grant(this.fn, 'dynamodb:GetItem', 'dynamodb:PutItem');
    grantReputation(this.fn, tables, 'reports');
    // A verified bounce or complaint marks its job's status (one conditional update).
    tables.jobStatus.grant(this.fn, 'dynamodb:UpdateItem');
    grantPublish(this.fn, events, key);
    reportKeys.grantRead(this.fn);
  }
}
