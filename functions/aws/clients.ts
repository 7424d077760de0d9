import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';

/** The SDK clients both functions use, created once per container. */
export type AwsClients = {
  sqs: SQSClient;
  sns: SNSClient;
  s3: S3Client;
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
    sqs: wrap(new SQSClient({ ...base, endpoint: options.endpoints?.sqs })),
    sns: wrap(new SNSClient({ ...base, endpoint: options.endpoints?.sns })),
    s3: wrap(new S3Client({ ...base, endpoint: options.endpoints?.s3, forcePathStyle: options.endpoints?.s3 !== undefined })),
    dynamodb,
    documents: DynamoDBDocumentClient.from(dynamodb, { marshallOptions: { removeUndefinedValues: true } }),
  };
}
