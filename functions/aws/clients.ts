import { AsyncLocalStorage } from 'node:async_hooks';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { tableHooks } from './table-hooks.js';

/**
 * How long one call to an AWS service may take, milliseconds, and how many tries the SDK makes. Every client has
 * them, so no call can hang (a stalled endpoint kept a call pending for the whole invocation before).
 *
 * - `connectionTimeoutMs` 1000: in-region TLS connects take tens of milliseconds.
 * - `requestTimeoutMs` 3000 (S3 5000): until the response starts; DynamoDB, SQS and SNS answer in milliseconds.
 *   For S3 it covers the response headers, not the body's download.
 * - `maxAttempts` 2: one retry of a throttled or failed call; our own retries (the completion write, publishing)
 *   and the queue's schedule do the rest.
 *
 * A call's worst case, 2 × (1 + 3) s plus the SDK's backoff, stays below the dispatcher's finish reserve and
 * deadline margin only together with the call's deadline: inside an attempt every call is also cut at the
 * attempt's deadline (see {@link withCallDeadline}).
 */
const AWS_CALL_LIMITS = {
  connectionTimeoutMs: 1000,
  requestTimeoutMs: 3000,
  s3RequestTimeoutMs: 5000,
  maxAttempts: 2,
} as const;

const callDeadline = new AsyncLocalStorage<AbortSignal>();

/**
 * Runs `work` with every AWS SDK call made inside it (ours, the idempotency layer's, nodemailer's SES call) aborted
 * once `signal` aborts: the request handler picks the signal up, so code that never heard of it is bounded too.
 */
export function withCallDeadline<T>(signal: AbortSignal, work: () => Promise<T>): Promise<T> {
  return callDeadline.run(signal, work);
}

/** The SDK's Node.js request handler with our timeouts, and the deadline of the call's context as its abortSignal. */
class BoundedHttpHandler extends NodeHttpHandler {
  override handle(
    request: Parameters<NodeHttpHandler['handle']>[0],
    options: Parameters<NodeHttpHandler['handle']>[1] = {},
  ) {
    return super.handle(request, { ...options, abortSignal: options.abortSignal ?? callDeadline.getStore() });
  }
}

/** A request handler for an SDK client, with {@link AWS_CALL_LIMITS}. */
export function createBoundedRequestHandler(
  requestTimeoutMs: number = AWS_CALL_LIMITS.requestTimeoutMs,
): NodeHttpHandler {
  return new BoundedHttpHandler({
    connectionTimeout: AWS_CALL_LIMITS.connectionTimeoutMs,
    requestTimeout: requestTimeoutMs,
    throwOnRequestTimeout: true,
    socketTimeout: requestTimeoutMs,
  });
}

/**
 * The limits of {@link AWS_CALL_LIMITS} for an SDK client made on its own (Secrets Manager): its calls are bounded,
 * and cut at the deadline of the attempt that makes them, as those of {@link createAwsClients}' clients are.
 */
export function boundedClientConfig(): { maxAttempts: number; requestHandler: NodeHttpHandler } {
  return { maxAttempts: AWS_CALL_LIMITS.maxAttempts, requestHandler: createBoundedRequestHandler() };
}

/** Runs `create` once, on the first call; later calls share its promise (a failure is retried on the next call). */
function once<T>(create: () => Promise<T>): () => Promise<T> {
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
  /** Closes every client's sockets (a container never needs to; a process that makes many sets of clients does). */
  destroy(): void;
};

/**
 * A client's stack without the SDK's logging step. The SDK's default logger drops everything, yet the step still
 * copies each request and response through their schemas to hide sensitive fields: CPU on every call, for nothing.
 */
function quiet<T extends { middlewareStack: { remove(name: string): boolean } }>(client: T): T {
  client.middlewareStack.remove('loggerMiddleware');
  return client;
}

/**
 * Creates the clients. `endpoint` points every one at a single local emulator port per service (the local twin and
 * tests); in AWS it is left out. `wrap` lets the tracer instrument each client.
 *
 * The DynamoDB and SNS clients, called several times a job, resolve each command's middleware stack once
 * (`cacheMiddleware`) rather than on every call; their stacks are complete when they are made (per-table steps go
 * through table-hooks.ts). The document client keeps a DynamoDB client of its own (it cannot share a cached one), on
 * the same request handler.
 */
export function createAwsClients(
  options: {
    region?: string;
    endpoints?: { sqs?: string; sns?: string; s3?: string; dynamodb?: string };
    credentials?: { accessKeyId: string; secretAccessKey: string };
    wrap?: <T>(client: T) => T;
  } = {},
): AwsClients {
  const wrap = options.wrap ?? (<T>(client: T) => client);
  const base = {
    region: options.region,
    ...(options.credentials ? { credentials: options.credentials } : {}),
    maxAttempts: AWS_CALL_LIMITS.maxAttempts,
  };
  const bounded = () => ({ ...base, requestHandler: createBoundedRequestHandler() });
  const cached = () => ({ ...bounded(), cacheMiddleware: true });
  // Both DynamoDB clients share one request handler: one pool of sockets, warmed by whichever calls first.
  const dynamodbConfig = { ...cached(), endpoint: options.endpoints?.dynamodb };
  const dynamodb = quiet(wrap(new DynamoDBClient(dynamodbConfig)));
  tableHooks(dynamodb);
  const documentsBase = quiet(wrap(new DynamoDBClient({ ...dynamodbConfig, cacheMiddleware: false })));
  const sns = quiet(wrap(new SNSClient({ ...cached(), endpoint: options.endpoints?.sns })));
  const made: Array<{ destroy(): void }> = [dynamodb, documentsBase, sns];
  return {
    sqs: once(async () => {
      const { SQSClient } = await import('@aws-sdk/client-sqs');
      const sqs = quiet(wrap(new SQSClient({ ...bounded(), endpoint: options.endpoints?.sqs })));
      made.push(sqs);
      return sqs;
    }),
    sns,
    s3: once(async () => {
      const { S3Client } = await import('@aws-sdk/client-s3');
      const s3 = quiet(
        wrap(
          new S3Client({
            ...base,
            requestHandler: createBoundedRequestHandler(AWS_CALL_LIMITS.s3RequestTimeoutMs),
            endpoint: options.endpoints?.s3,
            forcePathStyle: options.endpoints?.s3 !== undefined,
          }),
        ),
      );
      made.push(s3);
      return s3;
    }),
    dynamodb,
    documents: DynamoDBDocumentClient.from(documentsBase, { marshallOptions: { removeUndefinedValues: true } }),
    destroy: () => {
      for (const client of made) client.destroy();
    },
  };
}
