import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';

/** Runs `create` once, on the first call; later calls share its promise (a failure is retried on the next call). */
export function once<T>(create: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | undefined;
  return () => {
    pending ??= create().catch((error: unknown) => {
      pending = undefined;
      throw error;
    });
    return pending;
  };
}

/** The SDK clients both functions use, created once per container. */
export type AwsClients = {
  /** Created on first use: the dispatcher needs it only for a job that fails or waits; the poller never. */
  sqs: () => Promise<SQSClient>;
  sns: SNSClient;
  /** Created on first use: a dispatch deployment may never touch S3 (it loads the S3 client only then). */
  s3: () => Promise<S3Client>;
  dynamodb: DynamoDBClient;
  documents: DynamoDBDocumentClient;
};

/**
 * Creates the clients. `endpoint` points every one at a single local emulator port per service (the local twin and
 * tests); in AWS it is left out. `wrap` lets the tracer instrument each client.
 */
export function createAwsClients(options: {
  region?: string;
  endpoints?: { sqs?: string; sns?: string; s3?: string; dynamodb?: string };
  credentials?: { accessKeyId: string; secretAccessKey: string };
  wrap?: <T>(client: T) => T;
} = {}): AwsClients {
  const wrap = options.wrap ?? (<T>(client: T) => client);
  const base = { region: options.region, ...(options.credentials ? { credentials: options.credentials } : {}) };
  const dynamodb = wrap(new DynamoDBClient({ ...base, endpoint: options.endpoints?.dynamodb }));
  return {
    sqs: once(async () => {
      const { SQSClient } = await import('@aws-sdk/client-sqs');
      return wrap(new SQSClient({ ...base, endpoint: options.endpoints?.sqs }));
    }),
    sns: wrap(new SNSClient({ ...base, endpoint: options.endpoints?.sns })),
    s3: once(async () => {
      const { S3Client } = await import('@aws-sdk/client-s3');
      return wrap(new S3Client({ ...base, endpoint: options.endpoints?.s3, forcePathStyle: options.endpoints?.s3 !== undefined }));
    }),
    dynamodb,
    documents: DynamoDBDocumentClient.from(dynamodb, { marshallOptions: { removeUndefinedValues: true } }),
  };
}
