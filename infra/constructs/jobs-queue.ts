import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import type { IGrantable } from 'aws-cdk-lib/aws-iam';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { deriveQueueSettings, type SystemSettings } from '../settings.js';

/**
 * The jobs queue and its dead-letter queue, encrypted and TLS-only, sized and redriven from the shared settings so
 * that the redrive policy, the retry lifetime and the visibility timeout agree.
 */
export class JobsQueue extends Construct {
  readonly queue: Queue;
  readonly deadLetterQueue: Queue;

  constructor(scope: Construct, id: string, settings: SystemSettings) {
    super(scope, id);
    const derived = deriveQueueSettings(settings);
    this.deadLetterQueue = new Queue(this, 'DeadLetterQueue', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.seconds(derived.deadLetterRetentionSeconds),
      maxMessageSizeBytes: settings.maxMessageSizeBytes,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.queue = new Queue(this, 'Queue', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      visibilityTimeout: Duration.seconds(derived.visibilityTimeoutSeconds),
      retentionPeriod: Duration.seconds(derived.retentionSeconds),
      maxMessageSizeBytes: settings.maxMessageSizeBytes,
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: derived.maxReceiveCount },
      removalPolicy: RemovalPolicy.RETAIN,
    });
  }

  /** Lets a producer put jobs on the queue. */
  grantSend(grantee: IGrantable) {
    return this.queue.grantSendMessages(grantee);
  }
}
