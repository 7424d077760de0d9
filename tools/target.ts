import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { createAwsClients, type AwsClients } from '#aws/clients.js';
import type { TwinManifest } from '#local/twin.js';

/** Where a tool sends: the local twin (default) or a deployed stack. */
export type Target = {
  description: string;
  sqs: SQSClient;
  s3: S3Client;
  queueUrl: string;
  deadLetterQueueUrl?: string;
  bucket?: string;
  /** The twin's queue subscribed to the events topic. */
  eventsTapQueueUrl?: string;
};

export type TargetArgs = {
  /** A jobs queue URL in AWS (credentials and region from the usual AWS environment). */
  queueUrl?: string;
  deadLetterQueueUrl?: string;
  /** The JSON written by `cdk deploy --outputs-file`. */
  outputs?: string;
  /** The twin's directory. @default $TWIN_DIR or .local */
  dataDir?: string;
};

const regionOf = (queueUrl: string) => /sqs[.-]([a-z0-9-]+)\.amazonaws\.com/.exec(queueUrl)?.[1];

/** Resolves the target from flags: --outputs or --queue-url mean AWS; otherwise the running local twin. */
export function resolveTarget(args: TargetArgs): Target {
  if (args.outputs) {
    const stack = readStackOutputs(args.outputs);
    const region = regionOf(stack.JobsQueueUrl);
    return { description: `AWS (${stack.JobsQueueUrl})`, sqs: new SQSClient({ region }), s3: new S3Client({ region }), queueUrl: stack.JobsQueueUrl, deadLetterQueueUrl: stack.DeadLetterQueueUrl, bucket: stack.BucketName };
  }
  if (args.queueUrl) {
    const region = regionOf(args.queueUrl);
    return { description: `AWS (${args.queueUrl})`, sqs: new SQSClient({ region }), s3: new S3Client({ region }), queueUrl: args.queueUrl, deadLetterQueueUrl: args.deadLetterQueueUrl };
  }
  const manifest = readTwinManifest(args.dataDir);
  const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
  return {
    description: `local twin (${manifest.endpoints.sqs})`,
    sqs: new SQSClient({ region: manifest.region, endpoint: manifest.endpoints.sqs, credentials }),
    s3: new S3Client({ region: manifest.region, endpoint: manifest.endpoints.s3, credentials, forcePathStyle: true }),
    queueUrl: manifest.resources.jobsQueueUrl,
    deadLetterQueueUrl: manifest.resources.deadLetterQueueUrl,
    bucket: manifest.resources.bucket,
    eventsTapQueueUrl: manifest.resources.eventsTapQueueUrl,
  };
}

/** The stack's outputs from the JSON written by `cdk deploy --outputs-file`. */
function readStackOutputs(path: string): Record<string, string> & { JobsQueueUrl: string } {
  const outputs = JSON.parse(readFileSync(path, 'utf8')) as Record<string, Record<string, string>>;
  const stack = Object.values(outputs).find((o) => o.JobsQueueUrl);
  if (!stack?.JobsQueueUrl) {
    throw new Error(`${path} has no JobsQueueUrl output (write it with cdk deploy --outputs-file)`);
  }
  return stack as Record<string, string> & { JobsQueueUrl: string };
}

/** The running twin's manifest. */
function readTwinManifest(dataDir?: string): TwinManifest {
  const manifestPath = join(resolve(dataDir ?? process.env.TWIN_DIR ?? '.local'), 'twin.json');
  if (!existsSync(manifestPath)) {
    throw new Error(`no local twin found (${manifestPath} is missing): start it with npm start, or pass --queue-url / --outputs`);
  }
  return JSON.parse(readFileSync(manifestPath, 'utf8')) as TwinManifest;
}

/** Where a tool reads and changes the system's state: the suppression table and the events topic. */
export type StateTarget = {
  description: string;
  clients: AwsClients;
  suppressionTable: string;
  eventsTopicArn: string;
};

/** Resolves the state target: --outputs means the deployed stack; otherwise the running local twin. */
export function resolveStateTarget(args: Pick<TargetArgs, 'outputs' | 'dataDir'>): StateTarget {
  if (args.outputs) {
    const stack = readStackOutputs(args.outputs);
    if (!stack.SuppressionTableName || !stack.EventsTopicArn) {
      const missing = 'the SuppressionTableName or EventsTopicArn output';
      throw new Error(`${args.outputs} lacks ${missing} (deploy the current stack)`);
    }
    return {
      description: `AWS (${stack.SuppressionTableName})`,
      clients: createAwsClients({ region: regionOf(stack.JobsQueueUrl) }),
      suppressionTable: stack.SuppressionTableName,
      eventsTopicArn: stack.EventsTopicArn,
    };
  }
  const manifest = readTwinManifest(args.dataDir);
  return {
    description: `local twin (${manifest.endpoints.dynamodb})`,
    clients: createAwsClients({
      region: manifest.region,
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
      endpoints: manifest.endpoints,
    }),
    suppressionTable: manifest.resources.suppressionTable,
    eventsTopicArn: manifest.resources.eventsTopicArn,
  };
}
